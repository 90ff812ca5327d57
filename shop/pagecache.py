"""Whole-page cache for anonymous shoppers on the home, category and product pages.

A page is rendered once per catalogue version and URL with *holes* where a visitor's own parts go:
the CSRF token, the cart badge and the home page's personal rails. Each request fills the holes
from its own session, so a cached page never carries one shopper's token, cart or rails to another.
Signed-in shoppers are never served from here (their header, review form and rails are theirs);
their pages use fragment caching of the shared parts instead (`{% cache ... page_version %}`).

Invalidation is by version: any change to a product (price, stock, copy), category or review, and
any order (stock moved in bulk), replaces the version token, so every cached page and fragment is
stale on the next request. Anything the shop cannot see change (another app's summaries or rails
drawn into the page) is bounded by PAGE_TTL_S.

The cache fails soft (config.cache): with Redis down the version is unknown and pages render
uncached, as before.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from django.contrib import messages
from django.core.cache import cache
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template import Context
from django.template.loader import get_template
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.safestring import SafeString

VERSION_KEY = "shop:pages:version"
PAGE_TTL_S = 300
HEADER = "X-Page-Cache"

# Autoescaping turns "<" into "&lt;" in anything a shopper typed (a review, a search), so no user
# text can contain a hole and have it filled with someone's token.
CSRF_HOLE = SafeString("<!--aisle:csrf-->")
CART_HOLE = SafeString("<!--aisle:cart-count-->")
RAILS_HOLE = SafeString("<!--aisle:home-rails-->")
HOLES = {"csrf_token": CSRF_HOLE, "cart_item_count": CART_HOLE, "rails_hole": RAILS_HOLE}


def current_version(create: bool = True) -> str | None:
    """The catalogue version token (None when the cache is unavailable: then nothing is cached)."""
    version = cache.get(VERSION_KEY)
    if version is None and create:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)
        version = cache.get(VERSION_KEY)
    return version


def catalogue_changed() -> None:
    """A product, price, stock level, category or review changed: every cached page is stale."""
    cache.set(VERSION_KEY, uuid.uuid4().hex, None)


def _eligible(request: HttpRequest) -> bool:
    if request.method not in ("GET", "HEAD") or request.user.is_authenticated:
        return False
    # A pending "added to cart" message belongs to this visitor only; len() does not consume it.
    return not len(messages.get_messages(request))


def _key(request: HttpRequest) -> str:
    return "shop:page:" + hashlib.sha1(request.get_full_path().encode()).hexdigest()


def cart_item_count(request: HttpRequest) -> int:
    """Units in the request's cart (services.get_cart's rules), in one query; no query for a visitor
    without a cart in the session."""
    from .models import CartItem
    from .services import CART_SESSION_KEY

    if request.user.is_authenticated:
        lines = CartItem.objects.filter(cart__user=request.user)
    else:
        cart_id = request.session.get(CART_SESSION_KEY)
        if not cart_id:
            return 0
        lines = CartItem.objects.filter(cart_id=cart_id, cart__user__isnull=True)
    return lines.aggregate(units=Sum("quantity"))["units"] or 0


def _home_rails(request: HttpRequest) -> str:
    # The rails tag alone, without the context processors: it reads only the request.
    return get_template("shop/_home_rails.html").template.render(Context({"request": request}))


def _fill(request: HttpRequest, entry: dict, state: str) -> HttpResponse:
    html = entry["html"]
    if CSRF_HOLE in html:
        html = html.replace(CSRF_HOLE, get_token(request))
    if CART_HOLE in html:
        html = html.replace(CART_HOLE, str(cart_item_count(request)))
    if RAILS_HOLE in html:
        html = html.replace(RAILS_HOLE, _home_rails(request))
    response = HttpResponse(html, status=entry["status"], content_type=entry["content_type"])
    _mark(response, state)
    return response


def _mark(response: HttpResponse, state: str) -> None:
    response[HEADER] = state
    # The HTML carries this visitor's CSRF token and cart badge: no shared cache may keep it, and
    # what the server answers depends on the session cookie (anonymous or signed in).
    patch_vary_headers(response, ("Cookie",))
    patch_cache_control(response, private=True, no_cache=True)


def serve(request: HttpRequest, render: Callable[[dict], tuple[HttpResponse, dict]]) -> tuple[HttpResponse, dict]:
    """(response, meta): the page from the cache, or rendered by `render(holes)` and stored for the next visitor.

    `render` gets the context entries to add (the holes; empty when the page is not to be cached) and
    returns the response and a small dict the view needs even on a hit (a listing's page number and
    result count, for its analytics event); that dict is stored with the page and handed back.
    """
    if not _eligible(request):
        response, meta = render({})
        _mark(response, "bypass")
        return response, meta
    key = _key(request)
    found = cache.get_many([VERSION_KEY, key])
    version = found.get(VERSION_KEY) or current_version()
    entry = found.get(key)
    if version is not None and entry is not None and entry.get("version") == version:
        return _fill(request, entry, "hit"), entry["meta"]
    response, meta = render(HOLES)
    entry = {"version": version, "html": response.content.decode(), "status": response.status_code,
             "content_type": response["Content-Type"], "meta": meta}
    if version is not None and response.status_code in (200, 400):
        cache.set(key, entry, PAGE_TTL_S)
    return _fill(request, entry, "miss" if version is not None else "bypass"), meta
