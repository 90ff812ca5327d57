from django.apps import AppConfig


def _finetune_generator(data_path, config=None, progress=True):
    from . import services

    return services.finetune_from_file(data_path, config=config, progress=progress)


class MerchandisingConfig(AppConfig):
    name = "merchandising"
    verbose_name = "Merchandising"

    def ready(self) -> None:
        # ml trains the generator's adapter but knows no app: the copy pairs and the fact-check gate are
        # ours, installed here for `manage.py finetune generator` and ml's training-queue job.
        from ml import versions

        versions.register_pipeline("generator", _finetune_generator)
