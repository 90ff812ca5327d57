"""The API's error answers are JSON and the OpenAPI schema documents them (what schemathesis found, #15):
an unmatched /api/ URL, a failed CSRF check, a multipart body without a boundary (a 500 before), the cart
as one object, a top-level category's null parent, and the error codes each view can give."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import make_category

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return Client().get("/api/schema/", {"format": "json"}).json()


def _responses(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]["responses"]


@pytest.mark.parametrize("url", ["/api/cart/items/null,null/", "/api/support/messages/1.5e-7/feedback/",
                                 "/api/no-such-thing/"])
def test_an_unmatched_api_url_is_a_json_404(url):
    response = APIClient().get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and response.json() == {"detail": "Not found."}


def test_an_unmatched_page_url_is_still_the_html_404():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_failed_csrf_check_on_the_api_is_json():
    response = Client(enforce_csrf_checks=True).post("/api/events/batch", {"events": []},
                                                     content_type="application/json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json" and "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/support/conversations/", "/api/cart/items/", "/account/login/"])
def test_a_multipart_body_without_a_boundary_is_a_400(url):
    # Non-empty: the test client drops the content type of an empty body.
    response = Client().generic("POST", url, b"field=value", content_type="multipart/form-data")
    assert response.status_code == 400
    assert "could not be read" in response.content.decode()


def test_the_cart_is_documented_as_one_object(schema):
    cart = _responses(schema, "/api/cart/", "get")["200"]["content"]["application/json"]["schema"]
    assert cart == {"$ref": "#/components/schemas/Cart"}
    body = APIClient().get("/api/cart/").json()
    assert isinstance(body, dict) and set(body) == set(schema["components"]["schemas"]["Cart"]["properties"])


def test_a_top_level_categorys_parent_is_documented_as_nullable(schema):
    make_category("Audio")
    [top] = APIClient().get("/api/categories/").json()
    assert top["parent"] is None
    assert schema["components"]["schemas"]["CategoryTree"]["properties"]["parent"].get("nullable") is True


@pytest.mark.parametrize("path, method, codes, absent", [
    # Anonymous callers are refused the orders (403, session authentication first); basic auth locks out (429).
    ("/api/orders/", "get", {"200", "400", "403", "404", "414", "429"}, set()),
    ("/api/orders/", "post", {"201", "400", "403", "415", "429"}, set()),
    # Reads of the catalogue are open, unthrottled and have no body: no 415 and no 404 without a path parameter.
    ("/api/categories/", "get", {"200", "400", "429"}, {"415", "404"}),
    ("/api/cart/items/{id}/", "patch", {"200", "400", "403", "404", "415", "429"}, set()),
    # The beacon checks CSRF for everyone and is throttled; it has no basic auth.
    ("/api/events/batch", "post", {"200", "400", "403", "415", "429"}, {"401"}),
    ("/api/support/conversations/", "post", {"200", "201", "400", "403", "429"}, set()),
])
def test_each_operation_documents_the_errors_it_can_give(schema, path, method, codes, absent):
    documented = set(_responses(schema, path, method))
    assert codes <= documented, codes - documented
    assert not absent & documented


def test_error_bodies_have_a_schema(schema):
    forbidden = _responses(schema, "/api/orders/", "get")["403"]["content"]["application/json"]["schema"]
    assert forbidden == {"$ref": "#/components/schemas/ErrorDetail"}
    throttled = _responses(schema, "/api/orders/", "post")["429"]
    assert "Retry-After" in throttled["headers"]

