from django.apps import AppConfig, apps
from django.db.models.signals import post_save


class RecommendConfig(AppConfig):
    name = "recommend"
    verbose_name = "Recommendations and search"

    def ready(self) -> None:
        from . import receivers

        # By model label: this app reads shop through its services and signals, never shop.models.
        post_save.connect(receivers.on_product_saved, sender=apps.get_model("shop", "Product"),
                          dispatch_uid="recommend_product_saved")
