"""Presentation helpers for the storefront templates: prices, stars, discounts, page links."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.http import HttpRequest

from shop.validators import COUNTRIES

register = template.Library()
_COUNTRY_NAMES = dict(COUNTRIES)


@register.filter
def money(value) -> str:
    """Decimal -> "$1,234.50"; blank for a missing price (the template says why)."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


@register.filter
def discount_percent(product) -> int | None:
    """Whole-percent saving of a discounted product, e.g. 25 for $75 instead of $100."""
    saving = getattr(product, "discount_amount", None)
    if not saving or not product.compare_at_price:
        return None
    return int((saving / product.compare_at_price * 100).to_integral_value())


@register.inclusion_tag("shop/_stars.html")
def stars(rating, count: int | None = None, size: str = "") -> dict:
    """Five stars filled to the rating, drawn by CSS from a percentage (no images, no JS)."""
    try:
        value = float(rating) if rating is not None else None
    except (TypeError, ValueError):
        value = None
    if value is not None:
        value = max(0.0, min(5.0, value))
    return {
        "value": value,
        "percent": round(value * 20) if value is not None else 0,
        "count": count,
        "size": size,
    }


@register.simple_tag(takes_context=True)
def page_url(context, number: int, param: str = "page") -> str:
    """The current URL's query string with one page parameter changed, so filters,
    sorting and the search query survive paging."""
    param = param or "page"  # an include without `param` passes ""
    request: HttpRequest | None = context.get("request")
    query = request.GET.copy() if request is not None else None
    if query is None:
        return f"?{param}={number}"
    query[param] = str(number)
    return "?" + query.urlencode()


@register.filter
def hue_shift(hue, degrees) -> int:
    """Rotate a placeholder hue for the extra gallery thumbnails."""
    try:
        return (int(hue) + int(degrees)) % 360
    except (TypeError, ValueError):
        return 210


@register.filter
def country_name(code: str) -> str:
    """"US" -> "United States" for the countries we ship to; unknown codes pass through."""
    return _COUNTRY_NAMES.get(str(code).upper(), code)
