"""The Celery app and the one place where every scheduled job is declared."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("aisle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# --- Reliability (README, "Reliability") ------------------------------------------------------------------
# Jobs resume within minutes and are never run twice unasked:
# - default queue: acks_late (settings) and a hard time limit below the broker's visibility timeout, so a
#   message is redelivered only when its worker is really gone; idempotent jobs are also requeued at once
#   when the pool child running them dies (task_reject_on_worker_lost). Scoring runs record heartbeats;
#   `sentiment-resume-stale-runs` resumes a run whose worker vanished without waiting for the broker.
# - training queue: acknowledged on receipt (no redelivery: a fine-tune that dies is recorded as failed or
#   interrupted on its ModelVersion row, never retrained unasked), long limits, one task per child process
#   so the ~1 GB a fine-tune leaves behind is returned.
_visibility = int(os.environ.get("AISLE_BROKER_VISIBILITY_TIMEOUT_S", "600"))
DEFAULT_TIME_LIMIT_S = int(os.environ.get("AISLE_TASK_TIME_LIMIT_S", str(max(30, _visibility - 60))))
TRAINING_TIME_LIMIT_S = int(os.environ.get("AISLE_TRAINING_TIME_LIMIT_S", str(4 * 3600)))
IDEMPOTENT_TASKS = (
    "sentiment.tasks.score_review", "sentiment.tasks.score_pending", "sentiment.tasks.nightly",
    "sentiment.tasks.discover_aspects", "sentiment.tasks.check_alerts", "sentiment.tasks.resume_stale_runs",
    "shop.tasks.refresh_product_rating", "shop.tasks.purge_stale_carts", "shop.tasks.drain_outbox",
    "merchandising.tasks.generate_copy_draft", "search.tasks.embed_dirty_products", "ml.tasks.mark_stale_trainings",
)
TRAINING_TASKS = ("ml.tasks.finetune", "sentiment.tasks.train_model", "support.tasks.finetune_intents",
                  "merchandising.tasks.retrain_generator")
app.conf.task_time_limit = DEFAULT_TIME_LIMIT_S
app.conf.task_soft_time_limit = DEFAULT_TIME_LIMIT_S - 15
app.conf.task_annotations = {
    **{name: {"acks_late": True, "reject_on_worker_lost": True} for name in IDEMPOTENT_TASKS},
    **{name: {"acks_late": False, "reject_on_worker_lost": False, "time_limit": TRAINING_TIME_LIMIT_S,
              "soft_time_limit": TRAINING_TIME_LIMIT_S - 60} for name in TRAINING_TASKS},
}
# A pool child that grew past this (KiB) after a task is replaced (the models of a fine-tune, a big batch).
app.conf.worker_max_memory_per_child = int(os.environ.get("AISLE_WORKER_MAX_MEMORY_KB", str(1_500_000)))

# Every periodic job of the project, in one list (Saleor style).
app.conf.beat_schedule = {
    # Reliability: publish tasks that request paths kept in the outbox while the broker was down,
    # resume scoring runs whose worker died, and mark fine-tunes whose worker died as interrupted.
    "shop-drain-outbox": {
        "task": "shop.tasks.drain_outbox",
        "schedule": crontab(),  # every minute
    },
    "sentiment-resume-stale-runs": {
        "task": "sentiment.tasks.resume_stale_runs",
        "schedule": crontab(),  # every minute; a run is stale after AISLE_SCORING_STALE_S (3 min)
    },
    "ml-mark-stale-trainings": {
        "task": "ml.tasks.mark_stale_trainings",
        "schedule": crontab(minute="*/5"),
    },
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
    # Search: re-embed products flagged as changed that no on-save task picked up.
    "search-embed-dirty-products": {
        "task": "search.tasks.embed_dirty_products",
        "schedule": crontab(),  # every minute
    },
    # Recommend: retrain co-view / bought-together neighbours and ALS from the last 90 days of events.
    "recommend-train-collaborative": {
        "task": "recommend.tasks.train_collaborative",
        "schedule": crontab(minute=40),  # hourly
    },
    # Recommend: retrain the next-item (SASRec) model on the `training` queue from 90 days of sessions
    # (too little data: it logs why and the rails keep to popularity and the blended picks).
    "recommend-train-sequential": {
        "task": "recommend.tasks.train_sequential",
        "schedule": crontab(minute=10, hour=3),
        "options": {"queue": "training"},
    },
    # Merchandising: weekly LoRA retrain of the generator from newly accepted and edited copy drafts on the
    # `training` queue (skipped, with the reason logged, when too few came in; promoted only past the gate).
    "merchandising-retrain-generator": {
        "task": "merchandising.tasks.retrain_generator",
        "schedule": crontab(minute=0, hour=5, day_of_week="sunday"),
        "options": {"queue": "training"},
    },
    # Support: weekly fine-tune of the intent model on the labelled set plus agent-corrected intents
    # (promoted only if it beats the active model on the held-out set).
    "support-finetune-intents": {
        "task": "support.tasks.finetune_intents",
        "schedule": crontab(minute=0, hour=4, day_of_week="monday"),
    },
}
