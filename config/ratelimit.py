"""Rate limits of page forms (the API uses DRF throttles, config/throttling.py), through django-ratelimit.

Each request is counted against its address (config.clientip, so X-Forwarded-For is believed only as
far as AISLE_TRUSTED_PROXIES says) and, when signed in, also against its account; either one over
AISLE_PAGE_RATE_LIMITS[scope] per minute gets a 429 page. Counts live in the cache, shared by every web
process with REDIS_URL; when Redis is down the limits fail open (RATELIMIT_FAIL_OPEN, README "Reliability").
"""

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import is_ratelimited

TOO_MANY = "Too many requests. Please wait a minute and try again."


def _account(group: str, request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return f"user:{user.pk}" if user is not None and user.is_authenticated else ""


def is_rate_limited(request: HttpRequest, scope: str, per_minute: int, methods: tuple[str, ...] = ("POST",)) -> bool:
    """Count this request (by address, and by account when signed in) and say whether it is over the limit."""
    rate = f"{per_minute}/m"
    group = f"aisle.{scope}"
    # Both counters advance on every request, so neither a new address nor a new account starts afresh.
    by_address = is_ratelimited(request, group=group, key="ip", rate=rate, method=list(methods), increment=True)
    by_account = bool(_account(group, request)) and is_ratelimited(
        request, group=group + ".account", key=_account, rate=rate, method=list(methods), increment=True)
    return by_address or by_account


def ratelimit(scope: str, methods: tuple[str, ...] = ("POST",)) -> Callable:
    """Reject more than AISLE_PAGE_RATE_LIMITS[scope] requests (of `methods`) a minute with a 429 page."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limit = settings.AISLE_PAGE_RATE_LIMITS[scope]
            if request.method in methods and is_rate_limited(request, scope, limit, methods):
                response = HttpResponse(TOO_MANY, status=429, content_type="text/plain")
                response["Retry-After"] = "60"
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
