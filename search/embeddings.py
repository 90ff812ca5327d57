"""Product embeddings and the in-process vector index over them.

- `product_text`: what is embedded (title, brand, category path, feature bullets, description).
- `mark_dirty` / `embed_dirty`: the freshness loop. A product saved in the admin is flagged by a
  receiver, and `search.tasks.embed_dirty_products` (queued on commit, debounced, plus a
  minutely beat sweep) re-embeds the flagged ones in batches; unchanged text is skipped.
- `product_index`: a `ml.VectorIndex` of the active products' vectors, one per process, brought
  up to date incrementally when the embeddings change (a version counter in the shared cache
  tells other processes), so a re-embedded product is searchable within seconds everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import ml
from ml.index import vector_from_bytes, vector_to_bytes
from ml.registry import registry as model_registry
from shop import services as shop

from .models import ProductEmbedding

log = logging.getLogger(__name__)
INDEX_VERSION_KEY = "search:embeddings:version"
MAX_TEXT_CHARS = 2000  # the encoder reads 256 tokens at most; more text only costs time


def product_text(product) -> str:
    """The text a product is embedded from: what a shopper would search for."""
    category = product.category
    path = f"{category.parent.name} > {category.name}" if category.parent_id else category.name
    parts = [product.title, f"Brand: {product.brand}" if product.brand else "", f"Category: {path}"]
    parts += [str(bullet) for bullet in (product.features or [])]
    if product.description:
        parts.append(product.description)
    return "\n".join(part for part in parts if part)[:MAX_TEXT_CHARS]


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def embedder_version() -> str:
    """Identifies the serving embedder: vectors from another model are re-embedded."""
    loaded = model_registry.get("embedder")
    return f"{loaded.source}:{loaded.path}"


def mark_dirty(product_ids: Iterable[int]) -> int:
    """Flag products for re-embedding (creating their rows); returns how many were flagged."""
    ids = sorted(set(product_ids))
    if not ids:
        return 0
    existing = set(ProductEmbedding.objects.filter(product_id__in=ids).values_list("product_id", flat=True))
    ProductEmbedding.objects.bulk_create([ProductEmbedding(product_id=i) for i in ids if i not in existing],
                                         ignore_conflicts=True)
    return ProductEmbedding.objects.filter(product_id__in=ids).update(is_dirty=True)


def embed_dirty(*, batch_size: int = 64, limit: int | None = None, everything: bool = False,
                progress: Callable[[int], None] | None = None) -> int:
    """Embed flagged products (or, with `everything`, products with no vector or another model's),
    in batches of one transaction each; returns how many vectors were written."""
    version = embedder_version()
    if everything:
        mark_dirty(products_needing_vectors())
    written, cursor, started = 0, 0, time.perf_counter()
    while limit is None or written < limit:
        with transaction.atomic():
            rows = list(ProductEmbedding.objects.filter(is_dirty=True, product_id__gt=cursor).order_by("product_id")
                        .select_for_update(skip_locked=True)[:batch_size])
            if not rows:
                break
            cursor = rows[-1].product_id
            products = {p.pk: p for p in shop.products_for_indexing(row.product_id for row in rows)}
            texts, todo = [], []
            for row in rows:
                product = products.get(row.product_id)
                if product is None:
                    continue
                text = product_text(product)
                digest = text_hash(text)
                if row.vector is not None and row.text_hash == digest and row.model_version == version:
                    row.is_dirty = False  # saved, but nothing that is embedded changed
                    row.save(update_fields=["is_dirty", "updated_at"])
                    continue
                texts.append(text)
                todo.append((row, digest))
            vectors = ml.embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
            for (row, digest), vector in zip(todo, vectors, strict=True):
                row.vector = vector_to_bytes(vector)
                row.dim = int(vector.shape[0])
                row.text_hash = digest
                row.model_version = version
                row.is_dirty = False
                row.updated_at = timezone.now()
            ProductEmbedding.objects.bulk_update([row for row, _ in todo],
                                                 ["vector", "dim", "text_hash", "model_version", "is_dirty",
                                                  "updated_at"])
            # Also when only the flag was cleared: the product may have gone (in)active, which the
            # process indexes learn from rows updated since their last sync.
            transaction.on_commit(_bump_version)
        written += len(todo)
        if progress:
            progress(len(rows))
    if written:
        seconds = max(time.perf_counter() - started, 1e-3)
        log.info("Embedded %d products in %.1f s (%.1f products/s) with %s", written, seconds, written / seconds,
                 version)
    return written


def products_needing_vectors() -> list[int]:
    """Products with no vector yet, or one from another embedder."""
    current = ProductEmbedding.objects.filter(vector__isnull=False, model_version=embedder_version())
    return list(shop.products_for_indexing().exclude(pk__in=current.values("product_id")).values_list("pk", flat=True))


def _bump_version() -> None:
    try:
        cache.incr(INDEX_VERSION_KEY)
    except ValueError:
        cache.set(INDEX_VERSION_KEY, 1, None)


def _version() -> int:
    return int(cache.get(INDEX_VERSION_KEY) or 0)


def vectors_of(product_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """product id -> its vector, for the ids that have one."""
    rows = ProductEmbedding.objects.filter(product_id__in=list(product_ids), vector__isnull=False)
    return {row.product_id: vector_from_bytes(row.vector) for row in rows.only("product_id", "vector")}


def index_options() -> dict:
    """Exact float32 matrix search (the true top-k) below AISLE_SEARCH_HNSW_FROM products (200k), HNSW above it.

    Measured by bench/search.py on 100k products (the real vectors' noisy copies, text queries): exact float32
    answered in 28 ms p95 with recall 1.0, while HNSW's recall@10 was 0.257 with the defaults (M=16, ef 128/64)
    and 0.387 tuned (M=32, ef 200/256, 4.8 ms p95): near-duplicate products defeat the graph. float16 matrices have
    no BLAS path in numpy (217 ms). Past 200k the tuned graph keeps a query in milliseconds."""
    return {"hnsw_threshold": int(getattr(settings, "AISLE_SEARCH_HNSW_FROM", 200_000)), "connectivity": 32,
            "expansion_add": 200, "expansion_search": 256}


class _ProcessIndex:
    """The active products' vectors in a VectorIndex, kept current incrementally."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: ml.VectorIndex | None = None
        self.version = -1
        self.synced_at = None

    def get(self) -> ml.VectorIndex:
        version = _version()
        with self.lock:
            if self.index is None:
                self._build(version)
            elif version != self.version:
                self._update(version)
            return self.index

    def _rows(self, since=None):
        active = shop.active_products().values("pk")
        rows = ProductEmbedding.objects.filter(vector__isnull=False)
        if since is not None:
            return rows.filter(updated_at__gte=since)
        return rows.filter(product_id__in=active)

    def _build(self, version: int) -> None:
        started = timezone.now()
        ids, vectors = [], []
        for product_id, vector in self._rows().values_list("product_id", "vector").iterator(chunk_size=2000):
            ids.append(product_id)
            vectors.append(vector_from_bytes(vector))
        dim = vectors[0].shape[0] if vectors else model_registry.get("embedder").model.get_embedding_dimension()
        index = ml.VectorIndex(dim, **index_options())
        if ids:
            index.add(np.asarray(ids, dtype=np.int64), np.vstack(vectors))
        self.index, self.version, self.synced_at = index, version, started
        log.info("Built the product vector index: %d products (%s)", len(index), index.backend)

    def _update(self, version: int) -> None:
        started = timezone.now()
        changed = list(self._rows(since=self.synced_at - timezone.timedelta(seconds=5))
                       .values_list("product_id", "vector"))
        active = set(shop.active_products().filter(pk__in=[pid for pid, _ in changed]).values_list("pk", flat=True))
        ids = [pid for pid, _ in changed]
        self.index.remove(np.asarray(ids, dtype=np.int64))
        keep = [(pid, vector) for pid, vector in changed if pid in active]
        if keep:
            self.index.add(np.asarray([pid for pid, _ in keep], dtype=np.int64),
                           np.vstack([vector_from_bytes(vector) for _, vector in keep]))
        self.version, self.synced_at = version, started

    def reset(self) -> None:
        with self.lock:
            self.index, self.version, self.synced_at = None, -1, None


_process_index = _ProcessIndex()


def product_index() -> ml.VectorIndex:
    """The process's vector index of active products (ids are product ids)."""
    return _process_index.get()


def reset_index() -> None:
    """Forget the process's index (tests; after bulk changes made outside embed_dirty)."""
    _process_index.reset()
    embed_query.cache_clear()
    _centroids.update(version=None, value=None)


@lru_cache(maxsize=512)
def embed_query(text: str) -> np.ndarray:
    """A search query's vector (cached: shoppers repeat queries)."""
    return ml.embed([text])[0]


def similar_products(product_id: int, k: int = 10) -> list[tuple[int, float]]:
    """(product id, cosine) of the k active products nearest to this one, itself excluded."""
    vector = vectors_of([product_id]).get(product_id)
    if vector is None:
        return []
    index = product_index()
    if not len(index):
        return []
    ids, scores = index.search(vector[None, :], k=min(k + 1, len(index)))
    pairs = zip(ids[0].tolist(), scores[0].tolist(), strict=True)
    return [(int(i), float(s)) for i, s in pairs if int(i) != product_id and i >= 0][:k]


def dirty_count() -> int:
    return ProductEmbedding.objects.filter(Q(is_dirty=True) | Q(vector__isnull=True)).count()


_centroids: dict = {"version": None, "value": None}
_centroids_lock = threading.Lock()
CENTROID_SAMPLE = 300  # products per category: enough for a stable mean, bounded at any catalogue size


def category_centroids() -> tuple[list[int], np.ndarray]:
    """(category ids, their L2-normalised mean product vectors) over active products, leaf and group categories
    alike (a group's mean covers its children); rebuilt when the embeddings version changes."""
    version = _version()
    with _centroids_lock:
        if _centroids["version"] == version and _centroids["value"] is not None:
            return _centroids["value"]
        parents = dict(shop.products_for_indexing().filter(is_active=True).values_list(
            "category_id", "category__parent_id").distinct())
        members: dict[int, list[int]] = {}
        for pk, category_id in shop.active_products().values_list("pk", "category_id").order_by("pk"):
            for key in (category_id, parents.get(category_id)):
                if key is not None and len(members.setdefault(key, [])) < CENTROID_SAMPLE:
                    members[key].append(pk)
        wanted = {pk for pks in members.values() for pk in pks}
        vectors = vectors_of(wanted)
        ids, means = [], []
        for category_id, pks in members.items():
            found = [vectors[pk] for pk in pks if pk in vectors]
            if found:
                mean = np.mean(np.vstack(found), axis=0)
                ids.append(category_id)
                means.append(mean / (np.linalg.norm(mean) or 1.0))
        value = (ids, np.vstack(means).astype(np.float32) if means else np.zeros((0, 0), dtype=np.float32))
        _centroids.update(version=version, value=value)
        return value
