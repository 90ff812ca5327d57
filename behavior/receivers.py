"""Shop signals -> event rows, and login -> identity link. Thin: each receiver calls one service."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from search import signals as search_signals
from shop import services as shop_services
from shop import signals

from . import services
from .models import Event


def _common(kwargs: dict) -> dict:
    return {
        "user": kwargs.get("user"),
        "visitor_id": kwargs.get("visitor_id", ""),
        "occurred_at": kwargs["occurred_at"],
        "simulated": kwargs.get("simulated", False),
    }


@receiver(signals.product_viewed, dispatch_uid="behavior_product_viewed")
def on_product_viewed(sender, product, **kwargs) -> None:
    services.record_event(Event.Type.PRODUCT_VIEWED, product=product, **_common(kwargs))


@receiver(signals.listing_viewed, dispatch_uid="behavior_listing_viewed")
def on_listing_viewed(sender, category, page, result_count, filters, **kwargs) -> None:
    services.record_event(Event.Type.LISTING_VIEWED, category_id=category.pk,
                          properties={"page": page, "result_count": result_count, "filters": filters},
                          **_common(kwargs))


@receiver(signals.added_to_cart, dispatch_uid="behavior_added_to_cart")
def on_added_to_cart(sender, product, quantity, **kwargs) -> None:
    services.record_event(Event.Type.ADDED_TO_CART, product=product, properties={"quantity": quantity},
                          **_common(kwargs))


@receiver(signals.removed_from_cart, dispatch_uid="behavior_removed_from_cart")
def on_removed_from_cart(sender, product, quantity, **kwargs) -> None:
    services.record_event(Event.Type.REMOVED_FROM_CART, product=product, properties={"quantity": quantity},
                          **_common(kwargs))


@receiver(signals.checkout_started, dispatch_uid="behavior_checkout_started")
def on_checkout_started(sender, cart, item_count, subtotal, **kwargs) -> None:
    services.record_event(Event.Type.CHECKOUT_STARTED,
                          properties={"items": item_count, "subtotal": str(subtotal),
                                      "products": list(cart.items.values_list("product_id", flat=True))},
                          **_common(kwargs))


@receiver(signals.order_placed, dispatch_uid="behavior_order_placed")
def on_order_placed(sender, order, **kwargs) -> None:
    lines = list(order.items.values_list("product_id", "quantity", "unit_price"))
    services.record_event(
        Event.Type.ORDER_PLACED,
        properties={"order": order.number, "total": str(order.total),
                    "products": [product_id for product_id, _, _ in lines],
                    "lines": [[product_id, quantity, str(price)] for product_id, quantity, price in lines]},
        **_common(kwargs),
    )


@receiver(signals.review_posted, dispatch_uid="behavior_review_posted")
def on_review_posted(sender, review, **kwargs) -> None:
    services.record_event(Event.Type.REVIEW_POSTED, product=review.product,
                          properties={"rating": review.rating}, **_common(kwargs))


@receiver(search_signals.searched, dispatch_uid="behavior_searched")
def on_searched(sender, query, result_count, **kwargs) -> None:
    services.record_event(Event.Type.SEARCHED, properties={"query": query, "result_count": result_count},
                          **_common(kwargs))


@receiver(user_logged_in, dispatch_uid="behavior_link_visitor_at_login")
def on_login(sender, request, user, **kwargs) -> None:
    if request is not None:
        services.link_visitor(shop_services.request_visitor_id(request), user)
