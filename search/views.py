"""The search results page. Thin: search.services does the work."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from config.ratelimit import ratelimit
from shop import services as shop

from . import services


@require_GET
@ratelimit("search", methods=("GET",))  # each search embeds the query
def results(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    user = request.user if request.user.is_authenticated else None
    found = services.search(query, user=user, visitor_id=shop.request_visitor_id(request))
    return render(request, "search/results.html", {
        "query": found.query,
        "results": found,
        "truncated": found.exact and len(found) >= services.MAX_RESULTS,
        "categories": shop.top_categories() if not found and not found.nearest_categories else [],
    })
