"""Celery tasks of the behaviour app: thin wrappers around analytics/services."""

from celery import shared_task
from django.conf import settings

from . import analytics

# Raw events older than this many days become daily aggregates (override in settings).
DEFAULT_RETENTION_DAYS = 90


@shared_task(name="behavior.tasks.rollup_old_events", acks_late=True)
def rollup_old_events(older_than_days: int | None = None) -> dict:
    """Nightly retention: fold whole days older than the cutoff into DailyAggregate (idempotent)."""
    days = older_than_days or getattr(settings, "AISLE_EVENT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    result = analytics.rollup_events(older_than_days=days)
    return {"days": result.days, "raw_events": result.raw_events, "aggregate_rows": result.aggregate_rows}
