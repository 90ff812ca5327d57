"""Responses that must not be kept by a browser or proxy cache: a shopper's orders and account.

An order page holds a name, an address and what was bought; on a shared computer the back button or a
cache must not show it to the next person. `Cache-Control: no-store` is added to the shop's account,
order and checkout pages and to every /api/orders/ response, whatever view or status produced them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

NO_STORE_VIEWS = {"shop:account", "shop:order_detail", "shop:checkout"}
NO_STORE_PATHS = ("/api/orders/",)


def is_private(request: HttpRequest) -> bool:
    if request.path.startswith(NO_STORE_PATHS):
        return True
    match = getattr(request, "resolver_match", None)
    return match is not None and match.view_name in NO_STORE_VIEWS


class NoStoreMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_private(request):
            add_never_cache_headers(response)
            patch_cache_control(response, no_store=True, private=True)
        return response
