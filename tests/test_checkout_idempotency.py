"""A double-clicked or retried checkout places one order and one charge: real concurrent requests on
PostgreSQL (one connection per thread), on the page, the API and the service, counted in the test
gateway's own ledger (outside the shop's database, as a real provider's is)."""

import re
import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from shop import services
from shop.models import Cart, Order, OutboxMessage
from shop.payments import TestPaymentGateway, ledger_charges

from .factories import GOOD_ADDRESS, GOOD_CARD, make_product, make_user

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")

PAGE_DATA = {"email": "ada@example.com", **GOOD_ADDRESS, "card_number": "4242 4242 4242 4242",
             "card_expiry": "12/99", "card_cvc": "123"}
API_DATA = dict(PAGE_DATA)


@pytest.fixture(autouse=True)
def ledger(settings, tmp_path):
    settings.AISLE_TEST_GATEWAY_LEDGER = str(tmp_path / "ledger.sqlite3")


def _together(*calls):
    """Run the calls in threads released at the same instant; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - returned and asserted by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _shopper_with_cart(stock: int = 5):
    product = make_product(stock=stock)
    user = make_user()
    cart = Cart.objects.create(user=user)
    services.add_to_cart(cart, product, 1, user=user)
    return user, cart, product


@pytest.mark.django_db(transaction=True)
def test_concurrent_service_checkouts_with_one_key_make_one_order_and_one_charge():
    user, cart, product = _shopper_with_cart()
    key = services.new_idempotency_key()

    def go():
        return services.checkout(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=user,
                                 idempotency_key=key)

    first, second = _together(go, go)
    assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
    assert first.order.pk == second.order.pk
    assert sorted([first.created, second.created]) == [False, True]
    assert Order.objects.count() == 1
    assert len(ledger_charges()) == 1 and ledger_charges()[0][0] == first.order.payment_reference
    product.refresh_from_db()
    assert product.stock == 4
    # The confirmation e-mail went through the outbox in the order's transaction, once.
    assert list(OutboxMessage.objects.values_list("task_name", "args")) == [
        ("shop.tasks.send_order_confirmation", [first.order.pk])]


@pytest.mark.django_db(transaction=True)
def test_double_clicked_checkout_page_places_one_order():
    user, cart, product = _shopper_with_cart()
    browser = Client()
    browser.force_login(user)
    page = browser.get(reverse("shop:checkout"))
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.content.decode()).group(1)
    assert 'src="/static/js/checkout.js"' in page.content.decode()
    second_tab = Client()
    second_tab.cookies = browser.cookies  # the same session, as a double-click sends it twice

    data = {**PAGE_DATA, "idempotency_key": key}
    responses = _together(lambda: browser.post(reverse("shop:checkout"), data),
                          lambda: second_tab.post(reverse("shop:checkout"), data))

    order = Order.objects.get()
    assert [r.status_code for r in responses] == [302, 302]
    assert {r["Location"] for r in responses} == {order.get_absolute_url()}
    assert len(ledger_charges()) == 1
    product.refresh_from_db()
    assert product.stock == 4
    # A later resubmission (the back button) finds the same order too.
    again = browser.post(reverse("shop:checkout"), data)
    assert again.status_code == 302 and again["Location"] == order.get_absolute_url()
    assert Order.objects.count() == 1 and len(ledger_charges()) == 1


@pytest.mark.django_db(transaction=True)
def test_api_repeat_with_the_same_idempotency_key_answers_like_the_first_call():
    user, cart, product = _shopper_with_cart()
    clients = [APIClient(), APIClient()]
    for client in clients:
        client.force_login(user)
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-attempt-0001"}

    first, second = _together(*(lambda c=c: c.post("/api/orders/", API_DATA, format="json", **headers)
                                for c in clients))

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert Order.objects.count() == 1 and len(ledger_charges()) == 1
    assert first.json()["number"] == Order.objects.get().number
    product.refresh_from_db()
    assert product.stock == 4


@pytest.mark.django_db(transaction=True)
def test_api_double_post_without_a_key_still_places_one_order():
    user, cart, product = _shopper_with_cart()
    clients = [APIClient(), APIClient()]
    for client in clients:
        client.force_login(user)

    responses = _together(*(lambda c=c: c.post("/api/orders/", API_DATA, format="json") for c in clients))

    # The cart row lock serialises them: the second finds the cart already emptied.
    assert sorted(r.status_code for r in responses) == [201, 400]
    loser = next(r for r in responses if r.status_code == 400)
    assert loser.json() == {"cart": ["Your cart is empty."]}
    assert Order.objects.count() == 1 and len(ledger_charges()) == 1
    product.refresh_from_db()
    assert product.stock == 4


@pytest.mark.django_db
def test_a_malformed_key_is_a_400_and_a_declined_card_can_retry_with_its_key():
    user, cart, product = _shopper_with_cart()
    client = APIClient()
    client.force_login(user)
    bad = client.post("/api/orders/", API_DATA, format="json", HTTP_IDEMPOTENCY_KEY="no spaces allowed")
    assert bad.status_code == 400 and "idempotency_key" in bad.json()

    key = {"HTTP_IDEMPOTENCY_KEY": "retry-after-decline-1"}
    declined = client.post("/api/orders/", {**API_DATA, "card_number": "4000000000000002"}, format="json", **key)
    assert declined.status_code == 400 and "payment" in declined.json()
    paid = client.post("/api/orders/", API_DATA, format="json", **key)
    assert paid.status_code == 201
    assert Order.objects.count() == 1 and len(ledger_charges()) == 1


def test_the_gateway_returns_the_first_charge_for_a_repeated_key(settings, tmp_path):
    gateway = TestPaymentGateway()
    first = gateway.charge(GOOD_CARD, 10, "Aisle order A", idempotency_key="order:1:k")
    again = gateway.charge(GOOD_CARD, 10, "Aisle order B", idempotency_key="order:1:k")
    other = gateway.charge(GOOD_CARD, 10, "Aisle order C", idempotency_key="order:1:other")
    assert first.reference == again.reference != other.reference
    assert [row[0] for row in ledger_charges()] == [first.reference, other.reference]
