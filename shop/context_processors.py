from django.core.cache import cache
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from . import pagecache, services


def storefront(request: HttpRequest) -> dict:
    """Navigation categories, the cart badge and the catalogue version (for fragment caching) on every
    storefront page. Both the badge and the version are lazy, so a page that does not show them (or
    fills the badge in later, see shop.pagecache) costs no query and no cache read for them."""
    if request.path.startswith(("/admin/", "/api/")):
        return {}
    nav = cache.get("shop:nav_categories")
    if nav is None:
        nav = [
            {"name": c.name, "slug": c.slug, "children": [{"name": k.name, "slug": k.slug} for k in c.children.all()]}
            for c in services.top_categories()
        ]
        cache.set("shop:nav_categories", nav, 300)
    return {"nav_categories": nav, "cart_item_count": SimpleLazyObject(lambda: pagecache.cart_item_count(request)),
            # Read once per request, however many fragments the page caches.
            "page_version": SimpleLazyObject(pagecache.current_version)}
