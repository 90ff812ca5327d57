from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from . import copywriting, services
from .models import (
    Cart,
    CartItem,
    Category,
    CustomerProfile,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductCopyDraft,
    ReturnRequest,
    Review,
)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "parent", "slug", "position"]
    list_filter = ["parent"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


class CopyRequestForm(forms.Form):
    """Kind, tone, length and engine of the drafts to request (the admin action's intermediate page)."""

    kind = forms.ChoiceField(choices=ProductCopyDraft.Kind.choices)
    tone = forms.ChoiceField(choices=ProductCopyDraft.Tone.choices, initial=ProductCopyDraft.Tone.NEUTRAL)
    length = forms.ChoiceField(choices=ProductCopyDraft.Length.choices, initial=ProductCopyDraft.Length.MEDIUM)
    engine = forms.ChoiceField(choices=ProductCopyDraft.Engine.choices, initial=ProductCopyDraft.Engine.MODEL,
                               help_text="The template writes instantly from the facts, without a model.")

    def __init__(self, *args, kinds: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if kinds:
            self.fields["kind"].choices = [(k, label) for k, label in ProductCopyDraft.Kind.choices if k in kinds]
            self.fields["kind"].initial = kinds[0]


class CopyListFilter(admin.SimpleListFilter):
    title = "copy"
    parameter_name = "copy"

    def lookups(self, request, model_admin):
        return [("thin", f"Needs copy (under {copywriting.NEEDS_COPY_MIN_WORDS} words)"), ("rich", "Has copy")]

    def queryset(self, request, queryset):
        if self.value() not in ("thin", "rich"):
            return queryset
        counted = copywriting.with_copy_words(queryset)
        if self.value() == "thin":
            return counted.filter(copy_words__lt=copywriting.NEEDS_COPY_MIN_WORDS)
        return counted.filter(copy_words__gte=copywriting.NEEDS_COPY_MIN_WORDS)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "brand", "category", "price", "stock", "rating_average", "rating_count", "is_active"]
    list_filter = ["is_active", CopyListFilter, "category", "brand"]
    list_editable = ["price", "stock", "is_active"]
    search_fields = ["title", "brand", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["rating_average", "rating_count", "source_key", "created_at", "updated_at", "copy_drafts"]
    list_select_related = ["category"]
    list_per_page = 50
    actions = ["draft_description", "draft_marketing_copy"]

    @admin.display(description="Copy drafts")
    def copy_drafts(self, product: Product) -> str:
        """The product's latest drafts, linked. Shown read-only rather than as an inline formset, so the
        product form posts exactly the fields it always did."""
        drafts = list(product.copy_drafts.order_by("-created_at", "-pk")[:20]) if product.pk else []
        if not drafts:
            return "None yet: use Draft copy above."
        rows = ((reverse("admin:shop_productcopydraft_change", args=[d.pk]), d.get_kind_display(), d.tone,
                 d.length, d.get_status_display(), len(d.flags or []), Truncator(d.text or d.error).chars(140),
                 timezone.localtime(d.created_at).strftime("%Y-%m-%d %H:%M")) for d in drafts)
        return format_html(
            '<table class="copy-drafts"><tr><th>Draft</th><th>Tone</th><th>Length</th><th>Status</th><th>Flags</th>'
            "<th>Text</th><th>Requested</th></tr>{}</table>",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                                 "<td>{}</td><td>{}</td></tr>", rows))

    # --- copy drafts: the actions ask for tone and length on an intermediate page, then queue tasks ---

    @admin.action(description="Draft description (model)…")
    def draft_description(self, request, queryset):
        return self._request_copy(request, queryset, [ProductCopyDraft.Kind.DESCRIPTION], "draft_description")

    @admin.action(description="Draft marketing copy (model)…")
    def draft_marketing_copy(self, request, queryset):
        return self._request_copy(request, queryset, [ProductCopyDraft.Kind.MARKETING_LINE,
                                                      ProductCopyDraft.Kind.EMAIL_BLURB], "draft_marketing_copy")

    def _request_copy(self, request, queryset, kinds: list[str], action: str):
        if "apply" in request.POST:
            form = CopyRequestForm(request.POST, kinds=kinds)
            if form.is_valid():
                drafts = copywriting.request_drafts(queryset.values_list("pk", flat=True),
                                                    requested_by=request.user, **form.cleaned_data)
                self._report_queued(request, len(drafts), queryset.count())
                return None  # back to the change list
        else:
            form = CopyRequestForm(kinds=kinds)
        return self._copy_form_page(request, form, list(queryset.order_by("title")), action=action)

    def _report_queued(self, request, queued: int, asked: int) -> None:
        self.message_user(request, f"Queued {queued} draft(s); they appear under Product copy drafts when ready.")
        if queued < asked:
            self.message_user(request, f"{asked - queued} product(s) already had a draft of that kind in progress.",
                              level=messages.WARNING)

    def _copy_form_page(self, request, form, products: list[Product], *, action: str = "", form_url: str = ""):
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Draft product copy",
            "form": form, "products": products[:100], "product_count": len(products), "action": action,
            "product_ids": [product.pk for product in products],
            "form_url": form_url, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/shop/product/copy_request.html", context)

    def get_urls(self):
        own = [
            path("needs-copy/", self.admin_site.admin_view(self.needs_copy_view), name="shop_product_needs_copy"),
            path("<path:object_id>/draft-copy/", self.admin_site.admin_view(self.draft_copy_view),
                 name="shop_product_draft_copy"),
        ]
        return own + super().get_urls()

    def draft_copy_view(self, request, object_id: str):
        """Draft copy for one product, from its change page."""
        product = get_object_or_404(Product, pk=object_id)
        if not self.has_change_permission(request, product):
            return HttpResponseRedirect(reverse("admin:index"))
        form = CopyRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            drafts = copywriting.request_drafts([product.pk], requested_by=request.user, **form.cleaned_data)
            self._report_queued(request, len(drafts), 1)
            return HttpResponseRedirect(reverse("admin:shop_product_change", args=[product.pk]))
        return self._copy_form_page(request, form, [product], form_url=request.path)

    def needs_copy_view(self, request):
        """Active products with thin copy, thinnest first, with the draft actions at hand."""
        try:
            min_words = max(1, int(request.GET.get("min_words", copywriting.NEEDS_COPY_MIN_WORDS)))
        except ValueError:
            min_words = copywriting.NEEDS_COPY_MIN_WORDS
        page = Paginator(copywriting.needs_copy_products(min_words), 100).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Products that need copy",
            "page": page, "min_words": min_words, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:shop_product_changelist"),
        }
        return TemplateResponse(request, "admin/shop/product/needs_copy.html", context)


class ProductCopyDraftForm(forms.ModelForm):
    class Meta:
        model = ProductCopyDraft
        fields = ["text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 8, "cols": 100})}


@admin.register(ProductCopyDraft)
class ProductCopyDraftAdmin(admin.ModelAdmin):
    """Review drafts: edit the text (checked again on save), accept (publishes) or reject."""

    form = ProductCopyDraftForm
    list_display = ["product", "kind", "tone", "length", "status_badge", "flag_count", "engine", "requested_by",
                    "created_at"]
    list_filter = ["status", "kind", "tone", "length", "engine"]
    search_fields = ["product__title", "product__brand", "text"]
    list_select_related = ["product", "requested_by"]
    actions = ["accept_selected", "reject_selected"]
    readonly_fields = ["product", "kind", "tone", "length", "engine", "status", "flags_list", "published_text",
                       "generated_text", "facts_list", "error", "generator", "generation_seconds", "new_tokens",
                       "requested_by", "created_at", "generated_at", "decided_at", "decided_by", "history_table"]
    fieldsets = [
        (None, {"fields": ["product", ("kind", "tone", "length", "engine"), "status", "text", "flags_list",
                           "published_text"]}),
        ("Grounding", {"fields": ["facts_list", "generated_text", "generator", ("generation_seconds", "new_tokens"),
                                  "error"]}),
        ("History", {"fields": [("requested_by", "created_at"), "generated_at", ("decided_by", "decided_at"),
                                "history_table"]}),
    ]

    def has_add_permission(self, request) -> bool:
        return False  # drafts are requested from the product actions

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_open:
            return [*self.readonly_fields, "text"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        # Through the service, so the edit is fact-checked again and lands in the history.
        if change and "text" in form.changed_data:
            try:
                copywriting.edit_draft(obj.pk, form.cleaned_data["text"], request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), level=messages.ERROR)

    def response_change(self, request, obj):
        for button, decide, done in (("_accept", copywriting.accept_draft, "Accepted and published"),
                                     ("_reject", copywriting.reject_draft, "Rejected")):
            if button in request.POST:
                try:
                    decide(obj.pk, request.user)
                    self.message_user(request, f"{done}: {obj}.")
                except ValidationError as exc:
                    self.message_user(request, " ".join(exc.messages), level=messages.ERROR)
                return HttpResponseRedirect(reverse("admin:shop_productcopydraft_change", args=[obj.pk]))
        return super().response_change(request, obj)

    def _decide(self, request, queryset, decide, label: str) -> None:
        done, failed = 0, []
        for draft in queryset:
            try:
                decide(draft.pk, request.user)
                done += 1
            except ValidationError as exc:
                failed.append(f"{draft}: {' '.join(exc.messages)}")
        if done:
            self.message_user(request, f"{label} {done} draft(s).")
        for message in failed:
            self.message_user(request, message, level=messages.WARNING)

    @admin.action(description="Accept and publish selected drafts")
    def accept_selected(self, request, queryset):
        self._decide(request, queryset, copywriting.accept_draft, "Accepted and published")

    @admin.action(description="Reject selected drafts")
    def reject_selected(self, request, queryset):
        self._decide(request, queryset, copywriting.reject_draft, "Rejected")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, draft: ProductCopyDraft) -> str:
        return format_html('<span class="copy-status copy-status--{}">{}</span>', draft.status,
                           draft.get_status_display())

    @admin.display(description="Flags")
    def flag_count(self, draft: ProductCopyDraft) -> int:
        return len(draft.flags or [])

    @admin.display(description="Fact check")
    def flags_list(self, draft: ProductCopyDraft) -> str:
        if draft.status in (ProductCopyDraft.Status.QUEUED, ProductCopyDraft.Status.GENERATING):
            return "Not checked yet."
        if not draft.flags:
            return "Passed: every number, claim and name is in the facts."
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li><strong>{}</strong>: {}</li>", ((f.get("text", ""), f.get("reason", "")) for f in draft.flags)))

    @admin.display(description="Published now")
    def published_text(self, draft: ProductCopyDraft) -> str:
        return getattr(draft.product, copywriting.PUBLISH_FIELDS[draft.kind]) or "(nothing published)"

    @admin.display(description="Facts")
    def facts_list(self, draft: ProductCopyDraft) -> str:
        rows = [(key, ", ".join(map(str, value)) if isinstance(value, list) else value)
                for key, value in (draft.facts or {}).items() if value not in (None, "", [], {})]
        if not rows:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", rows))

    @admin.display(description="Events")
    def history_table(self, draft: ProductCopyDraft) -> str:
        events = copywriting.history(draft)
        if not events:
            return "-"
        rows = ((timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"), event.get_action_display(),
                 event.actor.get_username() if event.actor else "generator" if event.action in ("generated", "failed")
                 else "-", event.get_status_display(), Truncator(event.text).chars(120)) for event in events)
        return format_html(
            "<table><tr><th>When</th><th>What</th><th>Who</th><th>Status</th><th>Text</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["title", "product", "rating", "author_name", "status", "is_simulated", "created_at"]
    list_filter = ["status", "rating", "is_simulated"]
    search_fields = ["title", "text", "product__title", "author_name"]
    list_select_related = ["product"]
    raw_id_fields = ["product", "user"]
    actions = ["approve", "reject"]

    @admin.action(description="Approve selected reviews")
    def approve(self, request, queryset):
        count = services.moderate_reviews(queryset.values_list("pk", flat=True), Review.Status.APPROVED)
        self.message_user(request, f"Approved {count} review(s).")

    @admin.action(description="Reject selected reviews")
    def reject(self, request, queryset):
        count = services.moderate_reviews(queryset.values_list("pk", flat=True), Review.Status.REJECTED)
        self.message_user(request, f"Rejected {count} review(s).")


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    readonly_fields = ["product", "title", "unit_price", "quantity"]
    can_delete = False


class OrderStatusEventInline(admin.TabularInline):
    model = OrderStatusEvent
    extra = 0
    readonly_fields = ["status", "note", "created_at"]
    can_delete = False


class ReturnRequestInline(admin.TabularInline):
    model = ReturnRequest
    extra = 0
    fields = ["status", "reason", "channel", "created_at"]
    readonly_fields = ["reason", "channel", "created_at"]
    can_delete = False


@admin.register(ReturnRequest)
class ReturnRequestAdmin(admin.ModelAdmin):
    list_display = ["order", "status", "channel", "created_at"]
    list_filter = ["status", "channel"]
    search_fields = ["order__number", "order__email", "reason"]
    readonly_fields = ["order", "reason", "channel", "created_at"]


def _status_action(status: str, label: str):
    def action(modeladmin, request, queryset):
        done, failed = 0, []
        for order in queryset:
            try:
                services.change_order_status(order, status, note=f"by {request.user.get_username()}")
                done += 1
            except ValidationError as exc:
                failed.append(f"{order.number}: {' '.join(exc.messages)}")
        if done:
            modeladmin.message_user(request, f"{label}: {done} order(s).")
        for message in failed:
            modeladmin.message_user(request, message, level=messages.WARNING)

    action.short_description = f"Mark selected orders as {label.lower()}"
    action.__name__ = f"mark_{status}"
    return action


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "created_at", "customer", "status_badge", "total", "tracking_number", "is_simulated"]
    list_filter = ["status", "is_simulated", "created_at"]
    search_fields = ["number", "email", "full_name", "tracking_number"]
    date_hierarchy = "created_at"
    inlines = [OrderItemInline, OrderStatusEventInline, ReturnRequestInline]
    readonly_fields = ["number", "user", "status", "subtotal", "shipping", "total", "payment_reference",
                       "tracking_number", "created_at", "is_simulated"]
    actions = [_status_action(s, label) for s, label in (
        (Order.Status.SHIPPED, "Shipped"), (Order.Status.DELIVERED, "Delivered"),
        (Order.Status.CANCELLED, "Cancelled"), (Order.Status.REFUNDED, "Refunded"),
    )]

    @admin.display(description="Customer")
    def customer(self, order: Order) -> str:
        return order.full_name or order.email

    @admin.display(description="Status", ordering="status")
    def status_badge(self, order: Order) -> str:
        return format_html('<span class="order-status order-status--{}">{}</span>', order.status,
                           order.get_status_display())


class CartItemInline(admin.TabularInline):
    model = CartItem
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ["pk", "user", "created_at", "updated_at"]
    inlines = [CartItemInline]
    raw_id_fields = ["user"]


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "is_simulated"]
    list_filter = ["is_simulated"]
    search_fields = ["user__username", "user__email"]
