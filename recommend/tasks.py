"""Celery tasks of the recommend app: thin wrappers around its services."""

from celery import shared_task

from . import services


@shared_task(name="recommend.tasks.train_collaborative", acks_late=True)
def train_collaborative(days: int = 90) -> dict | None:
    """Retrain item-item neighbours, bought-together and ALS from recent events (scheduled hourly)."""
    return services.train_collaborative(days=days)


@shared_task(name="recommend.tasks.train_sequential", acks_late=True, queue="training")
def train_sequential(days: int = 90) -> dict | None:
    """Retrain the next-item (SASRec) model from recent sessions; on the training queue (nightly)."""
    return services.train_sequential(days=days)
