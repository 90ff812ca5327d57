import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from shop import services
from shop.models import Cart, Order, Review

from .factories import GOOD_ADDRESS, GOOD_CARD, make_product, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client.force_login(admin)
    return client


def _order() -> Order:
    user = make_user()
    cart = Cart.objects.create(user=user)
    services.add_to_cart(cart, make_product(stock=3), 1)
    return services.place_order(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=user)


@pytest.mark.parametrize("model", ["product", "category", "order", "review", "cart", "customerprofile"])
def test_changelists_render_for_staff(staff_client, model):
    make_product()
    response = staff_client.get(reverse(f"admin:shop_{model}_changelist"))
    assert response.status_code == 200


def test_admin_requires_staff(client):
    client.force_login(make_user())
    response = client.get(reverse("admin:shop_order_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_order_status_actions_follow_the_life_cycle(staff_client):
    order = _order()
    url = reverse("admin:shop_order_changelist")
    staff_client.post(url, {"action": "mark_shipped", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == "shipped" and order.tracking_number
    response = staff_client.post(url, {"action": "mark_cancelled", "_selected_action": [order.pk]}, follow=True)
    order.refresh_from_db()
    assert order.status == "shipped"
    assert "cannot become cancelled" in response.content.decode()


def test_review_moderation_actions(staff_client, django_capture_on_commit_callbacks):
    product = make_product()
    review = services.post_review(product=product, user=make_user(), rating=5, title="Love it",
                                  text="Great sound for the price.")
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("admin:shop_review_changelist"),
                          {"action": "approve", "_selected_action": [review.pk]})
    review.refresh_from_db()
    product.refresh_from_db()
    assert review.status == Review.Status.APPROVED
    assert product.rating_count == 1
