"""A stable, anonymous visitor id for every browser (cookie `aisle_vid`).

Unlike the session key, it survives login (Django rotates the session key there), so a
shopper's anonymous browsing can be linked to their account afterwards.
"""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

VISITOR_COOKIE = "aisle_vid"
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600
_VALID = re.compile(r"^[0-9a-f]{32}$")


class VisitorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cookie = request.COOKIES.get(VISITOR_COOKIE, "")
        is_new = not _VALID.match(cookie)
        request.visitor_id = uuid.uuid4().hex if is_new else cookie
        response = self.get_response(request)
        if is_new and not request.path.startswith(("/static/", "/healthz")):
            response.set_cookie(VISITOR_COOKIE, request.visitor_id, max_age=VISITOR_COOKIE_MAX_AGE, httponly=True,
                                samesite="Lax", secure=request.is_secure())
        return response


def visitor_id(request: HttpRequest) -> str:
    """The visitor id of a request ("" for requests that did not pass the middleware)."""
    return getattr(request, "visitor_id", "")
