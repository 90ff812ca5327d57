"""Builders for support tests: orders placed through the shop's own checkout, moved along their life
cycle with the shop's own status changes (no rows written behind the services' backs)."""

from __future__ import annotations

from shop import services
from shop.models import Cart, Order, Product
from tests.factories import GOOD_ADDRESS, GOOD_CARD, make_product


def make_order(user, *, products: list[Product] | None = None, status: str = Order.Status.PAID,
               address: dict | None = None, email: str | None = None) -> Order:
    """A paid order of the user's (then shipped/delivered/cancelled if asked)."""
    products = products or [make_product()]
    cart, _ = Cart.objects.get_or_create(user=user)
    for product in products:
        services.add_to_cart(cart, product, 1)
    order = services.place_order(cart=cart, email=email or user.email, address=address or GOOD_ADDRESS,
                                 card=GOOD_CARD, user=user)
    path = {
        Order.Status.PAID: [],
        Order.Status.SHIPPED: [Order.Status.SHIPPED],
        Order.Status.DELIVERED: [Order.Status.SHIPPED, Order.Status.DELIVERED],
        Order.Status.CANCELLED: [Order.Status.CANCELLED],
    }[status]
    for step in path:
        order = services.change_order_status(order, step)
    return Order.objects.get(pk=order.pk)


CONVERSATIONS = "/api/support/conversations/"


def messages_url(token: str) -> str:
    return f"{CONVERSATIONS}{token}/messages/"


def start_chat(client) -> str:
    response = client.post(CONVERSATIONS, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()["token"]


def say(client, token: str, text: str) -> dict:
    """Post a shopper message; returns the JSON body (asserts 201)."""
    response = client.post(messages_url(token), {"text": text}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def bot_replies(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["sender"] == "bot"]


def last_bot(body: dict) -> dict:
    replies = bot_replies(body)
    assert replies, body
    return replies[-1]
