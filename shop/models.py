"""Catalogue, carts, orders, reviews and customer profiles. Data only: logic lives in services.py."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Category(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, related_name="children", on_delete=models.PROTECT)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return f"{self.parent.name} › {self.name}" if self.parent_id else self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:category", args=[self.slug])


class Product(models.Model):
    category = models.ForeignKey(Category, related_name="products", on_delete=models.PROTECT)
    title = models.CharField(max_length=300)
    slug = models.SlugField(max_length=220, unique=True)
    brand = models.CharField(max_length=120, db_index=True)
    # Null price: a listing that is shown but cannot be bought online (the source has one).
    price = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))]
    )
    # The price before the discount; null when the product is not discounted.
    compare_at_price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    discount_label = models.CharField(max_length=120, blank=True)
    stock = models.PositiveIntegerField(default=0)
    features = models.JSONField(default=list, blank=True, help_text="Feature bullets, one string each.")
    description = models.TextField(blank=True)
    # Published marketing copy (written by merchandisers, or accepted from a ProductCopyDraft).
    marketing_line = models.CharField(max_length=300, blank=True)
    email_blurb = models.TextField(blank=True)
    image_hue = models.PositiveSmallIntegerField(default=210, help_text="Colour of the placeholder image (0-360).")
    source_rating = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    source_review_count = models.PositiveIntegerField(default=0)
    rating_average = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    rating_count = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    source_key = models.CharField(max_length=80, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        indexes = [
            models.Index(fields=["category", "is_active"]),
            models.Index(fields=["price"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__isnull=True) | models.Q(price__gt=0), name="price_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("shop:product", args=[self.slug])

    @property
    def is_purchasable(self) -> bool:
        return self.is_active and self.price is not None and self.stock > 0

    @property
    def discount_amount(self) -> Decimal | None:
        if self.compare_at_price and self.price and self.compare_at_price > self.price:
            return self.compare_at_price - self.price
        return None

    @property
    def display_rating(self) -> Decimal | None:
        """The source's ratings and our shoppers' approved reviews, weighted by their counts."""
        total = self.source_review_count + self.rating_count
        if not total:
            return None
        weighted = (self.source_rating or 0) * self.source_review_count + (self.rating_average or 0) * self.rating_count
        return (Decimal(weighted) / total).quantize(Decimal("0.01"))

    @property
    def display_review_count(self) -> int:
        return self.rating_count + self.source_review_count


class CustomerProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, related_name="profile", on_delete=models.CASCADE)
    is_simulated = models.BooleanField(default=False, help_text="Created by the demo simulator.")
    # Category slugs the simulator gave this shopper a taste for.
    tastes = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.user}"


class Review(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending moderation"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    product = models.ForeignKey(Product, related_name="reviews", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_name = models.CharField(max_length=80)
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    title = models.CharField(max_length=150)
    text = models.TextField(max_length=5000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    is_simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"),
            models.UniqueConstraint(fields=["product", "user"], name="one_review_per_user_and_product"),
        ]

    def __str__(self) -> str:
        return f"{self.rating}★ {self.title}"


class Cart(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, related_name="cart", on_delete=models.CASCADE
    )
    # Anonymous carts are found through the id kept in the session (which survives login).
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    def __str__(self) -> str:
        return f"Cart {self.pk} ({self.user or 'anonymous'})"


class CartItem(models.Model):
    cart = models.ForeignKey(Cart, related_name="items", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["cart", "product"], name="one_line_per_product")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def line_total(self) -> Decimal:
        return (self.product.price or Decimal("0")) * self.quantity


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"

    number = models.CharField(max_length=20, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, related_name="orders", on_delete=models.PROTECT
    )
    email = models.EmailField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED, db_index=True)
    full_name = models.CharField(max_length=120)
    address_line1 = models.CharField(max_length=200)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    postal_code = models.CharField(max_length=20)
    country = models.CharField(max_length=2)
    phone = models.CharField(max_length=30, blank=True)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    shipping = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    total = models.DecimalField(max_digits=12, decimal_places=2)
    payment_reference = models.CharField(max_length=80, blank=True)
    tracking_number = models.CharField(max_length=40, blank=True)
    is_simulated = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)
    # The checkout's idempotency key (hidden form field / Idempotency-Key header): a repeated or
    # double-clicked checkout with the same key finds this order instead of placing a second one.
    idempotency_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                                    name="order_unique_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"Order {self.number}"

    def get_absolute_url(self) -> str:
        return reverse("shop:order_detail", args=[self.number])


class OrderItem(models.Model):
    order = models.ForeignKey(Order, related_name="items", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, null=True, on_delete=models.SET_NULL)
    # Snapshots: the order keeps what was bought even if the product changes later.
    title = models.CharField(max_length=300)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    def __str__(self) -> str:
        return f"{self.quantity} x {self.title}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class OrderStatusEvent(models.Model):
    order = models.ForeignKey(Order, related_name="history", on_delete=models.CASCADE)
    status = models.CharField(max_length=10, choices=Order.Status.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.order.number}: {self.status}"


class ReturnRequest(models.Model):
    """A shopper's request to send an order back (started from the account page or the assistant)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        RECEIVED = "received", "Received"
        REFUNDED = "refunded", "Refunded"
        REJECTED = "rejected", "Rejected"

    OPEN_STATUSES = (Status.REQUESTED, Status.APPROVED, Status.RECEIVED)

    order = models.ForeignKey(Order, related_name="returns", on_delete=models.CASCADE)
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    channel = models.CharField(max_length=20, default="account", help_text="Where it was started.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # At most one open return per order, even when two requests race.
            models.UniqueConstraint(fields=["order"], condition=models.Q(status__in=["requested", "approved",
                                                                                     "received"]),
                                    name="one_open_return_per_order"),
        ]

    def __str__(self) -> str:
        return f"Return of {self.order.number} ({self.status})"


class OutboxMessage(models.Model):
    """A Celery task to publish, kept in the database so that no e-mail or scoring job is lost when the
    broker is down or slow. Written in the same transaction as the change it follows (or when a bounded
    publish fails); published on commit, and whatever is still unsent is drained by a beat job
    (shop.tasks.drain_outbox, see config/celery.py). Delivery is at least once: the tasks are idempotent."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["created_at"], condition=models.Q(sent_at__isnull=True),
                                name="outbox_unsent_idx")]

    def __str__(self) -> str:
        return f"{self.task_name}{tuple(self.args)} ({'sent' if self.sent_at else 'pending'})"
