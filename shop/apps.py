from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects shop's own thin receivers)
