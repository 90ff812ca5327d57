"""The Celery app and the one place where every scheduled job is declared."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("aisle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job of the project, in one list (Saleor style).
app.conf.beat_schedule = {
    "shop-purge-stale-carts": {
        "task": "shop.tasks.purge_stale_carts",
        "schedule": crontab(minute=15, hour=3),
    },
    # Retention: raw events older than 90 days become daily aggregates.
    "behavior-rollup-old-events": {
        "task": "behavior.tasks.rollup_old_events",
        "schedule": crontab(minute=30, hour=2),
    },
    # Sentiment: the nightly scoring of everything unscored or scored by an older model (resumable),
    # weekly re-discovery of each category's aspects, and an hourly check of negative-review alerts.
    "sentiment-nightly-scoring": {
        "task": "sentiment.tasks.nightly",
        "schedule": crontab(minute=0, hour=1),
    },
    "sentiment-discover-aspects": {
        "task": "sentiment.tasks.discover_aspects",
        "schedule": crontab(minute=0, hour=0, day_of_week="sunday"),
    },
    "sentiment-check-alerts": {
        "task": "sentiment.tasks.check_alerts",
        "schedule": crontab(minute=20),
    },
    # Recommend: re-embed products flagged as changed that no on-save task picked up.
    "recommend-embed-dirty-products": {
        "task": "recommend.tasks.embed_dirty_products",
        "schedule": crontab(),  # every minute
    },
    # Recommend: retrain co-view / bought-together neighbours and ALS from the last 90 days of events.
    "recommend-train-collaborative": {
        "task": "recommend.tasks.train_collaborative",
        "schedule": crontab(minute=40),  # hourly
    },
    # Support: weekly fine-tune of the intent model on the labelled set plus agent-corrected intents
    # (promoted only if it beats the active model on the held-out set).
    "support-finetune-intents": {
        "task": "support.tasks.finetune_intents",
        "schedule": crontab(minute=0, hour=4, day_of_week="monday"),
    },
}
