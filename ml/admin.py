import json

from django.contrib import admin
from django.utils.html import format_html

from . import versions
from .models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "task", "status", "score", "active_score_on_same_set", "is_active", "created_at",
                    "promoted_at"]
    list_filter = ["task", "status", "is_active"]
    readonly_fields = ["task", "path", "base_model", "data_summary", "primary_metric", "eval_set", "score",
                       "active_score_on_same_set", "is_active", "promoted_at", "created_at", "metrics_table",
                       "status", "job_id", "heartbeat_at", "finished_at"]
    exclude = ["metrics"]
    actions = ["promote_selected", "roll_back"]

    @admin.display(description="Metrics")
    def metrics_table(self, version: ModelVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps({k: v for k, v in version.metrics.items() if k != "history"},
                                                       indent=2)[:20000])

    @admin.action(description="Promote the selected version (one per task)")
    def promote_selected(self, request, queryset):
        newest_per_task = {}
        # Only finished checkpoints: a training, failed or interrupted row has nothing to serve.
        for version in queryset.filter(status=ModelVersion.Status.READY).order_by("task", "-created_at"):
            newest_per_task.setdefault(version.task, version)
        for version in newest_per_task.values():
            versions.promote(version, note=f"Promoted by {request.user.get_username()} in the admin.")
            self.message_user(request, f"{version} is now active for {version.task}.")

    @admin.action(description="Roll back: reactivate the version promoted before the active one")
    def roll_back(self, request, queryset):
        for task in sorted(set(queryset.values_list("task", flat=True))):
            previous = versions.rollback(task)
            self.message_user(request, f"{task}: now serving {previous or 'the configured/packaged default'}.")
