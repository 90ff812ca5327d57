"""Thin receivers: a posted, approved, edited or un-approved review enqueues its (re-)scoring on commit."""

import logging

from django.db import transaction
from django.dispatch import receiver

from shop import signals

log = logging.getLogger(__name__)


def _enqueue(review_id: int) -> None:
    from shop import services as shop_services

    try:
        # Bounded publish; if the broker is down the task waits in the shop's outbox (drained every minute).
        shop_services.queue_task("sentiment.tasks.score_review", [review_id])
    except Exception:  # noqa: BLE001 - with eager tasks this runs inside the request; the nightly job catches up
        log.exception("Could not score review %s now; the nightly job will", review_id)


@receiver(signals.review_posted, dispatch_uid="sentiment_review_posted")
def on_review_posted(sender, review, simulated: bool = False, **kwargs) -> None:
    if simulated:
        return  # the demo loads thousands at once; `score_sentiment` (make demo runs it) scores them in batches
    review_id = review.pk
    transaction.on_commit(lambda: _enqueue(review_id))


def on_review_saved(sender, instance, created: bool, **kwargs) -> None:
    """Connected to shop.Review's post_save in apps.py: approval, rejection or an edit."""
    if created:
        return  # new reviews arrive through review_posted (the nightly job scores any other)
    review_id = instance.pk
    transaction.on_commit(lambda: _enqueue(review_id))
