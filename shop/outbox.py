"""Publishing Celery tasks from request paths without depending on the broker.

A shopper's request must not wait on, or fail because of, Redis: every publish here is bounded
(short socket timeouts from CELERY_BROKER_TRANSPORT_OPTIONS, no retries, no result subscription)
and a task that cannot be published is kept as an OutboxMessage row, which the beat job
`shop.tasks.drain_outbox` publishes once the broker is back. After a failed publish the broker is
skipped for AISLE_BROKER_BACKOFF_S seconds, so a frozen Redis costs one timeout, not one per request.

- `enqueue(name, args)`: inside a transaction; the row commits (or rolls back) with the change it
  follows, and is published on commit. Use it when losing the task would lose money or mail.
- `publish_or_store(name, args)`: publish now (bounded); only a failure writes a row.

Delivery is at least once (a publish whose acknowledgement timed out may be repeated): the tasks
published this way are idempotent or harmless to repeat.
"""

from __future__ import annotations

import importlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import OutboxMessage

log = logging.getLogger(__name__)

_broker_down_until = 0.0  # monotonic time before which this process does not try the broker


def _publish(task_name: str, args: list, kwargs: dict) -> None:
    """Send one task or raise. Eager mode (no broker configured, tests) runs it in-process."""
    from config.celery import app

    global _broker_down_until
    if not app.conf.task_always_eager and time.monotonic() < _broker_down_until:
        raise ConnectionError("broker marked down after a recent failure")
    if task_name not in app.tasks:  # a web process has not imported every tasks module
        importlib.import_module(task_name.rsplit(".", 1)[0])
    task = app.tasks.get(task_name)
    try:
        if task is not None:
            task.apply_async(args=args, kwargs=kwargs, ignore_result=True, retry=False)
        else:
            app.send_task(task_name, args=args, kwargs=kwargs, ignore_result=True, retry=False)
    except Exception:
        if not app.conf.task_always_eager:
            _broker_down_until = time.monotonic() + getattr(settings, "AISLE_BROKER_BACKOFF_S", 10.0)
        raise


def broker_marked_down() -> bool:
    return time.monotonic() < _broker_down_until


def _send_row(row_id: int) -> bool:
    row = OutboxMessage.objects.filter(pk=row_id, sent_at__isnull=True).first()
    if row is None:
        return True
    try:
        _publish(row.task_name, row.args, row.kwargs)
    except Exception as exc:  # noqa: BLE001 - the row stays for the drain job
        log.warning("Broker unavailable; %s(%s) kept in the outbox: %s", row.task_name, row.args, exc)
        OutboxMessage.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, last_error=str(exc)[:300])
        return False
    OutboxMessage.objects.filter(pk=row.pk).update(sent_at=timezone.now(), attempts=row.attempts + 1)
    return True


def enqueue(task_name: str, args: list | None = None, kwargs: dict | None = None) -> OutboxMessage:
    """Record the task in the current transaction; publish it once the transaction commits."""
    row = OutboxMessage.objects.create(task_name=task_name, args=list(args or []), kwargs=dict(kwargs or {}))
    transaction.on_commit(lambda: _send_row(row.pk))
    return row


def publish_or_store(task_name: str, args: list | None = None, kwargs: dict | None = None) -> bool:
    """Publish now (bounded); if the broker fails, keep the task in the outbox. True if published."""
    args, kwargs = list(args or []), dict(kwargs or {})
    try:
        _publish(task_name, args, kwargs)
    except Exception as exc:  # noqa: BLE001 - stored for the drain job instead
        log.warning("Broker unavailable; %s(%s) kept in the outbox: %s", task_name, args, exc)
        OutboxMessage.objects.create(task_name=task_name, args=args, kwargs=kwargs, attempts=1,
                                     last_error=str(exc)[:300])
        return False
    return True


def drain(*, min_age_s: float = 30.0, limit: int = 200) -> dict:
    """Publish unsent rows older than min_age_s (younger ones are still being published on commit).
    Rows are claimed with SKIP LOCKED, so two drains never send one row twice; the first failure stops
    the drain (the broker is down: the next run tries again). Sent rows older than a week are deleted."""
    global _broker_down_until
    _broker_down_until = 0.0  # the drain job is the one that probes the broker again
    cutoff = timezone.now() - timedelta(seconds=min_age_s)
    sent = failed = 0
    with transaction.atomic():
        rows = list(OutboxMessage.objects.select_for_update(skip_locked=True)
                    .filter(sent_at__isnull=True, created_at__lte=cutoff).order_by("created_at", "pk")[:limit])
        for row in rows:
            try:
                _publish(row.task_name, row.args, row.kwargs)
            except Exception as exc:  # noqa: BLE001 - kept for the next run
                row.attempts += 1
                row.last_error = str(exc)[:300]
                row.save(update_fields=["attempts", "last_error"])
                failed += 1
                break
            row.attempts += 1
            row.sent_at = timezone.now()
            row.save(update_fields=["attempts", "sent_at"])
            sent += 1
    purged, _ = OutboxMessage.objects.filter(sent_at__lt=timezone.now() - timedelta(days=7)).delete()
    pending = OutboxMessage.objects.filter(sent_at__isnull=True).count()
    return {"sent": sent, "failed": failed, "pending": pending, "purged": purged}


def pending_count() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()
