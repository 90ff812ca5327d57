"""The demo shopper's orders tell the demo's own support story: on the day the demo is loaded, "I want to return
my AirPods" is about the delivered earbuds order, which is still inside the return window, so the assistant
offers to start the return (at 35 days old it refused: the window had closed)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from shop import services as shop
from shop.demo import accounts
from shop.models import Order, ReturnRequest
from support import services as support
from tests.factories import make_category, make_product
from tests.support_factories import last_bot, say, start_chat

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_catalogue():
    """One best-seller per category the demo shopper buys from (the real catalogue's leaves, by name)."""
    airpods = make_product(make_category("Headphones & Earbuds"), brand="Apple", price="249.00",
                           title="Apple AirPods Pro (2nd generation) with MagSafe Case (USB-C)",
                           source_review_count=945)
    make_product(make_category("Batteries"), title="Duracell Coppertop AA Batteries, 40-count", brand="Duracell",
                 price="20.99")
    make_product(make_category("Laptops & Notebook Computers"), title="Dell XPS 13 Laptop", price="999.00")
    make_product(make_category("Smart Home & Safety"), title="Ring Video Doorbell (2nd Gen)", price="59.99")
    return airpods


def test_the_demo_airpods_order_is_returnable_and_the_assistant_offers_the_return(demo_catalogue, settings):
    settings.AISLE_SUPPORT_GENERATE = False
    support.seed_knowledge_base()
    assert accounts.ensure_demo_shopper(password="demo-pass-123") == 3
    demo = get_user_model().objects.get(username=accounts.DEMO_USERNAME)
    [airpods_order] = [order for order in shop.orders_for_user(demo)
                       if order.items.filter(product=demo_catalogue).exists()]
    assert airpods_order.status == Order.Status.DELIVERED
    eligibility = shop.return_eligibility(airpods_order)
    assert eligibility.eligible, eligibility.reason
    # Not just inside the window on the day: a demo looked at for the next fortnight still tells this story.
    assert eligibility.deadline >= (dt.date.today() + dt.timedelta(days=14))

    client = APIClient()
    client.force_login(demo)
    token = start_chat(client)
    confirm = last_bot(say(client, token, "I want to return my AirPods"))
    assert confirm["kind"] == "confirm", confirm
    assert confirm["text"].startswith(
        f"Return the Apple AirPods Pro (2nd generation) from order {airpods_order.number}?"), confirm["text"]
    done = last_bot(say(client, token, "Yes, start the return"))
    assert done["kind"] == "action", done
    assert list(ReturnRequest.objects.values_list("order__number", flat=True)) == [airpods_order.number]
