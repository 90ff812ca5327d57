"""Task name -> checkpoint folder -> a loaded model, once per process.

Resolution order for a task: the active fine-tuned version (from the resolver the Django
side installs), then the path from settings/env (AISLE_MODEL_<TASK>), then the packaged
default. A candidate that fails to load is logged with its path and the next one is tried,
so a broken checkpoint never takes the shop down; only when nothing loads does the caller
get ModelUnavailable (which the apps turn into their own fallback, never a 500).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import packaged
from .devices import choose_device, inference_dtype

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EMBEDDER, CLASSIFIER, GENERATOR = "embedder", "classifier", "generator"
# Task name -> kind of model. Apps may add classifier tasks with register_task().
TASK_KINDS: dict[str, str] = {"embedder": EMBEDDER, "generator": GENERATOR, "sentiment": CLASSIFIER,
                              "intent": CLASSIFIER}


class ModelUnavailable(RuntimeError):
    """No candidate checkpoint of a task could be loaded."""


@dataclass(frozen=True)
class Candidate:
    path: Path
    source: str  # "active version", "settings", "packaged default"


@dataclass
class LoadedModel:
    task: str
    kind: str
    path: Path
    source: str
    device: torch.device
    model: Any
    tokenizer: Any = None
    int8: Any = None  # an ml.onnx_int8.Int8Model serving in place of `model` (CPU, checked export)
    load_seconds: float = 0.0
    loaded_at: float = field(default_factory=time.time)


Resolver = Callable[[str], "str | Path | None"]


def register_task(task: str, kind: str) -> None:
    if kind not in (EMBEDDER, CLASSIFIER, GENERATOR):
        raise ValueError(f"Unknown model kind {kind!r}")
    TASK_KINDS[task] = kind


class ModelRegistry:
    def __init__(self, recheck_seconds: float = 30.0) -> None:
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._paths: dict[str, str] = {}
        self._resolver: Resolver | None = None
        self._checked_at: dict[str, float] = {}
        self.recheck_seconds = recheck_seconds
        self.device_override: str | None = None

    # --- configuration -----------------------------------------------------------------
    def configure(self, *, paths: dict[str, str] | None = None, resolver: Resolver | None = None,
                  device: str | None = None) -> None:
        """Set paths from settings, the active-version resolver and a device override."""
        if paths is not None:
            self._paths = {task: p for task, p in paths.items() if p}
        if resolver is not None:
            self._resolver = resolver
        if device is not None:
            self.device_override = device or None
        self.unload()

    def candidates(self, task: str) -> list[Candidate]:
        found: list[Candidate] = []
        if self._resolver is not None:
            try:
                active = self._resolver(task)
            except Exception:  # the version table may be unreachable; the other candidates still serve
                log.exception("Could not resolve the active %s version", task)
                active = None
            if active:
                found.append(Candidate(Path(active), "active version"))
        configured = os.environ.get(f"AISLE_MODEL_{task.upper()}") or self._paths.get(task)
        if configured:
            found.append(Candidate(Path(configured), "settings"))
        default = packaged.default_path(task)
        if default is not None:
            found.append(Candidate(default, "packaged default"))
        return found

    def kind(self, task: str) -> str:
        try:
            return TASK_KINDS[task]
        except KeyError:
            raise ModelUnavailable(f"Unknown model task {task!r}; known: {sorted(TASK_KINDS)}") from None

    # --- loading -------------------------------------------------------------------------
    def _lock(self, task: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(task, threading.Lock())

    def get(self, task: str) -> LoadedModel:
        """The loaded model of a task (loaded on first use; reloaded if another version was promoted)."""
        loaded = self._loaded.get(task)
        if loaded is not None and not self._stale(task, loaded):
            return loaded
        with self._lock(task):
            loaded = self._loaded.get(task)
            if loaded is not None and not self._stale(task, loaded):
                return loaded
            loaded = self._load_first_working(task)
            self._loaded[task] = loaded
            self._checked_at[task] = time.monotonic()
            return loaded

    def _stale(self, task: str, loaded: LoadedModel) -> bool:
        # Another process may have promoted a new version: look again every recheck_seconds.
        if self._resolver is None or time.monotonic() - self._checked_at.get(task, 0) < self.recheck_seconds:
            return False
        self._checked_at[task] = time.monotonic()
        candidates = self.candidates(task)
        return bool(candidates) and candidates[0].path != loaded.path

    def _load_first_working(self, task: str) -> LoadedModel:
        kind = self.kind(task)
        candidates = self.candidates(task)
        errors = []
        for candidate in candidates:
            try:
                return self._load(task, kind, candidate)
            except Exception as exc:  # noqa: BLE001 - any broken checkpoint falls through to the next
                log.error("Could not load the %s model from %s (%s): %s; trying the next candidate",
                          task, candidate.path, candidate.source, exc)
                errors.append(f"{candidate.path} ({candidate.source}): {exc}")
        detail = "; ".join(errors) or "no checkpoint is configured and no packaged default exists"
        raise ModelUnavailable(f"No {task} model could be loaded: {detail}")

    def _load(self, task: str, kind: str, candidate: Candidate) -> LoadedModel:
        if not candidate.path.exists():
            raise FileNotFoundError(f"checkpoint folder {candidate.path} does not exist")
        device = choose_device(self.device_override)
        started = time.perf_counter()
        model, tokenizer = LOADERS[kind](candidate.path, device)
        int8 = load_int8(candidate.path, kind, model, tokenizer) if device.type == "cpu" else None
        seconds = time.perf_counter() - started
        log.info("Loaded %s model from %s (%s) on %s%s in %.1f s", task, candidate.path, candidate.source, device,
                 " (int8 ONNX)" if int8 is not None else "", seconds)
        return LoadedModel(task=task, kind=kind, path=candidate.path, source=candidate.source, device=device,
                           model=model, tokenizer=tokenizer, int8=int8, load_seconds=seconds)

    def load_path(self, task: str, path: str | Path, source: str = "trial") -> LoadedModel:
        """A checkpoint of a task loaded as the registry would serve it, outside the cache: a candidate
        version is evaluated exactly as it would be served, without replacing what serves now."""
        return self._load(task, self.kind(task), Candidate(Path(path), source))

    def unload(self, task: str | None = None) -> None:
        if task is None:
            self._loaded.clear()
            self._checked_at.clear()
        else:
            self._loaded.pop(task, None)
            self._checked_at.pop(task, None)

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._loaded)


# --- loaders, one per kind ---------------------------------------------------------------


# Encoders use PyTorch's fused scaled-dot-product attention (flash / memory-efficient kernels on a GPU).
ATTENTION = "sdpa"


def load_embedder(path: Path, device: torch.device):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=str(device), local_files_only=True,
                                model_kwargs={"attn_implementation": ATTENTION, "dtype": inference_dtype(device)})
    model.eval()
    return model, None


def load_classifier(path: Path, device: torch.device):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True,
                                                               dtype=inference_dtype(device),
                                                               attn_implementation=ATTENTION)
    return model.to(device).eval(), tokenizer


def load_int8(path: Path, kind: str, model, tokenizer):
    """The checkpoint's checked int8 ONNX export for CPU serving, if it has one (ml.onnx_int8)."""
    from . import onnx_int8

    if kind not in (EMBEDDER, CLASSIFIER):
        return None
    return onnx_int8.load_int8(path, kind, tokenizer if kind == CLASSIFIER else model.tokenizer)


def load_generator(path: Path, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import llama_engine, lora

    # A fine-tuned LoRA adapter (ml.lora): its base, then the adapter, on transformers (llama.cpp serves
    # only the GGUF as it ships).
    if lora.is_adapter(path):
        return lora.load_adapter(path, device)
    # On the CPU a GGUF checkpoint (the packaged default) runs as it ships on llama.cpp, several times
    # faster than de-quantised in transformers (bench/ml.py --engines); the model then has no tokenizer here.
    gguf = llama_engine.gguf_file(path)
    if gguf is not None and device.type == "cpu" and llama_engine.wanted():
        return llama_engine.LlamaGenerator(gguf), None
    path = converted_gguf_checkpoint(path) if _gguf_only(path) else path
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=inference_dtype(device))
    return model.to(device).eval(), tokenizer


LOADERS = {EMBEDDER: load_embedder, CLASSIFIER: load_classifier, GENERATOR: load_generator}


def _gguf_only(path: Path) -> bool:
    return not (path / "config.json").exists() and any(path.glob("*.gguf"))


def converted_gguf_checkpoint(gguf_dir: Path) -> Path:
    """Unpack a GGUF checkpoint once into a plain safetensors folder in the model cache.

    Loading GGUF de-quantises every tensor (~15-30 s); the cached folder loads in about a second.
    The folder is written under a temporary name and renamed, so concurrent processes never see
    half a checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = sorted(gguf_dir.glob("*.gguf"))[0]
    target = packaged.model_cache_dir() / gguf_file.stem
    if (target / "config.json").exists():
        return target
    log.info("Unpacking %s into %s (once)", gguf_file, target)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


registry = ModelRegistry()
