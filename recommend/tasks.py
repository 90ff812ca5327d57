"""Celery tasks of the recommend app: thin wrappers around its services."""

from celery import shared_task

from . import embeddings, services


@shared_task(name="recommend.tasks.embed_dirty_products", acks_late=True)
def embed_dirty_products(everything: bool = False) -> int:
    """Re-embed products flagged as changed (queued on save; also a minutely sweep)."""
    from django.core.cache import cache

    from .receivers import QUEUED_KEY

    cache.delete(QUEUED_KEY)  # saves from now on queue another run; earlier ones are selected below
    return embeddings.embed_dirty(everything=everything)


@shared_task(name="recommend.tasks.train_collaborative", acks_late=True)
def train_collaborative(days: int = 90) -> dict | None:
    """Retrain item-item neighbours, bought-together and ALS from recent events (scheduled hourly)."""
    return services.train_collaborative(days=days)
