"""Errors the API answers in JSON, always, including during outages of the database or Redis.

DRF turns its own exceptions into JSON (config/api.py); anything else a view raises reaches
`ApiErrorMiddleware`, and an error raised outside a view (another middleware, e.g. the session
store with the database down) reaches `handler500`. An outage of a dependency is a 503 with
Retry-After, so clients retry; any other failure is a plain JSON 500 with no internals.
"""

from __future__ import annotations

import logging
import sys

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.defaults import page_not_found
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

OUTAGES = (DatabaseError, RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
RETRY_AFTER_S = "5"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_error(exc: BaseException | None) -> JsonResponse:
    if isinstance(exc, OUTAGES):
        response = JsonResponse({"detail": "The shop is briefly unavailable. Please retry in a few seconds."},
                                status=503)
        response["Retry-After"] = RETRY_AFTER_S
        return response
    return JsonResponse({"detail": "Server error. It has been logged; please try again later."}, status=500)


class ApiErrorMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api(request):
            return None
        log.error("API error on %s %s", request.method, request.path, exc_info=exception)
        return json_error(exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A URL no route matches (e.g. a text id where a number goes): JSON on /api/, as the schema says."""
    if is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON on /api/ (the beacon checks CSRF for everyone), Django's page elsewhere."""
    if is_api(request):
        return JsonResponse({"detail": f"CSRF check failed: {reason} Send the X-CSRFToken header."}, status=403)
    return default_csrf_failure(request, reason)


def handler500(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if is_api(request):
        return json_error(exc)
    status = 503 if isinstance(exc, OUTAGES) else 500
    try:
        body = loader.get_template("500.html").render({}, None)
    except Exception:  # noqa: BLE001 - the template may need what is down
        body = "<h1>Server error</h1><p>Please try again in a moment.</p>"
    response = HttpResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_S
    return response
