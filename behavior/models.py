from django.conf import settings
from django.db import models


class Event(models.Model):
    """One shopper action. Append-only: rows are inserted, never updated (retention deletes
    whole days only after rolling them into DailyAggregate)."""

    class Type(models.TextChoices):
        PRODUCT_VIEWED = "product_viewed", "Product viewed"
        LISTING_VIEWED = "listing_viewed", "Listing viewed"
        SEARCHED = "searched", "Searched"
        REC_SHOWN = "rec_shown", "Recommendation shown"
        REC_CLICKED = "rec_clicked", "Recommendation clicked"
        ADDED_TO_CART = "added_to_cart", "Added to cart"
        REMOVED_FROM_CART = "removed_from_cart", "Removed from cart"
        CHECKOUT_STARTED = "checkout_started", "Checkout started"
        ORDER_PLACED = "order_placed", "Order placed"
        REVIEW_POSTED = "review_posted", "Review posted"
        CHAT_STARTED = "chat_started", "Chat started"
        DWELL = "dwell", "Time on page"

    class Source(models.TextChoices):
        SERVER = "server", "Server"
        CLIENT = "client", "Browser beacon"

    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=32, choices=Type.choices)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.SERVER)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             db_index=False)
    visitor_id = models.CharField(max_length=64, blank=True)
    product = models.ForeignKey("shop.Product", null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    # Denormalised at write time so analytics by category need no join.
    category_id = models.IntegerField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # Set by the browser beacon; a retried batch carries the same ids and is stored once.
    client_event_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    is_simulated = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["occurred_at"], name="event_time"),
            models.Index(fields=["event_type", "occurred_at"], name="event_type_time"),
            models.Index(fields=["user", "occurred_at"], name="event_user_time"),
            models.Index(fields=["visitor_id", "occurred_at"], name="event_visitor_time"),
            models.Index(fields=["product", "occurred_at"], name="event_product_time"),
            models.Index(fields=["category_id", "occurred_at"], name="event_category_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} at {self.occurred_at:%Y-%m-%d %H:%M}"


class IdentityLink(models.Model):
    """A browser's visitor id seen signed in as a user: joins anonymous history to the account."""

    visitor_id = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="visitor_links", on_delete=models.CASCADE)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["visitor_id", "user"], name="one_link_per_visitor_and_user")]

    def __str__(self) -> str:
        return f"{self.visitor_id} -> {self.user}"


class DailyAggregate(models.Model):
    """Raw events of a rolled-up day, counted per type at three levels (as SQL GROUPING SETS):
    per product, per category (product empty) and for the whole shop (both empty). Distinct
    visitors are counted at each level, since they do not add up across products."""

    class Level(models.TextChoices):
        PRODUCT = "product", "Product"
        CATEGORY = "category", "Category"
        ALL = "all", "Whole shop"

    day = models.DateField()
    level = models.CharField(max_length=8, choices=Level.choices)
    event_type = models.CharField(max_length=32, choices=Event.Type.choices)
    product = models.ForeignKey("shop.Product", null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    category_id = models.IntegerField(null=True, blank=True)
    events = models.PositiveIntegerField()
    # Distinct visitors (or users) that day: the funnel counts people, not clicks.
    visitors = models.PositiveIntegerField()
    is_simulated = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["level", "day", "event_type"], name="aggregate_level_day_type"),
            models.Index(fields=["category_id", "day"], name="aggregate_category_day"),
            models.Index(fields=["product", "day"], name="aggregate_product_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.event_type}: {self.events}"


class RolledUpDay(models.Model):
    """A day whose raw events were folded into DailyAggregate and deleted."""

    day = models.DateField(unique=True)
    raw_events = models.PositiveIntegerField()
    rolled_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.day}: {self.raw_events} events"
