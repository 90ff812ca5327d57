"""Every source of events arrives exactly once: server signals, the browser beacon (retries
included), and anonymous browsing linked to the account at login."""

import datetime as dt
import threading
import uuid

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from behavior import services
from behavior.models import Event, IdentityLink
from shop.models import CartItem

from .factories import make_category, make_product, make_user

pytestmark = pytest.mark.django_db
BATCH_URL = "/api/events/batch"


def _events(**filters):
    return list(Event.objects.filter(**filters).order_by("id"))


@pytest.fixture
def product():
    return make_product(make_category("Headphones"), title="Quiet Headphones", stock=10)


@pytest.fixture
def shopper(client):
    user = make_user("ada", password="pw-ada-12345")
    client.force_login(user)
    return user


def test_each_storefront_action_records_exactly_one_event(client, shopper, product, django_capture_on_commit_callbacks):
    client.get(product.get_absolute_url())
    client.get(product.category.get_absolute_url())
    client.get(reverse("search:results"), {"q": "quiet"})
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "3"})
    line = CartItem.objects.get()
    client.post(reverse("shop:cart_update", args=[line.pk]), {"quantity": "2"})
    client.get(reverse("shop:checkout"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("shop:checkout"), {
            "email": "ada@example.com", "full_name": "Ada L", "address_line1": "1 Main St", "city": "Seattle",
            "postal_code": "98101", "country": "US", "card_number": "4242424242424242", "card_expiry": "12/39",
            "card_cvc": "123"})
        client.post(reverse("shop:review", args=[product.slug]),
                    {"rating": "5", "title": "Lovely", "text": "Quiet and comfortable all day."})

    visitor = client.cookies["aisle_vid"].value
    events = _events()
    assert [e.event_type for e in events] == [
        "product_viewed", "listing_viewed", "searched", "added_to_cart", "removed_from_cart", "checkout_started",
        "order_placed", "review_posted"]
    assert [(e.user, e.visitor_id, e.source) for e in events] == [(shopper, visitor, "server")] * 8
    assert all(e.category_id == product.category_id for e in events if e.event_type != "searched"
               and e.event_type not in ("checkout_started", "order_placed"))
    by_type = {e.event_type: e for e in events}
    assert by_type["added_to_cart"].properties == {"quantity": 3}
    assert by_type["removed_from_cart"].properties == {"quantity": 1}
    assert by_type["searched"].properties == {"query": "quiet", "result_count": 1}
    assert by_type["checkout_started"].properties["products"] == [product.pk]
    assert by_type["order_placed"].properties["lines"] == [[product.pk, 2, "49.99"]]


def test_api_cart_removal_is_recorded_once(product):
    api = APIClient()
    api.post("/api/cart/items/", {"product_id": product.pk, "quantity": 2}, format="json")
    line_id = api.get("/api/cart/").json()["lines"][0]["id"]
    assert api.delete(f"/api/cart/items/{line_id}/").status_code == 204
    removed = _events(event_type="removed_from_cart")
    assert len(removed) == 1 and removed[0].properties == {"quantity": 2} and removed[0].user is None
    assert removed[0].visitor_id == api.cookies["aisle_vid"].value


def _beacon_event(product, kind="rec_clicked", **extra):
    event = {"id": str(uuid.uuid4()), "type": kind, "product": product.pk,
             "occurred_at": timezone.now().isoformat(), "properties": {"rail": "related", "position": 1}}
    event.update(extra)
    return event


def test_beacon_batch_is_stored_once_even_when_retried(product):
    api = APIClient()
    batch = [_beacon_event(product, "rec_shown"), _beacon_event(product, "rec_clicked"),
             _beacon_event(product, "dwell", properties={"ms": 5400})]
    first = api.post(BATCH_URL, {"events": batch}, format="json")
    assert first.status_code == 200 and first.json() == {"stored": 3, "duplicates": 0, "errors": []}
    retry = api.post(BATCH_URL, {"events": batch}, format="json")
    assert retry.status_code == 200 and retry.json() == {"stored": 0, "duplicates": 3, "errors": []}
    events = _events(source="client")
    assert len(events) == 3 and {e.client_event_id for e in events} == {e["id"] for e in batch}
    assert all(e.category_id == product.category_id and e.visitor_id == api.cookies["aisle_vid"].value
               for e in events)


def test_bad_events_get_reasons_and_the_good_ones_are_kept(product):
    api = APIClient()
    good = _beacon_event(product)
    bad = [
        {"id": "x", "type": "rec_clicked", "product": product.pk, "occurred_at": timezone.now().isoformat()},
        _beacon_event(product, "order_placed"),  # the server records orders, not the browser
        _beacon_event(product, occurred_at="yesterday"),
        _beacon_event(product, occurred_at=(timezone.now() + dt.timedelta(hours=2)).isoformat()),
        {**_beacon_event(product), "product": 999999},
        _beacon_event(product, "dwell", properties={"ms": -5}),
        _beacon_event(product, properties={"blob": "x" * 5000}),
        "not an object",
    ]
    response = api.post(BATCH_URL, {"events": [good, *bad, good]}, format="json")
    body = response.json()
    assert response.status_code == 400
    assert body["stored"] == 1 and body["duplicates"] == 1
    reasons = {error["index"]: error["errors"] for error in body["errors"]}
    assert set(reasons) == set(range(1, 9))
    assert "id" in reasons[1] and "type" in reasons[2] and "occurred_at" in reasons[3]
    assert "future" in reasons[4]["occurred_at"] and reasons[5] == {"product": "Unknown product."}
    assert "properties" in reasons[6] and "properties" in reasons[7] and "event" in reasons[8]
    assert [e.client_event_id for e in _events()] == [good["id"]]


def test_oversized_and_malformed_batches_are_refused_whole(product):
    api = APIClient()
    too_many = [_beacon_event(product) for _ in range(services.MAX_BATCH_EVENTS + 1)]
    response = api.post(BATCH_URL, {"events": too_many}, format="json")
    assert response.status_code == 400 and "at most 100 events" in response.json()["detail"]
    assert api.post(BATCH_URL, {"nothing": 1}, format="json").status_code == 400
    assert api.post(BATCH_URL, "{not json", content_type="application/json").status_code == 400
    assert not Event.objects.exists()


def test_beacon_enforces_csrf_and_takes_the_user_from_the_session(product):
    user = make_user()
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(user)
    event = _beacon_event(product, user=999, properties={"user": "someone else"})
    assert api.post(BATCH_URL, {"events": [event]}, format="json").status_code == 403
    page = api.get(reverse("shop:home"))  # renders the csrf meta tag and sets the cookie
    token = page.cookies["csrftoken"].value
    response = api.post(BATCH_URL, {"events": [event]}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert Event.objects.get().user == user


def test_beacon_is_rate_limited(product, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "events", "2/min")
    api = APIClient()
    codes = [api.post(BATCH_URL, {"events": [_beacon_event(product)]}, format="json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert Event.objects.count() == 2


def test_anonymous_browsing_is_linked_to_the_account_at_login(client, product):
    user = make_user("grace", password="pw-grace-12345")
    client.get(product.get_absolute_url())
    visitor = client.cookies["aisle_vid"].value
    assert _events()[0].user is None
    client.post(reverse("shop:login"), {"username": "grace", "password": "pw-grace-12345"})
    assert IdentityLink.objects.filter(visitor_id=visitor, user=user).exists()
    assert client.cookies["aisle_vid"].value == visitor  # the visitor id survives the login
    client.get(product.get_absolute_url())
    mine = services.events_of_shopper(user=user)
    assert mine.count() == 2 and {e.user_id for e in mine} == {None, user.pk}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent PostgreSQL connections")
def test_concurrent_retries_of_one_batch_store_each_event_once():
    product = make_product()
    batch = [_beacon_event(product) for _ in range(20)]
    barrier = threading.Barrier(4)
    results = []

    def send() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.ingest_client_batch(batch, visitor_id="v" * 32))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Event.objects.count() == 20
    assert sum(r.stored for r in results) == 20
    assert sum(r.stored + r.duplicates for r in results) == 80
