from django.contrib import admin

from .models import DailyAggregate, Event, IdentityLink, RolledUpDay


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the app only: staff may look, never add, edit or delete."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events are append-only (retention folds whole days into DailyAggregate, in code)."""

    change_list_template = "behavior/admin/event_change_list.html"
    list_display = ["event_type", "occurred_at", "source", "user", "visitor_id", "product", "category_id",
                    "is_simulated"]
    list_filter = ["event_type", "source", "is_simulated"]
    list_select_related = ["user", "product"]
    date_hierarchy = "occurred_at"
    search_fields = ["visitor_id", "client_event_id", "user__username"]
    raw_id_fields = ["user", "product"]
    show_full_result_count = False  # COUNT(*) over the whole event table on every page is costly


@admin.register(IdentityLink)
class IdentityLinkAdmin(ReadOnlyAdmin):
    list_display = ["visitor_id", "user", "linked_at"]
    list_select_related = ["user"]
    date_hierarchy = "linked_at"
    search_fields = ["visitor_id", "user__username"]
    raw_id_fields = ["user"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Links cascade from their user: deleting a shopper's account in the admin must stay possible
        # (the admin refuses to delete a user whose cascaded rows it may not delete).
        return admin.ModelAdmin.has_delete_permission(self, request, obj)


@admin.register(DailyAggregate)
class DailyAggregateAdmin(ReadOnlyAdmin):
    list_display = ["day", "level", "event_type", "product", "category_id", "events", "visitors", "is_simulated"]
    list_filter = ["level", "event_type", "is_simulated"]
    list_select_related = ["product"]
    date_hierarchy = "day"
    raw_id_fields = ["product"]


@admin.register(RolledUpDay)
class RolledUpDayAdmin(ReadOnlyAdmin):
    list_display = ["day", "raw_events", "rolled_at"]
    date_hierarchy = "day"
