"""The search app's facade: what other apps, the views, the API and the tasks call.

- `search`: the storefront's search (query understanding, keyword + vector retrieval, fusion, click boost;
  search/engine.py). A storefront or API search sends `searched` (behavior records it); a chat product question
  (`source="chat"`) and the warm-up do not, so the search analytics hold only what shoppers typed.
- `autocomplete`: suggestions for a partly typed query.
- Product vectors for other apps (recommend's content neighbours): `similar_products`, `vectors_of`,
  `product_index`; their freshness: `mark_dirty`, `embed_dirty_products`.
- `warm_up`: load the embedder and build the catalogue snapshot and the vector index before the first shopper.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.utils import timezone
from django.utils.html import format_html

from shop import services as shop

from . import embeddings, engine
from .query import normalise_query
from .signals import searched

log = logging.getLogger(__name__)

SOURCE_STOREFRONT = "storefront"  # the results page
SOURCE_API = "api"  # GET /api/search/ (headless and mobile clients)
SOURCE_CHAT = "chat"  # a product question in the support chat: not a storefront search
SOURCE_INTERNAL = "internal"  # warm-up, benches
RECORDED_SOURCES = frozenset({SOURCE_STOREFRONT, SOURCE_API})
MAX_RESULTS = 48


class SearchResults(list):
    """The products (a list, best first) plus what the page and the API show about the query."""

    def __init__(self, products: Iterable = (), *, query: str = "", exact: bool = True, notice: str = "",
                 corrected_query: str = "", chips: Iterable = (), rail_reason: str = "", parsed=None,
                 mode: str = "keyword", not_found: bool = False, suggestions: Iterable = (),
                 nearest_categories: Iterable = ()) -> None:
        super().__init__(products)
        self.query = query
        self.exact = exact  # False: nothing matched, these are other products instead (see notice)
        self.notice = notice
        self.corrected_query = corrected_query  # "Showing results for ..." only when the correction has hits
        self.chips = list(chips)  # removable filters: .kind, .label, .value, .remaining (the query without it)
        self.rail_reason = rail_reason  # data-rec-reason of the result cards (ties clicks to the query)
        self.parsed = parsed
        self.mode = mode  # "hybrid" when vectors took part
        self.not_found = not_found  # nothing close to the query is sold here
        self.suggestions = list(suggestions)  # popular products shown with a not-found answer, labelled so
        self.nearest_categories = list(nearest_categories)

    @property
    def result_count(self) -> int:
        return len(self) if self.exact else 0


def search(query: str, *, user=None, visitor_id: str = "", limit: int = MAX_RESULTS,
           source: str = SOURCE_STOREFRONT, occurred_at: dt.datetime | None = None,
           simulated: bool = False) -> SearchResults:
    """Search the catalogue. Never raises for any text: a failing engine falls back to the shop's keyword
    filter (logged). Sends `searched` once for storefront and API searches, with the count of exact matches."""
    text = normalise_query(query)
    if not text:
        return SearchResults(query=text)
    try:
        results = _run(text, limit=limit)
    except Exception:  # noqa: BLE001 - a broken index or model must not take search down
        log.exception("Search failed for %r; using the shop's keyword filter", text)
        results = SearchResults(shop.filter_products(shop.ProductFilters(query=text))[:limit], query=text)
    if source in RECORDED_SOURCES:
        searched.send(sender=SearchResults, query=text, result_count=results.result_count, user=user,
                      visitor_id=visitor_id, occurred_at=occurred_at or timezone.now(), simulated=simulated,
                      source=source)
    return results


def _run(text: str, *, limit: int) -> SearchResults:
    outcome = engine.search(text, limit=limit)
    notice = ""
    if outcome.notice == "closest":
        notice = format_html("No exact matches for “{}”; here are the closest products.", text)
    elif outcome.notice == "not_found":
        notice = format_html("We don’t seem to sell anything like “{}”.", text)
    return SearchResults(outcome.products, query=text, exact=outcome.exact, notice=notice,
                         corrected_query=outcome.corrected_query, chips=list(outcome.parsed.chips),
                         rail_reason=f"q:{outcome.key}" if outcome.key else "", parsed=outcome.parsed,
                         mode=outcome.mode, not_found=outcome.notice == "not_found",
                         suggestions=outcome.suggestions, nearest_categories=outcome.nearest_categories)


def autocomplete(text: str, *, limit: int = 10) -> list[engine.Suggestion]:
    return engine.autocomplete(text, limit=limit)


# --- product vectors, for other apps --------------------------------------------------------------------------------


def similar_products(product_id: int, k: int = 10) -> list[tuple[int, float]]:
    """(product id, cosine) of the k active products nearest to this one, itself excluded."""
    return embeddings.similar_products(product_id, k=k)


def vectors_of(product_ids: Iterable[int]) -> dict:
    """product id -> its vector (float32, L2-normalised), for the ids that have one."""
    return embeddings.vectors_of(product_ids)


def product_index():
    """The process's vector index of active products (an ml.VectorIndex whose ids are product ids)."""
    return embeddings.product_index()


def mark_dirty(product_ids: Iterable[int]) -> int:
    return embeddings.mark_dirty(product_ids)


def embed_dirty_products(*, everything: bool = False) -> int:
    """Re-embed the flagged products (the task's body); saves from now on queue another run."""
    from django.core.cache import cache

    from .receivers import QUEUED_KEY

    cache.delete(QUEUED_KEY)  # saves from now on queue another run; earlier ones are selected below
    return embeddings.embed_dirty(everything=everything)


def reset_caches() -> None:
    """Forget the process's catalogue snapshot, vector index and query vectors (tests; after bulk imports)."""
    engine.reset_caches()
    embeddings.reset_index()


def warm_up() -> dict[str, float]:
    """Load the embedder, build the catalogue snapshot and the vector index, embed one query: seconds per step.
    Sends no `searched` event."""
    import time

    from ml.registry import registry

    took = {}
    began = time.perf_counter()
    if engine.vectors_enabled():
        registry.get("embedder")
        took["embedder"] = round(time.perf_counter() - began, 2)
    began = time.perf_counter()
    engine.search("warm up", limit=1)
    took["search-index"] = round(time.perf_counter() - began, 2)
    return took
