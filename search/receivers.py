"""Thin receivers.

- A saved product is flagged for re-embedding, and the embedding task is queued on commit, debounced:
  while a queued task has not started, further saves add nothing (the task clears the flag as it
  starts, so a save after that queues a new one).
- The demo simulator (in shop, which imports no other app) asks for its back-dated searches with
  `shop.signals.search_requested`; this app answers it like a storefront search."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from . import attributes, embeddings

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 60  # a safety expiry: the task clears the key as it starts
QUEUED_KEY = "search:embed-queued"
# What product_text reads, plus is_active (the index holds active products only).
INDEXED_FIELDS = {"title", "brand", "category", "category_id", "features", "description", "is_active"}


def _enqueue() -> None:
    from .tasks import embed_dirty_products

    if not cache.add(QUEUED_KEY, 1, DEBOUNCE_SECONDS):
        return  # a queued task that has not started yet will pick this product up too
    try:
        embed_dirty_products.apply_async(countdown=1)
    except Exception:  # noqa: BLE001 - the minutely sweep catches up; never fail the admin's save
        log.exception("Could not queue product embedding; the sweep will do it")


def on_product_saved(sender, instance, raw: bool = False, **kwargs) -> None:
    """Connected to shop.Product's post_save in apps.py."""
    if raw:
        return  # fixtures
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and not set(update_fields) & INDEXED_FIELDS:
        return  # e.g. a stock or rating update: nothing that is embedded or indexed changed
    if update_fields is None or set(update_fields) & {"title", "features"}:
        attributes.refresh([instance])  # a regex pass over one title: cheap enough to do in the save
    embeddings.mark_dirty([instance.pk])
    if getattr(settings, "AISLE_EMBED_ON_SAVE", True):
        transaction.on_commit(_enqueue)


def on_search_requested(sender, query: str, user=None, visitor_id: str = "", occurred_at=None,
                        simulated: bool = False, **kwargs) -> list:
    """Connected to shop.signals.search_requested in apps.py: the simulator's shoppers search like real ones."""
    from . import services

    return list(services.search(query, user=user, visitor_id=visitor_id, occurred_at=occurred_at,
                                simulated=simulated, source=services.SOURCE_STOREFRONT))
