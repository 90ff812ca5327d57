"""The storefront's page cache (shop.pagecache): anonymous home, category and product pages come from the
cache with each visitor's own CSRF token, cart badge and rails filled in; no shopper's parts reach another;
a price, stock or review change shows on the next request; with Redis down pages serve uncached."""

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from shop import services
from shop.models import Review

from .factories import GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf():
    category = make_category("Lamps")
    # Marked down, so the home page shows it too (its Deals grid).
    lamp = make_product(category, title="Brass Desk Lamp", price=Decimal("40.00"), compare_at_price=Decimal("50.00"),
                        stock=6)
    others = [make_product(category, title=f"Floor Lamp {i}") for i in range(3)]
    return category, lamp, others


def _urls(category, lamp) -> list[str]:
    return [reverse("shop:home"), category.get_absolute_url(), lamp.get_absolute_url()]


def _badge(html: str) -> str:
    return re.search(r'id="cart-count" aria-label="(\d+) items in cart">(\d+)<', html).group(1)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_two_shoppers_and_visitors_on_the_same_urls_each_see_only_their_own_parts(shelf):
    category, lamp, _ = shelf
    ada, bob = make_user("ada"), make_user("bob")
    ada_client, bob_client = _signed_in(ada), _signed_in(bob)
    ada_client.post(reverse("shop:cart_add", args=[lamp.pk]), {"quantity": "2"})
    first_visitor = Client()
    first_visitor.post(reverse("shop:cart_add", args=[lamp.pk]), {"quantity": "1"})
    first_visitor.get(reverse("shop:cart"))  # reads the "added" message, as the redirect would

    for url in _urls(category, lamp):
        stored = first_visitor.get(url)
        assert stored["X-Page-Cache"] == "miss" and _badge(stored.content.decode()) == "1"

        other = Client(enforce_csrf_checks=True)
        served = other.get(url)
        html = served.content.decode()
        assert served["X-Page-Cache"] == "hit"
        assert _badge(html) == "0" and "Hello, sign in" in html
        assert "Hello, ada" not in html and "Hello, bob" not in html
        assert "Cookie" in served["Vary"] and "private" in served["Cache-Control"]
        # The token in the cached page is this visitor's own: it works for this visitor's POST.
        token = re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)
        assert token not in stored.content.decode()
        added = other.post(reverse("shop:cart_add", args=[lamp.pk]), {"quantity": "1"}, HTTP_X_CSRFTOKEN=token)
        assert added.status_code == 302

        again = first_visitor.get(url)
        assert again["X-Page-Cache"] == "hit" and _badge(again.content.decode()) == "1"

        ada_page = ada_client.get(url).content.decode()
        bob_page = bob_client.get(url).content.decode()
        assert "Hello, ada" in ada_page and "Hello, bob" not in ada_page and _badge(ada_page) == "2"
        assert "Hello, bob" in bob_page and "Hello, ada" not in bob_page and _badge(bob_page) == "0"
        assert ada_client.get(url)["X-Page-Cache"] == "bypass"


def test_a_visitors_pending_message_is_not_cached_for_others(shelf):
    category, lamp, _ = shelf
    visitor = Client()
    visitor.post(reverse("shop:cart_add", args=[lamp.pk]), {"quantity": "1"})
    with_message = visitor.get(lamp.get_absolute_url())
    assert with_message["X-Page-Cache"] == "bypass"
    shown = Client().get(lamp.get_absolute_url())
    assert shown["X-Page-Cache"] == "miss" and 'class="message' not in shown.content.decode()


def test_price_stock_and_review_changes_show_on_the_next_request(shelf):
    category, lamp, _ = shelf
    visitor, shopper = Client(), _signed_in(make_user("cy"))
    for url in _urls(category, lamp):
        visitor.get(url)
        assert visitor.get(url)["X-Page-Cache"] == "hit"
        assert "$40.00" in shopper.get(url).content.decode()

    lamp.price = Decimal("35.50")
    lamp.save()
    for url in _urls(category, lamp):
        assert "$35.50" in visitor.get(url).content.decode()
        assert "$35.50" in shopper.get(url).content.decode()

    # Checkout moves stock with bulk_update (no product signal): the order's save expires the pages.
    buyer = make_user("dee")
    cart = services.get_cart(type("R", (), {"user": buyer, "session": {}})(), create=True)
    services.add_to_cart(cart, lamp, 3, user=buyer)
    services.checkout(cart=cart, email="dee@example.com", address=GOOD_ADDRESS, card=GOOD_CARD, user=buyer)
    assert "Only 3 left in stock" in visitor.get(lamp.get_absolute_url()).content.decode()
    assert "Only 3 left in stock" in shopper.get(lamp.get_absolute_url()).content.decode()

    review = services.post_review(product=lamp, user=buyer, rating=5, title="Warm light, solid base",
                                  text="Lights the whole desk evenly.")
    assert "Warm light, solid base" not in visitor.get(lamp.get_absolute_url()).content.decode()
    services.moderate_reviews([review.pk], Review.Status.APPROVED)
    assert "Warm light, solid base" in visitor.get(lamp.get_absolute_url()).content.decode()
    assert "Warm light, solid base" in shopper.get(lamp.get_absolute_url()).content.decode()


def test_product_and_listing_views_are_recorded_on_cache_hits(shelf):
    from behavior.models import Event

    category, lamp, _ = shelf
    for _ in range(2):
        assert Client().get(lamp.get_absolute_url()).status_code == 200
        assert Client().get(category.get_absolute_url() + "?sort=price_asc").status_code == 200
    assert Event.objects.filter(event_type=Event.Type.PRODUCT_VIEWED, product=lamp).count() == 2
    listings = Event.objects.filter(event_type=Event.Type.LISTING_VIEWED, category_id=category.pk)
    assert [e.properties["result_count"] for e in listings] == [4, 4]
    assert {e.properties["filters"]["sort"] for e in listings} == {"price_asc"}


def test_pages_serve_uncached_with_redis_down(shelf, settings):
    category, lamp, _ = shelf
    # A real client pointed at a port where nothing listens: every cache call fails (fast) and soft.
    settings.CACHES = {"default": {"BACKEND": "config.cache.FailSoftRedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0"}}
    visitor = Client()
    for url in _urls(category, lamp) * 2:
        response = visitor.get(url)
        assert response.status_code == 200 and response["X-Page-Cache"] == "bypass"
        assert "Lamps" in response.content.decode()
    visitor.post(reverse("shop:cart_add", args=[lamp.pk]), {"quantity": "2"})
    visitor.get(reverse("shop:cart"))
    assert _badge(visitor.get(lamp.get_absolute_url()).content.decode()) == "2"
