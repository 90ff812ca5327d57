from django.apps import AppConfig, apps
from django.db.models.signals import post_save


class SentimentConfig(AppConfig):
    name = "sentiment"
    verbose_name = "Review sentiment"

    def ready(self) -> None:
        from . import receivers

        # By model label: this app reads shop through its services and signals, never shop.models.
        post_save.connect(receivers.on_review_saved, sender=apps.get_model("shop", "Review"),
                          dispatch_uid="sentiment_review_saved")
