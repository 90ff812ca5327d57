"""Pages and API lists run a fixed number of queries, however many products they show (Saleor style)."""

import pytest
from django.urls import reverse

from shop import services
from shop.models import Review

from .factories import make_category, make_product, make_user

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
           "product": products[0].get_absolute_url(), "search": reverse("shop:search") + "?q=speaker"}[path]
    client.get(url)  # warm the navigation cache
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.status_code == 200


def test_api_product_list_and_category_tree_query_counts(client, catalogue, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        assert client.get("/api/products/").json()["count"] == 30
    with django_assert_max_num_queries(2):
        tree = client.get("/api/categories/").json()
    assert [len(root["children"]) for root in tree] == [3]
