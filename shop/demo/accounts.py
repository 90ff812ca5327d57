"""The two demo logins: staff superuser `admin`, and shopper `demo` with a short order history.

Both use the password from AISLE_DEMO_ADMIN_PASSWORD (default "aisle-demo") and are only
created when missing, so re-running the loader never resets a changed password.
"""

from __future__ import annotations

import datetime as dt
import os
import random

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from shop import services
from shop.models import Cart, CustomerProfile, Order, Product, Review

from . import texts
from .simulator import TEST_CARD

DEFAULT_PASSWORD = "aisle-demo"
ADMIN_USERNAME = "admin"
DEMO_USERNAME = "demo"
DEMO_ADDRESS = {
    "full_name": "Demo Shopper", "address_line1": "500 Pine Street", "address_line2": "Apt 4",
    "city": "Seattle", "postal_code": "98101", "country": "US", "phone": "",
}
# (days ago, sub-category names to buy one best-seller from, statuses to move through after paid).
# The earbuds (the AirPods in the demo catalogue) were delivered 9 days before the demo is loaded, well inside
# the 30-day return window, so "I want to return my AirPods" in the demo chat starts a return; at 35 days the
# window had closed and the demo's own example was refused.
DEMO_ORDERS = [
    (12, ["Headphones & Earbuds", "Batteries"], [Order.Status.SHIPPED, Order.Status.DELIVERED]),
    (4, ["Laptops & Notebook Computers"], [Order.Status.SHIPPED]),
    (0.05, ["Smart Home & Safety"], []),
]


def demo_password() -> str:
    return os.environ.get("AISLE_DEMO_ADMIN_PASSWORD") or DEFAULT_PASSWORD


def ensure_admin(password: str | None = None) -> bool:
    """Create the staff superuser `admin` if missing; True when created."""
    User = get_user_model()
    if User.objects.filter(username=ADMIN_USERNAME).exists():
        return False
    with transaction.atomic():
        user = User.objects.create_superuser(ADMIN_USERNAME, "admin@aisle.example", password or demo_password(),
                                             first_name="Admin")
        CustomerProfile.objects.get_or_create(user=user)
    return True


def _best_seller(category_name: str, quantity: int) -> Product | None:
    return (Product.objects.filter(category__name=category_name, is_active=True, price__isnull=False,
                                   stock__gte=quantity + 1)
            .order_by("-source_review_count", "pk").first())


def ensure_demo_shopper(password: str | None = None, now: dt.datetime | None = None) -> int | None:
    """Create shopper `demo` with a few past orders if missing; returns the number of orders, None if it existed."""
    if get_user_model().objects.filter(username=DEMO_USERNAME).exists():
        return None
    now = now or timezone.now()
    orders = 0
    with transaction.atomic():
        user = services.create_shopper(
            username=DEMO_USERNAME, email="demo@aisle.example", password=password or demo_password(),
            first_name="Demo", simulated=True,
            tastes=["headphones-earbuds", "laptops-notebook-computers", "smart-home-safety"],
        )
        user.last_name = "Shopper"
        user.save(update_fields=["last_name"])
        cart = Cart.objects.get_or_create(user=user)[0]
        for days_ago, leaves, statuses in DEMO_ORDERS:
            at = now - dt.timedelta(days=days_ago)
            products = [product for product in (_best_seller(leaf, 1) for leaf in leaves) if product]
            if not products:
                continue
            for step, product in enumerate(products):
                key = f"demo-{days_ago}"
                services.record_product_view(product, user=user, visitor_id=key,
                                             occurred_at=at + dt.timedelta(minutes=2 * step), simulated=True)
                services.add_to_cart(cart, product, 1, user=user, visitor_id=key,
                                     occurred_at=at + dt.timedelta(minutes=2 * step + 1), simulated=True)
            placed_at = at + dt.timedelta(minutes=2 * len(products) + 3)
            order = services.place_order(cart=cart, email=user.email, address=DEMO_ADDRESS, card=TEST_CARD,
                                         user=user, occurred_at=placed_at, simulated=True)
            orders += 1
            step_at = placed_at
            for status in statuses:
                step_at += dt.timedelta(days=1.5)
                note = "Shipped with UPS" if status == Order.Status.SHIPPED else "Delivered"
                order = services.change_order_status(order, status, note=note, occurred_at=step_at)
            if order.status == Order.Status.DELIVERED:
                product = products[0]
                category = product.category
                review = texts.compose_review(random.Random(f"demo-review-{product.pk}"), 5,
                                              group=category.parent.name if category.parent_id else category.name,
                                              leaf=category.name, brand=product.brand)
                services.post_review(
                    product=product, user=user, rating=5, title=review.title, text=review.text,
                    author_name=texts.author_name("Demo", "S"), status=Review.Status.APPROVED,
                    occurred_at=step_at + dt.timedelta(days=3), simulated=True,
                )
    return orders
