"""Celery tasks of merchandising: thin wrappers around its services."""

from celery import shared_task

from . import services


@shared_task
def generate_copy_draft(draft_id: int) -> str:
    """Write one queued copy draft. Idempotent: a redelivered task finds the draft claimed or done and
    leaves it (see drafts.generate_draft); model failures mark the draft failed, they do not raise."""
    return services.generate_draft(draft_id)


@shared_task(name="merchandising.tasks.retrain_generator", bind=True, queue="training", acks_late=False)
def retrain_generator(self) -> dict:
    """Weekly: a new LoRA adapter for the generator from newly accepted and edited drafts (skipped, with the
    reason logged, when too few came in), promoted only if it passes the gate (training.py). On the
    `training` queue; acknowledged on receipt, so a dead run is recorded, not retrained unasked."""
    return services.retrain_from_drafts(job_id=self.request.id)
