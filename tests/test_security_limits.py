"""Rate limits that cannot be sidestepped: the client address is REMOTE_ADDR unless AISLE_TRUSTED_PROXIES
says how many of our own proxies wrote X-Forwarded-For; limits count by address and by account; every
public endpoint that runs a model (chat, autocomplete, search page and API, beacon) is limited."""

import itertools
import uuid

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from config.clientip import client_ip
from tests.factories import make_product, make_user

_addresses = (f"203.0.113.{n}" for n in itertools.cycle(range(1, 255)))


def spoofed() -> dict:
    """A new made-up X-Forwarded-For for every request, as the probe sent."""
    return {"HTTP_X_FORWARDED_FOR": next(_addresses)}


@pytest.fixture
def tiny_rates(monkeypatch):
    # DRF reads the rates once, onto the class: patch them there (our throttles inherit them).
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {
        "autocomplete": "3/min", "events": "2/min", "support_chat": "2/min", "cart_write": "2/min"})


@pytest.fixture
def autocomplete_rate(settings):
    # The autocomplete throttle reads its rate from the settings (with a default), not the class.
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "autocomplete": "3/min"}
    settings.REST_FRAMEWORK = rest
    return rest


# --- the client address -------------------------------------------------------------------------


@pytest.mark.parametrize(("proxies", "forwarded", "expected"), [
    (0, "198.51.100.7", "10.0.0.9"),                        # no proxy trusted: the header is ignored
    (1, "198.51.100.7", "198.51.100.7"),                    # one proxy: the address it saw
    (1, "1.2.3.4, 198.51.100.7", "198.51.100.7"),            # what the client prepended is not believed
    (2, "1.2.3.4, 198.51.100.7, 10.0.0.5", "198.51.100.7"),  # two proxies: second from the right
    (2, "198.51.100.7", "198.51.100.7"),                    # fewer entries than proxies: the leftmost
    (1, "not-an-address", "10.0.0.9"),                      # garbage: the peer's address
    (1, "", "10.0.0.9"),
])
def test_client_address_counts_only_trusted_proxies(settings, proxies, forwarded, expected):
    settings.AISLE_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


# --- DRF throttles --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_search_api_is_limited_whatever_x_forwarded_for_says(settings):
    """GET /api/search/ runs the embedder on every query: a made-up X-Forwarded-For must not reset its limit."""
    settings.AISLE_SEARCH_VECTORS = False  # the limit is what is tested, not the model
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], "search": "3/min"}
    settings.REST_FRAMEWORK = rest
    make_product(title="Sony Headphones")
    client = APIClient()
    statuses = [client.get("/api/search/", {"q": "sony"}, **spoofed()).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.django_db
def test_autocomplete_is_limited_whatever_x_forwarded_for_says(autocomplete_rate):
    client = APIClient()
    statuses = [client.get("/api/search/autocomplete", {"q": "hea"}, **spoofed()).status_code for _ in range(6)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429, 429]


@pytest.mark.django_db
def test_with_a_trusted_proxy_each_client_has_its_own_count(autocomplete_rate, settings):
    settings.AISLE_TRUSTED_PROXIES = 1
    settings.REST_FRAMEWORK = {**autocomplete_rate, "NUM_PROXIES": 1}
    client = APIClient()

    def status(forwarded: str) -> int:
        return client.get("/api/search/autocomplete", {"q": "a"}, HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [status("198.51.100.1") for _ in range(3)] == [200, 200, 200]
    # The same client prepending a made-up address is still the same client.
    assert status("1.1.1.1, 198.51.100.1") == 429
    assert status("198.51.100.2") == 200


def beacon_batch(product) -> dict:
    return {"events": [{"id": uuid.uuid4().hex, "type": "rec_shown", "product": product.pk,
                        "occurred_at": timezone.now().isoformat(), "properties": {"rail": "related"}}]}


@pytest.mark.django_db
def test_beacon_batches_are_limited_whatever_x_forwarded_for_says(tiny_rates):
    product = make_product()
    client = APIClient(enforce_csrf_checks=False)
    statuses = [client.post("/api/events/batch", beacon_batch(product), format="json", **spoofed()).status_code
                for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]


@pytest.mark.django_db
def test_chat_is_limited_whatever_x_forwarded_for_says(tiny_rates):
    client = APIClient()
    # Starting a chat is a throttled POST like sending a message (which runs the models).
    statuses = [client.post("/api/support/conversations/", format="json", **spoofed()).status_code for _ in range(4)]
    assert statuses[:2] in ([201, 200], [201, 201])
    assert statuses[2:] == [429, 429]


@pytest.mark.django_db
def test_throttles_count_by_address_as_well_as_by_account(tiny_rates):
    product = make_product()
    for _ in range(2):  # two accounts from one address share the address's count
        client = APIClient()
        client.force_login(make_user())
        assert client.post("/api/cart/items/", {"product_id": product.pk}, format="json").status_code == 201
    client = APIClient()
    client.force_login(make_user())
    assert client.post("/api/cart/items/", {"product_id": product.pk}, format="json").status_code == 429


@pytest.mark.django_db
def test_an_account_is_limited_from_every_address(tiny_rates):
    product = make_product()
    user = make_user()
    statuses = []
    for n in range(3):
        client = APIClient(REMOTE_ADDR=f"10.1.0.{n + 1}")
        client.force_login(user)
        statuses.append(client.post("/api/cart/items/", {"product_id": product.pk}, format="json").status_code)
    assert statuses == [201, 201, 429]


# --- page limits (django-ratelimit) ---------------------------------------------------------------


@pytest.mark.django_db
def test_search_page_is_limited_whatever_x_forwarded_for_says(settings):
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "search": 3}
    settings.AISLE_SEARCH_VECTORS = False  # keyword-only: no model is loaded
    client = Client()
    statuses = [client.get("/search/", {"q": "headphones"}, **spoofed()).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.django_db
def test_signup_page_limit_counts_by_address(settings):
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "signup": 2}
    statuses = [Client().post("/account/signup/", {"username": ""}, **spoofed()).status_code for _ in range(3)]
    assert statuses[-1] == 429 and 429 not in statuses[:2]
    # Another address is not limited by the first one's count.
    assert Client(REMOTE_ADDR="10.9.9.9").post("/account/signup/", {"username": ""}).status_code != 429
