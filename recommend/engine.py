"""The recommendation engine behind the storefront rails: training, the trained model, and scoring.

Three kinds of evidence are blended (`recommend.algorithms` does the maths, this module feeds it the
shop's data):

* collaborative, trained by the scheduled `train_collaborative` task from the behaviour events:
  item-item co-interaction neighbours (`ItemKNN`: shoppers who viewed / carted / bought one item also
  did so with another), order co-occurrence ("bought together"), and an implicit-ALS factor model;
* content: cosine similarity of the product embeddings (the search app's `search.services`), which also covers
  products nobody has touched yet;
* popularity: trending products (behaviour analytics) and the trained interaction counts, used for
  cold start and to fill short rails.

What is trained is one artifact per run, `AISLE_MODEL_DIR/recommend/collaborative-<version>.npz`
(plain arrays, loaded with allow_pickle=False), announced by a version key in the shared cache; the
item neighbour lists are also published to the cache per product, so product and cart pages read
them without loading the artifact. The personal part is computed at request time from the
shopper's latest events (ALS fold-in via `score_history`, item-item from their recent items), so a
new view shows in the next page's rail; callers cache the result keyed on the shopper's latest
event id.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django.utils import timezone

from behavior import services as behavior
from search import services as search
from shop import services as shop

from .algorithms import ImplicitALS, Interactions, ItemKNN, WeightingStats, normalise_scores

log = logging.getLogger(__name__)

# Blend weights of the personal ranking, tuned offline on MovieLens-100k by recommend.evaluation
# (tune_hybrid_weights on a validation split carved out of training): item-kNN 0.30, ALS 0.60,
# content 0.10, most-popular 0.00. Override with settings.AISLE_RECOMMEND_WEIGHTS.
DEFAULT_WEIGHTS = {"itemknn": 0.30, "als": 0.60, "content": 0.10, "popular": 0.00}

# How much each action says about what a shopper wants (views < carts < orders).
ACTION_WEIGHTS = {
    "product_viewed": 1.0, "rec_clicked": 1.0, "review_posted": 2.0, "added_to_cart": 3.0,
    "checkout_started": 4.0, "order_placed": 5.0,
}
BASKET_TYPES = ("checkout_started", "order_placed")
SEARCH_WEIGHT = 0.5           # a searched query's top keyword matches count like half a view
HALF_LIFE_DAYS = 7.0          # recency: an action a week old counts half
HISTORY_DAYS = 90             # the raw-event retention: older events are rolled up per day
HISTORY_ROWS = 300            # per-shopper cap on events read at request time (bots, load tests)
SEED_ITEMS = 20               # the shopper's strongest items that seed item-item scoring
CONTENT_SEEDS = 8
NEIGHBOURS = 30               # neighbours kept per item in the trained artifact
CANDIDATES = 100              # ALS candidates per shopper
TRAINING_DAYS = 90
VERSION_KEY = "recommend:collab:version"
TRAIN_LOCK_KEY = "recommend:collab:training"
TRENDING_KEY = "recommend:trending"
TRENDING_TTL = 600
NEIGHBOUR_TTL = 3 * 24 * 3600  # outlives several training runs; the artifact file is the fallback


def blend_weights() -> dict[str, float]:
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(getattr(settings, "AISLE_RECOMMEND_WEIGHTS", None) or {})
    return weights


def model_dir() -> Path:
    return Path(settings.AISLE_MODEL_DIR) / "recommend"


# ------------------------------------------------------------------------------------ the artifact


@dataclass
class CollaborativeModel:
    """What `train_collaborative` learnt: neighbour lists, popularity and the ALS item factors."""

    version: str
    item_ids: np.ndarray                 # column -> product id
    coview: sp.csr_matrix                # items x items, top NEIGHBOURS per row (row = source item)
    together: sp.csr_matrix              # items x items, order co-occurrence counts, top NEIGHBOURS per row
    popularity: np.ndarray               # shoppers per item
    als: ImplicitALS | None = None
    item_index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_index = {int(pid): col for col, pid in enumerate(self.item_ids.tolist())}

    def neighbours(self, kind: str, product_id: int) -> list[tuple[int, float]]:
        col = self.item_index.get(product_id)
        if col is None:
            return []
        matrix = self.coview if kind == "coview" else self.together
        start, end = matrix.indptr[col], matrix.indptr[col + 1]
        pairs = zip(matrix.indices[start:end].tolist(), matrix.data[start:end].tolist(), strict=True)
        ranked = sorted(((int(self.item_ids[c]), float(v)) for c, v in pairs), key=lambda p: (-p[1], p[0]))
        return ranked[:NEIGHBOURS]

    def popular(self, limit: int = 200) -> list[int]:
        order = np.argsort(-self.popularity, kind="stable")[:limit]
        return [int(self.item_ids[c]) for c in order if self.popularity[c] > 0]


def _top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries (neighbour lists stay small however big the catalogue)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if end == start:
            continue
        data, indices = matrix.data[start:end], matrix.indices[start:end]
        keep = np.argsort(-data, kind="stable")[:k]
        rows += [row] * len(keep)
        cols += indices[keep].tolist()
        vals += data[keep].tolist()
    return sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=matrix.shape)


def _save(model: CollaborativeModel, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"collaborative-{model.version}.npz"
    arrays = {
        "item_ids": model.item_ids.astype(np.int64), "popularity": model.popularity.astype(np.float32),
        "coview_indptr": model.coview.indptr, "coview_indices": model.coview.indices, "coview_data": model.coview.data,
        "together_indptr": model.together.indptr, "together_indices": model.together.indices,
        "together_data": model.together.data,
    }
    if model.als is not None:
        als = model.als
        arrays.update(
            als_item_factors=als.item_factors, als_idf=als.stats.idf,
            als_params=np.asarray([als.factors, als.regularization, als.alpha, als.stats.mean_length], np.float64))
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # readers never see half a file
    pointer_tmp = folder / f".current.{uuid.uuid4().hex}"
    pointer_tmp.write_text(model.version)
    os.replace(pointer_tmp, folder / "current")
    # Keep the two newest artifacts: a process still loading the previous one finds it.
    for old in sorted(folder.glob("collaborative-*.npz"), key=lambda p: p.stat().st_mtime)[:-2]:
        old.unlink(missing_ok=True)
    return path


def _restore_als(item_factors: np.ndarray, idf: np.ndarray, params: np.ndarray) -> ImplicitALS:
    """An ImplicitALS that can fold in new histories, rebuilt from saved arrays (no pickle)."""
    from implicit.cpu.als import AlternatingLeastSquares

    factors, regularization, alpha, mean_length = params.tolist()
    als = ImplicitALS(factors=int(factors), regularization=regularization, alpha=alpha, num_threads=1)
    als.model = AlternatingLeastSquares(factors=int(factors), regularization=regularization, alpha=alpha,
                                        num_threads=1, random_state=als.seed)
    als.model.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    als.model.user_factors = np.zeros((0, int(factors)), dtype=np.float32)
    als.item_factors = als.model.item_factors
    als.stats = WeightingStats(idf=idf.astype(np.float32), mean_length=float(mean_length))
    als.interactions = sp.csr_matrix((0, item_factors.shape[0]), dtype=np.float32)
    return als


def _load(path: Path, version: str) -> CollaborativeModel:
    with np.load(path, allow_pickle=False) as data:
        n = len(data["item_ids"])
        coview = sp.csr_matrix((data["coview_data"], data["coview_indices"], data["coview_indptr"]), shape=(n, n))
        together = sp.csr_matrix((data["together_data"], data["together_indices"], data["together_indptr"]),
                                 shape=(n, n))
        als = (_restore_als(data["als_item_factors"], data["als_idf"], data["als_params"])
               if "als_item_factors" in data else None)
        return CollaborativeModel(version=version, item_ids=data["item_ids"].copy(), coview=coview,
                                  together=together, popularity=data["popularity"].copy(), als=als)


def current_version() -> str | None:
    """The version of the newest trained artifact (the cache announces it; the folder remembers it)."""
    version = cache.get(VERSION_KEY)
    if version:
        return version
    pointer = model_dir() / "current"
    try:
        version = pointer.read_text().strip() or None
    except OSError:
        return None
    if version:
        cache.set(VERSION_KEY, version, None)
    return version


class _ProcessModel:
    """The trained artifact, loaded once per process and reloaded when a newer version is announced."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.model: CollaborativeModel | None = None

    def get(self) -> CollaborativeModel | None:
        version = current_version()
        if version is None:
            return None
        with self.lock:
            if self.model is None or self.model.version != version:
                path = model_dir() / f"collaborative-{version}.npz"
                try:
                    self.model = _load(path, version)
                except (OSError, KeyError, ValueError):
                    log.exception("Could not load the recommender artifact %s; serving without it", path)
                    return self.model  # the previous one, if any, beats nothing
            return self.model

    def reset(self) -> None:
        with self.lock:
            self.model = None


_process_model = _ProcessModel()


def trained_model() -> CollaborativeModel | None:
    return _process_model.get()


def reset() -> None:
    """Forget the process's loaded artifact (tests; after replacing the files by hand)."""
    _process_model.reset()


def _neighbour_key(version: str, kind: str, product_id: int) -> str:
    return f"recommend:nb:{version}:{kind}:{product_id}"


def neighbours(kind: str, product_ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
    """Trained neighbour lists ("coview" or "together") of products: one cache round trip, the
    loaded artifact for what the cache lost."""
    version = current_version()
    if version is None or not product_ids:
        return {}
    keys = {_neighbour_key(version, kind, pid): pid for pid in product_ids}
    found = cache.get_many(list(keys))
    result = {keys[key]: [tuple(pair) for pair in value] for key, value in found.items()}
    missing = [pid for key, pid in keys.items() if key not in found]
    if missing:
        model = trained_model()
        if model is not None:
            refill = {}
            for pid in missing:
                result[pid] = model.neighbours(kind, pid)
                refill[_neighbour_key(model.version, kind, pid)] = result[pid]
            cache.set_many(refill, NEIGHBOUR_TTL)
    return result


# ---------------------------------------------------------------------------------------- training


@dataclass
class TrainingReport:
    version: str | None
    shoppers: int
    products: int
    interactions: int
    orders: int
    als: bool
    seconds: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _shopper_key(user_id: int | None, visitor_id: str) -> str | None:
    if user_id is not None:
        return f"u{user_id}"
    return f"v{visitor_id}" if visitor_id else None


def _basket_products(properties) -> list[int]:
    ids = properties.get("products") if isinstance(properties, dict) else None
    return [pk for pk in (ids if isinstance(ids, list) else []) if isinstance(pk, int) and not isinstance(pk, bool)]


def _progress(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


def train(*, days: int = TRAINING_DAYS, progress: bool = False, now: dt.datetime | None = None) -> TrainingReport:
    """Learn the collaborative part from the last `days` of events, save it and publish it."""
    started = timezone.now()
    now = now or started
    events = behavior.events_between(now - dt.timedelta(days=days), now + dt.timedelta(minutes=5))
    catalogue = list(shop.active_products().order_by("pk").values_list("pk", flat=True))
    col_of = {pid: col for col, pid in enumerate(catalogue)}

    # (shopper, item) -> strongest action weight: repeated views are one signal, an order outweighs them.
    pairs: dict[tuple[str, int], float] = {}
    plain = [t for t in ACTION_WEIGHTS if t not in BASKET_TYPES]
    rows = (events.filter(event_type__in=plain, product__isnull=False).order_by()
            .values_list("user_id", "visitor_id", "event_type", "product_id").iterator(chunk_size=5000))
    for user_id, visitor_id, kind, product_id in _progress(rows, progress, desc="reading events", unit="event"):
        shopper = _shopper_key(user_id, visitor_id)
        if shopper is None or product_id not in col_of:
            continue
        key = (shopper, product_id)
        pairs[key] = max(pairs.get(key, 0.0), ACTION_WEIGHTS[kind])
    baskets: list[list[int]] = []
    rows = (events.filter(event_type__in=BASKET_TYPES).order_by()
            .values_list("user_id", "visitor_id", "event_type", "properties").iterator(chunk_size=2000))
    for user_id, visitor_id, kind, properties in _progress(rows, progress, desc="reading baskets", unit="basket"):
        products = [pid for pid in dict.fromkeys(_basket_products(properties)) if pid in col_of]
        if kind == "order_placed" and products:
            baskets.append(products)
        shopper = _shopper_key(user_id, visitor_id)
        for product_id in products if shopper else ():
            key = (shopper, product_id)
            pairs[key] = max(pairs.get(key, 0.0), ACTION_WEIGHTS[kind])

    data = Interactions.from_pairs(((s, p, w) for (s, p), w in pairs.items()), item_ids=catalogue, binary=False)
    matrix = data.matrix
    n_items = len(catalogue)
    steps = _progress(["item-kNN", "bought together", "ALS"], progress, desc="fitting", unit="model")
    coview = together = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    als = None
    for step in steps:
        if step == "item-kNN" and matrix.nnz:
            knn = ItemKNN(neighbours=NEIGHBOURS, shrink=10.0, weighting="none").fit(matrix)
            coview = _top_per_row(knn.similarity.T, NEIGHBOURS)  # row = the item a shopper has
        elif step == "bought together" and baskets:
            rows_, cols_ = zip(*[(b, col_of[pid]) for b, basket in enumerate(baskets) for pid in basket],
                               strict=True)
            basket_matrix = sp.csr_matrix((np.ones(len(rows_), np.float32), (rows_, cols_)),
                                          shape=(len(baskets), n_items))
            together = _top_per_row(basket_matrix.T @ basket_matrix, NEIGHBOURS)
        elif step == "ALS" and matrix.shape[0] >= 2 and np.count_nonzero(np.diff(matrix.tocsc().indptr)) >= 2:
            factors = int(getattr(settings, "AISLE_RECOMMEND_ALS_FACTORS", 64))
            als = ImplicitALS(factors=factors, show_progress=progress).fit(matrix)
    popularity = np.bincount(matrix.indices, minlength=n_items).astype(np.float32) if n_items else np.zeros(0)
    version = timezone.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    model = CollaborativeModel(version=version, item_ids=np.asarray(catalogue, dtype=np.int64), coview=coview,
                               together=together, popularity=popularity, als=als)
    _save(model, model_dir())
    _publish(model, progress)
    return TrainingReport(version=version, shoppers=matrix.shape[0], products=n_items, interactions=int(matrix.nnz),
                          orders=len(baskets), als=als is not None,
                          seconds=round((timezone.now() - started).total_seconds(), 2))


def _publish(model: CollaborativeModel, progress: bool = False) -> None:
    """Neighbour lists into the shared cache under the new version, then announce the version."""
    ids = model.item_ids.tolist()
    chunk = 1000
    for start in _progress(range(0, len(ids), chunk), progress, desc="publishing neighbours", unit="chunk"):
        batch = {}
        for pid in ids[start:start + chunk]:
            for kind in ("coview", "together"):
                batch[_neighbour_key(model.version, kind, pid)] = model.neighbours(kind, pid)
        cache.set_many(batch, NEIGHBOUR_TTL)
    cache.set(VERSION_KEY, model.version, None)


def train_once(**kwargs) -> TrainingReport | None:
    """`train`, unless another run holds the lock (a slow run must not pile up behind the schedule)."""
    if not cache.add(TRAIN_LOCK_KEY, 1, 3600):
        log.info("Recommender training already running; skipped")
        return None
    try:
        return train(**kwargs)
    finally:
        cache.delete(TRAIN_LOCK_KEY)


# ------------------------------------------------------------------------------------- the shopper


@dataclass
class History:
    """A shopper's recent actions, recency-weighted, as the scorers need them."""

    weights: dict[int, float] = field(default_factory=dict)          # product -> decayed weight
    actions: dict[int, str] = field(default_factory=dict)            # product -> strongest action
    searched: dict[int, str] = field(default_factory=dict)           # product -> query it matched
    categories: dict[int, float] = field(default_factory=dict)       # category -> decayed weight
    bought: set[int] = field(default_factory=set)
    last_viewed: list[int] = field(default_factory=list)             # most recent first
    sequence: list[int] = field(default_factory=list)                # viewed / carted, oldest first

    @property
    def empty(self) -> bool:
        return not self.weights

    def seeds(self, n: int) -> list[int]:
        return [pid for pid, _ in sorted(self.weights.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def shopper_events(*, user=None, visitor_id: str = ""):
    return behavior.events_of_shopper(user=user, visitor_id=visitor_id)


def latest_event_id(*, user=None, visitor_id: str = "") -> int | None:
    """The shopper's newest event id (one indexed query): the cache key of their personal rails."""
    if not visitor_id and not (user is not None and user.is_authenticated):
        return None
    return shopper_events(user=user, visitor_id=visitor_id).aggregate(latest=Max("id"))["latest"]


def load_history(*, user=None, visitor_id: str = "", now: dt.datetime | None = None) -> History:
    """The shopper's last HISTORY_DAYS of actions (capped), and everything they ever bought."""
    history = History()
    if not visitor_id and not (user is not None and user.is_authenticated):
        return history
    now = now or timezone.now()
    events = shopper_events(user=user, visitor_id=visitor_id)
    kinds = [*ACTION_WEIGHTS, "searched", "listing_viewed"]
    rows = list(events.filter(event_type__in=kinds, occurred_at__gte=now - dt.timedelta(days=HISTORY_DAYS))
                .order_by("-occurred_at", "-id")
                .values_list("event_type", "product_id", "category_id", "occurred_at", "properties")[:HISTORY_ROWS])
    decay = math.log(2) / (HALF_LIFE_DAYS * 86400)
    rank = {kind: i for i, kind in enumerate(ACTION_WEIGHTS)}
    queries: list[tuple[str, float]] = []
    for kind, product_id, category_id, moment, properties in rows:
        recency = math.exp(-decay * max(0.0, (now - moment).total_seconds()))
        if kind == "searched":
            text = " ".join(str((properties or {}).get("query", "")).split())[:100]
            if text and text.lower() not in {q.lower() for q, _ in queries}:
                queries.append((text, recency))
            continue
        if kind == "listing_viewed":
            if category_id is not None:
                history.categories[category_id] = history.categories.get(category_id, 0.0) + 0.5 * recency
            continue
        products = _basket_products(properties) if kind in BASKET_TYPES else []
        if product_id is not None:
            products.append(product_id)
        for pid in products:
            history.weights[pid] = history.weights.get(pid, 0.0) + ACTION_WEIGHTS[kind] * recency
            if rank[kind] > rank.get(history.actions.get(pid, ""), -1):
                history.actions[pid] = kind
        if kind == "product_viewed" and product_id is not None and product_id not in history.last_viewed:
            history.last_viewed.append(product_id)
        if kind in ("product_viewed", "rec_clicked", "added_to_cart") and product_id is not None:
            if not history.sequence or history.sequence[-1] != product_id:
                history.sequence.append(product_id)
        if category_id is not None:
            history.categories[category_id] = history.categories.get(category_id, 0.0) + ACTION_WEIGHTS[kind] * recency
    history.sequence.reverse()  # read newest first; the next-item model wants them in order
    # Everything ever bought (not only the window): never recommend it again "for you".
    for properties in events.filter(event_type="order_placed").order_by("-occurred_at").values_list(
            "properties", flat=True)[:200]:
        history.bought.update(_basket_products(properties))
    # The last two searches: their top keyword matches stand for what the shopper was looking for.
    for text, recency in queries[:2]:
        matches = shop.filter_products(shop.ProductFilters(query=text, in_stock=True)).values_list("pk", flat=True)
        for pid in list(matches[:5]):
            if pid not in history.weights:
                history.weights[pid] = SEARCH_WEIGHT * recency
                history.searched[pid] = text
    return history


# -------------------------------------------------------------------------------------- scoring


@dataclass
class Scored:
    """Blended scores per candidate product; per candidate, the seed item that explains it best and
    the component that did ("itemknn", "als" or "content")."""

    scores: dict[int, float] = field(default_factory=dict)
    because: dict[int, int] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)

    def ranked(self) -> list[int]:
        return ranked(self.scores)


def _minmax(values: dict[int, float]) -> dict[int, float]:
    if not values:
        return {}
    if len(values) == 1:
        return dict.fromkeys(values, 1.0)  # one candidate: it is the best there is
    ids = list(values)
    normalised = normalise_scores(np.asarray([[values[i] for i in ids]], dtype=np.float64))[0]
    return dict(zip(ids, normalised.tolist(), strict=True))


def content_neighbours(seed_weights: dict[int, float], k: int = 30) -> dict[int, list[tuple[int, float]]]:
    """Per seed product, its k nearest active products by embedding (seeds without a vector: none)."""
    vectors = search.vectors_of(list(seed_weights))
    if not vectors:
        return {}  # no vector: never touch the index (building an empty one would load the embedder)
    index = search.product_index()
    if not len(index):
        return {}
    seeds = list(vectors)
    ids, sims = index.search(np.vstack([vectors[s] for s in seeds]), k=min(k + 1, len(index)))
    return {seed: [(int(i), float(s)) for i, s in zip(ids[row].tolist(), sims[row].tolist(), strict=True)
                   if int(i) != seed and i >= 0][:k]
            for row, seed in enumerate(seeds)}


def _accumulate(lists: dict[int, list[tuple[int, float]]], seed_weights: dict[int, float]
                ) -> tuple[dict[int, float], dict[int, tuple[float, int]]]:
    """Weighted sum of neighbour similarities per candidate, and the seed contributing most to each."""
    scores: dict[int, float] = {}
    because: dict[int, tuple[float, int]] = {}
    for seed, pairs in lists.items():
        weight = seed_weights.get(seed, 0.0)
        for pid, sim in pairs:
            value = weight * sim
            if value <= 0:
                continue
            scores[pid] = scores.get(pid, 0.0) + value
            if value > because.get(pid, (0.0, 0))[0]:
                because[pid] = (value, seed)
    return scores, because


def _als_part(seeds: dict[int, float]) -> tuple[dict[int, float], dict[int, tuple[float, int]]]:
    """ALS scores for the seeds folded in as a new shopper (one least-squares solve), and per
    candidate the seed whose item factors are closest (to explain the pick)."""
    model = trained_model()
    if model is None or model.als is None:
        return {}, {}
    known = {model.item_index[pid]: w for pid, w in seeds.items() if pid in model.item_index}
    if not known:
        return {}, {}
    cols = list(known)
    row = sp.csr_matrix((np.asarray([min(known[c], 10.0) for c in cols], np.float32), ([0] * len(cols), cols)),
                        shape=(1, len(model.item_ids)))
    raw = model.als.score_history(row)[0]
    raw[cols] = -np.inf
    top = [c for c in np.argsort(-raw, kind="stable")[:CANDIDATES] if np.isfinite(raw[c])]
    if not top:
        return {}, {}
    factors = model.als.item_factors
    unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-9)
    sims = unit[top] @ unit[cols].T
    scores = {int(model.item_ids[c]): float(raw[c]) for c in top}
    because = {int(model.item_ids[c]): (float(sims[r].max()), int(model.item_ids[cols[int(sims[r].argmax())]]))
               for r, c in enumerate(top)}
    return scores, because


def _component(name: str, compute: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """One component's scores; a failing one (a corrupt artifact, the vector index) is left out."""
    try:
        return compute()
    except Exception:  # noqa: BLE001 - the other components still make a rail
        log.exception("Recommender component %s failed; blending without it", name)
        return {}, {}


def score_items(seed_weights: dict[int, float], *, exclude: Iterable[int] = (), use_als: bool = True,
                weights: dict[str, float] | None = None) -> Scored:
    """Blend item-kNN, ALS fold-in and content similarity for a weighted set of seed products.

    Each component's candidate scores are min-max normalised (as in `algorithms.Hybrid`) and
    summed with the blend weights. Seeds and `exclude` are never candidates.
    """
    weights = weights or blend_weights()
    seeds = dict(sorted(seed_weights.items(), key=lambda kv: (-kv[1], kv[0]))[:SEED_ITEMS])
    exclude = set(exclude) | set(seeds)
    parts: dict[str, tuple[dict[int, float], dict[int, tuple[float, int]]]] = {}
    if weights.get("itemknn", 0) > 0:
        parts["itemknn"] = _component("itemknn", lambda: _accumulate(neighbours("coview", list(seeds)), seeds))
    if weights.get("content", 0) > 0:
        strongest = dict(list(seeds.items())[:CONTENT_SEEDS])
        parts["content"] = _component("content", lambda: _accumulate(content_neighbours(strongest), strongest))
    if use_als and weights.get("als", 0) > 0:
        parts["als"] = _component("als", lambda: _als_part(seeds))
    result = Scored()
    strength: dict[int, float] = {}
    for name, (values, because) in parts.items():
        candidates = {pid: v for pid, v in values.items() if pid not in exclude}
        for pid, value in _minmax(candidates).items():
            contribution = weights[name] * value
            result.scores[pid] = result.scores.get(pid, 0.0) + contribution
            if pid in because and contribution >= strength.get(pid, -1.0):
                strength[pid] = contribution
                result.because[pid] = because[pid][1]
                result.source[pid] = name
    return result


def related_scores(product_id: int, *, weights: dict[str, float] | None = None) -> Scored:
    """Items related to one product: co-interaction neighbours and content similarity, blended with
    the tuned item-kNN and content weights (ALS is left out: on one item it only restates the
    co-interactions, less precisely)."""
    weights = weights or blend_weights()
    return score_items({product_id: 1.0}, use_als=False,
                       weights={"itemknn": weights.get("itemknn", 0.0), "content": weights.get("content", 0.0)})


def bought_together(product_ids: Sequence[int]) -> dict[int, tuple[float, int]]:
    """product -> (orders it shares with the given products, summed; the one it was bought with most)."""
    totals: dict[int, float] = {}
    best: dict[int, tuple[float, int]] = {}
    for seed, pairs in neighbours("together", list(product_ids)).items():
        for pid, count in pairs:
            totals[pid] = totals.get(pid, 0.0) + count
            if count > best.get(pid, (0.0, 0))[0]:
                best[pid] = (count, seed)
    return {pid: (total, best[pid][1]) for pid, total in totals.items()}


# ------------------------------------------------------------------------------------- popularity


def trending_ids(limit: int = 50) -> list[int]:
    """Trending products (behaviour analytics), cached shop-wide for a few minutes."""
    cached = cache.get(TRENDING_KEY)
    if cached is None:
        try:
            cached = [item.product_id for item in behavior.trending_products(limit=limit)]
        except Exception:  # noqa: BLE001 - popularity from the trained model still fills the rails
            log.exception("Trending products unavailable; recommending without them")
            cached = []
        cache.set(TRENDING_KEY, cached, TRENDING_TTL)
    return cached


def popular_ids(limit: int = 200) -> list[int]:
    """Products most shoppers interacted with in the training window (empty before any training)."""
    model = trained_model()
    return model.popular(limit) if model is not None else []


def ranked(scored: dict[int, float]) -> list[int]:
    """Product ids by descending score (ties: lower id first, so rails are stable)."""
    return [pid for pid, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))]
