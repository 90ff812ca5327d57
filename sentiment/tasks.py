"""Celery tasks of the sentiment app: thin wrappers around services."""

from celery import shared_task

from . import services


@shared_task(name="sentiment.tasks.score_review", acks_late=True)
def score_review(review_id: int) -> str:
    row = services.score_review(review_id)
    if row is None:
        return f"review {review_id}: not approved, no score"
    return f"review {review_id}: {row.label} {row.score:+.2f} ({row.model_version})"


@shared_task(name="sentiment.tasks.score_pending", acks_late=True)
def score_pending(batch_size: int | None = None, delay: float | None = None, limit: int | None = None) -> dict:
    run = services.score_pending(batch_size=batch_size, delay=delay, limit=limit, trigger="task")
    return {"run": run.pk, "scored": run.scored, "batches": run.batches, "model_version": run.model_version}


@shared_task(name="sentiment.tasks.resume_stale_runs", acks_late=True)
def resume_stale_runs() -> dict:
    """Scheduled every minute: a run whose worker died is marked interrupted and resumed (sentiment/runs.py)."""
    from . import runs

    return runs.resume_stale_runs()


@shared_task(name="sentiment.tasks.nightly", acks_late=True)
def nightly() -> dict:
    return services.nightly()


@shared_task(name="sentiment.tasks.discover_aspects", acks_late=True)
def discover_aspects() -> dict:
    report = services.discover_category_aspects()
    return {"changed": report.changed, "marked_for_rescore": report.marked_for_rescore}


@shared_task(name="sentiment.tasks.check_alerts")
def check_alerts() -> dict:
    report = services.check_alerts()
    return {"checked": report.checked, "opened": [a.pk for a in report.opened], "ended": [a.pk for a in report.ended]}


@shared_task(name="sentiment.tasks.train_model", acks_late=True)
def train_model(config: dict | None = None, max_reviews: int | None = None, trigger: str = "task") -> dict:
    from ml.train_config import TrainConfig

    outcome = services.train_model(TrainConfig(**config) if config else None, max_reviews=max_reviews,
                                   progress=False, trigger=trigger)
    if outcome.serving:
        score_pending.delay()  # re-score everything with the new version
    return outcome.as_dict()


@shared_task(name="sentiment.tasks.send_alert_email", autoretry_for=(ConnectionError,), retry_backoff=True,
             max_retries=5)
def send_alert_email(alert_id: int) -> bool:
    return services.send_alert_email(alert_id)
