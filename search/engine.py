"""Hybrid product search: query understanding, keyword + vector retrieval, fusion, behaviour boost.

`search` is the engine behind search.services.search (which shapes the page's results and sends `searched`).
Per query:

1. `parse_query` (search/query.py) splits the text into slots (category, brand, price bounds) and free text;
   typos of vocabulary words come back as corrections, and unknown free words are corrected against the words of
   the catalogue's titles and bullets by the same corrector (search/typos.py).
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

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from behavior import services as behavior
from shop import services as shop

from . import embeddings
from .models import ProductAttributes, ProductDocument, ProductEmbedding
from .query import (
    NEVER_CORRECTED,
    STOPWORDS,
    Chip,
    ParsedQuery,
    Vocabulary,
    demote_category,
    named_only_as_modifier,
    normalise_query,
    parse_query,
    promote_category,
    soft_words,
)
from .typos import Corrector

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 100  # per retriever, before fusion
VECTOR_MIN_SIMILARITY = 0.3  # MiniLM cosine under which a product is not a match (fallback ignores it)
FALLBACK_SIZE = 12
CLICK_WINDOW_DAYS = 30
CLICK_BOOST = 0.5 / (RRF_K + 1)  # at most half of a top rank's fused score: a nudge, not an override
CLICK_CACHE_SECONDS = 600
NOT_BUYABLE_FACTOR = 0.75
# A query that only names a category asks for the thing itself: products whose titles name it only to say what
# they are for ("TV Mount" for "tv") come after the ones it heads.
ACCESSORY_FACTOR = 0.6
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
    corrector: Corrector | None = None  # over `words`
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
    from .attributes import ensure_attributes

    ensure_attributes()  # bulk-imported products sent no post_save: their chips' attributes are parsed here once
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
        corrector=Corrector(word_titles, protected=STOPWORDS | NEVER_CORRECTED, not_targets=STOPWORDS),
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


def closest_word(snapshot: Catalogue, word: str) -> str | None:
    """A catalogue word the given unknown word is probably a typo of (search/typos.py's rules); a word that starts
    a known word is left alone (prefix search finds it)."""
    word = word.lower()
    if words_with_prefix(snapshot.words, word, limit=1):
        return None
    return snapshot.corrector.correct(word) if snapshot.corrector else None


# --- retrieval ------------------------------------------------------------------------------------------------------


@dataclass
class Slots:
    """The parsed filters as the catalogue understands them."""

    category_ids: list[int] | None = None
    brand: str | None = None
    price_min: object = None
    price_max: object = None
    attributes: Q | None = None  # over search.ProductAttributes: what the attribute chips say, exactly

    @property
    def any(self) -> bool:
        return bool(self.category_ids is not None or self.brand or self.price_min is not None
                    or self.price_max is not None or self.attributes is not None)

    def apply(self, queryset: QuerySet) -> QuerySet:
        if self.attributes is not None:
            queryset = queryset.filter(pk__in=ProductAttributes.objects.filter(self.attributes).values("product_id"))
        if self.category_ids is not None:
            queryset = queryset.filter(category_id__in=self.category_ids)
        if self.brand:
            queryset = queryset.filter(brand__iexact=self.brand)
        if self.price_min is not None:
            queryset = queryset.filter(price__gte=self.price_min)
        if self.price_max is not None:
            queryset = queryset.filter(price__lte=self.price_max)
        return queryset


def _descendants(snapshot: Catalogue, root: int) -> list[int]:
    parent_of = {pk: parent for pk, _slug, _name, parent in snapshot.fingerprint[0]}
    ids, frontier = [root], {root}
    while frontier:  # descendants, from the rows already in memory
        frontier = {pk for pk, parent in parent_of.items() if parent in frontier}
        ids.extend(frontier)
    return ids


_INCHES = re.compile(r"([0-9.]+)(?:-([0-9.]+))?\"")
_CAPACITY = re.compile(r"([0-9.]+)(gb|tb|mb)")


def attribute_filter(facet: str, value: str) -> Q | None:
    """The exact filter over search.ProductAttributes that an attribute chip stands for, or None (not a filter)."""
    from decimal import Decimal, InvalidOperation

    try:
        if facet == "resolution":
            return Q(resolution=value)
        if facet == "size" and (match := _INCHES.fullmatch(value)):
            low = Decimal(match.group(1))
            high = Decimal(match.group(2) or match.group(1))
            return Q(size_inches__gte=int(low), size_inches__lt=int(high) + 1)  # 27" is 27.0-27.9 ("27″ class")
        if facet == "refresh":
            return Q(refresh_hz__gte=int(value.removesuffix("hz")))  # a 165Hz screen does 144Hz
        if facet in ("storage", "memory") and (match := _CAPACITY.match(value)):
            amount = Decimal(match.group(1)) * {"tb": 1024, "gb": 1, "mb": Decimal(1) / 1024}[match.group(2)]
            return Q(storage_gb=int(amount)) if facet == "storage" else Q(memory_gb=int(amount))
    except (InvalidOperation, ValueError):
        return None
    if facet in ("colour", "feature"):
        return Q(tags__contains=f"|{value}|")
    return None


def _slots(parsed: ParsedQuery, snapshot: Catalogue) -> Slots:
    slots = Slots(brand=parsed.brand, price_min=parsed.price_min, price_max=parsed.price_max)
    if parsed.category and parsed.category in snapshot.categories:
        slots.category_ids = _descendants(snapshot, snapshot.categories[parsed.category][0])
    for chip in parsed.chips:
        if chip.kind == "attribute" and (condition := attribute_filter(chip.facet, chip.value)) is not None:
            slots.attributes = condition if slots.attributes is None else slots.attributes & condition
    return slots


_TS_PIECE = re.compile(r"[a-z0-9]+")


def keyword_ranking(queryset: QuerySet, terms: Sequence[str], limit: int = CANDIDATES, *,
                    require_all: bool = False) -> list[int]:
    """Product ids matching any of the terms (with `require_all`, every one), best first: PostgreSQL full-text
    search (weighted fields, prefix matching) or token overlap elsewhere."""
    terms = [t for t in dict.fromkeys(t.lower() for t in terms) if t][:MAX_KEYWORD_TERMS]
    if not terms:
        return []
    if connection.vendor == "postgresql":
        return _keyword_postgres(queryset, terms, limit, require_all)
    return _keyword_overlap(queryset, terms, limit, require_all)


def _keyword_postgres(queryset: QuerySet, terms: Sequence[str], limit: int, require_all: bool = False) -> list[int]:
    """Over the stored, GIN-indexed documents (search.ProductDocument, kept by triggers): the index finds the
    matching rows and only those are ranked."""
    from django.contrib.postgres.search import SearchQuery, SearchRank

    groups = []
    for term in terms:  # "wh-1000xm5" -> (wh:* & 1000xm5:*); words are OR-ed, rank prefers more of them
        pieces = _TS_PIECE.findall(term)
        if pieces:
            groups.append("(" + " & ".join(f"{piece}:*" for piece in pieces) + ")")
    if not groups:
        return []
    query = SearchQuery((" & " if require_all else " | ").join(groups), search_type="raw", config="english")
    ranked = (ProductDocument.objects.filter(document=query, product_id__in=queryset.values("pk"))
              .annotate(rank=SearchRank(F("document"), query))
              .order_by("-rank", "-product__source_review_count", "product_id"))
    return list(ranked.values_list("product_id", flat=True)[:limit])


def _keyword_overlap(queryset: QuerySet, terms: Sequence[str], limit: int, require_all: bool = False) -> list[int]:
    condition = Q()
    for term in terms:
        matches = (Q(title__icontains=term) | Q(brand__icontains=term) | Q(category__name__icontains=term)
                   | Q(features__icontains=term) | Q(description__icontains=term))
        condition = (condition & matches) if require_all else (condition | matches)
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


def vectors_enabled() -> bool:
    """AISLE_SEARCH_VECTORS=0 makes search keyword-only (no model is loaded): for tests and tiny hosts."""
    return bool(getattr(settings, "AISLE_SEARCH_VECTORS", True))


def vector_neighbours(text: str, k: int) -> list[tuple[int, float]]:
    """(product id, cosine) of the k active products nearest the text; [] with no embeddings (logged once)."""
    if not text or not vectors_enabled() or not ProductEmbedding.objects.filter(vector__isnull=False).exists():
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
    # With slots, look deeper: the nearest products overall may all lie outside the filter. Twice the limit first
    # (a category query's neighbours are mostly inside its category), ten times when that left too few.
    ranked: list[int] = []
    for depth in ((2, 10) if restricted else (1,)):
        neighbours = [(pk, score) for pk, score in vector_neighbours(text, limit * depth) if score >= min_similarity]
        if not neighbours:
            return []
        allowed = set(queryset.filter(pk__in=[pk for pk, _ in neighbours]).values_list("pk", flat=True))
        ranked = [pk for pk, _ in neighbours if pk in allowed][:limit]
        if len(ranked) >= limit or len(neighbours) < limit * depth:
            break  # enough, or the whole catalogue (above the floor) was already looked at
    return ranked


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
    cache_key = f"search:clicks:{hashlib.sha1(key.encode()).hexdigest()}"
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
    suggestions: list = field(default_factory=list)  # popular products offered when nothing close is sold
    nearest_categories: list = field(default_factory=list)  # (name, url) of the categories nearest the query


def _correct_terms(parsed: ParsedQuery, snapshot: Catalogue) -> dict[str, str]:
    """Unknown free words read as the closest catalogue word ("sonny" -> "sony")."""
    corrections = {}
    for term in parsed.terms:
        better = closest_word(snapshot, term)
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


def _query_vector(text: str) -> np.ndarray | None:
    """The query's vector, or None when search is keyword-only (switched off, or no embeddings yet: logged once)."""
    if not text or not vectors_enabled():
        return None
    if not ProductEmbedding.objects.filter(vector__isnull=False).exists():
        _warn_once("No product embeddings yet: search is keyword-only until `embed_dirty` has run")
        return None
    vector = np.asarray(embeddings.embed_query(text), dtype=np.float32).reshape(-1)
    index = embeddings.product_index()
    return vector if len(index) and vector.shape[0] == index.dim else None


def nearest_categories(vector: np.ndarray | None, snapshot: Catalogue, k: int = 3) -> list[int]:
    """Ids of the k categories whose mean product vector is nearest the query's vector, nearest first."""
    if vector is None:
        return []
    ids, centroids = embeddings.category_centroids()
    if not ids or centroids.shape[1] != vector.shape[0]:
        return []
    order = np.argsort(-(centroids @ vector), kind="stable")
    return [ids[i] for i in order[:k]]


def _agrees(slug: str, nearest: list[int], snapshot: Catalogue) -> bool:
    """The query's vector is nearest this category (or one inside it, or its group)."""
    if slug not in snapshot.categories or not nearest:
        return False
    family = set(_descendants(snapshot, snapshot.categories[slug][0]))
    return nearest[0] in family


def _decide_soft_categories(parsed: ParsedQuery, vector, snapshot: Catalogue) -> set[str]:
    """Soft categories ("battery life", "watch movies", "case for iphone") the query's vector agrees with become
    the filter when no head category was read; returns the words of the others, which the keyword side drops
    (they name another kind of product than the one wanted and would pull it in)."""
    if not parsed.soft_categories:
        return set()
    nearest = nearest_categories(vector, snapshot, k=1)
    if parsed.category and not _agrees(parsed.category, nearest, snapshot) and any(
            _agrees(slug, nearest, snapshot) for slug in parsed.soft_categories):
        # The head word has another meaning here ("ipad keyboard" is not a piano): the vector outvotes the parse.
        demote_category(parsed)
    dropped: set[str] = set()
    for slug in list(parsed.soft_categories):
        if not parsed.category and _agrees(slug, nearest, snapshot):
            promote_category(parsed, slug, snapshot.vocabulary)
        else:
            dropped |= soft_words(parsed, slug)
    return dropped


def _specific_category_words(parsed: ParsedQuery, snapshot: Catalogue) -> list[str]:
    """Words that chose the category but say more than its name ("doorbell" -> Home Security Systems & Cameras,
    "karaoke machine" -> Musical Instruments): they still rank within it, so a doorbell comes before a floodlight."""
    chip = next((c for c in parsed.chips if c.kind == "category"), None)
    if chip is None or chip.value not in snapshot.categories:
        return []
    named = {_stem_word(w) for w in _WORDS.findall(snapshot.categories[chip.value][1].lower())}
    left = {w.lower() for w in _WORDS.findall(chip.remaining)}
    return [w for w in dict.fromkeys(_WORDS.findall(parsed.text.lower()))
            if w not in left and w not in STOPWORDS and _stem_word(w) not in named and w.isalpha()]


def _category_words(parsed: ParsedQuery) -> list[str]:
    """The words with which the shopper named the category ("game console", "video doorbell"): they rank inside it."""
    chip = next((c for c in parsed.chips if c.kind == "category"), None)
    if chip is None:
        return []
    left = {w.lower() for w in _WORDS.findall(chip.remaining)}
    return [w for w in dict.fromkeys(_WORDS.findall(parsed.text.lower()))
            if w not in left and w not in STOPWORDS and w.isalpha()]


def _stem_word(word: str) -> str:
    from .query import _stem

    return _stem(word)


def _budget(parsed: ParsedQuery, slots: Slots, candidates: QuerySet) -> QuerySet:
    """"cheap"/"budget": the cheaper half of what else was asked for, and the chip says the price it filters at."""
    from decimal import Decimal

    if "budget" not in parsed.attributes:
        return candidates
    prices = sorted(candidates.exclude(price__isnull=True).values_list("price", flat=True)[:5000])
    if not prices:
        return candidates
    median = Decimal(prices[len(prices) // 2]).quantize(Decimal(1))
    if slots.price_max is None or median < slots.price_max:
        slots.price_max = median
        candidates = candidates.filter(price__lte=median)
        parsed.chips = [Chip(c.kind, f"Budget: under ${median:,}", c.value, c.remaining, c.facet)
                        if c.kind == "attribute" and c.facet == "budget" else c for c in parsed.chips]
    return candidates


def search(text: str, *, limit: int = 48) -> SearchOutcome:
    """Parse, retrieve, fuse, boost; never raises for any text (the caller logs and falls back if it does)."""
    snapshot = catalogue()
    parsed = parse_query(text, snapshot.vocabulary)
    term_fixes = _correct_terms(parsed, snapshot)
    corrections = {**parsed.corrections, **term_fixes}
    parsed.terms = [term_fixes.get(term, term) for term in parsed.terms]
    semantic = _semantic_text(parsed, corrections)
    named_category = any(chip.kind == "category" for chip in parsed.chips)
    wants_vector = parsed.terms or parsed.attributes or parsed.soft_categories or named_category
    vector = _query_vector(semantic) if wants_vector else None
    dropped = _decide_soft_categories(parsed, vector, snapshot)
    terms = parsed.terms
    slots = _slots(parsed, snapshot)
    restricted = slots.any
    candidates = _budget(parsed, slots, slots.apply(shop.active_products()))
    corrected = _corrected_text(parsed.text, corrections)
    corrected = corrected if corrected.lower() != parsed.text.lower() else ""
    outcome = SearchOutcome(products=[], parsed=parsed, corrected_query=corrected, key=query_key(parsed))

    specific = _specific_category_words(parsed, snapshot)
    keyword_terms = [t for t in terms if t not in dropped] or terms
    keyword_terms = keyword_terms + specific + [word for chip in parsed.chips if chip.kind == "attribute"
                                                and chip.facet in ("feature", "colour") for word in chip.value.split()]
    keyword: list[int] = []
    ranked_vector: list[int] = []
    listing: list[int] = []
    in_category = slots.category_ids is not None
    # Inside a named category the filter already keeps unrelated products out, so the vector ranks all of it (no
    # similarity floor): "television" puts TVs above the TV mounts that share the category, and a category-only
    # query ("game console") is ranked by what it says, not by popularity.
    floor = 0.0 if in_category else None
    if restricted and not terms and not parsed.attributes and (vector is None or not in_category):
        # Only slots that no vector can rank ("sony under $200", or search is keyword-only): the filtered listing,
        # most reviewed first.
        listing = list(candidates.order_by(*shop.SORTS["relevance"]).values_list("pk", flat=True)[:CANDIDATES])
    if keyword_terms:
        keyword = keyword_ranking(candidates, keyword_terms)
    if vector is not None and (keyword_terms or in_category):
        ranked_vector = vector_ranking(semantic, candidates, restricted=restricted, min_similarity=floor)
    outcome.mode = "hybrid" if ranked_vector else "keyword"

    if not restricted and terms and vector is not None and _nothing_close(terms, vector):
        return _not_found(outcome, vector, snapshot)

    only_category = in_category and not terms and not parsed.attributes
    fused = reciprocal_rank_fusion([ranking for ranking in (keyword, ranked_vector, listing) if ranking])
    if fused and vector is not None and len(keyword_terms) > 1:
        fused = _without_junk(fused, vector, candidates, keyword_terms)
    category_words = []
    if only_category:  # the words typed and the category's own name ("television" is sold as "TV")
        named = snapshot.categories[parsed.category][1] if parsed.category in snapshot.categories else ""
        category_words = _category_words(parsed) + [w for w in _WORDS.findall(named.lower()) if w not in STOPWORDS]
    if fused:
        clicks = clicked_for_query(outcome.key)
        # Only what can still reach the page is loaded: the factors below only lower scores, so a product past
        # fused rank 3 * limit would reach the page only if twice a page of products above it were demoted; the
        # click boost raises, so clicked products are always kept.
        fused = [(pk, score) for position, (pk, score) in enumerate(fused) if position < 3 * limit or pk in clicks]
        products = {p.pk: p for p in shop.get_products([pk for pk, _ in fused])}
        scored = []
        for position, (pk, score) in enumerate(fused):
            product = products.get(pk)
            if product is None:
                continue
            score += click_boost(clicks.get(pk, 0))
            if not product.is_purchasable:
                score *= NOT_BUYABLE_FACTOR
            if category_words and named_only_as_modifier(product.title, category_words):
                score *= ACCESSORY_FACTOR  # "tv": the TVs before the TV mounts and the mounting service
            scored.append((-score, position, product))
        outcome.products = [product for *_, product in sorted(scored, key=lambda row: row[:2])][:limit]
    if not outcome.products:
        outcome.exact = False
        outcome.corrected_query = ""  # never "showing results for" a reading that found nothing
        outcome.products = _closest(parsed, candidates, corrected or parsed.text, restricted)
        if outcome.products:
            outcome.notice = "closest"
    return outcome


def _without_junk(fused: list[tuple[int, float]], vector: np.ndarray, candidates: QuerySet,
                  terms: list[str]) -> list[tuple[int, float]]:
    """Drop products that matched only some of the words and that the query's vector finds unrelated ("watch" in
    "something to watch movies" pulling in smartwatches): a partial keyword hit is not a match on its own."""
    index = embeddings.product_index()
    complete = set(keyword_ranking(candidates, terms, limit=CANDIDATES, require_all=True))
    kept = []
    for pk, score in fused:
        if pk in complete or pk not in index:
            kept.append((pk, score))
        elif float(index.vector(pk) @ vector) >= JUNK_SIMILARITY:
            kept.append((pk, score))
    return kept


JUNK_SIMILARITY = 0.2  # MiniLM cosine under which a partial keyword hit is unrelated to the query (README)
NOT_FOUND_SIMILARITY = 0.35  # best product cosine under which nothing sold is close: absent products topped 0.32
# on the real catalogue (lawn mower 0.23, yoga mat 0.32), sold ones asked for by need 0.38+ (README, Search)
SUGGESTED_POPULAR = 8


def _nothing_close(terms: list[str], vector: np.ndarray) -> bool:
    """No product has every free word, and none is close in meaning: the shop does not sell it."""
    if keyword_ranking(shop.active_products(), terms, limit=1, require_all=True):
        return False
    index = embeddings.product_index()
    _ids, scores = index.search(vector[None, :], k=1)
    return not scores.size or float(scores[0][0]) < NOT_FOUND_SIMILARITY


def _not_found(outcome: SearchOutcome, vector: np.ndarray, snapshot: Catalogue) -> SearchOutcome:
    """Say so, offer the nearest categories and popular items (labelled as such by the page), and no grid."""
    from django.urls import reverse

    outcome.exact = False
    outcome.products = []
    outcome.corrected_query = ""
    outcome.notice = "not_found"
    names = {pk: (slug, name) for slug, (pk, name) in snapshot.categories.items()}
    outcome.nearest_categories = [(names[pk][1], reverse("shop:category", args=[names[pk][0]]))
                                  for pk in nearest_categories(vector, snapshot, k=3) if pk in names]
    outcome.suggestions = list(shop.active_products().order_by(*shop.SORTS["relevance"])[:SUGGESTED_POPULAR])
    return outcome


def _closest(parsed: ParsedQuery, candidates: QuerySet, text: str, restricted: bool) -> list:
    """No match: the slots' own listing when there are slots, else the products nearest the query's vector."""
    if restricted:
        listing = list(candidates.order_by(*shop.SORTS["relevance"])[:FALLBACK_SIZE])
        if listing:
            return listing
    neighbours = vector_neighbours(text, FALLBACK_SIZE)
    return shop.get_products(pk for pk, _ in neighbours)


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
            token = closest_word(snapshot, token) or token
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
            suggestions.append(Suggestion("brand", brand, f"{reverse('search:results')}?q={_quote(brand)}"))
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
