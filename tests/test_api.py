"""The REST API under /api/: catalogue, cart, checkout, orders, reviews, throttles, schema."""

from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from shop import services
from shop.models import Cart, CartItem, Order, Product, Review
from tests.factories import GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/products/"
CATEGORIES = "/api/categories/"
CART = "/api/cart/"
CART_ITEMS = "/api/cart/items/"
ORDERS = "/api/orders/"
REVIEWS = "/api/reviews/"


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def checkout_payload(**overrides) -> dict:
    payload = {
        "email": "ada@example.com",
        **GOOD_ADDRESS,
        "card_number": "4242 4242 4242 4242",
        "card_expiry": "12/99",
        "card_cvc": "123",
    }
    payload.update(overrides)
    return payload


def place_order_for(user, product: Product, quantity: int = 1) -> Order:
    cart, _ = Cart.objects.get_or_create(user=user)
    services.add_to_cart(cart, product, quantity)
    return services.place_order(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=user)


def slugs(response) -> list[str]:
    return [row["slug"] for row in response.json()["results"]]


def cart_state(client: APIClient) -> list[tuple[int, int]]:
    return [(line["product"]["id"], line["quantity"]) for line in client.get(CART).json()["lines"]]


# --- Products ----------------------------------------------------------------------------


def test_product_list_is_paginated_and_hides_inactive(client):
    shown = make_product(title="Shown lamp")
    make_product(title="Hidden lamp", is_active=False)
    response = client.get(PRODUCTS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert slugs(response) == [shown.slug]
    row = body["results"][0]
    assert row["price"] == "49.99"
    assert row["category"]["slug"] == shown.category.slug
    assert row["stock_state"] == "in_stock"


def test_product_list_filters(client):
    audio = make_category("Audio")
    headphones = make_category("Headphones", parent=audio)
    kitchen = make_category("Kitchen")
    cheap = make_product(headphones, title="Cheap buds", brand="Sonic", price=Decimal("19.00"))
    dear = make_product(audio, title="Dear speaker", brand="Boom", price=Decimal("299.00"))
    empty = make_product(audio, title="Sold out amp", brand="Boom", price=Decimal("99.00"), stock=0)
    kettle = make_product(kitchen, title="Kettle", brand="Brew", price=Decimal("39.00"))

    # category includes subcategories
    assert set(slugs(client.get(PRODUCTS, {"category": audio.slug}))) == {cheap.slug, dear.slug, empty.slug}
    assert slugs(client.get(PRODUCTS, {"category": headphones.slug})) == [cheap.slug]
    # brand is repeatable
    assert set(slugs(client.get(PRODUCTS, {"brand": ["Sonic", "Brew"]}))) == {cheap.slug, kettle.slug}
    # price range is inclusive
    assert set(slugs(client.get(PRODUCTS, {"min_price": "39", "max_price": "99.00"}))) == {kettle.slug, empty.slug}
    # in stock only
    assert empty.slug not in slugs(client.get(PRODUCTS, {"in_stock": "true"}))
    assert empty.slug in slugs(client.get(PRODUCTS, {"in_stock": "false"}))
    # keywords
    assert slugs(client.get(PRODUCTS, {"q": "speaker"})) == [dear.slug]
    # ordering
    assert slugs(client.get(PRODUCTS, {"ordering": "price_asc"})) == [cheap.slug, kettle.slug, empty.slug, dear.slug]
    assert slugs(client.get(PRODUCTS, {"ordering": "price_desc"})) == [dear.slug, empty.slug, kettle.slug, cheap.slug]
    # empty parameters (a form's blank fields) are ignored
    assert len(slugs(client.get(PRODUCTS, {"category": "", "min_price": "", "ordering": ""}))) == 4


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"min_price": "cheap"}, "min_price"),
        ({"max_price": "-5"}, "max_price"),
        ({"min_price": "1.234"}, "min_price"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"ordering": "cheapest"}, "ordering"),
        ({"category": "no-such-category"}, "category"),
        ({"min_price": "50", "max_price": "10"}, "max_price"),
    ],
)
def test_bad_product_filters_are_400_with_a_message(client, params, bad):
    make_product()
    response = client.get(PRODUCTS, params)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [bad]
    assert body[bad] and all(isinstance(message, str) and message for message in body[bad])


def test_bad_filters_each_get_their_own_message(client):
    response = client.get(PRODUCTS, {"min_price": "x", "ordering": "y", "category": "z"})
    assert response.status_code == 400
    assert set(response.json()) == {"min_price", "ordering", "category"}
    assert response.json()["category"] == ["There is no category “z”."]


def test_product_detail_by_slug(client):
    product = make_product(
        title="Noise cancelling headphones", price=Decimal("80.00"), compare_at_price=Decimal("100.00"),
        discount_label="20% off", stock=3, features=["ANC", "30 h battery"], source_rating=Decimal("4.40"),
        source_review_count=120,
    )
    response = client.get(f"{PRODUCTS}{product.slug}/")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == product.slug
    assert body["features"] == ["ANC", "30 h battery"]
    assert body["rating"] == "4.40"
    assert body["review_count"] == 120
    assert body["compare_at_price"] == "100.00"
    assert body["discount_amount"] == "20.00"
    assert body["stock_state"] == "low_stock"
    assert body["max_quantity"] == 3
    assert body["is_purchasable"] is True
    assert "stock" not in body


def test_product_detail_stock_states(client):
    sold_out = make_product(stock=0)
    offline = make_product(price=None)
    assert client.get(f"{PRODUCTS}{sold_out.slug}/").json()["stock_state"] == "out_of_stock"
    assert client.get(f"{PRODUCTS}{offline.slug}/").json()["stock_state"] == "not_for_sale"
    assert client.get(f"{PRODUCTS}{offline.slug}/").json()["max_quantity"] == 0


def test_unknown_or_inactive_product_is_404(client):
    hidden = make_product(is_active=False)
    assert client.get(f"{PRODUCTS}{hidden.slug}/").status_code == 404
    response = client.get(f"{PRODUCTS}no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no product “no-such-thing”."}


# --- Categories --------------------------------------------------------------------------


def test_category_tree(client):
    audio = make_category("Audio")
    headphones = make_category("Headphones", parent=audio)
    earbuds = make_category("Earbuds", parent=headphones)
    kitchen = make_category("Kitchen")
    response = client.get(CATEGORIES)
    assert response.status_code == 200
    tree = response.json()
    assert [node["slug"] for node in tree] == [audio.slug, kitchen.slug]
    assert tree[0]["children"][0]["slug"] == headphones.slug
    assert tree[0]["children"][0]["parent"] == audio.slug
    assert tree[0]["children"][0]["children"][0]["slug"] == earbuds.slug
    assert tree[1]["children"] == []

    detail = client.get(f"{CATEGORIES}{headphones.slug}/")
    assert detail.status_code == 200
    assert detail.json()["parent"] == audio.slug
    assert [child["slug"] for child in detail.json()["children"]] == [earbuds.slug]
    assert client.get(f"{CATEGORIES}nope/").status_code == 404


# --- Cart --------------------------------------------------------------------------------


def test_anonymous_cart_add_patch_delete(client):
    product = make_product(price=Decimal("30.00"))
    other = make_product(price=Decimal("10.00"))
    empty = client.get(CART).json()
    assert empty["id"] is None and empty["lines"] == [] and empty["total"] == "0.00"

    response = client.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert [(line["product"]["id"], line["quantity"]) for line in body["lines"]] == [(product.pk, 2)]
    assert body["subtotal"] == "60.00" and body["shipping"] == "9.99" and body["total"] == "69.99"
    assert body["item_count"] == 2

    # the session keeps the cart; adding again adds up; reaching 75 ships free
    client.post(CART_ITEMS, {"product_id": product.pk, "quantity": 1}, format="json")
    client.post(CART_ITEMS, {"product_id": other.pk}, format="json")
    body = client.get(CART).json()
    assert [(line["product"]["id"], line["quantity"]) for line in body["lines"]] == [(product.pk, 3), (other.pk, 1)]
    assert body["shipping"] == "0.00" and body["total"] == "100.00"
    line_id = body["lines"][0]["id"]

    response = client.patch(f"{CART_ITEMS}{line_id}/", {"quantity": 5}, format="json")
    assert response.status_code == 200
    assert response.json()["lines"][0]["quantity"] == 5

    response = client.patch(f"{CART_ITEMS}{line_id}/", {"quantity": 0}, format="json")
    assert response.status_code == 200
    assert [line["product"]["id"] for line in response.json()["lines"]] == [other.pk]

    other_line = response.json()["lines"][0]["id"]
    assert client.delete(f"{CART_ITEMS}{other_line}/").status_code == 204
    assert client.get(CART).json()["lines"] == []

    # another anonymous shopper has their own (empty) cart
    client.post(CART_ITEMS, {"product_id": product.pk}, format="json")
    assert APIClient().get(CART).json()["lines"] == []


def test_signed_in_cart_belongs_to_the_user(signed_in, user):
    product = make_product()
    assert signed_in.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json").status_code == 201
    cart = Cart.objects.get(user=user)
    line = cart.items.get()
    assert line.quantity == 2

    # the cart follows the user to another session
    elsewhere = APIClient()
    elsewhere.force_authenticate(user)
    assert cart_state(elsewhere) == [(product.pk, 2)]

    assert signed_in.patch(f"{CART_ITEMS}{line.pk}/", {"quantity": "4"}, format="json").status_code == 200
    line.refresh_from_db()
    assert line.quantity == 4
    assert signed_in.delete(f"{CART_ITEMS}{line.pk}/").status_code == 204
    assert not CartItem.objects.filter(cart=cart).exists()


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "Quantity must be at least 1."),
        (-1, "Quantity must be at least 1."),
        (21, "You can buy at most 20 of one product per order."),
        ("two", "Quantity must be a whole number."),
        (2.5, "Quantity must be a whole number."),
        (True, "Quantity must be a whole number."),
        (None, "Quantity must be a whole number."),
    ],
)
def test_add_bad_quantity_is_400_and_cart_unchanged(client, quantity, message):
    product = make_product()
    client.post(CART_ITEMS, {"product_id": product.pk, "quantity": 1}, format="json")
    response = client.post(CART_ITEMS, {"product_id": product.pk, "quantity": quantity}, format="json")
    assert response.status_code == 400
    assert response.json() == {"quantity": [message]}
    assert cart_state(client) == [(product.pk, 1)]


def test_add_beyond_stock_or_line_limit_is_400(client):
    product = make_product(title="Rare vase", stock=2)
    response = client.post(CART_ITEMS, {"product_id": product.pk, "quantity": 3}, format="json")
    assert response.status_code == 400
    assert response.json() == {"quantity": ["Only 2 of “Rare vase” left in stock."]}
    plenty = make_product(stock=100)
    client.post(CART_ITEMS, {"product_id": plenty.pk, "quantity": 15}, format="json")
    response = client.post(CART_ITEMS, {"product_id": plenty.pk, "quantity": 6}, format="json")
    assert response.status_code == 400
    assert response.json() == {"quantity": ["You can buy at most 20 of one product per order."]}
    assert cart_state(client) == [(plenty.pk, 15)]


def test_add_product_not_sold_online_is_400(client):
    offline = make_product(title="Showroom piano", price=None)
    response = client.post(CART_ITEMS, {"product_id": offline.pk}, format="json")
    assert response.status_code == 400
    assert response.json() == {"product": ["“Showroom piano” is not sold online."]}
    assert not CartItem.objects.exists()


def test_add_unknown_or_inactive_product_is_404(client):
    hidden = make_product(is_active=False)
    for product_id in (hidden.pk, 999999):
        response = client.post(CART_ITEMS, {"product_id": product_id, "quantity": 1}, format="json")
        assert response.status_code == 404
        assert response.json() == {"detail": f"There is no product with id {product_id}."}
    response = client.post(CART_ITEMS, {"quantity": 1}, format="json")
    assert response.status_code == 400 and "product_id" in response.json()
    assert not CartItem.objects.exists() and not Cart.objects.exists()


def test_patch_and_delete_bad_or_foreign_lines(client):
    product = make_product()
    client.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json")
    line_id = client.get(CART).json()["lines"][0]["id"]

    for quantity, message in ((21, "You can buy at most 20 of one product per order."),
                              (-2, "Quantity must be at least 1."),
                              ("lots", "Quantity must be a whole number.")):
        response = client.patch(f"{CART_ITEMS}{line_id}/", {"quantity": quantity}, format="json")
        assert response.status_code == 400
        assert response.json() == {"quantity": [message]}
    assert cart_state(client) == [(product.pk, 2)]

    # someone else's line is unknown to this shopper
    stranger = APIClient()
    assert stranger.patch(f"{CART_ITEMS}{line_id}/", {"quantity": 1}, format="json").status_code == 404
    stranger.post(CART_ITEMS, {"product_id": make_product().pk}, format="json")
    response = stranger.patch(f"{CART_ITEMS}{line_id}/", {"quantity": 1}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such line in your cart."}
    response = stranger.delete(f"{CART_ITEMS}{line_id}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such line in your cart."}
    assert client.delete(f"{CART_ITEMS}{line_id + 1000}/").status_code == 404
    assert cart_state(client) == [(product.pk, 2)]


def test_session_authenticated_cart_writes_need_csrf(user):
    product = make_product()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(CART_ITEMS, {"product_id": product.pk}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not CartItem.objects.exists()


# --- Checkout and orders -----------------------------------------------------------------


def test_checkout_places_the_order(signed_in, user):
    product = make_product(title="Desk lamp", price=Decimal("40.00"), stock=5)
    signed_in.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json")
    response = signed_in.post(ORDERS, checkout_payload(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get()
    assert body["number"] == order.number and order.user == user
    assert body["status"] == "paid"
    assert body["total"] == "80.00" and body["shipping"] == "0.00"
    assert [(item["product"], item["quantity"], item["unit_price"]) for item in body["items"]] == [
        (product.slug, 2, "40.00")
    ]
    assert [event["status"] for event in body["history"]] == ["placed", "paid"]
    # no card data comes back
    text = response.content.decode()
    assert "card" not in text and "4242" not in text and "123" not in body.values()
    product.refresh_from_db()
    assert product.stock == 3
    assert signed_in.get(CART).json()["lines"] == []


def test_checkout_email_defaults_to_the_account(signed_in, user):
    signed_in.post(CART_ITEMS, {"product_id": make_product().pk}, format="json")
    response = signed_in.post(ORDERS, checkout_payload(email=""), format="json")
    assert response.status_code == 201
    assert response.json()["email"] == user.email


def test_checkout_declined_card_writes_nothing(signed_in):
    product = make_product(stock=5)
    signed_in.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json")
    response = signed_in.post(ORDERS, checkout_payload(card_number="4000000000000002"), format="json")
    assert response.status_code == 400
    assert response.json() == {"payment": ["Your card was declined."]}
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 5
    assert cart_state(signed_in) == [(product.pk, 2)]


def test_checkout_invalid_address_and_card_name_every_field(signed_in):
    product = make_product(stock=5)
    signed_in.post(CART_ITEMS, {"product_id": product.pk}, format="json")
    response = signed_in.post(ORDERS, checkout_payload(
        city="", country="US", postal_code="ABC", full_name="   ", card_number="1234", card_expiry="13/30",
        card_cvc="x", email="not-an-email",
    ), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["city"] == ["City is required."]
    assert body["full_name"] == ["Full name is required."]
    assert body["postal_code"] == ["Enter a 5-digit ZIP code such as 98101."]
    assert body["card_number"] == ["Enter a valid card number."]
    assert body["card_expiry"] == ["The expiry month must be between 01 and 12."]
    assert body["card_cvc"] == ["Enter the 3 or 4 digit security code."]
    assert body["email"] == ["Enter a valid email address."]
    response = signed_in.post(ORDERS, checkout_payload(country="ZZ"), format="json")
    assert response.status_code == 400
    assert response.json() == {"country": ["Choose a country we ship to."]}
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 5


def test_checkout_empty_cart_and_out_of_stock(signed_in, user):
    response = signed_in.post(ORDERS, checkout_payload(), format="json")
    assert response.status_code == 400
    assert response.json() == {"cart": ["Your cart is empty."]}

    product = make_product(title="Last teapot", stock=2)
    signed_in.post(CART_ITEMS, {"product_id": product.pk, "quantity": 2}, format="json")
    Product.objects.filter(pk=product.pk).update(stock=1)  # someone else bought one meanwhile
    response = signed_in.post(ORDERS, checkout_payload(), format="json")
    assert response.status_code == 400
    assert response.json() == {"quantity": ["Only 1 of “Last teapot” left in stock."]}
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 1


def test_orders_need_authentication(client):
    assert client.get(ORDERS).status_code == 403
    assert client.post(ORDERS, checkout_payload(), format="json").status_code == 403
    order = place_order_for(make_user(), make_product())
    assert client.get(f"{ORDERS}{order.number}/").status_code == 403


def test_orders_list_and_detail_only_own(signed_in, user):
    product = make_product(stock=50)
    mine = [place_order_for(user, product), place_order_for(user, product, 2)]
    theirs = place_order_for(make_user(), product)

    response = signed_in.get(ORDERS)
    assert response.status_code == 200
    numbers = [row["number"] for row in response.json()["results"]]
    assert sorted(numbers) == sorted(order.number for order in mine)
    assert theirs.number not in numbers

    detail = signed_in.get(f"{ORDERS}{mine[1].number}/")
    assert detail.status_code == 200
    assert detail.json()["items"][0]["quantity"] == 2
    assert "payment_reference" not in detail.json()

    response = signed_in.get(f"{ORDERS}{theirs.number}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "You have no order with this number."}
    assert signed_in.get(f"{ORDERS}ASNOSUCH1/").status_code == 404


# --- Reviews -----------------------------------------------------------------------------


def make_review(product: Product, status: str, title: str = "Solid buy") -> Review:
    return Review.objects.create(product=product, author_name="Sam", rating=4, title=title,
                                 text="Does what it says.", status=status, created_at=timezone.now())


def test_reviews_list_approved_only_and_filter_by_product(client):
    lamp, chair = make_product(), make_product()
    approved = make_review(lamp, Review.Status.APPROVED, "Bright")
    make_review(lamp, Review.Status.PENDING, "Waiting")
    make_review(lamp, Review.Status.REJECTED, "Rude")
    other = make_review(chair, Review.Status.APPROVED, "Comfy")

    response = client.get(REVIEWS)
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {approved.pk, other.pk}
    response = client.get(REVIEWS, {"product": lamp.slug})
    assert [row["title"] for row in response.json()["results"]] == ["Bright"]
    assert response.json()["results"][0]["product"] == lamp.slug
    response = client.get(REVIEWS, {"product": "nope"})
    assert response.status_code == 400
    assert response.json() == {"product": ["There is no product “nope”."]}


def test_create_review_is_pending(signed_in, user):
    product = make_product()
    response = signed_in.post(REVIEWS, {"product": product.slug, "rating": 5, "title": "Great",
                                        "text": "Works great, love it."}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    review = Review.objects.get()
    assert review.user == user and review.rating == 5
    assert signed_in.get(REVIEWS, {"product": product.slug}).json()["results"] == []

    again = signed_in.post(REVIEWS, {"product": product.slug, "rating": 4, "title": "Still great",
                                     "text": "Still works great."}, format="json")
    assert again.status_code == 400
    assert again.json() == {"product": ["You have already reviewed this product."]}


def test_create_review_needs_authentication(client):
    product = make_product()
    response = client.post(REVIEWS, {"product": product.slug, "rating": 5, "title": "Great",
                                     "text": "Works great, love it."}, format="json")
    assert response.status_code == 403
    assert not Review.objects.exists()


@pytest.mark.parametrize("rating", [0, 6, "five", 4.5, True, None])
def test_create_review_bad_rating_is_400(signed_in, rating):
    product = make_product()
    response = signed_in.post(REVIEWS, {"product": product.slug, "rating": rating, "title": "Hmm",
                                        "text": "Long enough text here."}, format="json")
    assert response.status_code == 400
    assert response.json() == {"rating": ["Rating must be a whole number of stars from 1 to 5."]}
    assert not Review.objects.exists()


def test_create_review_content_validation(signed_in):
    product = make_product()
    response = signed_in.post(REVIEWS, {"product": product.slug, "rating": "3", "title": "  ",
                                        "text": "Short"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "title": ["Give your review a title."],
        "text": ["Tell other shoppers a little more (at least 10 characters)."],
    }
    response = signed_in.post(REVIEWS, {"product": "ghost", "rating": 3, "title": "T",
                                        "text": "Long enough text."}, format="json")
    assert response.status_code == 400
    assert response.json() == {"product": ["There is no product “ghost”."]}
    assert not Review.objects.exists()


# --- Throttling --------------------------------------------------------------------------


@pytest.fixture
def tiny_rates(monkeypatch):
    # DRF reads the rates once, onto the class: patch them there.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES",
                        {"cart_write": "2/min", "checkout": "1/min", "review_write": "1/min"})


def test_cart_writes_are_throttled_reads_are_not(client, tiny_rates):
    product = make_product()
    for _ in range(2):
        assert client.post(CART_ITEMS, {"product_id": product.pk}, format="json").status_code == 201
    response = client.post(CART_ITEMS, {"product_id": product.pk}, format="json")
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert cart_state(client) == [(product.pk, 2)]
    for _ in range(3):
        assert client.get(CART).status_code == 200


def test_checkout_is_throttled(signed_in, tiny_rates):
    product = make_product()
    signed_in.post(CART_ITEMS, {"product_id": product.pk}, format="json")
    assert signed_in.post(ORDERS, checkout_payload(card_number="4000000000000002"), format="json").status_code == 400
    assert signed_in.post(ORDERS, checkout_payload(), format="json").status_code == 429
    assert not Order.objects.exists()
    assert signed_in.get(ORDERS).status_code == 200


def test_review_writes_are_throttled(signed_in, tiny_rates):
    first, second = make_product(), make_product()
    ok = {"rating": 5, "title": "Great", "text": "Works great, love it."}
    assert signed_in.post(REVIEWS, {"product": first.slug, **ok}, format="json").status_code == 201
    assert signed_in.post(REVIEWS, {"product": second.slug, **ok}, format="json").status_code == 429
    assert Review.objects.count() == 1


# --- Schema and docs ---------------------------------------------------------------------


def test_schema_lists_the_api(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/products/", "/api/products/{slug}/", "/api/categories/", "/api/categories/{slug}/",
                 "/api/cart/", "/api/cart/items/", "/api/cart/items/{id}/", "/api/orders/",
                 "/api/orders/{number}/", "/api/reviews/"):
        assert path in paths
    assert set(paths["/api/cart/items/{id}/"]) == {"patch", "delete"}
    checkout = response.json()["components"]["schemas"]["Checkout"]["properties"]
    assert checkout["card_number"]["writeOnly"] is True


def test_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content


def test_docs_page_uses_no_cdn(client):
    html = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
