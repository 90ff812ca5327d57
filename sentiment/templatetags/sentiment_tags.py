import logging

from django import template

from .. import services

log = logging.getLogger(__name__)
register = template.Library()


@register.inclusion_tag("sentiment/_product_summary.html")
def product_sentiment(product) -> dict:
    """"Shoppers love: ... · complain about: ..." from the precomputed, cached summary."""
    try:
        summary = services.storefront_summary(product.pk)
    except Exception:  # noqa: BLE001 - a summary is never worth an error page
        log.exception("Could not show the sentiment summary of product %s", getattr(product, "pk", None))
        summary = None
    return {"summary": summary}
