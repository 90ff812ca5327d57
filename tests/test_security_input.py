"""Malformed input is a 400 with a message (JSON on the API), never a 500: the cases of the security probe."""

import uuid

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from shop.models import Order, Review
from tests.factories import make_product, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def shopper():
    return make_user()


@pytest.fixture
def signed_in(shopper) -> APIClient:
    client = APIClient()
    client.force_login(shopper)
    return client


def assert_400(response, field: str | None = None) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    if field:
        assert body[field], body
    else:
        assert body


# --- whole numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["²", "--1", "٣", "1e3", "0x10", " ", "+-2", "12345678901"])
def test_cart_quantity_must_be_plain_digits(api, quantity):
    product = make_product()
    response = api.post("/api/cart/items/", {"product_id": product.pk, "quantity": quantity}, format="json")
    assert_400(response, "quantity")
    assert response.json()["quantity"] == ["Quantity must be a whole number."]


def test_a_plain_numeric_string_still_counts(api):
    product = make_product()
    response = api.post("/api/cart/items/", {"product_id": product.pk, "quantity": " 2 "}, format="json")
    assert response.status_code == 201 and response.json()["item_count"] == 2


@pytest.mark.parametrize("product_id", [10**30, -1, "²"])
def test_cart_product_id_out_of_range(api, product_id):
    assert_400(api.post("/api/cart/items/", {"product_id": product_id}, format="json"), "product_id")


@pytest.mark.parametrize("rating", ["²", "--1", "٣"])
def test_review_rating_must_be_plain_digits(signed_in, rating):
    product = make_product()
    response = signed_in.post("/api/reviews/", {"product": product.slug, "rating": rating,
                                                "title": "Fine", "text": "Works as promised."}, format="json")
    assert_400(response, "rating")
    assert not Review.objects.exists()


# --- lengths the database holds ----------------------------------------------------------------------


@pytest.mark.parametrize(("field", "length"), [("full_name", 121), ("full_name", 200), ("city", 101),
                                               ("address_line1", 201), ("address_line2", 201),
                                               ("postal_code", 21), ("phone", 31)])
def test_checkout_fields_longer_than_their_columns(signed_in, field, length):
    product = make_product()
    signed_in.post("/api/cart/items/", {"product_id": product.pk}, format="json")
    payload = {"email": "ada@example.com", "full_name": "Ada", "address_line1": "1 Market St", "city": "Seattle",
               "postal_code": "98101", "country": "US", "card_number": "4242 4242 4242 4242",
               "card_expiry": "12/99", "card_cvc": "123", field: "x" * length}
    response = signed_in.post("/api/orders/", payload, format="json")
    assert_400(response, field)
    assert not Order.objects.exists()


# --- behaviour events ----------------------------------------------------------------------------------


def event(**overrides) -> dict:
    return {"id": uuid.uuid4().hex, "type": "rec_shown", "occurred_at": timezone.now().isoformat(),
            "properties": {"rail": "related"}, **overrides}


@pytest.mark.parametrize("occurred_at", ["2026-02-30T10:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T25:61:00Z"])
def test_impossible_event_dates(api, occurred_at):
    product = make_product()
    response = api.post("/api/events/batch", {"events": [event(product=product.pk, occurred_at=occurred_at)]},
                        format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["errors"]["occurred_at"]


@pytest.mark.parametrize("raw", [b'{"rail": "a\\u0000b"}', b'{"rail": "\\ud800"}', b'{"\\u0000": 1}'])
def test_nul_or_broken_unicode_in_event_properties(api, raw):
    product = make_product()
    body = (b'{"events": [{"id": "%s", "type": "rec_shown", "product": %d, "occurred_at": "%s", "properties": %s}]}'
            % (uuid.uuid4().hex.encode(), product.pk, timezone.now().isoformat().encode(), raw))
    response = api.post("/api/events/batch", body, content_type="application/json")
    assert_400(response, "detail")


# --- NUL bytes in the URL or a form -----------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/search/?q=head%00phones",
    "/api/products/?brand=Ac%00me",
    "/api/products/?q=%00",
    "/api/reviews/?product=%00",
    "/api/search/autocomplete?q=a%00",
    "/c/x%00y/",
])
def test_nul_in_query_strings_and_paths(url):
    response = Client().get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_nul_in_an_order_number(signed_in, shopper):
    page = Client()
    page.force_login(shopper)
    assert page.get("/account/orders/AB%00CD/").status_code == 400
    response = signed_in.get("/api/orders/AB%00CD/")
    assert_400(response, "detail")


def test_nul_in_a_form_field():
    response = Client().post("/account/login/", {"username": "ada\x00", "password": "x"})
    assert response.status_code == 400


# --- bodies: depth and size ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/cart/items/", "/api/reviews/", "/api/support/conversations/",
                                 "/api/orders/", "/api/events/batch"])
def test_json_nested_50000_levels(api, url):
    response = api.post(url, b"[" * 50_000 + b"]" * 50_000, content_type="application/json")
    # 400, or 403 where CSRF or sign-in is refused first, or 201 where the view reads no body.
    assert response.status_code in (400, 403, 201), response.status_code


def test_deep_json_is_refused_before_any_view(api):
    response = api.post("/api/cart/items/", b'{"a":' * 40 + b"1" + b"}" * 40, content_type="application/json")
    assert_400(response, "detail")
    assert "nested" in response.json()["detail"]
    response = api.post("/api/cart/items/", b"[" * 50_000 + b"]" * 50_000, content_type="application/json")
    assert_400(response, "detail")


def test_body_over_the_limit(api, settings):
    big = b'{"product_id": 1, "pad": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    response = api.post("/api/cart/items/", big, content_type="application/json")
    assert_400(response, "detail")
    assert "at most" in response.json()["detail"]


def test_nan_is_not_json(api):
    response = api.post("/api/cart/items/", b'{"product_id": NaN}', content_type="application/json")
    assert_400(response, "detail")
