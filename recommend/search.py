"""Hybrid product search: query understanding, keyword + vector retrieval, fusion, behaviour boost.

`search_backend` is the storefront's search (settings.AISLE_SEARCH_BACKEND; shop.services.search_products
calls it and sends the `searched` event). Per query:

1. `parse_query` (recommend/query.py) splits the text into slots (category, brand, price bounds) and free text;
   typos of vocabulary words come back as corrections, and unknown free words are corrected against the words of
   the catalogue's titles (edit distance, no trigram index needed).
2. Keyword retrieval: PostgreSQL full-text search (title and brand weight A, category B, bullets and description
   C, prefix matching, any word) or, on SQLite, token overlap; restricted to the slots.
3. Vector retrieval: the query's MiniLM vector against the process's product index, restricted to the slots and
   to a minimum cosine so unrelated products do not ride in on fusion. Skipped (logged once) with no embeddings.
4. Reciprocal rank fusion (k=60) of the two rankings, then a small boost for products that shoppers clicked in
   the results of the same normalised query, and a small penalty for what cannot be bought now.
5. Nothing left: the products nearest the query's vector (or, with slots, the slots' own listing), with a notice.

Behaviour signal, chosen and why: `rec_clicked` events of the "search" rail whose reason is the query key
(`q:<sorted normalised words and slots>`, written on each result card). The click names the query it came from,
so one indexed, bounded query (last 30 days, top 50 products by distinct shoppers) answers it, cached for ten
minutes per key; "product viewed after a search" would need a self-join over every shopper's event stream.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.html import format_html

from behavior import services as behavior
from shop import services as shop

from . import embeddings
from .models import ProductEmbedding
from .query import STOPWORDS, ParsedQuery, Vocabulary, normalise_query, parse_query

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 100  # per retriever, before fusion
VECTOR_MIN_SIMILARITY = 0.3  # MiniLM cosine under which a product is not a match (fallback ignores it)
FALLBACK_SIZE = 12
CLICK_WINDOW_DAYS = 30
CLICK_BOOST = 0.5 / (RRF_K + 1)  # at most half of a top rank's fused score: a nudge, not an override
CLICK_CACHE_SECONDS = 600
NOT_BUYABLE_FACTOR = 0.75
VOCABULARY_TTL = 300  # seconds; also rebuilt when the categories or the embeddings version change
MAX_KEYWORD_TERMS = 12


# --- fusion ---------------------------------------------------------------------------------------------------------


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K,
                           weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """(id, score) by descending sum of weight / (k + rank) over the rankings (rank 1 first). Ties keep the order
    in which ids were first seen, so the result is deterministic."""
    scores: dict[int, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: position for position, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda pair: (-pair[1], order[pair[0]]))


# --- per-process catalogue caches -----------------------------------------------------------------------------------


@dataclass
class Catalogue:
    """What query understanding and autocomplete need, built once per process and refreshed on change."""

    vocabulary: Vocabulary
    categories: dict[str, tuple[int, str]]  # slug -> (id, name)
    brands: list[str]
    titles: list[tuple[int, str, str]]  # (product id, title, slug), most reviewed first
    words: list[str] = field(default_factory=list)  # sorted distinct lower-case title/brand words
    word_titles: dict[str, list[int]] = field(default_factory=dict)  # word -> indexes into titles
    fingerprint: tuple = ()
    built_at: float = 0.0


_lock = threading.Lock()
_catalogue: Catalogue | None = None
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def _fingerprint() -> tuple:
    # Categories are few: reading them is one small query, and it notices a changed tree at once.
    rows, stack = [], list(shop.category_tree())
    while stack:
        category = stack.pop()
        rows.append((category.pk, category.slug, category.name, category.parent_id))
        stack.extend(category.subcategories)
    return tuple(sorted(rows)), int(cache.get(embeddings.INDEX_VERSION_KEY) or 0)


def catalogue() -> Catalogue:
    """The process's catalogue snapshot (vocabulary, titles): rebuilt after VOCABULARY_TTL seconds or at once when
    the category tree or the embeddings version (bumped when products are re-embedded) changed."""
    global _catalogue
    fingerprint = _fingerprint()
    current = _catalogue
    if current is not None and current.fingerprint == fingerprint and time.monotonic() - current.built_at < \
            VOCABULARY_TTL:
        return current
    with _lock:
        if _catalogue is current:
            _catalogue = _build_catalogue(fingerprint)
        return _catalogue


def reset_caches() -> None:
    """Forget the catalogue snapshot (tests; after bulk imports)."""
    global _catalogue
    with _lock:
        _catalogue = None


def _build_catalogue(fingerprint: tuple) -> Catalogue:
    rows = fingerprint[0]
    slug_by_id = {pk: slug for pk, slug, _name, _parent in rows}
    categories = [(slug, name, slug_by_id.get(parent)) for _pk, slug, name, parent in rows]
    products = shop.active_products().order_by("-source_review_count", "pk")
    brands = sorted({b for b in products.values_list("brand", flat=True).distinct() if b})
    titles, word_titles = [], {}
    for index, (pk, title, slug, features) in enumerate(products.values_list("pk", "title", "slug", "features")):
        titles.append((pk, title, slug))
        for word in dict.fromkeys(_WORDS.findall(title.lower())):
            word_titles.setdefault(word, []).append(index)
        for bullet in features or []:  # known words too (typo correction), not title suggestions
            for word in _WORDS.findall(str(bullet).lower()):
                word_titles.setdefault(word, [])
    for text in [*brands, *(name for _pk, _slug, name, _parent in rows)]:
        for word in _WORDS.findall(text.lower()):
            word_titles.setdefault(word, [])
    return Catalogue(
        vocabulary=Vocabulary.from_catalogue(categories=categories, brands=brands),
        categories={slug: (pk, name) for pk, slug, name, _parent in rows}, brands=brands, titles=titles,
        words=sorted(word_titles), word_titles=word_titles, fingerprint=fingerprint, built_at=time.monotonic(),
    )


# --- fuzzy words ----------------------------------------------------------------------------------------------------


def words_with_prefix(words: list[str], prefix: str, limit: int = 200) -> list[str]:
    """Sorted `words` that start with `prefix` (bisect: no scan)."""
    start = bisect_left(words, prefix)
    found = []
    for word in words[start:start + limit]:
        if not word.startswith(prefix):
            break
        found.append(word)
    return found


def closest_word(words: list[str], word: str) -> str | None:
    """A catalogue word the given unknown word is probably a typo of: same first letter, similar length, one edit
    (two from 8 letters), best difflib ratio. Known words, numbers and words under 4 letters are left alone."""
    if len(word) < 4 or not word.isalpha() or word in STOPWORDS:
        return None
    start = bisect_left(words, word)
    if start < len(words) and words[start].startswith(word):
        return None  # known, or the start of a known word (prefix search finds it)
    limit = 1 if len(word) < 8 else 2
    best: tuple[float, str] | None = None
    for candidate in words_with_prefix(words, word[0], limit=100_000):
        if abs(len(candidate) - len(word)) > limit or not candidate.isalpha():
            continue
        if _within(word, candidate, limit):
            ratio = SequenceMatcher(None, word, candidate).ratio()
            if best is None or ratio > best[0]:
                best = (ratio, candidate)
    return best[1] if best else None


def _within(a: str, b: str, limit: int) -> bool:
    """Damerau-Levenshtein(a, b) <= limit, with an early exit."""
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if previous2 is not None and i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


# --- retrieval ------------------------------------------------------------------------------------------------------


@dataclass
class Slots:
    """The parsed filters as the catalogue understands them."""

    category_ids: list[int] | None = None
    brand: str | None = None
    price_min: object = None
    price_max: object = None

    def apply(self, queryset: QuerySet) -> QuerySet:
        if self.category_ids is not None:
            queryset = queryset.filter(category_id__in=self.category_ids)
        if self.brand:
            queryset = queryset.filter(brand__iexact=self.brand)
        if self.price_min is not None:
            queryset = queryset.filter(price__gte=self.price_min)
        if self.price_max is not None:
            queryset = queryset.filter(price__lte=self.price_max)
        return queryset


def _slots(parsed: ParsedQuery, snapshot: Catalogue) -> Slots:
    slots = Slots(brand=parsed.brand, price_min=parsed.price_min, price_max=parsed.price_max)
    if parsed.category and parsed.category in snapshot.categories:
        parent_of = {pk: parent for pk, _slug, _name, parent in snapshot.fingerprint[0]}
        root = snapshot.categories[parsed.category][0]
        ids, frontier = [root], {root}
        while frontier:  # descendants, from the rows already in memory
            frontier = {pk for pk, parent in parent_of.items() if parent in frontier}
            ids.extend(frontier)
        slots.category_ids = ids
    return slots


_TS_PIECE = re.compile(r"[a-z0-9]+")


def keyword_ranking(queryset: QuerySet, terms: Sequence[str], limit: int = CANDIDATES) -> list[int]:
    """Product ids matching any of the terms, best first: PostgreSQL full-text search (weighted fields, prefix
    matching) or token overlap elsewhere."""
    terms = [t for t in dict.fromkeys(t.lower() for t in terms) if t][:MAX_KEYWORD_TERMS]
    if not terms:
        return []
    if connection.vendor == "postgresql":
        return _keyword_postgres(queryset, terms, limit)
    return _keyword_overlap(queryset, terms, limit)


def _keyword_postgres(queryset: QuerySet, terms: Sequence[str], limit: int) -> list[int]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    groups = []
    for term in terms:  # "wh-1000xm5" -> (wh:* & 1000xm5:*); words are OR-ed, rank prefers more of them
        pieces = _TS_PIECE.findall(term)
        if pieces:
            groups.append("(" + " & ".join(f"{piece}:*" for piece in pieces) + ")")
    if not groups:
        return []
    query = SearchQuery(" | ".join(groups), search_type="raw", config="english")
    vector = (SearchVector("title", weight="A", config="english") + SearchVector("brand", weight="A", config="english")
              + SearchVector("category__name", weight="B", config="english")
              + SearchVector("features", weight="C", config="english")
              + SearchVector("description", weight="C", config="english"))
    ranked = (queryset.annotate(rank=SearchRank(vector, query)).filter(rank__gt=0)
              .order_by("-rank", "-source_review_count", "pk"))
    return list(ranked.values_list("pk", flat=True)[:limit])


def _keyword_overlap(queryset: QuerySet, terms: Sequence[str], limit: int) -> list[int]:
    condition = Q()
    for term in terms:
        condition |= (Q(title__icontains=term) | Q(brand__icontains=term) | Q(category__name__icontains=term)
                      | Q(features__icontains=term) | Q(description__icontains=term))
    rows = queryset.filter(condition).values_list("pk", "title", "brand", "category__name", "features",
                                                  "description", "source_review_count")[:2000]
    scored = []
    for pk, title, brand, category, features, description, reviews in rows:
        fields = ((3, title), (3, brand), (2, category), (1, " ".join(map(str, features or []))), (1, description))
        score = sum(weight for term in terms for weight, text in fields if term in (text or "").lower())
        scored.append((-score, -reviews, pk))
    return [pk for *_, pk in sorted(scored)[:limit]]


_warned_no_vectors = False


def _warn_once(message: str, *args) -> None:
    global _warned_no_vectors
    if not _warned_no_vectors:
        _warned_no_vectors = True
        log.warning(message, *args)


def vector_neighbours(text: str, k: int) -> list[tuple[int, float]]:
    """(product id, cosine) of the k active products nearest the text; [] with no embeddings (logged once)."""
    if not text or not ProductEmbedding.objects.filter(vector__isnull=False).exists():
        _warn_once("No product embeddings yet: search is keyword-only until `embed_dirty` has run")
        return []
    index = embeddings.product_index()
    if not len(index):
        return []
    vector = np.asarray(embeddings.embed_query(text), dtype=np.float32).reshape(-1)
    if vector.shape[0] != index.dim:
        _warn_once("Query vector has %d dimensions, the product index %d: re-embed the products", vector.shape[0],
                   index.dim)
        return []
    ids, scores = index.search(vector[None, :], k=min(k, len(index)))
    return [(int(i), float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True) if i >= 0]


def vector_ranking(text: str, queryset: QuerySet, *, restricted: bool, limit: int = CANDIDATES,
                   min_similarity: float | None = None) -> list[int]:
    """Ids of the products nearest the text that the queryset (the slots) allows, best first."""
    min_similarity = VECTOR_MIN_SIMILARITY if min_similarity is None else min_similarity
    # With slots, look deeper: the nearest products overall may all lie outside the filter.
    neighbours = vector_neighbours(text, limit * (10 if restricted else 1))
    neighbours = [(pk, score) for pk, score in neighbours if score >= min_similarity]
    if not neighbours:
        return []
    allowed = set(queryset.filter(pk__in=[pk for pk, _ in neighbours]).values_list("pk", flat=True))
    return [pk for pk, _ in neighbours if pk in allowed][:limit]


# --- behaviour ------------------------------------------------------------------------------------------------------


def query_key(parsed: ParsedQuery) -> str:
    """Queries that mean the same share a key: the free words (corrected), attributes and slots, sorted."""
    parts = set(parsed.terms) | set(parsed.attributes)
    parts |= {f"category={parsed.category}"} if parsed.category else set()
    parts |= {f"brand={parsed.brand.lower()}"} if parsed.brand else set()
    if parsed.price_min is not None or parsed.price_max is not None:
        parts.add(f"price={parsed.price_min or ''}-{parsed.price_max or ''}")
    return " ".join(sorted(parts))[:180]


def clicked_for_query(key: str) -> dict[int, int]:
    """product id -> distinct shoppers who clicked it in the results of this query key (30 days, top 50).

    One bounded query on the events' (type, time) index, cached per key: a shopper clicking repeatedly
    counts once, so one visitor cannot push a product up."""
    if not key:
        return {}
    cache_key = f"recommend:search:clicks:{hashlib.sha1(key.encode()).hexdigest()}"
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    now = timezone.now()
    rows = (behavior.events_between(now - timezone.timedelta(days=CLICK_WINDOW_DAYS), now)
            .filter(event_type="rec_clicked", product__isnull=False, properties__rail="search",
                    properties__reason=f"q:{key}")
            .values("product_id").annotate(n=Count("visitor_id", distinct=True)).order_by("-n", "product_id")[:50])
    counts = {row["product_id"]: row["n"] for row in rows}
    cache.set(cache_key, counts, CLICK_CACHE_SECONDS)
    return counts


def click_boost(clicks: int) -> float:
    """Grows with the log of distinct clickers and saturates at 20."""
    return CLICK_BOOST * min(1.0, math.log1p(clicks) / math.log1p(20)) if clicks > 0 else 0.0


# --- the search -----------------------------------------------------------------------------------------------------


@dataclass
class SearchOutcome:
    products: list
    parsed: ParsedQuery
    exact: bool = True
    notice: str = ""
    corrected_query: str = ""
    mode: str = "keyword"  # "hybrid" when vectors took part
    key: str = ""


def _correct_terms(parsed: ParsedQuery, snapshot: Catalogue) -> dict[str, str]:
    """Unknown free words read as the closest catalogue word ("sonny" -> "sony")."""
    corrections = {}
    for term in parsed.terms:
        better = closest_word(snapshot.words, term)
        if better:
            corrections[term] = better
    return corrections


def _corrected_text(text: str, corrections: dict[str, str]) -> str:
    if not corrections:
        return ""
    pattern = re.compile(r"\b(" + "|".join(re.escape(word) for word in corrections) + r")\b", re.IGNORECASE)
    return pattern.sub(lambda match: corrections.get(match.group(1).lower(), match.group(1)), text)


def _semantic_text(parsed: ParsedQuery, corrections: dict[str, str]) -> str:
    """What is embedded: the query without its price words (a vector knows nothing of "$200"; the filter does),
    typos corrected; the category and brand words stay, they help rank within the filter."""
    text = next((chip.remaining for chip in parsed.chips if chip.kind == "price"), parsed.text) or parsed.text
    return _corrected_text(text, corrections) or text


def search(text: str, *, limit: int = 48) -> SearchOutcome:
    """Parse, retrieve, fuse, boost; never raises for any text (the caller logs and falls back if it does)."""
    snapshot = catalogue()
    parsed = parse_query(text, snapshot.vocabulary)
    term_fixes = _correct_terms(parsed, snapshot)
    corrections = {**parsed.corrections, **term_fixes}
    terms = [term_fixes.get(term, term) for term in parsed.terms]
    parsed.terms = terms
    slots = _slots(parsed, snapshot)
    restricted = bool(parsed.has_filters)
    candidates = slots.apply(shop.active_products())
    corrected = _corrected_text(parsed.text, corrections)
    corrected = corrected if corrected.lower() != parsed.text.lower() else ""
    outcome = SearchOutcome(products=[], parsed=parsed, corrected_query=corrected, key=query_key(parsed))

    keyword_terms = terms + [word for value in parsed.attributes for word in value.split()]
    keyword: list[int] = []
    vector: list[int] = []
    if terms or parsed.attributes:
        keyword = keyword_ranking(candidates, keyword_terms)
        vector = vector_ranking(_semantic_text(parsed, corrections), candidates, restricted=restricted)
    elif restricted:  # only slots ("sony headphones under $200"): the filtered listing, most reviewed first
        keyword = list(candidates.order_by(*shop.SORTS["relevance"]).values_list("pk", flat=True)[:CANDIDATES])
    outcome.mode = "hybrid" if vector else "keyword"
    fused = reciprocal_rank_fusion([keyword, vector]) if vector else [
        (pk, 1.0 / (RRF_K + rank)) for rank, pk in enumerate(keyword, start=1)]

    if fused:
        clicks = clicked_for_query(outcome.key)
        products = {p.pk: p for p in shop.get_products([pk for pk, _ in fused])}
        scored = []
        for position, (pk, score) in enumerate(fused):
            product = products.get(pk)
            if product is None:
                continue
            score += click_boost(clicks.get(pk, 0))
            if not product.is_purchasable:
                score *= NOT_BUYABLE_FACTOR
            scored.append((-score, position, product))
        outcome.products = [product for *_, product in sorted(scored, key=lambda row: row[:2])][:limit]
    if not outcome.products:
        outcome.exact = False
        outcome.products = _closest(parsed, candidates, corrected or parsed.text, restricted)
        if outcome.products:
            outcome.notice = "closest"
    return outcome


def _closest(parsed: ParsedQuery, candidates: QuerySet, text: str, restricted: bool) -> list:
    """No match: the slots' own listing when there are slots, else the products nearest the query's vector."""
    if restricted:
        listing = list(candidates.order_by(*shop.SORTS["relevance"])[:FALLBACK_SIZE])
        if listing:
            return listing
    neighbours = vector_neighbours(text, FALLBACK_SIZE)
    return shop.get_products(pk for pk, _ in neighbours)


def search_backend(query: str, *, limit: int = 48, **context) -> shop.SearchResults:
    """The AISLE_SEARCH_BACKEND entry point: `search` shaped as shop.SearchResults for the page."""
    outcome = search(query, limit=limit)
    notice = ""
    if outcome.notice:
        notice = format_html("No exact matches for “{}”; here are the closest products.", query)
    chips = list(outcome.parsed.chips)
    return shop.SearchResults(outcome.products, query=query, exact=outcome.exact, notice=notice,
                              corrected_query=outcome.corrected_query, chips=chips,
                              rail_reason=f"q:{outcome.key}" if outcome.key else "")


# --- autocomplete ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "product", "category" or "brand"
    label: str
    url: str


def _matches(name: str, tokens: list[str]) -> bool:
    words = _WORDS.findall(name.lower())
    return all(any(word.startswith(token) for word in words) for token in tokens)


def autocomplete(text: str, *, limit: int = 10) -> list[Suggestion]:
    """Up to `limit` suggestions for a partly typed query: categories and brands whose words start with the typed
    ones, then product titles (every typed word a word prefix, the last one possibly unfinished), most reviewed
    first. A word that matches nothing is read as its closest catalogue word."""
    from django.urls import reverse

    snapshot = catalogue()
    tokens = _WORDS.findall(normalise_query(text).lower())[:8]
    if not tokens:
        return []
    fixed = []
    for token in tokens:
        if not words_with_prefix(snapshot.words, token, limit=1):
            token = closest_word(snapshot.words, token) or token
        fixed.append(token)
    tokens = fixed
    suggestions: list[Suggestion] = []
    for slug, (_pk, name) in snapshot.categories.items():
        if _matches(name, tokens):
            suggestions.append(Suggestion("category", name, reverse("shop:category", args=[slug])))
    category_slug = parse_query(text, snapshot.vocabulary).category
    if category_slug and category_slug in snapshot.categories and not any(s.kind == "category" for s in suggestions):
        name = snapshot.categories[category_slug][1]  # "earbud" -> Headphones & Earbuds, via the synonyms
        suggestions.append(Suggestion("category", name, reverse("shop:category", args=[category_slug])))
    for brand in snapshot.brands:
        if _matches(brand, tokens):
            suggestions.append(Suggestion("brand", brand, f"{reverse('shop:search')}?q={_quote(brand)}"))
    suggestions = suggestions[:4]
    for _pk, title, slug in _titles_matching(snapshot, tokens, limit - len(suggestions)):
        suggestions.append(Suggestion("product", title, reverse("shop:product", args=[slug])))
    return suggestions[:limit]


def _quote(text: str) -> str:
    from urllib.parse import quote_plus

    return quote_plus(text)


def _titles_matching(snapshot: Catalogue, tokens: list[str], limit: int) -> Iterable[tuple[int, str, str]]:
    if limit <= 0:
        return []
    found: set[int] | None = None
    for token in tokens:
        indexes: set[int] = set()
        for word in words_with_prefix(snapshot.words, token, limit=5000):
            indexes.update(snapshot.word_titles.get(word, ()))
        found = indexes if found is None else found & indexes
        if not found:
            return []
    return [snapshot.titles[i] for i in sorted(found)[:limit]]  # indexes follow popularity order
