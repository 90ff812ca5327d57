"""Recommender algorithms on implicit feedback: plain numpy/scipy, no Django.

The shop's engine and the offline evaluation (`recommend.evaluation`) share this code, so what
is measured on MovieLens is what serves the rails. Everything works on a user x item CSR matrix
of implicit interactions (views, carts, orders, ratings: any positive signal, optionally weighted);
`Interactions` maps the shop's ids to matrix rows and columns.

Every recommender has the same interface:
    fit(interactions)                      learn from a users x items CSR matrix (kept for exclusion)
    score(user_rows) -> ndarray            dense scores, shape (len(user_rows), n_items)
    score_history(histories) -> ndarray    the same for interaction rows not in the fitted matrix
                                           (a new or updated shopper), where the method allows it
    recommend(user, k, exclude_seen=True)  [(item column, score)] best first
    recommend_batch(user_rows, k)          top-k item columns per user, best first

Recommenders: `MostPopular`, `ItemKNN` (cosine item-item with shrinkage and neighbour pruning),
`ImplicitALS` (a thin wrapper around the `implicit` package), `ContentSimilarity` (item-item
cosine from item embeddings) and `Hybrid` (a weighted blend of normalised component scores).
`tune_hybrid_weights` and `select_by_validation` choose weights and hyper-parameters on a
validation split carved out of the training matrix only: the caller's test data never reaches them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

Weighting = Literal["none", "bm25", "tfidf"]
Normalisation = Literal["minmax", "rank"]


# --------------------------------------------------------------------------------------------- data


@dataclass
class Interactions:
    """A users x items CSR matrix together with the ids behind its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: list[Hashable]
    item_ids: list[Hashable]
    user_index: dict[Hashable, int] = field(init=False, repr=False)
    item_index: dict[Hashable, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.user_index = {user: row for row, user in enumerate(self.user_ids)}
        self.item_index = {item: col for col, item in enumerate(self.item_ids)}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[Hashable, Hashable]] | Iterable[tuple[Hashable, Hashable, float]],
                   *, item_ids: Sequence[Hashable] | None = None, binary: bool = True) -> Interactions:
        """Build from (user, item) or (user, item, weight) tuples.

        Repeated pairs add up unless `binary`, in which case every present pair counts once: that is
        how the published implicit-feedback baselines treat ratings. Passing `item_ids` fixes the
        catalogue (items nobody touched still get a column, so they can be recommended by content).
        """
        users: dict[Hashable, int] = {}
        items: dict[Hashable, int] = {item: col for col, item in enumerate(item_ids)} if item_ids is not None else {}
        fixed_catalogue = item_ids is not None
        rows, cols, values = [], [], []
        for pair in pairs:
            user, item = pair[0], pair[1]
            weight = float(pair[2]) if len(pair) > 2 else 1.0
            if item not in items:
                if fixed_catalogue:
                    continue
                items[item] = len(items)
            rows.append(users.setdefault(user, len(users)))
            cols.append(items[item])
            values.append(weight)
        matrix = interaction_matrix(rows, cols, values, shape=(len(users), len(items)), binary=binary)
        return cls(matrix, list(users), list(items))


def interaction_matrix(rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray,
                       values: Sequence[float] | np.ndarray | None = None, *, shape: tuple[int, int],
                       binary: bool = True) -> sp.csr_matrix:
    """A float32 users x items CSR matrix with duplicates summed (or set to 1 when `binary`)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    data = np.ones(len(rows), dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    matrix.eliminate_zeros()
    return matrix


def split_per_user(matrix: sp.csr_matrix, fraction: float = 0.2, *, seed: int = 42,
                   min_train: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Seeded random hold-out per user: about `fraction` of each user's items go to the second matrix.

    Each user with at least `min_train + 1` items holds out round(fraction * n) of them (at least one)
    and keeps at least `min_train`; users with fewer items keep everything for training. Used both
    for the train/test split and, inside tuning, for carving a validation split out of training.
    """
    matrix = sp.csr_matrix(matrix)
    rng = np.random.default_rng(seed)
    keep = np.ones(matrix.nnz, dtype=bool)
    for user in range(matrix.shape[0]):
        start, end = matrix.indptr[user], matrix.indptr[user + 1]
        n = end - start
        if n < min_train + 1:
            continue
        n_out = min(max(1, int(round(fraction * n))), n - min_train)
        held = rng.choice(n, size=n_out, replace=False)
        keep[start + held] = False
    coo = matrix.tocoo()
    train = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape, dtype=np.float32)
    held_out = sp.csr_matrix((coo.data[~keep], (coo.row[~keep], coo.col[~keep])), shape=matrix.shape,
                             dtype=np.float32)
    return train, held_out


@dataclass(frozen=True)
class WeightingStats:
    """Corpus statistics of a fitted matrix, so that new rows are weighted the way training rows were."""

    idf: np.ndarray
    mean_length: float

    @classmethod
    def of(cls, matrix: sp.csr_matrix) -> WeightingStats:
        matrix = sp.csr_matrix(matrix)
        item_counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
        idf = np.maximum(np.log(max(matrix.shape[0], 1) / (1.0 + item_counts)), 0.0).astype(np.float32)
        lengths = np.asarray(matrix.sum(axis=1)).ravel()
        return cls(idf=idf, mean_length=float(lengths.mean()) if len(lengths) else 1.0)


def bm25_weight(matrix: sp.csr_matrix, k1: float = 1.2, b: float = 0.75,
                stats: WeightingStats | None = None) -> sp.csr_matrix:
    """BM25 weighting of a users x items matrix (users as documents, items as terms).

    Down-weights interactions with very popular items and from very active users; the usual choice
    for implicit data in item-kNN and ALS. `stats` (from the fitted matrix) weights new rows alike.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    stats = stats or WeightingStats.of(matrix)
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    length_norm = (1.0 - b) + b * row_sums / max(stats.mean_length, 1e-9)
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    matrix.data = matrix.data * (k1 + 1.0) / (k1 * length_norm[row_of] + matrix.data) * stats.idf[matrix.indices]
    matrix.eliminate_zeros()
    return matrix


def tfidf_weight(matrix: sp.csr_matrix, stats: WeightingStats | None = None) -> sp.csr_matrix:
    """TF-IDF weighting of a users x items matrix (idf over users)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    stats = stats or WeightingStats.of(matrix)
    matrix.data = matrix.data * stats.idf[matrix.indices]
    matrix.eliminate_zeros()
    return matrix


def apply_weighting(matrix: sp.csr_matrix, weighting: Weighting, stats: WeightingStats | None = None) -> sp.csr_matrix:
    """The matrix under the named weighting; pass the fitted matrix's `stats` when weighting new rows."""
    if weighting == "none":
        return sp.csr_matrix(matrix, dtype=np.float32)
    if weighting == "bm25":
        return bm25_weight(matrix, stats=stats)
    if weighting == "tfidf":
        return tfidf_weight(matrix, stats=stats)
    raise ValueError(f"unknown weighting {weighting!r}")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores per row, best first (ties broken by lower index)."""
    scores = np.atleast_2d(scores)
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    part.sort(axis=1)  # stable tie-break by column index
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def mask_seen(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Set the scores of items each row has already interacted with to -inf (in place)."""
    coo = seen.tocoo()
    scores[coo.row, coo.col] = -np.inf
    return scores


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> np.ndarray:
    """NDCG@k per user with binary relevance, ideal DCG over min(|relevant|, k).

    `recommended` holds the ranked item columns per user (rows aligned with `relevant`); users with
    nothing relevant get NaN so the caller can skip them.
    """
    relevant = sp.csr_matrix(relevant)
    recommended = recommended[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = hit_matrix(recommended, relevant)
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    n_relevant = np.diff(relevant.indptr)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean matrix: is recommended[u, r] among user u's relevant items?"""
    rows = np.repeat(np.arange(recommended.shape[0]), recommended.shape[1])
    flat = recommended.ravel()
    return np.asarray(relevant[rows, flat]).reshape(recommended.shape) > 0


# ------------------------------------------------------------------------------------ recommenders


class Recommender:
    """The common interface; subclasses implement `_fit` and `score_history` (or override `score`)."""

    name = "recommender"
    interactions: sp.csr_matrix | None = None

    def fit(self, interactions: sp.csr_matrix) -> Recommender:
        """Learn from a users x items matrix; it is also what `exclude_seen` excludes later."""
        self.interactions = sp.csr_matrix(interactions, dtype=np.float32)
        self._fit(self.interactions)
        return self

    def _fit(self, interactions: sp.csr_matrix) -> None:
        raise NotImplementedError

    @property
    def n_items(self) -> int:
        return self._require_fitted().shape[1]

    def _require_fitted(self) -> sp.csr_matrix:
        if self.interactions is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return self.interactions

    def score(self, user_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Dense float32 scores (len(user_rows), n_items) for users of the fitted matrix."""
        rows = np.asarray(user_rows, dtype=np.int64)
        return self.score_history(self._require_fitted()[rows])

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        """Scores for arbitrary interaction rows (shoppers whose history is newer than the fit)."""
        raise NotImplementedError

    def recommend_batch(self, user_rows: Sequence[int] | np.ndarray, k: int = 10, *,
                        exclude_seen: bool = True) -> np.ndarray:
        """Top-k item columns per user, best first; with `exclude_seen`, never an item the user has."""
        rows = np.asarray(user_rows, dtype=np.int64)
        scores = self.score(rows).astype(np.float32, copy=False)
        if exclude_seen:
            mask_seen(scores, self._require_fitted()[rows])
        return top_k(scores, k)

    def recommend(self, user: int, k: int = 10, *, exclude_seen: bool = True) -> list[tuple[int, float]]:
        """[(item column, score)] for one user, best first; excluded items never appear."""
        scores = self.score([user])[0].astype(np.float32, copy=True)
        if exclude_seen:
            seen = self._require_fitted()[user].indices
            scores[seen] = -np.inf
        items = top_k(scores[None, :], k)[0]
        return [(int(item), float(scores[item])) for item in items if np.isfinite(scores[item])]

    def params(self) -> dict:
        """Hyper-parameters, for logs and result tables."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"


class MostPopular(Recommender):
    """Items ranked by how many users interacted with them: the baseline every method must beat."""

    name = "most-popular"

    def _fit(self, interactions: sp.csr_matrix) -> None:
        counts = np.bincount(interactions.indices, minlength=interactions.shape[1]).astype(np.float32)
        self.popularity = counts

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.popularity, (histories.shape[0], 1))


def _pruned_similarity(columns: Callable[[np.ndarray], np.ndarray], n_items: int, neighbours: int,
                       block_size: int = 1024) -> sp.csr_matrix:
    """Assemble an n_items x n_items similarity keeping each target column's top `neighbours` sources.

    `columns(block)` returns the dense similarity block S[:, block] (n_items x len(block)). Working in
    column blocks keeps memory at n_items x block_size however large the catalogue is. The diagonal
    (an item's similarity to itself) is dropped, as are non-positive similarities.
    """
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n_items, block_size):
        block = np.arange(start, min(start + block_size, n_items))
        dense = np.asarray(columns(block), dtype=np.float32)
        dense[block, np.arange(len(block))] = 0.0
        keep = min(neighbours, n_items - 1) if neighbours > 0 else n_items
        if keep < n_items:
            top = np.argpartition(-dense, keep - 1, axis=0)[:keep]  # (keep, len(block)) source rows
        else:
            top = np.tile(np.arange(n_items)[:, None], (1, len(block)))
        values = np.take_along_axis(dense, top, axis=0)
        positive = values > 0
        rows_out.append(top[positive])
        cols_out.append(np.broadcast_to(block[None, :], top.shape)[positive])
        vals_out.append(values[positive])
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_out) if cols_out else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(vals_out) if vals_out else np.zeros(0, dtype=np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)


class ItemKNN(Recommender):
    """Item-based collaborative filtering: cosine item-item similarity on the implicit matrix.

    sim(i, j) = <x_i, x_j> / (|x_i| |x_j| + shrink); the shrink term damps similarities resting on
    few co-occurrences. Each target item keeps only its `neighbours` most similar items, which both
    removes noise and keeps the model sparse. A user's score for item j is the sum of j's similarities
    to the items the user has (weighted by the interaction weights). By default the item vectors are
    BM25-weighted first, so heavy users and blockbusters weigh less (it won on MovieLens validation).
    """

    name = "item-kNN"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0, weighting: Weighting = "bm25",
                 block_size: int = 1024) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.weighting = weighting
        self.block_size = block_size

    def params(self) -> dict:
        return {"neighbours": self.neighbours, "shrink": self.shrink, "weighting": self.weighting}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        self.stats = WeightingStats.of(interactions)
        weighted = apply_weighting(interactions, self.weighting, self.stats)
        by_item = sp.csr_matrix(weighted.T)  # items x users
        by_column = sp.csc_matrix(weighted)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=0)).ravel()).astype(np.float32)

        def columns(block: np.ndarray) -> np.ndarray:
            gram = (by_item @ by_column[:, block]).toarray()
            return gram / (norms[:, None] * norms[None, block] + self.shrink + 1e-9)

        self.similarity = _pruned_similarity(columns, interactions.shape[1], self.neighbours, self.block_size)

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        return np.asarray((sp.csr_matrix(histories, dtype=np.float32) @ self.similarity).toarray())


class ContentSimilarity(Recommender):
    """Item-item cosine similarity from item vectors (text embeddings, genre one-hots, ...).

    Scores for a user are the similarity-weighted sum over their items, like ItemKNN, but the
    similarity comes from what the items are rather than who bought them, so new items with no
    interactions can still be recommended and related.
    """

    name = "content"

    def __init__(self, item_vectors: np.ndarray, neighbours: int = 100, block_size: int = 1024) -> None:
        vectors = np.asarray(item_vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.item_vectors = vectors / np.where(norms > 0, norms, 1.0)
        self.neighbours = neighbours
        self.block_size = block_size

    def params(self) -> dict:
        return {"neighbours": self.neighbours, "dims": int(self.item_vectors.shape[1])}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        if self.item_vectors.shape[0] != interactions.shape[1]:
            raise ValueError(f"{self.item_vectors.shape[0]} item vectors for {interactions.shape[1]} items")
        vectors = self.item_vectors
        self.similarity = _pruned_similarity(lambda block: vectors @ vectors[block].T, interactions.shape[1],
                                             self.neighbours, self.block_size)

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        return np.asarray((sp.csr_matrix(histories, dtype=np.float32) @ self.similarity).toarray())


class EASE(Recommender):
    """EASE^R (Steck 2019): a closed-form item-item regression with a zero diagonal.

    B = argmin ||X - XB||² + λ||B||² subject to diag(B) = 0 has the closed form
    P = (XᵀX + λI)⁻¹, B = -P / diag(P) (column-wise), diag(B) = 0. A user's scores are x_u B.
    One dense items x items inverse: seconds for a few thousand items, the shop's catalogue size;
    λ is chosen on a validation split (`select_by_validation`), 300-500 suits MovieLens-100k.
    """

    name = "EASE^R"

    def __init__(self, l2: float = 400.0) -> None:
        self.l2 = l2

    def params(self) -> dict:
        return {"l2": self.l2}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        gram = np.asarray((interactions.T @ interactions).toarray(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        self._require_fitted()
        return np.asarray(sp.csr_matrix(histories, dtype=np.float32) @ self.weights)


class ImplicitALS(Recommender):
    """Matrix factorisation for implicit feedback (Hu, Koren & Volinsky), via the `implicit` package.

    An observed interaction of weight w (raw, or BM25/TF-IDF weighted) gets confidence alpha * w,
    unobserved pairs confidence 1 (implicit's convention). The defaults (64 factors, alpha 4, a strong
    regularisation of 40, raw binary weights) won on a MovieLens-100k validation split carved out of
    training; small catalogues with few interactions per item need the strong regularisation. Runs on
    the CPU and is seeded, so the same data and parameters give the same factors.
    """

    name = "ALS (implicit)"

    def __init__(self, factors: int = 64, regularization: float = 40.0, alpha: float = 4.0, iterations: int = 15,
                 weighting: Weighting = "none", seed: int = 42, num_threads: int = 0,
                 show_progress: bool = False) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.seed = seed
        self.num_threads = num_threads
        self.show_progress = show_progress

    def params(self) -> dict:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "weighting": self.weighting}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only where ALS is used
        from threadpoolctl import threadpool_limits

        self.stats = WeightingStats.of(interactions)
        # implicit runs its own threads; a multi-threaded BLAS underneath would oversubscribe the CPUs.
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=self.num_threads,
                calculate_training_loss=False)
            self.model.fit(apply_weighting(interactions, self.weighting, self.stats), show_progress=self.show_progress)
        self.user_factors = np.asarray(self.model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(self.model.item_factors, dtype=np.float32)

    def score(self, user_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        self._require_fitted()
        rows = np.asarray(user_rows, dtype=np.int64)
        return self.user_factors[rows] @ self.item_factors.T

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        """Fold new histories into the factor space (one least-squares solve per row) and score."""
        self._require_fitted()
        from threadpoolctl import threadpool_limits

        histories = sp.csr_matrix(histories, dtype=np.float32)
        weighted = apply_weighting(histories, self.weighting, self.stats)
        with threadpool_limits(1, "blas"):
            factors = self.model.recalculate_user(np.arange(histories.shape[0]), weighted)
        return np.atleast_2d(np.asarray(factors, dtype=np.float32)) @ self.item_factors.T


# ------------------------------------------------------------------------------------------ hybrid


def normalise_scores(scores: np.ndarray, exclude: sp.csr_matrix | None = None,
                     method: Normalisation = "minmax") -> np.ndarray:
    """Per-row scores mapped to [0, 1] over the candidate items, so that components can be blended.

    `minmax`: (s - min) / (max - min); `rank`: 1 for the best candidate down to 0 for the worst.
    Items in `exclude` (the user's own) are left out of the min/max and ranks and come back as 0:
    otherwise a method that scores seen items highly would squash everyone else's range.
    Both maps are monotone, so a normalised component ranks the candidates exactly as it did before.
    """
    scores = np.array(scores, dtype=np.float64)
    candidate = np.ones(scores.shape, dtype=bool)
    if exclude is not None:
        coo = exclude.tocoo()
        candidate[coo.row, coo.col] = False
    if method == "minmax":
        low = np.where(candidate, scores, np.inf).min(axis=1, keepdims=True)
        high = np.where(candidate, scores, -np.inf).max(axis=1, keepdims=True)
        span = high - low
        safe = np.where(np.isfinite(span) & (span > 0), span, 1.0)
        result = np.where(np.isfinite(low), (scores - low) / safe, 0.0)
    elif method == "rank":
        masked = np.where(candidate, scores, -np.inf)
        order = np.argsort(-masked, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(scores.shape[0], 0), axis=1)
        n_candidates = candidate.sum(axis=1, keepdims=True)
        result = 1.0 - ranks / np.maximum(n_candidates - 1, 1)
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    result[~candidate] = 0.0
    return result.astype(np.float32)


class Hybrid(Recommender):
    """A weighted blend of normalised component scores.

    Components are named recommenders; weights need not sum to one (only their ratios matter).
    A component with weight 0 is neither fitted nor scored. With a single non-zero weight the hybrid
    ranks candidates exactly as that component does.
    """

    name = "Aisle hybrid"

    def __init__(self, components: dict[str, Recommender], weights: dict[str, float] | None = None,
                 normalisation: Normalisation = "minmax") -> None:
        if not components:
            raise ValueError("a hybrid needs at least one component")
        self.components = dict(components)
        self.weights = {name: 1.0 / len(components) for name in components} if weights is None else dict(weights)
        unknown = set(self.weights) - set(self.components)
        if unknown:
            raise ValueError(f"weights for unknown components: {sorted(unknown)}")
        self.normalisation = normalisation

    def params(self) -> dict:
        return {"weights": {name: round(w, 4) for name, w in self.weights.items()},
                "normalisation": self.normalisation}

    def active(self) -> dict[str, Recommender]:
        return {name: model for name, model in self.components.items() if self.weights.get(name, 0.0) > 0}

    def _fit(self, interactions: sp.csr_matrix) -> None:
        if not self.active():
            raise ValueError("every hybrid weight is zero")
        for model in self.active().values():
            model.fit(interactions)

    def blend(self, normalised: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted sum of already-normalised component scores (used by the tuner as well)."""
        total = None
        for name, weight in self.weights.items():
            if weight <= 0:
                continue
            part = weight * normalised[name]
            total = part if total is None else total + part
        if total is None:
            raise ValueError("every hybrid weight is zero")
        return total

    def score(self, user_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(user_rows, dtype=np.int64)
        seen = self._require_fitted()[rows]
        return self.blend({name: normalise_scores(model.score(rows), seen, self.normalisation)
                           for name, model in self.active().items()})

    def score_history(self, histories: sp.csr_matrix) -> np.ndarray:
        histories = sp.csr_matrix(histories, dtype=np.float32)
        return self.blend({name: normalise_scores(model.score_history(histories), histories, self.normalisation)
                           for name, model in self.active().items()})


@dataclass
class TuningResult:
    """What the tuner chose and how it was measured (everything on the validation split)."""

    weights: dict[str, float]
    normalisation: str
    validation_ndcg: float
    component_ndcg: dict[str, float]
    tried: int
    fit_matrix: sp.csr_matrix = field(repr=False)
    validation_matrix: sp.csr_matrix = field(repr=False)


def _weight_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors on the simplex with the given step (each weight a multiple of it, sum 1)."""
    units = int(round(1.0 / step))
    grid = []
    for combo in itertools.product(range(units + 1), repeat=n):
        if sum(combo) == units:
            grid.append(tuple(c / units for c in combo))
    return grid


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else 0.0


def tune_hybrid_weights(components: dict[str, Recommender], train: sp.csr_matrix, *, k: int = 10,
                        validation_fraction: float = 0.2, seed: int = 42, step: float = 0.1,
                        method: Literal["grid", "coordinate"] | None = None,
                        normalisations: Sequence[Normalisation] = ("minmax", "rank"),
                        progress: bool = False) -> TuningResult:
    """Choose blend weights (and the normalisation) that maximise NDCG@k on a validation split.

    The validation split is carved out of `train` alone (per user, seeded), the components are fitted
    on the rest, and only `train` is ever passed in: the caller's test split cannot influence the
    weights. Component scores are computed once; each candidate weighting is then just a weighted
    sum and a top-k. `grid` tries every weight vector on the simplex with the given step (fine for up
    to four components); `coordinate` does coordinate ascent from equal weights for more. The
    components are left fitted on the reduced matrix: refit them (e.g. via `Hybrid.fit`) on the full
    training data before use.
    """
    names = list(components)
    fit_matrix, validation = split_per_user(train, validation_fraction, seed=seed)
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    seen = fit_matrix[users]
    relevant = validation[users]
    raw: dict[str, np.ndarray] = {}
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="tuning: fitting components on the validation split", unit="model")
    for name in iterator:
        components[name].fit(fit_matrix)
        raw[name] = components[name].score(users)

    def evaluate(scores: np.ndarray) -> float:
        scores = mask_seen(np.array(scores, dtype=np.float32), seen)
        return _mean(ndcg_at_k(top_k(scores, k), relevant, k))

    component_ndcg = {name: evaluate(raw[name]) for name in names}
    method = method or ("grid" if len(names) <= 4 else "coordinate")
    best = (-1.0, None, None)
    tried = 0
    for normalisation in normalisations:
        normalised = {name: normalise_scores(raw[name], seen, normalisation) for name in names}
        hybrid = Hybrid(components, normalisation=normalisation)

        def value(weights: Sequence[float], hybrid: Hybrid = hybrid, normalised: dict = normalised) -> float:
            hybrid.weights = dict(zip(names, weights, strict=True))
            return evaluate(hybrid.blend(normalised))

        if method == "grid":
            for weights in _weight_grid(len(names), step):
                score = value(weights)
                tried += 1
                if score > best[0] + 1e-12:
                    best = (score, dict(zip(names, weights, strict=True)), normalisation)
        elif method == "coordinate":
            weights = [1.0 / len(names)] * len(names)
            current = value(weights)
            tried += 1
            levels = [i * step for i in range(int(round(1.0 / step)) + 1)]
            for _sweep in range(10):
                improved = False
                for position in range(len(names)):
                    for level in levels:
                        trial = list(weights)
                        trial[position] = level
                        if sum(trial) <= 0:
                            continue
                        score = value(trial)
                        tried += 1
                        if score > current + 1e-12:
                            current, weights, improved = score, trial, True
                if not improved:
                    break
            total = sum(weights)
            if current > best[0] + 1e-12:
                best = (current, dict(zip(names, [w / total for w in weights], strict=True)), normalisation)
        else:
            raise ValueError(f"unknown tuning method {method!r}")
    score, weights, normalisation = best
    log.info("hybrid weights %s (%s), validation NDCG@%d %.4f; components %s", weights, normalisation, k, score,
             component_ndcg)
    return TuningResult(weights=weights, normalisation=normalisation, validation_ndcg=score,
                        component_ndcg=component_ndcg, tried=tried, fit_matrix=fit_matrix,
                        validation_matrix=validation)


@dataclass
class Selection:
    """The winner of `select_by_validation` and every candidate's validation NDCG."""

    best: str
    scores: dict[str, float]


def select_by_validation(candidates: dict[str, Callable[[], Recommender]], train: sp.csr_matrix, *, k: int = 10,
                         validation_fraction: float = 0.2, seed: int = 42, progress: bool = False) -> Selection:
    """Pick the hyper-parameter setting with the best NDCG@k on a validation split carved out of `train`.

    `candidates` maps a label to a factory for an unfitted recommender. As with the weight tuner, the
    caller's test split never reaches this function.
    """
    fit_matrix, validation = split_per_user(train, validation_fraction, seed=seed)
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    relevant = validation[users]
    scores: dict[str, float] = {}
    items = candidates.items()
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="selecting hyper-parameters on validation", unit="setting")
    for label, factory in items:
        model = factory().fit(fit_matrix)
        ranked = model.recommend_batch(users, k)
        scores[label] = _mean(ndcg_at_k(ranked, relevant, k))
    best = max(scores, key=lambda label: (scores[label], -list(scores).index(label)))
    return Selection(best=best, scores=scores)
