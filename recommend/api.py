"""Search autocomplete: GET /api/search/autocomplete?q=... (mounted by recommend/api_urls.py).

Public and read-only, so it is throttled per client (scope "autocomplete") rather than authenticated; the
suggestions come from the per-process catalogue snapshot in recommend/search.py, so a keystroke costs no
product query.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from . import search

MAX_AUTOCOMPLETE_CHARS = 100
MAX_SUGGESTIONS = 10
# Used until settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] names the scope: a debounced search box sends a
# few requests per second of typing at most.
DEFAULT_AUTOCOMPLETE_RATE = "300/min"


class AutocompleteThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that falls back to DEFAULT_AUTOCOMPLETE_RATE when the scope has no configured rate
    (the plain class raises ImproperlyConfigured)."""

    def get_rate(self) -> str | None:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or DEFAULT_AUTOCOMPLETE_RATE


class AutocompleteView(APIView):
    authentication_classes: list = []  # anonymous by design; throttled per client address
    permission_classes = [AllowAny]
    throttle_classes = [AutocompleteThrottle]
    throttle_scope = "autocomplete"

    @extend_schema(
        summary="Search suggestions for a partly typed query",
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, description=f"1-{MAX_AUTOCOMPLETE_CHARS} characters")],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="Empty or over-long query."),
                   429: OpenApiResponse(description="Too many requests.")},
    )
    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        if not query:
            return Response({"q": ["Type at least one character."]}, status=status.HTTP_400_BAD_REQUEST)
        if len(query) > MAX_AUTOCOMPLETE_CHARS:
            return Response({"q": [f"At most {MAX_AUTOCOMPLETE_CHARS} characters."]},
                            status=status.HTTP_400_BAD_REQUEST)
        items = search.autocomplete(query, limit=MAX_SUGGESTIONS)
        return Response({"query": query, "items": [
            {"kind": item.kind, "label": item.label, "url": item.url} for item in items]})
