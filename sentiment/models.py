"""Review sentiment: one score row per approved review, its aspect mentions, per-category aspect
vocabularies, per-product summaries, scoring runs and negative-share alerts.

Shop rows are referenced by string ("shop.Review"); this app never imports shop.models.
"""

from django.conf import settings
from django.db import models


class Label(models.TextChoices):
    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


class ReviewSentiment(models.Model):
    """The text sentiment of one approved review, and which model produced it.

    One row per review (the one-to-one is the uniqueness the resumable job relies on). A row is
    re-scored when its model_version is not the serving one, or when its category's aspect
    vocabulary changed (needs_rescore).
    """

    review = models.OneToOneField("shop.Review", related_name="sentiment", on_delete=models.CASCADE)
    # Denormalised from the review at scoring time, so dashboards aggregate without joins.
    product = models.ForeignKey("shop.Product", related_name="+", on_delete=models.CASCADE, db_index=False)
    rating = models.PositiveSmallIntegerField(help_text="The review's stars.")
    reviewed_at = models.DateTimeField(help_text="When the review was written.")
    label = models.CharField(max_length=8, choices=Label.choices)
    score = models.FloatField(help_text="-1 (very negative) to 1 (very positive).")
    model_version = models.CharField(max_length=120, db_index=True,
                                     help_text='e.g. "ml:sentiment:v3" or "vader-3.3.2".')
    aspect_set = models.CharField(max_length=16, blank=True, help_text="Signature of the aspect vocabulary used.")
    needs_rescore = models.BooleanField(default=False)
    text_hash = models.CharField(max_length=32, help_text="Of the scored title and text: edits are re-scored.")
    times_scored = models.PositiveIntegerField(default=1)
    scored_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["product", "reviewed_at"], name="sentiment_product_time"),
            models.Index(fields=["reviewed_at"], name="sentiment_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=-1, score__lte=1), name="sentiment_score_range"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.score:+.2f}) for review {self.review_id}"


class AspectMention(models.Model):
    """One clause of a review that mentions an aspect, with that clause's own sentiment."""

    sentiment = models.ForeignKey(ReviewSentiment, related_name="aspects", on_delete=models.CASCADE)
    product = models.ForeignKey("shop.Product", related_name="+", on_delete=models.CASCADE, db_index=False)
    reviewed_at = models.DateTimeField()
    aspect = models.CharField(max_length=80)
    term = models.CharField(max_length=80, help_text="The words that matched.")
    sentence = models.TextField(max_length=600)
    label = models.CharField(max_length=8, choices=Label.choices)
    score = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["product", "aspect"], name="mention_product_aspect"),
            models.Index(fields=["reviewed_at", "aspect"], name="mention_time_aspect"),
        ]

    def __str__(self) -> str:
        return f"{self.aspect}: {self.label}"


class CategoryAspect(models.Model):
    """An aspect of one category, discovered from its reviews (or inherited, or shop-wide)."""

    class Kind(models.TextChoices):
        DISCOVERED = "discovered", "Discovered in this category"
        INHERITED = "inherited", "Inherited from a parent category"
        GENERAL = "general", "Shop-wide aspect"

    category = models.ForeignKey("shop.Category", related_name="+", on_delete=models.CASCADE)
    name = models.CharField(max_length=80)
    terms = models.JSONField(default=list, help_text="Normalised words and word pairs that mention it.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    support = models.PositiveIntegerField(default=0, help_text="Reviews in the category that mention it.")
    lift = models.FloatField(default=1.0, help_text="How over-represented it is against all reviews.")
    discovered_at = models.DateTimeField()

    class Meta:
        ordering = ["category", "-support"]
        constraints = [models.UniqueConstraint(fields=["category", "name"], name="one_aspect_name_per_category")]

    def __str__(self) -> str:
        return self.name


class ProductSentiment(models.Model):
    """Per-product summary, recomputed in the same transaction as each scoring batch."""

    product = models.OneToOneField("shop.Product", related_name="+", on_delete=models.CASCADE, primary_key=True)
    reviews = models.PositiveIntegerField(default=0)
    positive = models.PositiveIntegerField(default=0)
    neutral = models.PositiveIntegerField(default=0)
    negative = models.PositiveIntegerField(default=0)
    average_score = models.FloatField(default=0.0)
    loves = models.JSONField(default=list, blank=True)
    complaints = models.JSONField(default=list, blank=True)
    aspects = models.JSONField(default=dict, blank=True, help_text="aspect -> [positive, neutral, negative]")
    model_version = models.CharField(max_length=120, blank=True)
    # The latest reviews on their own: {"reviews": n, "low_stars": k, "mostly_low": bool, "complaints": [...]}.
    recent = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Sentiment of product {self.product_id}"


class ScoringRun(models.Model):
    """One batch-scoring job: progress is committed with each batch, so a killed run shows how far it got."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted (worker stopped)"

    trigger = models.CharField(max_length=20, default="nightly")
    model_version = models.CharField(max_length=120)
    batch_size = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    scored = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0, help_text="Reviews scored by VADER after a model failure.")
    last_review_id = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Scoring run {self.pk} ({self.status}, {self.scored} scored)"


class SentimentAlert(models.Model):
    """A product whose negative share over the recent window rose significantly above its own baseline.

    One alert per episode: while an episode is ongoing (episode_ended_at is null) no other alert is
    opened for the product, whatever its status. The episode ends when a check finds the share back
    down; only then can a later rise open a new alert.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    product = models.ForeignKey("shop.Product", related_name="+", on_delete=models.CASCADE)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    opened_at = models.DateTimeField()
    window_days = models.PositiveSmallIntegerField()
    baseline_days = models.PositiveSmallIntegerField()
    window_reviews = models.PositiveIntegerField()
    window_negative = models.PositiveIntegerField()
    baseline_reviews = models.PositiveIntegerField()
    baseline_negative = models.PositiveIntegerField()
    window_share = models.FloatField()
    baseline_share = models.FloatField()
    z_score = models.FloatField()
    p_value = models.FloatField()
    peak_share = models.FloatField()
    last_checked_at = models.DateTimeField()
    episode_ended_at = models.DateTimeField(null=True, blank=True,
                                            help_text="When the negative share was found back down.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                        on_delete=models.SET_NULL)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                    on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    model_version = models.CharField(max_length=120, blank=True,
                                     help_text="The model that scored most of the reviews it counted.")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["product"], condition=models.Q(episode_ended_at__isnull=True),
                                    name="one_alert_per_ongoing_episode"),
        ]

    def __str__(self) -> str:
        return f"Negative reviews up for product {self.product_id} ({self.status})"


class TrainingRun(models.Model):
    """One fine-tune of the shop's sentiment model on its starred reviews (the pages say "the shop's
    model is training" while one runs), with the rows it could not use, counted by reason."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SERVING = "serving", "Finished, serving"
        NOT_SERVING = "not_serving", "Finished, not serving (did not beat the active version or VADER)"
        FAILED = "failed", "Failed"

    trigger = models.CharField(max_length=20, default="command")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reviews = models.PositiveIntegerField(default=0, help_text="Reviews used.")
    clause_rows = models.PositiveIntegerField(default=0, help_text="Weakly labelled clause rows added.")
    skipped = models.JSONField(default=dict, blank=True, help_text="Reviews not used, by reason.")
    version = models.ForeignKey("ml.ModelVersion", null=True, blank=True, related_name="+",
                                on_delete=models.SET_NULL)
    rescored = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Sentiment training {self.pk} ({self.status})"
