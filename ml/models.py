from django.db import models


class ModelVersion(models.Model):
    """One trained checkpoint of a task. At most one version per task is active.

    A fine-tune run as a task writes its row when it starts ("training", with a heartbeat) and finishes
    it as "ready", or "failed" / "interrupted" when it dies, so a lost job is visible, never silent."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted (worker lost)"

    task = models.CharField(max_length=40, db_index=True)
    path = models.CharField(max_length=500)
    base_model = models.CharField(max_length=500, blank=True)
    data_summary = models.JSONField(default=dict, blank=True, help_text="What it was trained on.")
    metrics = models.JSONField(default=dict, blank=True)
    primary_metric = models.CharField(max_length=40, default="macro_f1")
    # The held-out set's fingerprint: scores are only comparable on the same set.
    eval_set = models.CharField(max_length=64, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Primary metric on the held-out set.")
    active_score_on_same_set = models.FloatField(null=True, blank=True,
                                                 help_text="The then-active version's score on this held-out set.")
    is_active = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.READY, db_index=True)
    # The Celery task id of the job that trains it: a redelivered message finds its row and does not retrain.
    job_id = models.CharField(max_length=64, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task"], condition=models.Q(is_active=True), name="one_active_version_per_task"
            ),
            models.UniqueConstraint(fields=["job_id"], condition=~models.Q(job_id=""), name="one_version_per_job"),
        ]

    def __str__(self) -> str:
        return f"{self.task} v{self.pk}{' (active)' if self.is_active else ''}"
