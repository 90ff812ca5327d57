"""The copy desk in the admin: draft actions on the product list, the "needs copy" page, one product's
"Draft copy" page, and the drafts' own admin (edit, accept, reject, history).

The product admin is shop's; merchandising adds its actions, filter and drafts column to it here, by
model label (as sentiment connects its receivers), so shop knows nothing of drafts.
"""

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from config.ratelimit import TOO_MANY, is_rate_limited

from . import desk, services
from .models import ProductCopyDraft

Kind = ProductCopyDraft.Kind
# "Draft copy for the products that need it": how many of the thinnest at once.
BATCH_SIZE = 50


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
        return [("thin", f"Needs copy (under {services.NEEDS_COPY_MIN_WORDS} words)"), ("rich", "Has copy")]

    def queryset(self, request, queryset):
        if self.value() not in ("thin", "rich"):
            return queryset
        counted = services.with_copy_words(queryset)
        if self.value() == "thin":
            return counted.filter(copy_words__lt=services.NEEDS_COPY_MIN_WORDS)
        return counted.filter(copy_words__gte=services.NEEDS_COPY_MIN_WORDS)


# --- requesting drafts (shared by the product actions and the single-product page) --------------------


def copy_rate_limited(model_admin, request) -> bool:
    """Each request runs the generator for its products: AISLE_PAGE_RATE_LIMITS["copy_draft"] a minute."""
    if is_rate_limited(request, "copy_draft", settings.AISLE_PAGE_RATE_LIMITS["copy_draft"]):
        model_admin.message_user(request, TOO_MANY, level=messages.ERROR)
        return True
    return False


def batch_url(drafts: list) -> str:
    return f"{reverse('admin:merchandising_batch')}?{urlencode({'ids': ','.join(str(d.pk) for d in drafts)})}"


def report_queued(model_admin, request, drafts: list, asked: int) -> None:
    if drafts:
        model_admin.message_user(request, format_html(
            'Queued {} draft(s): <a href="{}" id="queued-drafts-link">follow their progress</a>.', len(drafts),
            batch_url(drafts)))
    if len(drafts) < asked:
        model_admin.message_user(request, f"{asked - len(drafts)} product(s) already had a draft of that kind "
                                          "in progress.", level=messages.WARNING)


def copy_form_page(model_admin, request, form, products: list, *, action: str = "", form_url: str = ""):
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
        "title": "Draft product copy", "form": form, "products": products[:100], "product_count": len(products),
        "action": action, "product_ids": [product.pk for product in products], "form_url": form_url,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/merchandising/copy_request.html", context)


def request_copy(model_admin, request, queryset, kinds: list[str], action: str):
    if "apply" in request.POST:
        form = CopyRequestForm(request.POST, kinds=kinds)
        if form.is_valid() and not copy_rate_limited(model_admin, request):
            drafts = services.request_drafts(queryset.values_list("pk", flat=True), requested_by=request.user,
                                             **form.cleaned_data)
            report_queued(model_admin, request, drafts, queryset.count())
            return None  # back to the change list
    else:
        form = CopyRequestForm(kinds=kinds)
    return copy_form_page(model_admin, request, form, list(queryset.order_by("title")), action=action)


@admin.action(description="Draft description (model)…", permissions=["change"])
def draft_description(model_admin, request, queryset):
    return request_copy(model_admin, request, queryset, [Kind.DESCRIPTION], "draft_description")


@admin.action(description="Draft marketing copy (model)…", permissions=["change"])
def draft_marketing_copy(model_admin, request, queryset):
    return request_copy(model_admin, request, queryset, [Kind.MARKETING_LINE, Kind.EMAIL_BLURB],
                        "draft_marketing_copy")


@admin.display(description="Copy drafts")
def copy_drafts(product) -> str:
    """The product's latest drafts, linked. Shown read-only rather than as an inline formset, so the
    product form posts exactly the fields it always did."""
    drafts = list(ProductCopyDraft.objects.filter(product_id=product.pk).order_by("-created_at", "-pk")[:20]) \
        if product.pk else []
    if not drafts:
        return "None yet: use Draft copy above."
    rows = ((reverse("admin:merchandising_productcopydraft_change", args=[d.pk]), d.get_kind_display(), d.tone,
             d.length, d.get_status_display(), len(d.flags or []), Truncator(d.text or d.error).chars(140),
             timezone.localtime(d.created_at).strftime("%Y-%m-%d %H:%M")) for d in drafts)
    return format_html(
        '<table class="copy-drafts"><tr><th>Draft</th><th>Tone</th><th>Length</th><th>Status</th><th>Flags</th>'
        "<th>Text</th><th>Requested</th></tr>{}</table>",
        format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                             "<td>{}</td><td>{}</td></tr>", rows))


def extend_product_admin(site: admin.AdminSite = admin.site) -> None:
    """Add the copy actions, the "copy" filter, the drafts column and the links to shop's product admin."""
    product_admin = site.get_model_admin(apps.get_model("shop", "Product"))
    if draft_description in (product_admin.actions or []):
        return
    product_admin.actions = [*(product_admin.actions or []), draft_description, draft_marketing_copy]
    product_admin.list_filter = [*product_admin.list_filter, CopyListFilter]
    product_admin.readonly_fields = [*product_admin.readonly_fields, copy_drafts]
    product_admin.change_form_template = "admin/merchandising/product_change_form.html"
    product_admin.change_list_template = "admin/merchandising/product_change_list.html"


# --- the drafts ------------------------------------------------------------------------------------------


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
    readonly_fields = ["product", "kind", "tone", "length", "engine", "status", "highlighted_text", "flags_list",
                       "published_text",
                       "generated_text", "facts_list", "error", "generator", "generation_seconds", "new_tokens",
                       "requested_by", "created_at", "generated_at", "decided_at", "decided_by", "history_table"]
    fieldsets = [
        (None, {"fields": ["product", ("kind", "tone", "length", "engine"), "status", "highlighted_text", "text",
                           "flags_list", "published_text"]}),
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

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # "?id__in=1,2" lists the drafts a request just queued.
        return lookup == "id__in" or super().lookup_allowed(lookup, value, request)

    def get_urls(self):
        own = [
            path("needs-copy/", self.admin_site.admin_view(self.needs_copy_view), name="merchandising_needs_copy"),
            path("draft-for/<int:product_id>/", self.admin_site.admin_view(self.draft_copy_view),
                 name="merchandising_draft_copy"),
            path("batch/", self.admin_site.admin_view(self.batch_view), name="merchandising_batch"),
            path("progress/", self.admin_site.admin_view(self.progress_view), name="merchandising_progress"),
            path("draft-thin/", self.admin_site.admin_view(self.draft_thin_view), name="merchandising_draft_thin"),
        ]
        return own + super().get_urls()

    def _product_admin(self):
        return self.admin_site.get_model_admin(apps.get_model("shop", "Product"))

    def draft_copy_view(self, request, product_id: int):
        """Draft copy for one product, from its change page."""
        product = services.product_for_copy(product_id)
        if product is None:
            raise Http404("No such product.")
        if not self._product_admin().has_change_permission(request, product):
            raise PermissionDenied
        form = CopyRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid() and not copy_rate_limited(self, request):
            drafts = services.request_drafts([product.pk], requested_by=request.user, **form.cleaned_data)
            report_queued(self, request, drafts, 1)
            return HttpResponseRedirect(reverse("admin:shop_product_change", args=[product.pk]))
        return copy_form_page(self._product_admin(), request, form, [product], form_url=request.path)

    def needs_copy_view(self, request):
        """Active products with thin copy, thinnest first, with the draft actions at hand."""
        product_admin = self._product_admin()
        if not product_admin.has_change_permission(request):  # admin_view lets every staff member in
            raise PermissionDenied
        try:
            min_words = max(1, int(request.GET.get("min_words", services.NEEDS_COPY_MIN_WORDS)))
        except ValueError:
            min_words = services.NEEDS_COPY_MIN_WORDS
        page = Paginator(services.needs_copy_products(min_words), 100).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request), "opts": product_admin.model._meta,
            "title": "Products that need copy", "page": page, "min_words": min_words,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:shop_product_changelist"),
            "batch_size": BATCH_SIZE,
        }
        return TemplateResponse(request, "admin/merchandising/needs_copy.html", context)

    def progress_view(self, request):
        """JSON for the progress bar: counts by status and each draft's state (the page polls it)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(desk.progress(desk.parse_ids(request.GET.get("ids", ""))))

    def batch_view(self, request):
        """A batch of drafts being written: a progress bar (updated by static/js/copy-desk.js from
        progress_view; without JavaScript the page shows the state at load and a reload link)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = desk.parse_ids(request.GET.get("ids", ""))
        state = desk.progress(ids)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Drafting product copy",
            "state": state, "progress_url": f"{reverse('admin:merchandising_progress')}?ids={','.join(map(str, ids))}",
            "change_url": reverse("admin:merchandising_productcopydraft_change", args=[0]).replace("/0/", "/{id}/"),
        }
        return TemplateResponse(request, "admin/merchandising/batch.html", context)

    def draft_thin_view(self, request):
        """"Draft copy for the products that need it": descriptions for the BATCH_SIZE thinnest products,
        queued at once; then the batch page with its progress bar."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._product_admin().has_change_permission(request):
            raise PermissionDenied
        if copy_rate_limited(self, request):
            return HttpResponseRedirect(reverse("admin:merchandising_needs_copy"))
        ids = list(services.needs_copy_products().values_list("pk", flat=True)[:BATCH_SIZE])
        drafts = services.request_drafts(ids, Kind.DESCRIPTION, requested_by=request.user)
        if not drafts:
            self.message_user(request, "Nothing to draft: those products already have drafts in progress.",
                              level=messages.WARNING)
            return HttpResponseRedirect(reverse("admin:merchandising_needs_copy"))
        return HttpResponseRedirect(batch_url(drafts))

    def save_model(self, request, obj, form, change):
        # Through the service, so the edit is fact-checked again and lands in the history.
        if change and "text" in form.changed_data:
            try:
                services.edit_draft(obj.pk, form.cleaned_data["text"], request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), level=messages.ERROR)

    def response_change(self, request, obj):
        for button, decide, done in (("_accept", services.accept_draft, "Accepted and published"),
                                     ("_reject", services.reject_draft, "Rejected")):
            if button in request.POST:
                try:
                    decide(obj.pk, request.user)
                    self.message_user(request, f"{done}: {obj}.")
                except ValidationError as exc:
                    self.message_user(request, " ".join(exc.messages), level=messages.ERROR)
                return HttpResponseRedirect(reverse("admin:merchandising_productcopydraft_change", args=[obj.pk]))
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
        self._decide(request, queryset, services.accept_draft, "Accepted and published")

    @admin.action(description="Reject selected drafts")
    def reject_selected(self, request, queryset):
        self._decide(request, queryset, services.reject_draft, "Rejected")

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
            return "Passed: every number, claim and name is in the facts, and every sentence is grounded in them."
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li><strong>{}</strong>: {}</li>", ((f.get("text", ""), f.get("reason", "")) for f in draft.flags)))

    @admin.display(description="Draft with flagged words marked")
    def highlighted_text(self, draft: ProductCopyDraft) -> str:
        """The draft's text, escaped, with each flagged word or sentence in a <mark> titled by its reason."""
        text = draft.text or ""
        if not text:
            return "-"
        pieces = []
        for piece, word_reason, sentence_reason in desk.highlight_segments(text, draft.flags):
            html = format_html('<mark class="copy-flag" title="{}">{}</mark>', word_reason, piece) if word_reason \
                else escape(piece)
            if sentence_reason:
                html = format_html('<span class="copy-unsupported" title="{}">{}</span>', sentence_reason, html)
            pieces.append(html)
        # Every piece was escaped (format_html / escape) above.
        return format_html('<p class="copy-highlighted" id="copy-highlighted">{}</p>', mark_safe("".join(pieces)))

    @admin.display(description="Published now")
    def published_text(self, draft: ProductCopyDraft) -> str:
        return getattr(draft.product, services.PUBLISH_FIELDS[draft.kind]) or "(nothing published)"

    @admin.display(description="Facts")
    def facts_list(self, draft: ProductCopyDraft) -> str:
        rows = [(key, ", ".join(map(str, value)) if isinstance(value, list) else value)
                for key, value in (draft.facts or {}).items() if value not in (None, "", [], {})]
        if not rows:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", rows))

    @admin.display(description="Events")
    def history_table(self, draft: ProductCopyDraft) -> str:
        events = services.history(draft)
        if not events:
            return "-"
        rows = ((timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"), event.get_action_display(),
                 event.actor.get_username() if event.actor else "generator" if event.action in ("generated", "failed")
                 else "-", event.get_status_display(), Truncator(event.text).chars(120)) for event in events)
        return format_html(
            "<table><tr><th>When</th><th>What</th><th>Who</th><th>Status</th><th>Text</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))


extend_product_admin()
