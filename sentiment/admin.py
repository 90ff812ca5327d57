from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import (
    AspectMention,
    CategoryAspect,
    ProductSentiment,
    ReviewSentiment,
    ScoringRun,
    SentimentAlert,
    TrainingRun,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the scoring jobs: viewable, never edited by hand."""

    change_list_template = "sentiment/admin/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def review_link(review_id: int) -> str:
    return format_html('<a href="{}">review {}</a>', reverse("admin:shop_review_change", args=[review_id]), review_id)


class AspectMentionInline(admin.TabularInline):
    model = AspectMention
    fields = ["aspect", "term", "label", "score", "sentence"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReviewSentiment)
class ReviewSentimentAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "the_review", "product", "rating", "label", "score", "model_version", "scored_at"]
    list_filter = ["label", "model_version", "rating"]
    search_fields = ["product__title", "review__title"]
    list_select_related = ["product"]
    inlines = [AspectMentionInline]
    date_hierarchy = "reviewed_at"

    @admin.display(description="Review")
    def the_review(self, row: ReviewSentiment) -> str:
        return review_link(row.review_id)


@admin.register(SentimentAlert)
class SentimentAlertAdmin(ReadOnlyAdmin):
    list_display = ["product", "status", "negative_share", "baseline", "z_score", "window_reviews", "opened_at",
                    "ongoing", "model_version", "reviews"]
    list_filter = ["status", "opened_at"]
    list_select_related = ["product"]
    search_fields = ["product__title"]
    actions = ["acknowledge", "resolve"]

    def has_change_permission(self, request, obj=None) -> bool:  # the actions change status
        return super(ReadOnlyAdmin, self).has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="Negative share")
    def negative_share(self, alert: SentimentAlert) -> str:
        return f"{alert.window_share:.0%} of {alert.window_reviews} (last {alert.window_days} d)"

    @admin.display(description="Baseline")
    def baseline(self, alert: SentimentAlert) -> str:
        return f"{alert.baseline_share:.0%} of {alert.baseline_reviews} (previous {alert.baseline_days} d)"

    @admin.display(description="Episode ongoing", boolean=True)
    def ongoing(self, alert: SentimentAlert) -> bool:
        return alert.episode_ended_at is None

    @admin.display(description="Reviews")
    def reviews(self, alert: SentimentAlert) -> str:
        return format_html('<a href="{}?product__id__exact={}">reviews</a> · <a href="{}">page</a>',
                           reverse("admin:shop_review_changelist"), alert.product_id,
                           alert.product.get_absolute_url())

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset):
        count = services.acknowledge_alerts(queryset, request.user)
        self.message_user(request, f"Acknowledged {count} alert(s).")

    @admin.action(description="Resolve the selected alerts (no new alert until the share is back down)",
                  permissions=["change"])
    def resolve(self, request, queryset):
        count = services.resolve_alerts(queryset, request.user)
        self.message_user(request, f"Resolved {count} alert(s).")


@admin.register(CategoryAspect)
class CategoryAspectAdmin(ReadOnlyAdmin):
    list_display = ["category", "name", "kind", "support", "lift", "terms", "discovered_at"]
    list_filter = ["kind"]
    list_select_related = ["category"]
    search_fields = ["name", "category__name"]


@admin.register(ProductSentiment)
class ProductSentimentAdmin(ReadOnlyAdmin):
    list_display = ["product", "reviews", "positive", "neutral", "negative", "average_score", "loves", "complaints",
                    "model_version", "updated_at"]
    list_select_related = ["product"]
    search_fields = ["product__title"]


@admin.register(ScoringRun)
class ScoringRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "trigger", "status", "model_version", "scored", "batches", "fallbacks", "started_at",
                    "heartbeat_at", "finished_at"]
    list_filter = ["status", "trigger"]


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "trigger", "status", "version", "reviews", "clause_rows", "skipped", "rescored",
                    "started_at", "finished_at"]
    list_filter = ["status", "trigger"]
