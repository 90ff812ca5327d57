"""Product copy drafts and their history. Moved from shop (issue #18) with state-only migrations: the rows
and their tables stayed where they were until merchandising's 0002 renamed the tables."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ProductCopyDraft(models.Model):
    """Model- (or template-) written copy for one product, kept beside the product until a merchandiser
    accepts it: the published text on Product changes only through merchandising.drafts.accept_draft."""

    class Kind(models.TextChoices):
        DESCRIPTION = "description", "Description"
        MARKETING_LINE = "marketing_line", "Marketing line"
        EMAIL_BLURB = "email_blurb", "E-mail blurb"

    class Tone(models.TextChoices):
        NEUTRAL = "neutral", "Neutral"
        FRIENDLY = "friendly", "Friendly"
        PREMIUM = "premium", "Premium"
        PLAYFUL = "playful", "Playful"
        TECHNICAL = "technical", "Technical"

    class Length(models.TextChoices):
        SHORT = "short", "Short"
        MEDIUM = "medium", "Medium"
        LONG = "long", "Long"

    class Engine(models.TextChoices):
        MODEL = "model", "Language model"
        TEMPLATE = "template", "Template (no model)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        GENERATING = "generating", "Generating"
        READY = "ready", "Ready"
        NEEDS_REVIEW = "needs_review", "Needs review"
        FAILED = "failed", "Failed"
        ACCEPTED = "accepted", "Accepted (published)"
        REJECTED = "rejected", "Rejected"

    # States a merchandiser may still edit, accept or reject.
    OPEN_STATUSES = (Status.READY, Status.NEEDS_REVIEW, Status.FAILED)

    product = models.ForeignKey("shop.Product", related_name="copy_drafts", on_delete=models.CASCADE)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tone = models.CharField(max_length=12, choices=Tone.choices, default=Tone.NEUTRAL)
    length = models.CharField(max_length=8, choices=Length.choices, default=Length.MEDIUM)
    engine = models.CharField(max_length=10, choices=Engine.choices, default=Engine.MODEL)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.QUEUED, db_index=True)
    text = models.TextField(blank=True, help_text="The draft as it stands (after any edits).")
    generated_text = models.TextField(blank=True, help_text="What the generator wrote, before any edits.")
    facts = models.JSONField(default=dict, blank=True, help_text="The facts the draft was grounded in.")
    flags = models.JSONField(default=list, blank=True,
                             help_text="Fact-check findings: [{text, reason, kind}], empty when it passed.")
    error = models.TextField(blank=True)
    generator = models.CharField(max_length=200, blank=True, help_text="Which model (or the template) wrote it.")
    generation_seconds = models.FloatField(null=True, blank=True)
    new_tokens = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                     on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set when a worker claims the draft: a redelivered task re-claims only a stale claim.
    claimed_at = models.DateTimeField(null=True, blank=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["product", "kind", "status"], name="copydraft_product_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} draft for {self.product_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class ProductCopyDraftEvent(models.Model):
    """The history of a draft: every request, generation, edit, acceptance and rejection, by whom and when."""

    class Action(models.TextChoices):
        REQUESTED = "requested", "Requested"
        GENERATED = "generated", "Generated"
        FAILED = "failed", "Generation failed"
        EDITED = "edited", "Edited"
        ACCEPTED = "accepted", "Accepted and published"
        REJECTED = "rejected", "Rejected"

    draft = models.ForeignKey(ProductCopyDraft, related_name="events", on_delete=models.CASCADE)
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                              on_delete=models.SET_NULL, help_text="Empty for the generator.")
    status = models.CharField(max_length=14, choices=ProductCopyDraft.Status.choices,
                              help_text="The draft's status after the event.")
    text = models.TextField(blank=True, help_text="The draft's text after the event.")
    details = models.JSONField(default=dict, blank=True,
                               help_text="e.g. the flags, the error, the text it replaced on the product.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.draft_id})"
