"""Refuse, with a 400, text in the URL or a form that no view can use: NUL characters.

A NUL byte in a search box, a filter, an order number in the path or a form field reached the database,
which refuses it (a 500 on PostgreSQL). One check here, before any view, covers every page and API
query string; JSON bodies are checked by config.parsers.BoundedJSONParser.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError

from .errors import is_api

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MESSAGE = "The request contains a NUL character, which is not allowed in any field."
UNREADABLE_FORM = "The form body could not be read (e.g. a multipart body without a boundary)."


def _has_nul(items) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in items)


def malformed(request: HttpRequest) -> bool:
    if "\x00" in request.path:
        return True
    if _has_nul(request.GET.lists()):
        return True
    if request.method == "POST" and request.content_type in FORM_TYPES:
        return _has_nul(request.POST.lists())
    return False


class RejectMalformedInputMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            bad = malformed(request)
        except MultiPartParserError:  # Django raises it from request.POST: a 500 before, whichever view
            return self.refuse(request, UNREADABLE_FORM)
        if bad:
            return self.refuse(request, MESSAGE)
        return self.get_response(request)

    @staticmethod
    def refuse(request: HttpRequest, message: str) -> HttpResponse:
        if is_api(request):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
