"""Small builders for test data (plain functions, no factory library)."""

import itertools
from decimal import Decimal

from django.utils.text import slugify

from shop import services
from shop.models import Category, Product
from shop.payments import CardDetails

_seq = itertools.count(1)

GOOD_ADDRESS = {
    "full_name": "Ada Lovelace",
    "address_line1": "1 Market Street",
    "address_line2": "",
    "city": "Seattle",
    "postal_code": "98101",
    "country": "US",
    "phone": "",
}
GOOD_CARD = CardDetails(number="4242424242424242", expiry_month=12, expiry_year=2099, cvc="123")
DECLINED_CARD = CardDetails(number="4000000000000002", expiry_month=12, expiry_year=2099, cvc="123")


def make_category(name: str | None = None, parent: Category | None = None) -> Category:
    name = name or f"Category {next(_seq)}"
    return Category.objects.create(name=name, slug=f"{slugify(name)}-{next(_seq)}", parent=parent)


def make_product(category: Category | None = None, **overrides) -> Product:
    n = next(_seq)
    title = overrides.pop("title", f"Product {n}")
    fields = {
        "category": category or make_category(),
        "title": title,
        "slug": f"{slugify(title)}-{n}",
        "brand": "Acme",
        "price": Decimal("49.99"),
        "stock": 10,
        "features": ["Wireless", "Long battery life"],
        "description": "A dependable product.",
    }
    fields.update(overrides)
    return Product.objects.create(**fields)


def make_user(username: str | None = None, password: str = "s3cret-pass-123", **extra):
    username = username or f"shopper{next(_seq)}"
    return services.create_shopper(username=username, email=f"{username}@example.com", password=password, **extra)
