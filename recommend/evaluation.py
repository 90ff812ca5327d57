"""Offline evaluation of the recommenders on MovieLens-100k: plain Python, no Django.

The protocol follows the published implicit-feedback baselines for this data set, so that the
figures can be set beside theirs:
- every rating counts as an interaction (ratings -> implicit, binary);
- a seeded random 80/20 split per user;
- precision@k, recall@k (hits / |test items|), NDCG@k with binary relevance and the ideal DCG over
  min(|test items|, k), and catalogue coverage@k (share of the catalogue that appears in anyone's
  top k); every item of the catalogue is ranked, minus the user's own training items.

All tuning (item-kNN and ALS hyper-parameters, the hybrid's weights) happens on a validation split
carved out of the training data; the test split is only ever used to score the final models.

MovieLens comes from the `recbole==1.2.1` package (installed with --no-deps): its data files are
read, the module is never imported (its import pulls in torch extensions and more). Research use
only: benchmark figures, never demo content.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommend.algorithms import (
    EASE,
    ContentSimilarity,
    Hybrid,
    ImplicitALS,
    Interactions,
    ItemKNN,
    MostPopular,
    Recommender,
    hit_matrix,
    ndcg_at_k,
    select_by_validation,
    split_per_user,
    tune_hybrid_weights,
)

log = logging.getLogger(__name__)

# Hyper-parameter grids searched on the validation split (kept small: the whole run takes about a minute).
ITEMKNN_GRID = [{"neighbours": n, "shrink": s, "weighting": w}
                for n in (100, 200) for s in (10.0, 50.0) for w in ("none", "bm25")]
ALS_GRID = [{"factors": f, "alpha": a, "regularization": a * r}
            for f in (64, 128) for a in (4.0, 10.0) for r in (5.0, 10.0)]
EASE_GRID = [{"l2": l2} for l2 in (100.0, 200.0, 300.0, 400.0, 500.0, 700.0, 1000.0)]


# ------------------------------------------------------------------------------------------- data


def movielens_folder() -> Path:
    """The ml-100k folder inside the installed recbole package (located without importing it)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("recbole is not installed: .venv/bin/pip install --no-deps recbole==1.2.1")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise FileNotFoundError(f"no ml-100k.inter under {folder}")
    return folder


def read_atomic_file(path: Path) -> list[dict[str, str]]:
    """Rows of a RecBole atomic file (tab-separated; header fields like `user_id:token`), by field name."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = [name.split(":", 1)[0] for name in handle.readline().rstrip("\n").split("\t")]
        rows = []
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < len(header):
                parts += [""] * (len(header) - len(parts))
            rows.append(dict(zip(header, parts, strict=False)))
    return rows


@dataclass
class MovieLens:
    """The ratings as implicit interactions, plus what is known about each item (matrix column order)."""

    interactions: Interactions
    ratings: int
    titles: list[str]
    years: list[str]
    genres: list[list[str]]
    # Per user (matrix row order), their item columns by rating time; ties keep the file's order.
    sequences: list[list[int]] = field(default_factory=list)

    @property
    def matrix(self) -> sp.csr_matrix:
        return self.interactions.matrix

    def item_texts(self) -> list[str]:
        """'title (year) genres' per item: what the content model embeds."""
        texts = []
        for title, year, genres in zip(self.titles, self.years, self.genres, strict=True):
            text = title + (f" ({year})" if year else "")
            if genres:
                text += " " + ", ".join(genres)
            texts.append(text.strip() or "unknown movie")
        return texts

    def genre_vectors(self) -> np.ndarray:
        """One-hot genre vectors: the content fallback when no embedding model is available."""
        names = sorted({genre for genres in self.genres for genre in genres})
        index = {name: i for i, name in enumerate(names)}
        vectors = np.zeros((len(self.genres), max(len(names), 1)), dtype=np.float32)
        for row, genres in enumerate(self.genres):
            for genre in genres:
                vectors[row, index[genre]] = 1.0
        return vectors


def load_movielens(folder: Path | None = None) -> MovieLens:
    """MovieLens-100k: 100,000 ratings by 943 users of 1,682 movies, every rating an interaction."""
    folder = folder or movielens_folder()
    ratings = read_atomic_file(folder / "ml-100k.inter")
    item_file = folder / "ml-100k.item"
    items = read_atomic_file(item_file) if item_file.is_file() else []
    rated = list(dict.fromkeys(row["item_id"] for row in ratings))
    known = [row["item_id"] for row in items]
    catalogue = list(dict.fromkeys(known + rated))  # movies nobody rated still belong to the catalogue
    interactions = Interactions.from_pairs(((row["user_id"], row["item_id"]) for row in ratings),
                                           item_ids=catalogue)
    by_id = {row["item_id"]: row for row in items}
    titles, years, genres = [], [], []
    for item in catalogue:
        row = by_id.get(item, {})
        titles.append(row.get("movie_title", "").strip())
        years.append(row.get("release_year", "").strip())
        genres.append([g for g in row.get("class", "").split() if g and g.lower() != "unknown"])
    timed: dict[int, list[tuple[float, int, int]]] = {}
    for position, row in enumerate(ratings):
        user = interactions.user_index[row["user_id"]]
        stamp = float(row.get("timestamp") or 0.0)
        timed.setdefault(user, []).append((stamp, position, interactions.item_index[row["item_id"]]))
    sequences = [[item for _t, _p, item in sorted(timed.get(user, []))] for user in range(len(interactions.user_ids))]
    return MovieLens(interactions=interactions, ratings=len(ratings), titles=titles, years=years, genres=genres,
                     sequences=sequences)


def content_vectors(data: MovieLens, *, use_embeddings: bool = True) -> tuple[np.ndarray, str]:
    """Item vectors for the content component and where they came from.

    The shop's own embedding model (`ml.embed`, the packaged MiniLM unless settings point elsewhere)
    on 'title (year) genres'; genre one-hots when the model cannot be loaded (or is not wanted).
    """
    if use_embeddings:
        try:
            import ml

            return ml.embed(data.item_texts()), "MiniLM embeddings of 'title (year) genres' (ml.embed)"
        except Exception as exc:  # no torch, no model files: the genres still carry content
            log.warning("ml.embed unavailable (%s); content vectors fall back to genre one-hots", exc)
    return data.genre_vectors(), "genre one-hot vectors"


# ---------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """Means over the users with at least one test item; coverage over the whole catalogue."""

    precision: float
    recall: float
    ndcg: float
    coverage: float
    users: int


def ranking_metrics(recommended: np.ndarray, relevant: sp.csr_matrix, k: int, n_items: int) -> Metrics:
    """Precision@k, recall@k, NDCG@k and coverage@k of ranked lists against held-out items.

    `recommended[u]` is user u's ranked item columns (the first k are used), rows aligned with
    `relevant`. Users without relevant items are skipped. Precision divides hits by k (a short list
    is not rewarded), recall by the user's number of relevant items.
    """
    relevant = sp.csr_matrix(relevant)
    recommended = np.asarray(recommended)[:, :k]
    n_relevant = np.diff(relevant.indptr)
    users = n_relevant > 0
    if not users.any():
        return Metrics(0.0, 0.0, 0.0, 0.0, 0)
    hits = hit_matrix(recommended, relevant).sum(axis=1)
    precision = hits / k
    recall = hits / np.maximum(n_relevant, 1)
    ndcg = ndcg_at_k(recommended, relevant, k)
    coverage = len(np.unique(recommended[users])) / n_items if n_items else 0.0
    return Metrics(precision=float(precision[users].mean()), recall=float(recall[users].mean()),
                   ndcg=float(ndcg[users].mean()), coverage=float(coverage), users=int(users.sum()))


def evaluate_recommender(model: Recommender, test: sp.csr_matrix, k: int = 10, batch_size: int = 1024) -> Metrics:
    """Metrics of a fitted model on the test split: full catalogue ranked, training items excluded."""
    test = sp.csr_matrix(test)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ranked = np.concatenate([model.recommend_batch(users[start:start + batch_size], k, exclude_seen=True)
                             for start in range(0, len(users), batch_size)]) if len(users) else np.zeros((0, k), int)
    return ranking_metrics(ranked, test[users], k, test.shape[1])


# ------------------------------------------------------------------------------------------- runs


@dataclass
class AlgorithmResult:
    name: str
    metrics: Metrics
    fit_seconds: float
    params: dict
    baseline: bool = True


@dataclass
class EvaluationReport:
    """The result table and how it was obtained."""

    seed: int
    k: int
    users: int
    items: int
    train_interactions: int
    test_interactions: int
    results: list[AlgorithmResult]
    hybrid_weights: dict[str, float]
    hybrid_normalisation: str
    validation_ndcg: dict[str, float]
    content_source: str
    seconds: dict[str, float] = field(default_factory=dict)
    selections: dict[str, dict[str, float]] = field(default_factory=dict)

    def result(self, name: str) -> AlgorithmResult:
        return next(row for row in self.results if row.name == name)

    @property
    def hybrid(self) -> AlgorithmResult:
        return next(row for row in self.results if not row.baseline)

    def hybrid_beats_baselines(self, metric: str = "ndcg") -> bool:
        """Does the hybrid beat every baseline in the table on this metric?"""
        mine = getattr(self.hybrid.metrics, metric)
        return all(mine > getattr(row.metrics, metric) for row in self.results if row.baseline)


def _progress(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


def run_evaluation(seed: int = 42, k: int = 10, *, tune_hyperparameters: bool = True, als_iterations: int = 15,
                   use_embeddings: bool = True, weight_step: float = 0.1, test_fraction: float = 0.2,
                   progress: bool = True, folder: Path | None = None,
                   data: MovieLens | None = None) -> EvaluationReport:
    """Most-popular, item-kNN, implicit's ALS, EASE^R, content similarity and Aisle's hybrid on one split.

    All models run in this process on the same seeded split. With `tune_hyperparameters`, item-kNN's
    and ALS's settings are chosen from small grids on a validation split of the training data
    (otherwise the classes' defaults, themselves chosen that way); the hybrid's weights are always
    tuned on such a validation split, and so is EASE^R's λ. The test split only scores the final models.
    """
    seconds: dict[str, float] = {}
    data = data or load_movielens(folder)
    train, test = split_per_user(data.matrix, test_fraction, seed=seed)

    started = time.perf_counter()
    vectors, content_source = content_vectors(data, use_embeddings=use_embeddings)
    seconds["content vectors"] = time.perf_counter() - started

    selections: dict[str, dict[str, float]] = {}
    knn_params: dict = {}
    als_params: dict = {"iterations": als_iterations}
    # EASE^R's only knob, λ, is always chosen on validation (seven closed-form fits, a few seconds).
    started = time.perf_counter()
    ease = select_by_validation({repr(p): _factory(EASE, p) for p in EASE_GRID}, train, k=k, seed=seed)
    ease_params = _lookup(EASE_GRID, ease.best)
    selections["EASE^R"] = ease.scores
    seconds["EASE^R λ selection"] = time.perf_counter() - started
    if tune_hyperparameters:
        started = time.perf_counter()
        knn = select_by_validation({repr(p): _factory(ItemKNN, p) for p in ITEMKNN_GRID}, train, k=k, seed=seed,
                                   progress=progress)
        knn_params = _lookup(ITEMKNN_GRID, knn.best)
        als = select_by_validation({repr(p): _factory(ImplicitALS, {**p, "iterations": als_iterations, "seed": seed})
                                    for p in ALS_GRID}, train, k=k, seed=seed, progress=progress)
        als_params.update(_lookup(ALS_GRID, als.best))
        selections.update({"item-kNN": knn.scores, "ALS": als.scores})
        seconds["hyper-parameter selection"] = time.perf_counter() - started

    def make_knn() -> ItemKNN:
        return ItemKNN(**knn_params)

    def make_als() -> ImplicitALS:
        return ImplicitALS(**als_params, seed=seed)

    def make_ease() -> EASE:
        return EASE(**ease_params)

    baselines: list[tuple[str, Callable[[], Recommender]]] = [
        ("most-popular", MostPopular),
        ("item-kNN", make_knn),
        ("ALS (implicit)", make_als),
        ("EASE^R", make_ease),
        ("content", lambda: ContentSimilarity(vectors)),
    ]
    results: list[AlgorithmResult] = []
    for name, factory in _progress(baselines, progress, desc="fitting and scoring baselines", unit="model"):
        model = factory()
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        results.append(AlgorithmResult(name, evaluate_recommender(model, test, k), fit_seconds, model.params()))

    # Most-popular is left out of the blend: the tuner gave it weight 0 in every run.
    components: dict[str, Recommender] = {"EASE^R": make_ease(), "item-kNN": make_knn(), "ALS": make_als(),
                                          "content": ContentSimilarity(vectors)}
    started = time.perf_counter()
    tuning = tune_hybrid_weights(components, train, k=k, seed=seed, step=weight_step, progress=progress)
    seconds["hybrid weight tuning"] = time.perf_counter() - started
    hybrid = Hybrid(components, tuning.weights, tuning.normalisation)
    started = time.perf_counter()
    hybrid.fit(train)
    fit_seconds = time.perf_counter() - started
    results.append(AlgorithmResult("Aisle hybrid", evaluate_recommender(hybrid, test, k), fit_seconds,
                                   hybrid.params(), baseline=False))
    return EvaluationReport(
        seed=seed, k=k, users=data.matrix.shape[0], items=data.matrix.shape[1], train_interactions=train.nnz,
        test_interactions=test.nnz, results=results, hybrid_weights=tuning.weights,
        hybrid_normalisation=tuning.normalisation,
        validation_ndcg={**tuning.component_ndcg, "hybrid": tuning.validation_ndcg},
        content_source=content_source, seconds=seconds, selections=selections)


def _factory(cls: type[Recommender], params: dict) -> Callable[[], Recommender]:
    return lambda: cls(**params)


def _lookup(grid: Sequence[dict], label: str) -> dict:
    return next(params for params in grid if repr(params) == label)


def format_table(report: EvaluationReport, references: dict[str, float] | None = None) -> str:
    """The result table as text; `references` maps a result name to a published NDCG@k to print beside it."""
    k = report.k
    lines = [
        f"MovieLens-100k: {report.users} users, {report.items} items, {report.train_interactions:,} train / "
        f"{report.test_interactions:,} test interactions (random 80/20 per user, seed {report.seed}); "
        f"full catalogue ranked, training items excluded",
    ]
    header = f"{'algorithm':<16}{f'P@{k}':>8}{f'R@{k}':>8}{f'NDCG@{k}':>9}{f'cov@{k}':>8}{'fit s':>8}"
    if references is not None:
        header += f"{'published NDCG':>16}"
    lines += [header, "-" * len(header)]
    for row in report.results:
        m = row.metrics
        line = (f"{row.name:<16}{m.precision:>8.4f}{m.recall:>8.4f}{m.ndcg:>9.4f}{m.coverage:>8.3f}"
                f"{row.fit_seconds:>8.2f}")
        if references is not None:
            reference = references.get(row.name)
            line += f"{f'~{reference:.2f}' if reference is not None else '-':>16}"
        lines.append(line)
    weights = ", ".join(f"{name} {weight:.2f}" for name, weight in report.hybrid_weights.items())
    lines.append(f"hybrid weights ({report.hybrid_normalisation} normalised, tuned on validation): {weights}")
    validation = ", ".join(f"{name} {value:.4f}" for name, value in report.validation_ndcg.items())
    lines.append(f"validation NDCG@{k}: {validation}")
    for row in report.results:
        if row.params:
            lines.append(f"  {row.name}: {row.params}")
    lines.append(f"content vectors: {report.content_source}")
    if report.seconds:
        lines.append("other time: " + ", ".join(f"{name} {value:.1f} s" for name, value in report.seconds.items()))
    return "\n".join(lines)


# ------------------------------------------------------------------ next item: leave-last-out protocol


@dataclass(frozen=True)
class NextItemMetrics:
    """HR@k and NDCG@k of one held-out next item per user, the full catalogue ranked."""

    hit_rate: float
    ndcg: float
    users: int


def next_item_metrics(scores: np.ndarray, histories: Sequence[Sequence[int]], targets: Sequence[int],
                      k: int = 10) -> NextItemMetrics:
    """Rank every item for each user (their history excluded) and score the one true next item.

    HR@k: is it in the top k; NDCG@k: 1 / log2(rank + 2) when it is (one relevant item, so the
    ideal DCG is 1)."""
    scores = np.array(scores, dtype=np.float32)
    for row, history in enumerate(histories):
        scores[row, list(history)] = -np.inf
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(targets)), targets]
    # Rank = items scored strictly higher (ties count in the target's favour only by index order).
    higher = (scores > target_scores[:, None]).sum(axis=1)
    ties_before = ((scores == target_scores[:, None]) & (np.arange(scores.shape[1])[None, :] < targets[:, None])).sum(1)
    rank = higher + ties_before
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return NextItemMetrics(hit_rate=float(hit.mean()), ndcg=float(ndcg.mean()), users=len(targets))


def sequences_matrix(sequences: Sequence[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """The users x items binary matrix of a set of sequences (row = sequence)."""
    rows = [row for row, seq in enumerate(sequences) for _ in seq]
    cols = [item for seq in sequences for item in seq]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(sequences), n_items))


@dataclass
class NextItemResult:
    name: str
    metrics: NextItemMetrics
    fit_seconds: float
    params: dict
    validation_ndcg: float | None = None


@dataclass
class NextItemReport:
    users: int
    items: int
    k: int
    results: list[NextItemResult]
    seconds: dict[str, float] = field(default_factory=dict)

    def result(self, name: str) -> NextItemResult:
        return next(row for row in self.results if row.name == name)


def run_next_item_evaluation(data: MovieLens | None = None, *, k: int = 10, folder: Path | None = None,
                             seq_config: dict | None = None, progress: bool = True) -> NextItemReport:
    """Leave-last-out on MovieLens-100k by rating time: per user, the last item is the test target,
    the one before it the validation target, everything earlier trains.

    Most-popular, item-kNN and EASE^R are refitted on everything but the test item once their
    settings are chosen on the validation target; SASRec is trained on the training part with early
    stopping on the validation target and then reads the history up to the test item (the usual
    SASRec protocol: it is not retrained with the validation item, which only handicaps it). Every
    method ranks the full catalogue minus the user's history; the test targets are scored once.
    """
    from recommend.sequential import SeqConfig, SequentialRecommender

    data = data or load_movielens(folder)
    n_items = data.matrix.shape[1]
    users = [seq for seq in data.sequences if len(seq) >= 3]
    train_seqs = [seq[:-2] for seq in users]
    valid_hist, valid_targets = [seq[:-2] for seq in users], [seq[-2] for seq in users]
    test_hist, test_targets = [seq[:-1] for seq in users], [seq[-1] for seq in users]
    train_matrix = sequences_matrix(train_seqs, n_items)
    full_matrix = sequences_matrix(test_hist, n_items)
    rows = np.arange(len(users))
    results: list[NextItemResult] = []
    seconds: dict[str, float] = {}

    def choose(cls: type[Recommender], grid: Sequence[dict]) -> tuple[dict, float]:
        best = (None, -1.0)
        for params in grid:
            model = cls(**params).fit(train_matrix)
            value = next_item_metrics(model.score(rows), valid_hist, valid_targets, k).ndcg
            if value > best[1]:
                best = (params, value)
        return best

    plain: list[tuple[str, type[Recommender], Sequence[dict]]] = [
        ("most-popular", MostPopular, [{}]), ("item-kNN", ItemKNN, ITEMKNN_GRID), ("EASE^R", EASE, EASE_GRID)]
    for name, cls, grid in _progress(plain, progress, desc="next item: baselines", unit="model"):
        params, validation = choose(cls, grid)
        model = cls(**params)
        started = time.perf_counter()
        model.fit(full_matrix)
        fit_seconds = time.perf_counter() - started
        metrics = next_item_metrics(model.score(rows), test_hist, test_targets, k)
        results.append(NextItemResult(name, metrics, fit_seconds, model.params(), validation))

    config = SeqConfig(n_items=n_items, **(seq_config or {}))
    model = SequentialRecommender(config)

    def validate(fitted: SequentialRecommender) -> float:
        return next_item_metrics(fitted.score(valid_hist), valid_hist, valid_targets, k).ndcg

    model.fit(train_seqs, validate=validate, progress=progress)
    validation = max(value for _epoch, value in model.history) if model.history else None
    metrics = next_item_metrics(model.score(test_hist), test_hist, test_targets, k)
    results.append(NextItemResult("SASRec (Aisle)", metrics, model.fit_seconds, model.params(), validation))
    return NextItemReport(users=len(users), items=n_items, k=k, results=results, seconds=seconds)


def format_next_item_table(report: NextItemReport, references: dict[str, tuple[float, float]] | None = None) -> str:
    """The leave-last-out table; `references` maps a name to published (HR@k, NDCG@k)."""
    k = report.k
    lines = [f"MovieLens-100k next item: {report.users} users, {report.items} items; leave-last-out by rating "
             f"time (validation = the item before it); full catalogue ranked, history excluded"]
    header = f"{'algorithm':<16}{f'HR@{k}':>8}{f'NDCG@{k}':>9}{'val NDCG':>10}{'fit s':>8}"
    if references is not None:
        header += f"{'published HR / NDCG':>22}"
    lines += [header, "-" * len(header)]
    for row in report.results:
        m = row.metrics
        validation = f"{row.validation_ndcg:.4f}" if row.validation_ndcg is not None else "-"
        line = f"{row.name:<16}{m.hit_rate:>8.4f}{m.ndcg:>9.4f}{validation:>10}{row.fit_seconds:>8.1f}"
        if references is not None:
            ref = references.get(row.name)
            line += f"{f'{ref[0]:.3f} / {ref[1]:.3f}' if ref else '-':>22}"
        lines.append(line)
    for row in report.results:
        if row.params:
            lines.append(f"  {row.name}: {row.params}")
    return "\n".join(lines)
