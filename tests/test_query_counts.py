"""Pages and API lists run a fixed number of queries, however many products they show (Saleor style)."""

import pytest
from django.urls import reverse

from shop import services
from shop.models import Review

from .factories import GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue():
    parent = make_category("Audio")
    leaves = [make_category(f"Leaf {i}", parent=parent) for i in range(3)]
    products = [make_product(leaves[i % 3], title=f"Speaker {i}", brand=f"Brand{i % 5}",
                             compare_at_price=99 if i % 4 == 0 else None, source_rating=4, source_review_count=i + 1)
                for i in range(30)]
    user = make_user()
    for product in products[:5]:
        services.post_review(product=product, user=user, rating=4, title="Good", text="Good sound overall.",
                             status=Review.Status.APPROVED)
    return parent, products


@pytest.mark.parametrize("path", ["home", "category", "product", "search"])
def test_storefront_pages_do_not_query_per_product(client, catalogue, django_assert_max_num_queries, path):
    parent, products = catalogue
    url = {"home": reverse("shop:home"), "category": parent.get_absolute_url(),
           "product": products[0].get_absolute_url(), "search": reverse("search:results") + "?q=speaker"}[path]
    client.get(url)  # warm the navigation cache
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["home", "category", "product"])
def test_cached_anonymous_pages_run_a_handful_of_queries(client, catalogue, django_assert_max_num_queries, path):
    """From the page cache: the lookup (product, category), the page-view event, the cart badge."""
    parent, products = catalogue
    url = {"home": reverse("shop:home"), "category": parent.get_absolute_url(),
           "product": products[0].get_absolute_url()}[path]
    client.get(url)
    with django_assert_max_num_queries(4):
        response = client.get(url)
    assert response.status_code == 200 and response["X-Page-Cache"] == "hit"


SIGNED_IN_PAGES = ["home", "category", "product", "search", "cart", "checkout", "account", "order",
                   "account_details", "password_change"]


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
def test_signed_in_pages_do_not_query_per_product_or_line(client, catalogue, django_assert_max_num_queries, path):
    parent, products = catalogue
    shopper = make_user()
    client.force_login(shopper)
    cart = services.get_cart(type("Request", (), {"user": shopper, "session": {}})(), create=True)
    for product in products[:6]:
        services.add_to_cart(cart, product, 1, user=shopper)
    order = services.checkout(cart=cart, email="q@example.com", address=GOOD_ADDRESS, card=GOOD_CARD,
                              user=shopper).order
    for product in products[6:12]:  # a full cart again, for the cart and checkout pages
        services.add_to_cart(cart, product, 1, user=shopper)
    url = {"home": reverse("shop:home"), "category": parent.get_absolute_url(),
           "product": products[0].get_absolute_url(), "search": reverse("search:results") + "?q=speaker",
           "cart": reverse("shop:cart"), "checkout": reverse("shop:checkout"), "account": reverse("shop:account"),
           "order": reverse("shop:order_detail", args=[order.number]),
           "account_details": reverse("shop:account_details"),
           "password_change": reverse("shop:password_change")}[path]
    client.get(url)  # warm the navigation cache and the shared fragments
    with django_assert_max_num_queries(16):
        response = client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["login", "signup", "password_reset"])
def test_anonymous_account_pages_query_count(client, catalogue, django_assert_max_num_queries, name):
    client.get(reverse(f"shop:{name}"))
    with django_assert_max_num_queries(4):
        assert client.get(reverse(f"shop:{name}")).status_code == 200


def test_api_product_list_and_category_tree_query_counts(client, catalogue, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        assert client.get("/api/products/").json()["count"] == 30
    with django_assert_max_num_queries(2):
        tree = client.get("/api/categories/").json()
    assert [len(root["children"]) for root in tree] == [3]
