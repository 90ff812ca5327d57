"""Scoring runs whose worker died: found by their heartbeat (written with every committed batch), marked
interrupted and resumed within minutes, instead of waiting for the broker's visibility timeout (a killed
worker's message) or for the next nightly run.

A run resumed here by mistake (its worker was only slow) is harmless: batches are claimed with SKIP
LOCKED and re-checked under the lock, so two runs never score a review twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ScoringRun

log = logging.getLogger(__name__)


def stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=float(getattr(settings, "AISLE_SCORING_STALE_S", 180)))


def resume_stale_runs(*, now: dt.datetime | None = None) -> dict:
    """Mark running runs with no heartbeat for `stale_after()` as interrupted; if any were, queue one
    `score_pending` to finish what they left (it scores whatever is still unscored)."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(ScoringRun.objects.select_for_update(skip_locked=True)
                     .filter(status=ScoringRun.Status.RUNNING, heartbeat_at__lt=now - stale_after()))
        for run in stale:
            run.status = ScoringRun.Status.INTERRUPTED
            run.finished_at = now
            run.error = (f"No heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC (worker gone); "
                         "resumed by a new run.")
            run.save(update_fields=["status", "finished_at", "error"])
        if stale:
            from .tasks import score_pending

            batch_size = max(run.batch_size for run in stale)
            transaction.on_commit(lambda: score_pending.apply_async(kwargs={"batch_size": batch_size}))
            log.warning("Scoring runs %s lost their worker; resuming", [run.pk for run in stale])
    return {"interrupted": [run.pk for run in stale], "resumed": bool(stale)}
