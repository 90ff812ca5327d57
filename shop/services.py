"""Business logic of the shop, as plain functions callable from views, the API, tasks,
the shell and tests. This module is also the shop's public facade for the other apps."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from . import middleware, outbox, signals
from .models import Cart, CartItem, Category, Order, OrderItem, OrderStatusEvent, Product, ReturnRequest, Review
from .payments import CardDetails, get_gateway
from .validators import validate_address, validate_quantity

log = logging.getLogger(__name__)

FREE_SHIPPING_FROM = Decimal("75.00")
FLAT_SHIPPING = Decimal("9.99")

# Product.display_rating in SQL: source and own ratings weighted by their counts (NULL if unrated).
DISPLAY_RATING = ExpressionWrapper(
    (Coalesce("source_rating", Value(Decimal("0"))) * F("source_review_count")
     + Coalesce("rating_average", Value(Decimal("0"))) * F("rating_count"))
    / NullIf(F("source_review_count") + F("rating_count"), 0),
    output_field=DecimalField(max_digits=6, decimal_places=2),
)
# Every ordering ends in "pk" so that pages are stable (titles repeat in the catalogue).
SORTS = {
    "relevance": ("-source_review_count", "title", "pk"),
    "price_asc": ("price", "title", "pk"),
    "price_desc": (F("price").desc(nulls_last=True), "title", "pk"),
    # nulls_last: PostgreSQL sorts NULL first in descending order; unrated products go last.
    "rating": (DISPLAY_RATING.desc(nulls_last=True), "-source_review_count", "title", "pk"),
    "newest": ("-created_at", "title", "pk"),
    "title": ("title", "pk"),
}


class OutOfStock(ValidationError):
    pass


# --- Catalogue -------------------------------------------------------------------------


def top_categories() -> QuerySet[Category]:
    return Category.objects.filter(parent__isnull=True).prefetch_related("children")


def category_and_descendant_ids(category: Category) -> list[int]:
    ids, frontier = [category.pk], [category.pk]
    while frontier:
        frontier = list(Category.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
        ids.extend(frontier)
    return ids


def active_products() -> QuerySet[Product]:
    return Product.objects.filter(is_active=True).select_related("category")


def keyword_filter(queryset: QuerySet[Product], query: str) -> QuerySet[Product]:
    """Every word of the query must appear in the title, brand, category or bullets."""
    for word in query.split()[:12]:
        queryset = queryset.filter(
            Q(title__icontains=word)
            | Q(brand__icontains=word)
            | Q(category__name__icontains=word)
            | Q(description__icontains=word)
            | Q(features__icontains=word)
        )
    return queryset


@dataclass
class ProductFilters:
    category: Category | None = None
    brands: tuple[str, ...] = ()
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    query: str = ""
    sort: str = "relevance"


def filter_products(filters: ProductFilters) -> QuerySet[Product]:
    queryset = active_products()
    if filters.category is not None:
        queryset = queryset.filter(category_id__in=category_and_descendant_ids(filters.category))
    if filters.query:
        queryset = keyword_filter(queryset, filters.query)
    if filters.brands:
        queryset = queryset.filter(brand__in=filters.brands)
    if filters.min_price is not None:
        queryset = queryset.filter(price__gte=filters.min_price)
    if filters.max_price is not None:
        queryset = queryset.filter(price__lte=filters.max_price)
    if filters.in_stock:
        queryset = queryset.filter(stock__gt=0)
    return queryset.order_by(*SORTS.get(filters.sort, SORTS["relevance"]))


def top_rated_products(limit: int = 8) -> QuerySet[Product]:
    """Best-rated products that can be bought now (home page rail)."""
    return (
        active_products().filter(price__isnull=False, stock__gt=0)
        .annotate(score=DISPLAY_RATING).filter(score__isnull=False)
        .order_by("-score", "-source_review_count", "title", "pk")[:limit]
    )


def deal_products(limit: int = 8) -> QuerySet[Product]:
    """In-stock discounted products, biggest relative saving first."""
    saving = ExpressionWrapper((F("compare_at_price") - F("price")) / F("compare_at_price"),
                               output_field=DecimalField())
    return (
        active_products().filter(price__isnull=False, stock__gt=0, compare_at_price__gt=F("price"))
        .annotate(saving=saving).order_by("-saving", "title", "pk")[:limit]
    )


def category_tree() -> list[Category]:
    """Every category with `.subcategories` filled in, roots first, from one query."""
    categories = list(Category.objects.select_related("parent").order_by("position", "name"))
    by_parent: dict[int | None, list[Category]] = {}
    for category in categories:
        by_parent.setdefault(category.parent_id, []).append(category)
    for category in categories:
        category.subcategories = by_parent.get(category.pk, [])
    return by_parent.get(None, [])


def brand_facets(queryset: QuerySet[Product], limit: int = 30) -> list[tuple[str, int]]:
    rows = queryset.order_by().values("brand").annotate(n=Count("pk")).order_by("-n", "brand")[:limit]
    return [(row["brand"], row["n"]) for row in rows]


def get_product(slug: str) -> Product:
    return active_products().get(slug=slug)


def products_for_indexing(ids: Iterable[int] | None = None) -> QuerySet[Product]:
    """Products with their category and its parent, for embedding and search indexes (inactive
    ones included: callers decide; an index must learn that a product went inactive)."""
    queryset = Product.objects.select_related("category", "category__parent").order_by("pk")
    return queryset.filter(pk__in=list(ids)) if ids is not None else queryset


def get_products(ids: Iterable[int]) -> list[Product]:
    """Active products by id, in the order given (for other apps' rails and answers)."""
    ids = list(ids)
    by_id = active_products().in_bulk(ids)
    return [by_id[i] for i in ids if i in by_id]


def product_categories(ids: Iterable[int]) -> dict[int, int]:
    """{product id: category id} of the active products among ids (one narrow query: for event ingestion)."""
    return dict(active_products().filter(pk__in=list(ids)).values_list("pk", "category_id"))


def record_product_view(product: Product, *, user=None, visitor_id: str = "", occurred_at=None,
                        simulated: bool = False) -> None:
    signals.product_viewed.send(
        sender=Product, product=product, user=user, visitor_id=visitor_id,
        occurred_at=occurred_at or timezone.now(), simulated=simulated,
    )


def record_listing_view(category: Category, *, page: int, result_count: int, filters: dict, user=None,
                        visitor_id: str = "", occurred_at=None, simulated: bool = False) -> None:
    signals.listing_viewed.send(
        sender=Category, category=category, page=page, result_count=result_count, filters=filters, user=user,
        visitor_id=visitor_id, occurred_at=occurred_at or timezone.now(), simulated=simulated,
    )


def approved_reviews(product: Product | None = None) -> QuerySet[Review]:
    """Approved reviews of one product, or of every active product."""
    reviews = Review.objects.filter(status=Review.Status.APPROVED, product__is_active=True)
    if product is not None:
        reviews = reviews.filter(product=product)
    return reviews.select_related("product").order_by("-created_at", "-pk")


def reviews_for_scoring(since: dt.datetime | None = None) -> QuerySet[Review]:
    """Approved reviews for the sentiment app."""
    queryset = Review.objects.filter(status=Review.Status.APPROVED).select_related("product")
    return queryset.filter(created_at__gte=since) if since else queryset


# --- Cart ------------------------------------------------------------------------------

CART_SESSION_KEY = "cart_id"


def get_cart(request, *, create: bool = False) -> Cart | None:
    """The request's cart: the user's if signed in, else the one whose id is in the session."""
    if request.user.is_authenticated:
        if create:
            return Cart.objects.get_or_create(user=request.user)[0]
        return Cart.objects.filter(user=request.user).first()
    cart_id = request.session.get(CART_SESSION_KEY)
    cart = Cart.objects.filter(pk=cart_id, user__isnull=True).first() if cart_id else None
    if cart is None and create:
        cart = Cart.objects.create()
        request.session[CART_SESSION_KEY] = cart.pk
    return cart


def cart_lines(cart: Cart | None) -> list[CartItem]:
    if cart is None:
        return []
    return list(cart.items.select_related("product", "product__category"))


@dataclass
class CartTotals:
    item_count: int
    subtotal: Decimal
    shipping: Decimal
    total: Decimal


def cart_totals(lines: list[CartItem]) -> CartTotals:
    subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
    shipping = Decimal("0.00") if not lines or subtotal >= FREE_SHIPPING_FROM else FLAT_SHIPPING
    return CartTotals(
        item_count=sum(line.quantity for line in lines),
        subtotal=subtotal,
        shipping=shipping,
        total=subtotal + shipping,
    )


def _check_purchasable(product: Product, quantity: int) -> None:
    if not product.is_active or product.price is None:
        raise ValidationError({"product": f"“{product.title}” is not sold online."}, code="not_for_sale")
    if product.stock < quantity:
        raise OutOfStock(
            {"quantity": f"Only {product.stock} of “{product.title}” left in stock."}
            if product.stock else {"product": f"“{product.title}” is out of stock."},
            code="out_of_stock",
        )


def add_to_cart(cart: Cart, product: Product, quantity: int = 1, *, user=None, visitor_id: str = "",
                occurred_at=None, simulated: bool = False) -> CartItem:
    validate_quantity(quantity)
    with transaction.atomic():
        item = CartItem.objects.select_for_update().filter(cart=cart, product=product).first()
        new_quantity = quantity + (item.quantity if item else 0)
        validate_quantity(new_quantity)
        _check_purchasable(product, new_quantity)
        if item:
            item.quantity = new_quantity
            item.save(update_fields=["quantity"])
        else:
            item = CartItem.objects.create(cart=cart, product=product, quantity=quantity)
        Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())
    signals.added_to_cart.send(
        sender=Cart, product=product, quantity=quantity, user=user, visitor_id=visitor_id,
        occurred_at=occurred_at or timezone.now(), simulated=simulated,
    )
    return item


def _send_removed(product: Product, quantity: int, user, visitor_id: str, occurred_at, simulated: bool) -> None:
    signals.removed_from_cart.send(sender=Cart, product=product, quantity=quantity, user=user,
                                   visitor_id=visitor_id, occurred_at=occurred_at or timezone.now(),
                                   simulated=simulated)


def set_line_quantity(cart: Cart, item_id: int, quantity: int, *, user=None, visitor_id: str = "",
                      occurred_at: dt.datetime | None = None, simulated: bool = False) -> CartItem | None:
    """Change a line's quantity; 0 removes the line. Unknown lines raise CartItem.DoesNotExist."""
    item = cart.items.select_related("product").get(pk=item_id)
    if quantity == 0:
        remove_line(cart, item_id, user=user, visitor_id=visitor_id, occurred_at=occurred_at, simulated=simulated)
        return None
    validate_quantity(quantity)
    _check_purchasable(item.product, quantity)
    removed = item.quantity - quantity
    item.quantity = quantity
    item.save(update_fields=["quantity"])
    if removed > 0:
        _send_removed(item.product, removed, user, visitor_id, occurred_at, simulated)
    return item


def remove_line(cart: Cart, item_id: int, *, user=None, visitor_id: str = "", occurred_at: dt.datetime | None = None,
                simulated: bool = False) -> None:
    item = cart.items.select_related("product").filter(pk=item_id).first()
    if item is None:
        raise CartItem.DoesNotExist("No such line in your cart.")
    item.delete()
    _send_removed(item.product, item.quantity, user, visitor_id, occurred_at, simulated)


def record_checkout_start(cart: Cart, lines: list[CartItem], *, user=None, visitor_id: str = "",
                          occurred_at=None, simulated: bool = False) -> None:
    totals = cart_totals(lines)
    signals.checkout_started.send(
        sender=Cart, cart=cart, item_count=totals.item_count, subtotal=totals.subtotal, user=user,
        visitor_id=visitor_id, occurred_at=occurred_at or timezone.now(), simulated=simulated,
    )


@transaction.atomic
def merge_carts(anonymous_cart: Cart, user) -> Cart:
    """At login, move the anonymous cart's lines into the user's cart (quantities add up, capped)."""
    user_cart, _ = Cart.objects.get_or_create(user=user)
    if anonymous_cart.pk == user_cart.pk:
        return user_cart
    existing = {item.product_id: item for item in user_cart.items.select_for_update()}
    for line in anonymous_cart.items.select_related("product"):
        quantity = min(line.quantity + (existing[line.product_id].quantity if line.product_id in existing else 0),
                       max(1, min(line.product.stock, 20)))
        if line.product_id in existing:
            existing[line.product_id].quantity = quantity
            existing[line.product_id].save(update_fields=["quantity"])
        else:
            CartItem.objects.create(cart=user_cart, product=line.product, quantity=quantity)
    anonymous_cart.delete()
    return user_cart


def purge_stale_carts(older_than_days: int = 30) -> int:
    """Delete anonymous carts untouched for a month (scheduled nightly)."""
    cutoff = timezone.now() - dt.timedelta(days=older_than_days)
    deleted, _ = Cart.objects.filter(user__isnull=True, updated_at__lt=cutoff).delete()
    return deleted


# --- Checkout and orders ---------------------------------------------------------------


def _new_order_number() -> str:
    return "AS" + "".join(secrets.choice("23456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8))


IDEMPOTENCY_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.")


def new_idempotency_key() -> str:
    """A key minted with each checkout form (hidden field), so a double-click submits one key twice."""
    return secrets.token_urlsafe(24)


def clean_idempotency_key(value) -> str:
    """The key as given ("" when none), or a ValidationError: 8 to 64 URL-safe characters."""
    value = (value or "").strip() if isinstance(value, str) else ""
    if value and not (8 <= len(value) <= 64 and set(value) <= IDEMPOTENCY_KEY_CHARS):
        raise ValidationError({"idempotency_key": "An idempotency key is 8 to 64 letters, digits, '-', '_', ':' "
                                                  "or '.'."}, code="invalid_idempotency_key")
    return value


def order_for_idempotency_key(user, key: str) -> Order | None:
    """The order a checkout with this key already placed for this shopper, if any."""
    if not key or not user or not user.is_authenticated:
        return None
    return Order.objects.filter(user=user, idempotency_key=key).first()


@dataclass(frozen=True)
class CheckoutOutcome:
    order: Order
    created: bool  # False: a repeat of a checkout already placed with the same idempotency key


def place_order(*, cart: Cart, email: str, address: dict, card: CardDetails, user=None, visitor_id: str = "",
                occurred_at: dt.datetime | None = None, simulated: bool = False, idempotency_key: str = "") -> Order:
    """Turn a cart into a paid order, atomically (see checkout for the idempotent form)."""
    return checkout(cart=cart, email=email, address=address, card=card, user=user, visitor_id=visitor_id,
                    occurred_at=occurred_at, simulated=simulated, idempotency_key=idempotency_key).order


def checkout(*, cart: Cart, email: str, address: dict, card: CardDetails, user=None, visitor_id: str = "",
             occurred_at: dt.datetime | None = None, simulated: bool = False,
             idempotency_key: str = "") -> CheckoutOutcome:
    """Turn a cart into a paid order, atomically and at most once per idempotency key.

    The cart row is locked first (SELECT ... FOR UPDATE): a second checkout of the same cart (a
    double-click, a retried API call) waits for the first, then finds the order placed under its
    key (returned, not placed again) or, without a key, an empty cart. Stock rows are locked next
    (in id order so two checkouts cannot deadlock) before they are checked and decremented: of two
    concurrent checkouts for the last unit exactly one succeeds. The charge carries a key derived
    from the idempotency key, so a retry after a crash between charge and commit is not charged
    twice. A declined payment rolls everything back. The confirmation e-mail is queued through the
    outbox in the same transaction, so a broker outage neither fails the order nor loses the e-mail.
    """
    address = validate_address(address)
    idempotency_key = clean_idempotency_key(idempotency_key)
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        Cart.objects.select_for_update().filter(pk=cart.pk).first()
        earlier = order_for_idempotency_key(user, idempotency_key)
        if earlier is not None:
            return CheckoutOutcome(earlier, created=False)
        lines = list(cart.items.select_related("product").order_by("product_id"))
        if not lines:
            raise ValidationError({"cart": "Your cart is empty."}, code="empty_cart")
        locked = _lock_products([line.product_id for line in lines])
        for line in lines:
            product = locked[line.product_id]
            _check_purchasable(product, line.quantity)
            line.product = product
        totals = cart_totals(lines)
        order = _create_order(user, email, address, totals, occurred_at, simulated, idempotency_key)
        OrderItem.objects.bulk_create([
            OrderItem(order=order, product=line.product, title=line.product.title,
                      unit_price=line.product.price, quantity=line.quantity)
            for line in lines
        ])
        for line in lines:
            line.product.stock -= line.quantity
        Product.objects.bulk_update([line.product for line in lines], ["stock"])
        OrderStatusEvent.objects.create(order=order, status=Order.Status.PLACED, created_at=occurred_at)
        charge_key = f"order:{order.user_id}:{idempotency_key}" if idempotency_key else f"order:{order.number}"
        payment = get_gateway().charge(card, totals.total, f"Aisle order {order.number}", idempotency_key=charge_key)
        order.payment_reference = payment.reference
        order.status = Order.Status.PAID
        order.save(update_fields=["payment_reference", "status"])
        OrderStatusEvent.objects.create(
            order=order, status=Order.Status.PAID, note=f"Card ending {card.last4}", created_at=occurred_at
        )
        cart.items.all().delete()
        if not simulated:
            outbox.enqueue("shop.tasks.send_order_confirmation", args=[order.pk])
        transaction.on_commit(lambda: _after_order_placed(order, user, visitor_id, occurred_at, simulated))
    return CheckoutOutcome(order, created=True)


def _create_order(user, email, address, totals: CartTotals, occurred_at, simulated, idempotency_key: str = "") -> Order:
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Order.objects.create(
                    number=_new_order_number(), user=user if user and user.is_authenticated else None,
                    email=email, subtotal=totals.subtotal, shipping=totals.shipping, total=totals.total,
                    created_at=occurred_at, is_simulated=simulated, idempotency_key=idempotency_key, **address,
                )
        except IntegrityError:  # order number collision: draw again
            continue
    raise RuntimeError("Could not allocate an order number")


def _after_order_placed(order: Order, user, visitor_id: str, occurred_at, simulated: bool) -> None:
    signals.order_placed.send(sender=Order, order=order, user=user, visitor_id=visitor_id,
                              occurred_at=occurred_at, simulated=simulated)


def queue_task(task_name: str, args: list | None = None, kwargs: dict | None = None) -> bool:
    """Publish a Celery task from a request path without waiting on the broker: bounded, and kept in
    the shop's outbox (published later by the drain job) if the broker is down. For other apps' receivers."""
    return outbox.publish_or_store(task_name, args, kwargs)


def drain_outbox() -> dict:
    return outbox.drain()


ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Order.Status.PLACED: {Order.Status.PAID, Order.Status.CANCELLED},
    Order.Status.PAID: {Order.Status.SHIPPED, Order.Status.CANCELLED, Order.Status.REFUNDED},
    Order.Status.SHIPPED: {Order.Status.DELIVERED, Order.Status.REFUNDED},
    Order.Status.DELIVERED: {Order.Status.REFUNDED},
    Order.Status.CANCELLED: set(),
    Order.Status.REFUNDED: set(),
}


def change_order_status(order: Order, new_status: str, *, note: str = "",
                        occurred_at: dt.datetime | None = None) -> Order:
    """Move an order along its life cycle; cancelling before shipment puts the stock back."""
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if new_status not in ALLOWED_TRANSITIONS.get(order.status, set()):
            raise ValidationError(
                {"status": f"An order that is {order.get_status_display().lower()} cannot become {new_status}."},
                code="invalid_transition",
            )
        if new_status == Order.Status.SHIPPED and not order.tracking_number:
            order.tracking_number = "1Z" + "".join(secrets.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
                                                   for _ in range(16))
        if new_status == Order.Status.CANCELLED:
            _restock(order)
        order.status = new_status
        order.save(update_fields=["status", "tracking_number"])
        OrderStatusEvent.objects.create(order=order, status=new_status, note=note[:200], created_at=occurred_at)
    return order


def _lock_products(ids: list[int]) -> dict[int, Product]:
    """Lock product rows for a stock change, in id order so that two transactions cannot deadlock."""
    return {product.pk: product for product in Product.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _restock(order: Order) -> None:
    items = list(order.items.filter(product__isnull=False))
    products = _lock_products([item.product_id for item in items])
    for item in items:
        products[item.product_id].stock += item.quantity
    Product.objects.bulk_update(products.values(), ["stock"])


def orders_for_user(user) -> QuerySet[Order]:
    """A shopper's own orders: the only way pages, the API and the assistant list orders."""
    if not user or not user.is_authenticated:
        return Order.objects.none()
    return Order.objects.filter(user=user).prefetch_related("items")


def get_order_for_user(user, number: str) -> Order:
    """One of the shopper's own orders; anyone else's raises Order.DoesNotExist."""
    return orders_for_user(user).prefetch_related("history").get(number=number)


RETURN_WINDOW_DAYS = 30
CANCELLABLE_STATUSES = (Order.Status.PLACED, Order.Status.PAID)


@dataclass(frozen=True)
class ReturnEligibility:
    eligible: bool
    reason: str
    deadline: dt.date | None = None


def delivered_at(order: Order) -> dt.datetime | None:
    """When the order was marked delivered (from its status history), if it was."""
    events = [event for event in order.history.all() if event.status == Order.Status.DELIVERED]
    return events[-1].created_at if events else None


def return_eligibility(order: Order, *, now: dt.datetime | None = None) -> ReturnEligibility:
    """Whether the order can be sent back: delivered, within the return window, no open return."""
    now = now or timezone.now()
    if order.returns.filter(status__in=ReturnRequest.OPEN_STATUSES).exists():
        return ReturnEligibility(False, "A return is already open for this order.")
    if order.status in CANCELLABLE_STATUSES:
        return ReturnEligibility(False, "This order has not shipped yet; it can be cancelled instead.")
    if order.status == Order.Status.SHIPPED:
        return ReturnEligibility(False, "This order is on its way; a return can start once it is delivered.")
    if order.status != Order.Status.DELIVERED:
        return ReturnEligibility(False, f"This order is {order.get_status_display().lower()}.")
    delivered = delivered_at(order) or order.created_at
    deadline = (delivered + dt.timedelta(days=RETURN_WINDOW_DAYS)).date()
    if now.date() > deadline:
        return ReturnEligibility(False, f"The {RETURN_WINDOW_DAYS}-day return window closed on {deadline:%d %b %Y}.",
                                 deadline)
    return ReturnEligibility(True, f"Returnable until {deadline:%d %b %Y}.", deadline)


def can_cancel(order: Order) -> bool:
    return order.status in CANCELLABLE_STATUSES


def cancel_order_for_user(user, number: str, *, note: str = "Cancelled by the shopper.") -> Order:
    """Cancel one of the shopper's own orders before it ships; anyone else's raises Order.DoesNotExist."""
    order = get_order_for_user(user, number)
    if not can_cancel(order):
        raise ValidationError({"status": f"An order that is {order.get_status_display().lower()} cannot be "
                                         "cancelled."}, code="not_cancellable")
    return change_order_status(order, Order.Status.CANCELLED, note=note)


def start_return_for_user(user, number: str, *, reason: str = "", channel: str = "account") -> ReturnRequest:
    """Open a return for one of the shopper's own delivered orders (once; a second request is refused)."""
    order = get_order_for_user(user, number)
    eligibility = return_eligibility(order)
    if not eligibility.eligible:
        raise ValidationError({"order": eligibility.reason}, code="not_returnable")
    try:
        with transaction.atomic():
            return ReturnRequest.objects.create(order=order, reason=reason[:500], channel=channel[:20])
    except IntegrityError:
        raise ValidationError({"order": "A return is already open for this order."}, code="not_returnable") from None


def open_returns(order: Order) -> QuerySet[ReturnRequest]:
    return order.returns.filter(status__in=ReturnRequest.OPEN_STATUSES)


# --- Reviews ---------------------------------------------------------------------------


def post_review(*, product: Product, user, rating: int, title: str, text: str, author_name: str = "",
                visitor_id: str = "",
                status: str = Review.Status.PENDING, occurred_at: dt.datetime | None = None,
                simulated: bool = False) -> Review:
    errors = {}
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        errors["rating"] = "Rating must be a whole number of stars from 1 to 5."
    title, text = (title or "").strip(), (text or "").strip()
    if not title:
        errors["title"] = "Give your review a title."
    elif len(title) > 150:
        errors["title"] = "The title can be at most 150 characters."
    if len(text) < 10:
        errors["text"] = "Tell other shoppers a little more (at least 10 characters)."
    elif len(text) > 5000:
        errors["text"] = "Reviews can be at most 5000 characters."
    if user is not None and Review.objects.filter(product=product, user=user).exists():
        errors["product"] = "You have already reviewed this product."
    if errors:
        raise ValidationError(errors)
    author_name = (author_name or (user.first_name or user.username if user else "") or "Shopper")[:80]
    review = Review.objects.create(
        product=product, user=user, rating=rating, title=title, text=text, author_name=author_name,
        status=status, created_at=occurred_at or timezone.now(), is_simulated=simulated,
    )
    transaction.on_commit(lambda: signals.review_posted.send(
        sender=Review, review=review, user=user, visitor_id=visitor_id,
        occurred_at=review.created_at, simulated=simulated,
    ))
    return review


def moderate_reviews(review_ids: Iterable[int], status: str) -> int:
    if status not in Review.Status.values:
        raise ValidationError({"status": "Unknown moderation status."})
    reviews = list(Review.objects.filter(pk__in=list(review_ids)))
    for review in reviews:
        review.status = status
        review.save(update_fields=["status"])  # post_save enqueues the rating refresh
    return len(reviews)


def refresh_product_rating(product_id: int) -> Product:
    """Recompute a product's average from its approved reviews (run by a task)."""
    stats = Review.objects.filter(product_id=product_id, status=Review.Status.APPROVED).aggregate(
        avg=Avg("rating"), n=Count("pk")
    )
    product = Product.objects.get(pk=product_id)
    product.rating_count = stats["n"]
    average = stats["avg"]
    product.rating_average = Decimal(str(average)).quantize(Decimal("0.01")) if average is not None else None
    product.save(update_fields=["rating_count", "rating_average"])
    return product


def create_shopper(*, username: str, email: str, password: str | None, first_name: str = "",
                   simulated: bool = False, tastes: list[str] | None = None):
    from .models import CustomerProfile

    user = get_user_model().objects.create_user(username=username, email=email, password=password,
                                                first_name=first_name)
    CustomerProfile.objects.create(user=user, is_simulated=simulated, tastes=tastes or [])
    return user


def request_visitor_id(request) -> str:
    """The first-party visitor id (cookie `aisle_vid`) of a request, "" if it has none."""
    return middleware.visitor_id(request)


# --- Published copy (for merchandising's drafts) ----------------------------------------------------------
# The fields a merchandiser's accepted draft is published to; merchandising writes them only here.
COPY_FIELDS = ("description", "marketing_line", "email_blurb")


def products_for_copy(ids: Iterable[int]) -> QuerySet[Product]:
    """Products (inactive ones too: copy is written before a product goes live) with their category."""
    return Product.objects.filter(pk__in=list(ids)).select_related("category")


def with_copy_words(queryset: QuerySet[Product]) -> QuerySet[Product]:
    """Annotate copy_words: the words of the description (counted by its spaces, in the database)."""
    from django.db.models import Case, IntegerField, When
    from django.db.models.functions import Length, Replace, Trim

    text = Trim("description")
    return queryset.annotate(copy_words=Case(
        When(description__regex=r"^\s*$", then=Value(0)),
        default=Length(text) - Length(Replace(text, Value(" "), Value(""))) + 1,
        output_field=IntegerField(),
    ))


def thin_copy_products(min_words: int) -> QuerySet[Product]:
    """Active products with thin copy: no description, or fewer than min_words words; thinnest first."""
    return (with_copy_words(Product.objects.filter(is_active=True)).filter(copy_words__lt=min_words)
            .select_related("category").order_by("copy_words", "title", "pk"))


def catalogue_brands() -> set[str]:
    return set(Product.objects.exclude(brand="").values_list("brand", flat=True).distinct())


def publish_copy(product_id: int, field_name: str, text: str) -> str:
    """Set one copy field of a product (inside the caller's transaction, row locked); returns the text it
    replaced, for the history."""
    if field_name not in COPY_FIELDS:
        raise ValidationError(f"{field_name!r} is not a copy field.")
    product = Product.objects.select_for_update().get(pk=product_id)
    previous = getattr(product, field_name)
    setattr(product, field_name, text)
    product.save(update_fields=[field_name, "updated_at"])
    return previous
