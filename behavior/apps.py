from django.apps import AppConfig


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = "Shopper behaviour"

    def ready(self) -> None:
        from . import receivers  # noqa: F401
