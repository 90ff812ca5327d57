import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from shop import services
from shop.models import Cart, CartItem, Order, OrderItem, OrderStatusEvent, Product, Review
from shop.payments import PaymentDeclined
from shop.validators import validate_address, validate_card

from .factories import DECLINED_CARD, GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db


def _cart_with(product: Product, quantity: int = 1, user=None) -> Cart:
    user = user or make_user()
    cart = Cart.objects.create(user=user)
    services.add_to_cart(cart, product, quantity, user=user)
    return cart


def test_place_order_charges_decrements_stock_and_records_history():
    product = make_product(stock=5, price=Decimal("30.00"))
    cart = _cart_with(product, 2)
    order = services.place_order(cart=cart, email="a@example.com", address=GOOD_ADDRESS, card=GOOD_CARD,
                                 user=cart.user)
    product.refresh_from_db()
    assert product.stock == 3
    assert order.status == Order.Status.PAID
    assert order.subtotal == Decimal("60.00") and order.shipping == Decimal("9.99")
    assert order.total == Decimal("69.99")
    assert order.payment_reference.startswith("test_")
    assert list(order.history.values_list("status", flat=True)) == ["placed", "paid"]
    assert not cart.items.exists()


def test_free_shipping_from_threshold():
    product = make_product(price=Decimal("80.00"))
    order = services.place_order(cart=_cart_with(product), email="a@example.com", address=GOOD_ADDRESS,
                                 card=GOOD_CARD)
    assert order.shipping == Decimal("0.00") and order.total == Decimal("80.00")


def test_declined_payment_leaves_nothing_behind():
    product = make_product(stock=2)
    cart = _cart_with(product, 1)
    with pytest.raises(PaymentDeclined):
        services.place_order(cart=cart, email="a@example.com", address=GOOD_ADDRESS, card=DECLINED_CARD)
    product.refresh_from_db()
    assert product.stock == 2
    assert not Order.objects.exists() and not OrderItem.objects.exists() and not OrderStatusEvent.objects.exists()
    assert cart.items.count() == 1


def test_empty_cart_and_bad_address_are_rejected_with_field_messages():
    cart = Cart.objects.create(user=make_user())
    with pytest.raises(ValidationError) as empty:
        services.place_order(cart=cart, email="a@example.com", address=GOOD_ADDRESS, card=GOOD_CARD)
    assert "cart" in empty.value.message_dict
    bad = {**GOOD_ADDRESS, "postal_code": "ABC", "country": "ZZ", "city": ""}
    with pytest.raises(ValidationError) as invalid:
        services.place_order(cart=_cart_with(make_product()), email="a@example.com", address=bad, card=GOOD_CARD)
    assert set(invalid.value.message_dict) >= {"country", "city"}


@pytest.mark.parametrize("quantity", [0, -1, 21, "3", 2.5, True])
def test_add_to_cart_rejects_bad_quantities(quantity):
    cart = Cart.objects.create()
    with pytest.raises(ValidationError) as exc:
        services.add_to_cart(cart, make_product(), quantity)
    assert "quantity" in exc.value.message_dict
    assert not CartItem.objects.exists()


def test_add_to_cart_cannot_exceed_stock_or_buy_unpriced_products():
    product = make_product(stock=2)
    cart = Cart.objects.create()
    services.add_to_cart(cart, product, 2)
    with pytest.raises(services.OutOfStock):
        services.add_to_cart(cart, product, 1)
    assert cart.items.get().quantity == 2
    with pytest.raises(ValidationError):
        services.add_to_cart(cart, make_product(price=None), 1)


def test_merge_carts_adds_quantities_and_removes_the_anonymous_cart():
    user = make_user()
    shared, only_anonymous = make_product(stock=10), make_product(stock=10)
    user_cart = _cart_with(shared, 1, user=user)
    anonymous = Cart.objects.create()
    services.add_to_cart(anonymous, shared, 2)
    services.add_to_cart(anonymous, only_anonymous, 1)
    merged = services.merge_carts(anonymous, user)
    assert merged.pk == user_cart.pk
    assert {i.product_id: i.quantity for i in merged.items.all()} == {shared.pk: 3, only_anonymous.pk: 1}
    assert not Cart.objects.filter(pk=anonymous.pk).exists()


def test_status_life_cycle_tracking_and_restock_on_cancel():
    product = make_product(stock=4)
    order = services.place_order(cart=_cart_with(product, 2), email="a@example.com", address=GOOD_ADDRESS,
                                 card=GOOD_CARD)
    shipped = services.change_order_status(order, Order.Status.SHIPPED)
    assert len(shipped.tracking_number) == 18
    with pytest.raises(ValidationError):
        services.change_order_status(order, Order.Status.CANCELLED)  # too late: it has shipped
    services.change_order_status(order, Order.Status.DELIVERED)
    services.change_order_status(order, Order.Status.REFUNDED)
    with pytest.raises(ValidationError):
        services.change_order_status(order, Order.Status.PAID)
    assert list(order.history.values_list("status", flat=True)) == ["placed", "paid", "shipped", "delivered",
                                                                    "refunded"]

    other = services.place_order(cart=_cart_with(product, 1), email="a@example.com", address=GOOD_ADDRESS,
                                 card=GOOD_CARD)
    product.refresh_from_db()
    assert product.stock == 1
    services.change_order_status(other, Order.Status.CANCELLED)
    product.refresh_from_db()
    assert product.stock == 2


def test_orders_for_user_only_returns_own_orders():
    alice, bob = make_user(), make_user()
    product = make_product()
    mine = services.place_order(cart=_cart_with(product, user=alice), email="a@x.com", address=GOOD_ADDRESS,
                                card=GOOD_CARD, user=alice)
    theirs = services.place_order(cart=_cart_with(product, user=bob), email="b@x.com", address=GOOD_ADDRESS,
                                  card=GOOD_CARD, user=bob)
    assert list(services.orders_for_user(alice)) == [mine]
    with pytest.raises(Order.DoesNotExist):
        services.get_order_for_user(alice, theirs.number)


@pytest.mark.parametrize(
    ("rating", "title", "text", "field"),
    [(0, "t", "long enough text", "rating"), (6, "t", "long enough text", "rating"),
     ("5", "t", "long enough text", "rating"), (4, "", "long enough text", "title"), (4, "t", "short", "text")],
)
def test_review_validation(rating, title, text, field):
    with pytest.raises(ValidationError) as exc:
        services.post_review(product=make_product(), user=make_user(), rating=rating, title=title, text=text)
    assert field in exc.value.message_dict
    assert not Review.objects.exists()


def test_one_review_per_user_and_rating_refresh_counts_only_approved(django_capture_on_commit_callbacks):
    product, user = make_product(), make_user()
    review = services.post_review(product=product, user=user, rating=4, title="Nice", text="Nice and quiet.")
    with pytest.raises(ValidationError):
        services.post_review(product=product, user=user, rating=1, title="Again", text="Trying twice here.")
    product.refresh_from_db()
    assert product.rating_count == 0  # pending reviews do not count
    with django_capture_on_commit_callbacks(execute=True):
        services.moderate_reviews([review.pk], Review.Status.APPROVED)
    product.refresh_from_db()
    assert (product.rating_count, product.rating_average) == (1, Decimal("4.00"))


def test_purge_stale_carts_keeps_user_and_recent_carts():
    old = Cart.objects.create()
    Cart.objects.filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=40))
    recent = Cart.objects.create()
    users = Cart.objects.create(user=make_user())
    Cart.objects.filter(pk=users.pk).update(updated_at=timezone.now() - dt.timedelta(days=40))
    assert services.purge_stale_carts() == 1
    assert set(Cart.objects.values_list("pk", flat=True)) == {recent.pk, users.pk}


def test_card_and_address_validators():
    assert validate_card("4242 4242 4242 4242", "12/99", "123", today=dt.date(2026, 1, 1))[:3] == (
        "4242424242424242", 12, 2099)
    with pytest.raises(ValidationError) as exc:
        validate_card("4242424242424241", "13/20", "12", today=dt.date(2026, 1, 1))
    assert set(exc.value.message_dict) == {"card_number", "card_expiry", "card_cvc"}
    with pytest.raises(ValidationError) as expired:
        validate_card("4242424242424242", "01/25", "123", today=dt.date(2026, 1, 1))
    assert expired.value.message_dict["card_expiry"] == ["This card has expired."]
    assert validate_address({**GOOD_ADDRESS, "country": "gb", "postal_code": "sw1a 1aa"})["postal_code"] == "SW1A 1AA"


def test_display_rating_weighs_source_and_own_reviews_in_python_and_sql():
    category = make_category()
    loved = make_product(category, title="Loved", source_rating=Decimal("4.50"), source_review_count=900,
                         rating_average=Decimal("1.00"), rating_count=100)
    fresh = make_product(category, title="Fresh", rating_average=Decimal("4.00"), rating_count=2)
    unrated = make_product(category, title="Unrated")
    # One glowing review must not turn 900 source ratings of 4.5 into a 5.0.
    assert loved.display_rating == Decimal("4.15") and loved.display_review_count == 1000
    assert fresh.display_rating == Decimal("4.00") and unrated.display_rating is None
    ranked = services.filter_products(services.ProductFilters(category=category, sort="rating"))
    assert [p.title for p in ranked] == ["Loved", "Fresh", "Unrated"]
    assert [p.title for p in services.top_rated_products()] == ["Loved", "Fresh"]
