"""Stock is never oversold: real concurrent checkouts on PostgreSQL, one connection per thread."""

import threading

import pytest
from django.db import connection, connections

from shop import services
from shop.models import Cart, Order, OrderItem, Product

from .factories import GOOD_ADDRESS, GOOD_CARD, make_product, make_user

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")


def _race(product: Product, shoppers: int) -> tuple[list[Order], list[Exception]]:
    carts = []
    for _ in range(shoppers):
        user = make_user()
        cart = Cart.objects.create(user=user)
        services.add_to_cart(cart, product, 1, user=user)
        carts.append((user, cart))
    barrier = threading.Barrier(shoppers)
    orders: list[Order] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def checkout(user, cart) -> None:
        try:
            barrier.wait(timeout=10)
            order = services.place_order(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=user)
            with lock:
                orders.append(order)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=checkout, args=pair) for pair in carts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return orders, errors


@pytest.mark.django_db(transaction=True)
def test_last_unit_goes_to_exactly_one_of_concurrent_checkouts():
    product = make_product(stock=1)
    orders, errors = _race(product, shoppers=6)

    assert len(orders) == 1
    assert len(errors) == 5
    assert all(isinstance(exc, services.OutOfStock) for exc in errors), errors
    product.refresh_from_db()
    assert product.stock == 0
    assert Order.objects.count() == 1
    assert OrderItem.objects.filter(product=product).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_checkouts_sell_exactly_the_stock():
    product = make_product(stock=3)
    orders, errors = _race(product, shoppers=8)

    assert len(orders) == 3
    assert len(errors) == 5 and all(isinstance(exc, services.OutOfStock) for exc in errors)
    product.refresh_from_db()
    assert product.stock == 0
    # The losers keep their carts: nothing of theirs was written or removed.
    assert Cart.objects.filter(items__product=product).count() == 5
