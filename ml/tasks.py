"""Celery tasks of ml/ (routed to the `training` queue, so a GPU worker can take them).

Every fine-tuning task (this module's, the sentiment and intent ones) gets a ModelVersion row as it
starts ("training", with a heartbeat), filled in by the version it produces or ended as "failed";
rows whose heartbeat stops (the worker was killed) are marked "interrupted" by `mark_stale_trainings`.
Training tasks are acknowledged on receipt (config/celery.py), so a dead one is not retrained unasked.
"""

from celery import shared_task
from celery.signals import task_failure, task_postrun, task_prerun

from . import versions

# Celery task name -> the ml task it trains ("ml.tasks.finetune" names it in its first argument).
TRAINING_TASKS = {"ml.tasks.finetune": None, "sentiment.tasks.train_model": "sentiment",
                  "support.tasks.finetune_intents": "intent"}
_rows: dict[str, object] = {}


@task_prerun.connect(dispatch_uid="ml_training_row_start")
def _training_started(sender=None, task_id=None, task=None, args=None, kwargs=None, **_):
    if sender is None or sender.name not in TRAINING_TASKS or getattr(sender.request, "is_eager", False):
        return
    ml_task = TRAINING_TASKS[sender.name] or (args[0] if args else (kwargs or {}).get("task", "?"))
    _rows[task_id] = versions.start_training_job(ml_task, task_id, summary={"job": sender.name})


@task_failure.connect(dispatch_uid="ml_training_row_failed")
def _training_failed(sender=None, task_id=None, exception=None, **_):
    if task_id in _rows:
        versions.finish_training_job(_rows.pop(task_id), exception)


@task_postrun.connect(dispatch_uid="ml_training_row_end")
def _training_ended(sender=None, task_id=None, **_):
    if task_id in _rows:
        versions.finish_training_job(_rows.pop(task_id))


@shared_task(name="ml.tasks.finetune", acks_late=False)
def finetune(task: str, data_path: str, config: dict | None = None) -> dict:
    if getattr(finetune.request, "id", None) and _rows.get(finetune.request.id, True) is None:
        return {"version": None, "task": task, "skipped": "this job already ran; not retrained unasked"}
    version = versions.finetune_from_file(task, data_path, versions.train_config_for(task, config), progress=False)
    return {"version": version.pk, "task": version.task, "score": version.score, "active": version.is_active,
            "path": version.path}


@shared_task(name="ml.tasks.mark_stale_trainings")
def mark_stale_trainings() -> list[int]:
    return versions.mark_stale_trainings()
