"""Recommendation rails rendered into the shop's templates: `{% load recommend_tags %}`, then
`{% home_rails %}`, `{% product_rails product %}` or `{% cart_rails lines %}`.

Thin: each tag asks `recommend.services` for its rails. A rail is never worth an error page, so
anything the recommender raises is logged and the page renders without it.
"""

import hashlib
import logging
from collections.abc import Callable

from django import template

from shop import services as shop

from .. import services

log = logging.getLogger(__name__)
register = template.Library()
TEMPLATE = "recommend/_rail.html"
# Every product field a rail's card shows (shop/_product_card.html): a change to any of them is a new key.
CARD_FIELDS = ("pk", "updated_at", "title", "brand", "slug", "price", "compare_at_price", "stock", "image_hue",
               "display_rating", "display_review_count")


def _rails(name: str, compute: Callable[[], list]) -> dict:
    try:
        rails = compute()
    except Exception:  # noqa: BLE001 - degrade to no rail, never to a 500
        log.exception("Could not build the %s recommendation rails", name)
        return {"rails": []}
    return {"rails": rails, "rails_key": _markup_key(rails)}


def _markup_key(rails: list) -> str:
    """What the rails' HTML depends on, hashed: rails, reasons and every card field. The storefront pages
    around the rails are cached (shop.pagecache) while the rails are drawn per request; their markup is
    cached under this key by recommend/_rail.html, shared by every shopper shown the same picks (all
    new visitors see the cold-start rails)."""
    shown = [(rail.key, rail.title, rail.subtitle, [
        (item.reason, *(getattr(item.product, name) for name in CARD_FIELDS)) for item in rail.items
    ]) for rail in rails]
    return hashlib.sha1(repr(shown).encode()).hexdigest()


def _shopper(context) -> tuple[object | None, str]:
    request = context.get("request")
    if request is None:
        return None, ""
    user = getattr(request, "user", None)
    return (user if user is not None and user.is_authenticated else None), shop.request_visitor_id(request)


@register.inclusion_tag(TEMPLATE, takes_context=True)
def home_rails(context) -> dict:
    """"Recommended for you" and "Because you viewed X" for the current shopper."""
    user, visitor_id = _shopper(context)
    return _rails("home", lambda: services.home_rails(user=user, visitor_id=visitor_id))


@register.inclusion_tag(TEMPLATE)
def product_rails(product) -> dict:
    """"Frequently bought together" and "Related products" of a product page."""
    return _rails("product", lambda: services.product_rails(product.pk))


@register.inclusion_tag(TEMPLATE)
def cart_rails(lines) -> dict:
    """"Complete your order" for the cart's lines."""
    return _rails("cart", lambda: services.cart_rails([line.product for line in lines]))
