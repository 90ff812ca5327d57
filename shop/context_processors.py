from django.core.cache import cache
from django.http import HttpRequest

from . import services


def storefront(request: HttpRequest) -> dict:
    """Navigation categories and the cart badge on every storefront page."""
    if request.path.startswith(("/admin/", "/api/")):
        return {}
    nav = cache.get("shop:nav_categories")
    if nav is None:
        nav = [
            {"name": c.name, "slug": c.slug, "children": [{"name": k.name, "slug": k.slug} for k in c.children.all()]}
            for c in services.top_categories()
        ]
        cache.set("shop:nav_categories", nav, 300)
    cart = services.get_cart(request)
    count = sum(line.quantity for line in cart.items.all()) if cart else 0
    return {"nav_categories": nav, "cart_item_count": count}
