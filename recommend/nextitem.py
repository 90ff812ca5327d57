"""The shop's next-item model: a SASRec (`recommend.sequential`) trained on shoppers' ordered views
and cart adds, used for the "Because you viewed" and home rails when the session has history.

Trained by the `recommend.tasks.train_sequential` task on the `training` queue (nightly beat job in
config/celery.py; `python manage.py train_recommender --sequential`). The artifact is
`AISLE_MODEL_DIR/recommend/sequential-<version>.pt` (config and weights only, loaded with
weights_only=True) plus the product id of every column, announced by a version key in the cache and
a `sequential-current` pointer file. Too little data (a new shop), or a failed fit, leaves no model:
the reason is logged and kept in the cache for the admin, and the rails fall back to the blended and
popularity picks. Nothing here ever raises into a page.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from behavior import services as behavior
from shop import services as shop

from .sequential import SeqConfig, SequentialRecommender

log = logging.getLogger(__name__)

SEQUENCE_TYPES = ("product_viewed", "rec_clicked", "added_to_cart")
VERSION_KEY = "recommend:seq:version"
STATUS_KEY = "recommend:seq:status"
LOCK_KEY = "recommend:seq:training"
TRAINING_DAYS = 90
# Below these the model would learn noise: a new shop gets popularity until it has real sessions.
MIN_SHOPPERS = 20
MIN_TRANSITIONS = 200


def model_dir() -> Path:
    return Path(settings.AISLE_MODEL_DIR) / "recommend"


def _settings_config() -> dict:
    """Size and training knobs; the defaults suit a catalogue of hundreds to thousands of products."""
    return {"dim": 64, "layers": 2, "heads": 2, "max_len": 50, "dropout": 0.3, "epochs": 40, "threads": 1,
            **(getattr(settings, "AISLE_RECOMMEND_SEQUENTIAL", None) or {})}


@dataclass
class SequentialReport:
    status: str                 # "trained" or "fallback"
    reason: str
    version: str | None = None
    shoppers: int = 0
    transitions: int = 0
    products: int = 0
    validation_ndcg: float | None = None
    epochs: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def shopper_sequences(*, days: int = TRAINING_DAYS, now: dt.datetime | None = None
                      ) -> tuple[list[int], dict[str, list[int]]]:
    """(catalogue product ids, shopper -> product ids in time order) from recent events.

    Views, recommendation clicks and cart adds count; a product repeated straight after itself (a
    reload, a view then its cart add) is one step."""
    now = now or timezone.now()
    catalogue = list(shop.active_products().order_by("pk").values_list("pk", flat=True))
    known = set(catalogue)
    rows = (behavior.events_between(now - dt.timedelta(days=days), now + dt.timedelta(minutes=5))
            .filter(event_type__in=SEQUENCE_TYPES, product__isnull=False)
            .order_by("occurred_at", "id").values_list("user_id", "visitor_id", "product_id")
            .iterator(chunk_size=5000))
    sequences: dict[str, list[int]] = {}
    for user_id, visitor_id, product_id in rows:
        shopper = f"u{user_id}" if user_id is not None else (f"v{visitor_id}" if visitor_id else None)
        if shopper is None or product_id not in known:
            continue
        seq = sequences.setdefault(shopper, [])
        if not seq or seq[-1] != product_id:
            seq.append(product_id)
    return catalogue, sequences


def _publish_status(report: SequentialReport) -> None:
    cache.set(STATUS_KEY, report.as_dict(), None)


def train(*, days: int = TRAINING_DAYS, progress: bool = False, config: dict | None = None) -> SequentialReport:
    """Fit the next-item model on recent sessions and publish it, or record why not."""
    started = time.perf_counter()
    catalogue, by_shopper = shopper_sequences(days=days)
    col_of = {pid: col for col, pid in enumerate(catalogue)}
    sequences = [[col_of[pid] for pid in seq] for seq in by_shopper.values() if len(seq) >= 2]
    transitions = sum(len(seq) - 1 for seq in sequences)
    report = SequentialReport(status="fallback", reason="", shoppers=len(sequences), transitions=transitions,
                              products=len(catalogue))
    if len(sequences) < MIN_SHOPPERS or transitions < MIN_TRANSITIONS:
        report.reason = (f"too little data: {len(sequences)} shoppers with two or more products viewed "
                         f"(need {MIN_SHOPPERS}) and {transitions} transitions (need {MIN_TRANSITIONS})")
        log.warning("Next-item model not trained, rails use popularity and the blended picks: %s", report.reason)
        _publish_status(report)
        return report
    try:
        params = {**_settings_config(), **(config or {})}
        model = SequentialRecommender(SeqConfig(n_items=len(catalogue), **params))
        # Early stopping on each shopper's last step (only shoppers with three or more steps have one).
        held = [seq for seq in sequences if len(seq) >= 3]
        validate = None
        if len(held) >= MIN_SHOPPERS:
            histories, targets = [seq[:-1] for seq in held], [seq[-1] for seq in held]
            train_seqs = [seq[:-1] if len(seq) >= 3 else seq for seq in sequences]

            def validate(fitted: SequentialRecommender) -> float:
                scores = fitted.score(histories)
                for row, history in enumerate(histories):
                    scores[row, history] = -np.inf
                ranks = (scores > scores[np.arange(len(targets)), targets][:, None]).sum(axis=1)
                return float(np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        else:
            train_seqs = sequences
        model.fit(train_seqs, validate=validate, progress=progress)
        if model.history:
            report.validation_ndcg = round(max(value for _e, value in model.history), 4)
    except Exception as exc:  # noqa: BLE001 - a failed fit must leave the shop on its fallback, not break it
        report.reason = f"training failed: {exc!r}"
        log.exception("Next-item model training failed; rails use popularity and the blended picks")
        _publish_status(report)
        return report
    version = timezone.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    _save(model, catalogue, version)
    report.status, report.reason, report.version = "trained", "ok", version
    report.epochs = model.best_epoch
    report.seconds = round(time.perf_counter() - started, 2)
    _publish_status(report)
    cache.set(VERSION_KEY, version, None)
    log.info("Next-item model %s trained on %d shoppers (%d transitions)", version, len(sequences), transitions)
    return report


def train_once(**kwargs) -> SequentialReport | None:
    """`train`, unless another run holds the lock."""
    if not cache.add(LOCK_KEY, 1, 3600):
        log.info("Next-item training already running; skipped")
        return None
    try:
        return train(**kwargs)
    finally:
        cache.delete(LOCK_KEY)


def status() -> dict | None:
    """The last training run's report (trained, or the fallback and its reason)."""
    return cache.get(STATUS_KEY)


def _save(model: SequentialRecommender, catalogue: list[int], version: str) -> Path:
    folder = model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sequential-{version}.pt"
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    state = model.state()
    state["item_ids"] = list(map(int, catalogue))
    import torch

    torch.save(state, tmp)
    os.replace(tmp, path)  # readers never see half a file
    pointer = folder / f".sequential-current.{uuid.uuid4().hex}"
    pointer.write_text(version)
    os.replace(pointer, folder / "sequential-current")
    for old in sorted(folder.glob("sequential-*.pt"), key=lambda p: p.stat().st_mtime)[:-2]:
        old.unlink(missing_ok=True)
    return path


def current_version() -> str | None:
    version = cache.get(VERSION_KEY)
    if version:
        return version
    try:
        version = (model_dir() / "sequential-current").read_text().strip() or None
    except OSError:
        return None
    if version:
        cache.set(VERSION_KEY, version, None)
    return version


@dataclass
class LoadedModel:
    version: str
    model: SequentialRecommender
    item_ids: list[int]

    def __post_init__(self) -> None:
        self.col_of = {pid: col for col, pid in enumerate(self.item_ids)}


class _ProcessModel:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: LoadedModel | None = None

    def get(self) -> LoadedModel | None:
        version = current_version()
        if version is None:
            return None
        with self.lock:
            if self.loaded is None or self.loaded.version != version:
                path = model_dir() / f"sequential-{version}.pt"
                try:
                    state = SequentialRecommender.read_state(path)
                    model = SequentialRecommender.from_state(state)
                    self.loaded = LoadedModel(version, model, [int(pid) for pid in state["item_ids"]])
                except Exception:  # noqa: BLE001 - a missing or damaged file: serve without it
                    log.exception("Could not load the next-item model %s; serving without it", path)
            return self.loaded

    def reset(self) -> None:
        with self.lock:
            self.loaded = None


_process_model = _ProcessModel()


def loaded_model() -> LoadedModel | None:
    return _process_model.get()


def reset() -> None:
    _process_model.reset()


def next_items(sequence: list[int], *, k: int = 20, exclude: set[int] | frozenset = frozenset()
               ) -> list[tuple[int, float]]:
    """[(product id, score)] the model expects next after `sequence` (product ids, oldest first);
    [] without a model or without a known product in the sequence."""
    loaded = loaded_model()
    if loaded is None:
        return []
    cols = [loaded.col_of[pid] for pid in sequence if pid in loaded.col_of]
    if not cols:
        return []
    banned = {loaded.col_of[pid] for pid in exclude if pid in loaded.col_of} | set(cols)
    picks = loaded.model.recommend(cols, k=k + len(banned), exclude=sorted(banned))
    return [(loaded.item_ids[col], score) for col, score in picks][:k]
