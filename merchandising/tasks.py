"""Celery tasks of merchandising: thin wrappers around its services."""

from celery import shared_task

from . import services


@shared_task
def generate_copy_draft(draft_id: int) -> str:
    """Write one queued copy draft. Idempotent: a redelivered task finds the draft claimed or done and
    leaves it (see drafts.generate_draft); model failures mark the draft failed, they do not raise."""
    return services.generate_draft(draft_id)
