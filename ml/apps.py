from django.apps import AppConfig
from django.conf import settings


class MlConfig(AppConfig):
    """The Django side of ml/: model versions, their admin, training tasks and the finetune command."""

    name = "ml"
    verbose_name = "Models"

    def ready(self) -> None:
        from . import versions
        from .registry import registry

        registry.configure(paths=settings.AISLE_MODEL_PATHS, resolver=versions.active_path,
                           device=settings.AISLE_DEVICE)
