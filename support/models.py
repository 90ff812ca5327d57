"""Conversations with the assistant, the knowledge base and the agents' canned responses. Data only:
logic lives in services.py (the facade) and the modules it re-exports."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class KnowledgeArticle(models.Model):
    """A policy or how-to article. The assistant retrieves these semantically and links the source."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    topic = models.CharField(max_length=60, blank=True, help_text="e.g. shipping, returns, payments, account.")
    body = models.TextField(help_text="Plain text; paragraphs separated by blank lines.")
    # How shoppers ask for this article ("what cards do you take?"), one per line: matched like the article,
    # never quoted (answers always come from the body).
    questions = models.TextField(blank=True, help_text="Questions this article answers, one per line, in "
                                                       "shoppers' words. Used to find the article, never shown.")
    is_published = models.BooleanField(default=True)
    # Embedding of title + body (float32 bytes), refreshed when the text changes.
    vector = models.BinaryField(null=True, blank=True, editable=False)
    vector_text_hash = models.CharField(max_length=64, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["topic", "title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("support:article", args=[self.slug])


class CannedResponse(models.Model):
    title = models.CharField(max_length=120)
    shortcut = models.SlugField(max_length=40, unique=True, help_text="Typed as /shortcut in the agent console.")
    body = models.TextField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", "With the assistant"
        WAITING = "waiting", "Waiting for an agent"
        ASSIGNED = "assigned", "With an agent"
        RESOLVED = "resolved", "Resolved"

    HUMAN_STATUSES = (Status.WAITING, Status.ASSIGNED)

    # Public handle for the widget: anonymous shoppers hold it in their session, never a guessable pk.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="support_conversations",
                             on_delete=models.SET_NULL)
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOT, db_index=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="assigned_chats",
                                    on_delete=models.SET_NULL)
    handoff_reason = models.CharField(max_length=40, blank=True)
    summary = models.TextField(blank=True, help_text="The assistant's summary for the agent.")
    last_intent = models.CharField(max_length=40, blank=True)
    mood = models.FloatField(null=True, blank=True, help_text="Latest shopper mood, -1 (angry) to 1 (happy).")
    # Consecutive messages the assistant did not understand (rephrase once, then hand off).
    misunderstood_in_a_row = models.PositiveSmallIntegerField(default=0)
    # An action waiting for the shopper's "yes": {"action": "cancel_order", "order": "A1B2", "expires": iso}.
    pending_action = models.JSONField(null=True, blank=True)
    satisfaction = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1-5, asked at the end.")
    satisfaction_comment = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"Conversation {self.pk} ({self.get_status_display()})"


class Message(models.Model):
    class Sender(models.TextChoices):
        SHOPPER = "shopper", "Shopper"
        BOT = "bot", "Assistant"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Kind(models.TextChoices):
        TEXT = "text", "Text"  # shopper and agent messages
        DATA = "data", "Answer from order or catalogue data"
        ARTICLE = "article", "Answer from the knowledge base"
        GENERATED = "generated", "Phrased by the generator from retrieved facts"
        CONFIRM = "confirm", "Asks to confirm an action"
        ACTION = "action", "Result of a confirmed action"
        REPHRASE = "rephrase", "Asked to rephrase"
        HANDOFF = "handoff", "Hand-off notice"
        SMALL_TALK = "small_talk", "Small talk"
        REFUSAL = "refusal", "Out of scope or refused"

    conversation = models.ForeignKey(Conversation, related_name="messages", on_delete=models.CASCADE)
    sender = models.CharField(max_length=10, choices=Sender.choices)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(max_length=4000)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               help_text="The agent who wrote it.")
    # Shopper messages: what the assistant understood.
    intent = models.CharField(max_length=40, blank=True, db_index=True)
    intent_confidence = models.FloatField(null=True, blank=True)
    corrected_intent = models.CharField(max_length=40, blank=True, db_index=True,
                                        help_text="Set by an agent; feeds the next intent fine-tune.")
    mood = models.FloatField(null=True, blank=True)
    mood_label = models.CharField(max_length=10, blank=True)
    # Bot messages: what the answer was built from ([{"type": "article", "title": .., "url": ..}, ...]).
    sources = models.JSONField(default=list, blank=True)
    # Bot messages: quick replies the shopper picks from ([{"label": .., "reply": ..}], e.g. "which order?")
    # and product cards ([{"title", "price", "url", "availability"}]) the widget draws instead of prose.
    choices = models.JSONField(default=list, blank=True)
    cards = models.JSONField(default=list, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Shopper messages: the widget's id for one send. A retry of a send whose answer was lost carries the
    # same id and gets the stored message back instead of storing (and answering) it twice.
    client_ref = models.CharField(max_length=64, blank=True, default="")
    feedback = models.SmallIntegerField(null=True, blank=True, help_text="+1 thumbs up, -1 thumbs down.")
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(feedback__isnull=True) | models.Q(feedback__in=[-1, 1]),
                                   name="feedback_is_up_or_down"),
            models.UniqueConstraint(fields=["conversation", "client_ref"], condition=~models.Q(client_ref=""),
                                    name="message_client_ref_once"),
        ]

    def __str__(self) -> str:
        return f"{self.sender}: {self.text[:60]}"
