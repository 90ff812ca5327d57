"""Celery tasks of ml/ (routed to the `training` queue, so a GPU worker can take them)."""

from celery import shared_task

from . import versions
from .train_config import TrainConfig


@shared_task(name="ml.tasks.finetune", acks_late=True)
def finetune(task: str, data_path: str, config: dict | None = None) -> dict:
    version = versions.finetune_from_file(task, data_path, TrainConfig(**(config or {})), progress=False)
    return {"version": version.pk, "task": version.task, "score": version.score, "active": version.is_active,
            "path": version.path}
