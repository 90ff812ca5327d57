"""Celery tasks of the search app: thin wrappers around its services."""

from celery import shared_task

from . import services


@shared_task(name="search.tasks.embed_dirty_products", acks_late=True)
def embed_dirty_products(everything: bool = False) -> int:
    """Re-embed products flagged as changed (queued on save; also a minutely sweep)."""
    return services.embed_dirty_products(everything=everything)
