"""Admin for support: the knowledge base and canned responses are edited here; conversations are
browsed here and answered in the console (/admin/support/console/), which the list links to."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from . import agents
from .models import CannedResponse, Conversation, KnowledgeArticle, Message


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "topic", "is_published", "updated_at", "view_on_site_link"]
    list_filter = ["topic", "is_published"]
    search_fields = ["title", "body", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    fields = ["title", "slug", "topic", "body", "questions", "is_published"]
    actions = ["publish", "unpublish"]

    @admin.display(description="Page")
    def view_on_site_link(self, obj: KnowledgeArticle) -> str:
        if not obj.is_published:
            return "draft"
        return format_html('<a href="{}" target="_blank" rel="noopener">view</a>', obj.get_absolute_url())

    @admin.action(description="Publish the selected articles")
    def publish(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        # .update() skips save(): updated_at stays "last edited by a person", which publishing is not.
        count = queryset.update(is_published=True)
        self.message_user(request, f"{count} article(s) published; the assistant can cite them now.", messages.SUCCESS)

    @admin.action(description="Unpublish the selected articles")
    def unpublish(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        count = queryset.update(is_published=False)
        self.message_user(request, f"{count} article(s) unpublished; the assistant no longer cites them.",
                          messages.SUCCESS)


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ["title", "shortcut_display", "body"]
    search_fields = ["title", "shortcut", "body"]
    prepopulated_fields = {"shortcut": ["title"]}

    @admin.display(description="Shortcut", ordering="shortcut")
    def shortcut_display(self, obj: CannedResponse) -> str:
        return f"/{obj.shortcut}"


class MessageInline(admin.TabularInline):
    """The log, read-only: what was said is a record, corrections happen in the console."""

    model = Message
    fields = ["created_at", "sender", "author", "kind", "text", "intent", "corrected_intent", "mood", "feedback"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ["created_at", "pk"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "customer", "status", "last_intent", "mood_display", "handoff_reason", "assigned_to",
                    "satisfaction", "updated_at", "console_link"]
    list_filter = ["status", "handoff_reason", "satisfaction", "last_intent"]
    search_fields = ["user__username", "user__email", "summary", "visitor_id", "=token"]
    list_select_related = ["user", "assigned_to"]
    date_hierarchy = "created_at"
    readonly_fields = ["token", "user", "visitor_id", "status", "assigned_to", "handoff_reason", "summary",
                       "last_intent", "mood", "misunderstood_in_a_row", "pending_action", "satisfaction",
                       "satisfaction_comment", "created_at", "updated_at", "handed_off_at", "resolved_at",
                       "console_link"]
    fields = readonly_fields
    inlines = [MessageInline]
    actions = ["resolve_selected", "hand_back_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations start in the shopper's widget

    @admin.display(description="Customer")
    def customer(self, obj: Conversation) -> str:
        return agents.customer_label(obj)

    @admin.display(description="Mood", ordering="mood")
    def mood_display(self, obj: Conversation) -> str:
        return "—" if obj.mood is None else f"{obj.mood:+.2f}"

    @admin.display(description="Console")
    def console_link(self, obj: Conversation) -> str:
        if not obj.pk:
            return ""
        return format_html('<a href="{}">Open in console</a>', reverse("support_agent:conversation", args=[obj.pk]))

    @admin.action(description="Resolve the selected conversations", permissions=["change"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        count = 0
        for conversation in queryset.exclude(status=Conversation.Status.RESOLVED):
            agents.resolve(conversation, request.user)
            count += 1
        self.message_user(request, f"{count} conversation(s) resolved.", messages.SUCCESS)

    @admin.action(description="Hand the selected conversations back to the assistant", permissions=["change"])
    def hand_back_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        count = 0
        for conversation in queryset.exclude(status=Conversation.Status.BOT):
            agents.hand_back(conversation, request.user)
            count += 1
        self.message_user(request, f"{count} conversation(s) handed back to the assistant.", messages.SUCCESS)
