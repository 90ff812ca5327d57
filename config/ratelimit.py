"""A small fixed-window rate limit for page forms (the API uses DRF throttles).

Counts live in the cache, so with REDIS_URL they are shared by every web process.
"""

import functools
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def client_key(request: HttpRequest) -> str:
    if request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{request.META.get('REMOTE_ADDR', 'unknown')}"


def is_rate_limited(request: HttpRequest, scope: str, per_minute: int) -> bool:
    window = int(time.time() // 60)
    key = f"ratelimit:{scope}:{client_key(request)}:{window}"
    cache.add(key, 0, timeout=70)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=70)
        count = 1
    return count > per_minute


def ratelimit(scope: str, methods: tuple[str, ...] = ("POST",)) -> Callable:
    """Reject more than AISLE_PAGE_RATE_LIMITS[scope] writes a minute with a 429 page."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limit = settings.AISLE_PAGE_RATE_LIMITS[scope]
            if request.method in methods and is_rate_limited(request, scope, limit):
                return HttpResponse(
                    "Too many requests. Please wait a minute and try again.",
                    status=429,
                    content_type="text/plain",
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
