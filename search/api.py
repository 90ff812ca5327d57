"""The search API, mounted at /api/search/ (search/api_urls.py):

- GET /api/search/?q=...: results, the slots read from the query, corrections and facets as JSON, for headless and
  mobile clients; the same search as the results page (and, like it, recorded as a storefront search).
- GET /api/search/autocomplete?q=...: suggestions for a partly typed query, from the per-process catalogue
  snapshot (a keystroke costs no product query).

Both are public and read-only, so they are throttled per client (scopes "search" and "autocomplete") rather than
authenticated.
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.throttling import AccountAndAddressThrottle
from shop import services as shop

from . import services
from .query import MAX_QUERY_CHARS

MAX_AUTOCOMPLETE_CHARS = 100
MAX_SUGGESTIONS = 10
MAX_API_RESULTS = 48
# Used until settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] names the scope: a debounced search box sends a
# few requests per second of typing at most; a search embeds the query, so it is limited like the page.
DEFAULT_RATES = {"autocomplete": "300/min", "search": "60/min"}


class ScopedPublicThrottle(AccountAndAddressThrottle):
    """A scoped throttle (by account and address) that falls back to DEFAULT_RATES when the scope has no
    configured rate (the plain class raises ImproperlyConfigured)."""

    def get_rate(self) -> str | None:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or DEFAULT_RATES.get(self.scope)


AutocompleteThrottle = ScopedPublicThrottle  # the name earlier code and tests used


def _query_or_error(request: Request, limit: int) -> tuple[str, Response | None]:
    query = request.query_params.get("q", "").strip()
    if not query:
        return query, Response({"q": ["Type at least one character."]}, status=status.HTTP_400_BAD_REQUEST)
    if len(query) > limit:
        return query, Response({"q": [f"At most {limit} characters."]}, status=status.HTTP_400_BAD_REQUEST)
    return query, None


class _Product(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    brand = serializers.CharField()
    category = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    url = serializers.CharField()
    purchasable = serializers.BooleanField()
    rating = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    review_count = serializers.IntegerField()


class _Chip(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["category", "brand", "price", "attribute"])
    facet = serializers.CharField(help_text="For attributes: resolution, size, storage, colour, feature, ...")
    label = serializers.CharField()
    value = serializers.CharField()
    remaining_query = serializers.CharField(help_text="The query without this filter (to remove it).")


class _Slots(serializers.Serializer):
    category = serializers.CharField(allow_null=True, help_text="Category slug, when it is the query's head.")
    brand = serializers.CharField(allow_null=True)
    price_min = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    price_max = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    attributes = serializers.ListField(child=serializers.CharField())
    terms = serializers.ListField(child=serializers.CharField(), help_text="Free words ranked on.")
    intent = serializers.ChoiceField(choices=["browse", "search", "product"])


class _Facet(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class _Facets(serializers.Serializer):
    category = _Facet(many=True)
    brand = _Facet(many=True)


class _Category(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class SearchResponse(serializers.Serializer):
    query = serializers.CharField(help_text="The query as read (normalised, at most 200 characters).")
    count = serializers.IntegerField(help_text="Exact matches (0 when nothing matched).")
    exact = serializers.BooleanField()
    not_found = serializers.BooleanField(help_text="Nothing close to the query is sold here.")
    notice = serializers.CharField()
    corrected_query = serializers.CharField(help_text="What was searched instead, when typos were read.")
    corrections = serializers.DictField(child=serializers.CharField(), help_text="typed word -> read as")
    mode = serializers.ChoiceField(choices=["keyword", "hybrid"])
    slots = _Slots()
    chips = _Chip(many=True)
    facets = _Facets()
    results = _Product(many=True)
    popular = _Product(many=True, help_text="With not_found: popular products, offered as such.")
    nearest_categories = _Category(many=True)


def _product(product) -> dict:
    return {"id": product.pk, "title": product.title, "brand": product.brand, "category": product.category.name,
            "price": product.price, "url": product.get_absolute_url(), "purchasable": product.is_purchasable,
            "rating": product.display_rating, "review_count": product.display_review_count}


def _facets(products) -> dict:
    categories = Counter(p.category.name for p in products)
    brands = Counter(p.brand for p in products if p.brand)
    return {"category": [{"value": v, "count": n} for v, n in categories.most_common()],
            "brand": [{"value": v, "count": n} for v, n in brands.most_common()]}


class SearchView(APIView):
    authentication_classes: list = []  # anonymous by design; throttled per client address
    permission_classes = [AllowAny]
    throttle_classes = [ScopedPublicThrottle]
    throttle_scope = "search"

    @extend_schema(
        summary="Search the catalogue",
        description="The storefront's search as JSON: results best first, the slots read from the query (a "
                    "category is a filter only when it is what the query asks for), removable chips, corrections "
                    "and facets. When nothing close is sold, `not_found` is true, `results` is empty and "
                    "`popular` offers popular products, labelled as such.",
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, required=True,
                                     description=f"1-{MAX_QUERY_CHARS} characters"),
                    OpenApiParameter("limit", OpenApiTypes.INT, description=f"1-{MAX_API_RESULTS} (default 24)")],
        responses={200: SearchResponse, 400: OpenApiResponse(description="Empty or over-long query, bad limit."),
                   429: OpenApiResponse(description="Too many requests.")},
    )
    def get(self, request: Request) -> Response:
        query, error = _query_or_error(request, MAX_QUERY_CHARS)
        if error:
            return error
        raw_limit = request.query_params.get("limit", "24")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_API_RESULTS:
            return Response({"limit": [f"A whole number from 1 to {MAX_API_RESULTS}."]},
                            status=status.HTTP_400_BAD_REQUEST)
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        found = services.search(query, user=user, visitor_id=shop.request_visitor_id(request),
                                limit=int(raw_limit), source=services.SOURCE_API)
        parsed = found.parsed
        products = list(found) if found.exact else []
        body = {
            "query": found.query, "count": found.result_count, "exact": found.exact, "not_found": found.not_found,
            "notice": str(found.notice), "corrected_query": found.corrected_query,
            "corrections": dict(parsed.corrections) if parsed else {}, "mode": found.mode,
            "slots": {"category": parsed.category if parsed else None, "brand": parsed.brand if parsed else None,
                      "price_min": parsed.price_min if parsed else None,
                      "price_max": parsed.price_max if parsed else None,
                      "attributes": list(parsed.attributes) if parsed else [],
                      "terms": list(parsed.terms) if parsed else [], "intent": parsed.intent if parsed else "browse"},
            "chips": [{"kind": c.kind, "facet": c.facet, "label": c.label, "value": c.value,
                       "remaining_query": c.remaining} for c in found.chips],
            "facets": _facets(products),
            "results": [_product(p) for p in (products or ([] if found.not_found else list(found)))],
            "popular": [_product(p) for p in found.suggestions],
            "nearest_categories": [{"name": name, "url": url} for name, url in found.nearest_categories],
        }
        return Response(SearchResponse(body).data)


class AutocompleteView(APIView):
    authentication_classes: list = []  # anonymous by design; throttled per client address
    permission_classes = [AllowAny]
    throttle_classes = [ScopedPublicThrottle]
    throttle_scope = "autocomplete"

    @extend_schema(
        summary="Search suggestions for a partly typed query",
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, description=f"1-{MAX_AUTOCOMPLETE_CHARS} characters")],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="Empty or over-long query."),
                   429: OpenApiResponse(description="Too many requests.")},
    )
    def get(self, request: Request) -> Response:
        query, error = _query_or_error(request, MAX_AUTOCOMPLETE_CHARS)
        if error:
            return error
        items = services.autocomplete(query, limit=MAX_SUGGESTIONS)
        return Response({"query": query, "items": [
            {"kind": item.kind, "label": item.label, "url": item.url} for item in items]})
