"""Fine-tuning: a sequence classifier from the MiniLM encoder, and a contrastive embedder fine-tune.

Seeded, with a stratified train / validation / test split, early stopping on validation
macro-F1, and a checkpoint folder holding the weights, the tokenizer, `labels.json` and
`metrics.json`. The test split is the held-out set a new version is compared on before it
may replace the active one.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as M
from .devices import choose_device
from .train_config import TrainConfig, TrainResult

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stratified_split(labels: Sequence, val_fraction: float, test_fraction: float, seed: int):
    """Index lists (train, val, test), each class split in the same proportions."""
    rng = random.Random(seed)
    by_label: dict[object, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    train, val, test = [], [], []
    for label in sorted(by_label, key=str):
        indices = by_label[label]
        rng.shuffle(indices)
        n_test = round(len(indices) * test_fraction) if len(indices) > 2 else 0
        n_val = round(len(indices) * val_fraction) if len(indices) > 2 else 0
        if test_fraction and len(indices) > 2:
            n_test = max(n_test, 1)
        if val_fraction and len(indices) > 2:
            n_val = max(n_val, 1)
        test += indices[:n_test]
        val += indices[n_test:n_test + n_val]
        train += indices[n_test + n_val:]
    rng.shuffle(train)
    return train, val, test


@torch.inference_mode()
def predict(model, tokenizer, texts: Sequence[str], device: torch.device, *, batch_size: int = 64,
            max_length: int = 128) -> np.ndarray:
    """Class probabilities, shape (len(texts), n_labels)."""
    model.eval()
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        rows.append(torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.num_labels))


def evaluate_classifier(path: str | Path, texts: Sequence[str], labels: Sequence[str], *,
                        device: torch.device | None = None, max_length: int = 128) -> dict:
    """Metrics of a saved classifier on a labelled set (labels compared by name)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device = device or choose_device()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).to(device)
    id2label = {int(i): name for i, name in model.config.id2label.items()}
    probabilities = predict(model, tokenizer, texts, device, max_length=max_length)
    predicted = [id2label[int(i)] for i in probabilities.argmax(axis=1)]
    return M.classification_report(list(labels), predicted, labels=sorted(set(labels)))


def train_classifier(texts: Sequence[str], labels: Sequence[str], *, base_model: str | Path,
                     output_dir: str | Path, config: TrainConfig | None = None,
                     label_names: Sequence[str] | None = None,
                     test_set: tuple[Sequence[str], Sequence[str]] | None = None,
                     device: torch.device | None = None, progress: bool = True,
                     on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Fine-tune a sequence classifier from an encoder checkpoint and save it to output_dir."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    config = config or TrainConfig()
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    labels = [str(label) for label in labels]
    names = list(label_names) if label_names else sorted(set(labels))
    unknown = set(labels) - set(names)
    if unknown:
        raise ValueError(f"labels not in label_names: {sorted(unknown)}")
    if len(names) < 2:
        raise ValueError("a classifier needs at least two labels")
    label2id = {name: i for i, name in enumerate(names)}
    seed_everything(config.seed)
    device = device or choose_device()
    started = time.perf_counter()

    test_fraction = 0.0 if test_set is not None else config.test_fraction
    train_idx, val_idx, test_idx = stratified_split(labels, config.val_fraction, test_fraction, config.seed)
    train_texts = [texts[i] for i in train_idx]
    train_y = torch.tensor([label2id[labels[i]] for i in train_idx])
    val_texts, val_labels = [texts[i] for i in val_idx], [labels[i] for i in val_idx]
    if test_set is not None:
        test_texts, test_labels = list(test_set[0]), [str(label) for label in test_set[1]]
    else:
        test_texts, test_labels = [texts[i] for i in test_idx], [labels[i] for i in test_idx]

    tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, local_files_only=True, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id=label2id, ignore_mismatched_sizes=True,
    ).to(device)

    steps_per_epoch = max(1, (len(train_texts) + config.batch_size - 1) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    eval_every = config.eval_every or steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)
    generator = torch.Generator().manual_seed(config.seed)

    def validate() -> dict:
        if not val_texts:
            return {"macro_f1": 0.0, "accuracy": 0.0}
        probabilities = predict(model, tokenizer, val_texts, device, max_length=config.max_length)
        predicted = [names[int(i)] for i in probabilities.argmax(axis=1)]
        return M.classification_report(val_labels, predicted, labels=names)

    best_score, best_state, best_step, evals_without_gain = -1.0, None, 0, 0
    history: list[dict] = []
    step, stopped_early = 0, False
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not progress)
    while step < total_steps and not stopped_early:
        model.train()
        order = torch.randperm(len(train_texts), generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch_idx = order[start:start + config.batch_size]
            batch = tokenizer([train_texts[i] for i in batch_idx], padding=True, truncation=True,
                              max_length=config.max_length, return_tensors="pt").to(device)
            loss = model(**batch, labels=train_y[batch_idx].to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_step:
                on_step(step, total_steps)
            if step % eval_every == 0 or step == total_steps:
                report = validate()
                history.append({"step": step, "loss": float(loss.item()), "val_macro_f1": report["macro_f1"],
                                "val_accuracy": report["accuracy"]})
                if report["macro_f1"] > best_score:
                    best_score, best_step, evals_without_gain = report["macro_f1"], step, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                else:
                    evals_without_gain += 1
                    if evals_without_gain >= config.patience:
                        stopped_early = True
                        break
                model.train()
            if step >= total_steps:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)

    probabilities = predict(model, tokenizer, test_texts, device, max_length=config.max_length)
    test_predicted = [names[int(i)] for i in probabilities.argmax(axis=1)]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    metrics = {
        "kind": "classifier",
        "base_model": str(base_model),
        "labels": names,
        "train_size": len(train_texts), "validation_size": len(val_texts), "test_size": len(test_texts),
        "validation": validate() if val_texts else {},
        "test": M.classification_report(test_labels, test_predicted, labels=names) if test_texts else {},
        "primary_metric": "macro_f1",
        "best_step": best_step, "steps": step, "stopped_early": stopped_early,
        "history": history, "config": asdict(config), "device": str(device),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (output_dir / "labels.json").write_text(json.dumps(label2id, indent=2))
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return TrainResult(path=output_dir, metrics=metrics, labels=names, test_texts=test_texts,
                       test_labels=test_labels)


def _features(model, texts: list[str], device: torch.device) -> dict:
    encode = getattr(model, "preprocess", None) or model.tokenize
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in encode(texts).items()}


def _embedder_recall(model, anchors: Sequence[str], positives: Sequence[str], batch_size: int = 64) -> float:
    a = model.encode(list(anchors), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    p = model.encode(list(positives), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return M.recall_at_k(a @ p.T, k=1)


def evaluate_embedder(path: str | Path, pairs: Sequence[tuple[str, str]], device: torch.device | None = None) -> dict:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=str(device or choose_device()), local_files_only=True)
    return {"recall_at_1": _embedder_recall(model, [a for a, _ in pairs], [p for _, p in pairs])}


def train_embedder(pairs: Sequence[tuple[str, str]], *, base_model: str | Path, output_dir: str | Path,
                   config: TrainConfig | None = None, scale: float = 20.0, device: torch.device | None = None,
                   progress: bool = True) -> TrainResult:
    """Contrastive fine-tune (in-batch negatives, as MultipleNegativesRankingLoss) from (anchor, positive) pairs."""
    from sentence_transformers import SentenceTransformer

    config = config or TrainConfig(learning_rate=2e-5, batch_size=32)
    seed_everything(config.seed)
    device = device or choose_device()
    started = time.perf_counter()
    pairs = list(pairs)
    rng = random.Random(config.seed)
    rng.shuffle(pairs)
    n_test = max(1, int(len(pairs) * config.test_fraction))
    n_val = max(1, int(len(pairs) * config.val_fraction))
    test, val, train = pairs[:n_test], pairs[n_test:n_test + n_val], pairs[n_test + n_val:]

    model = SentenceTransformer(str(base_model), device=str(device), local_files_only=True)
    base_test = _embedder_recall(model, [a for a, _ in test], [p for _, p in test])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train) // config.batch_size)
    total_steps = min(steps_per_epoch * config.epochs, config.max_steps or 10**9)
    best, best_state, without_gain, step, stopped_early = -1.0, None, 0, 0, False
    history = []
    bar = tqdm(total=total_steps, desc="fine-tuning embedder", unit="step", disable=not progress)
    while step < total_steps and not stopped_early:
        rng.shuffle(train)
        for start in range(0, len(train) - config.batch_size + 1, config.batch_size):
            model.train()
            batch = train[start:start + config.batch_size]
            a = model(_features(model, [a for a, _ in batch], device))["sentence_embedding"]
            p = model(_features(model, [p for _, p in batch], device))["sentence_embedding"]
            logits = scale * torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(p, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % (config.eval_every or steps_per_epoch) == 0 or step == total_steps:
                model.eval()
                score = _embedder_recall(model, [a for a, _ in val], [p for _, p in val])
                history.append({"step": step, "loss": float(loss.item()), "val_recall_at_1": score})
                if score > best:
                    best, without_gain = score, 0
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                else:
                    without_gain += 1
                    if without_gain >= config.patience:
                        stopped_early = True
                        break
            if step >= total_steps:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    output_dir = Path(output_dir)
    model.save(str(output_dir))
    metrics = {
        "kind": "embedder", "base_model": str(base_model), "primary_metric": "recall_at_1",
        "train_size": len(train), "validation_size": len(val), "test_size": len(test),
        "base_test": {"recall_at_1": base_test},
        "test": {"recall_at_1": _embedder_recall(model, [a for a, _ in test], [p for _, p in test])},
        "steps": step, "stopped_early": stopped_early, "history": history, "config": asdict(config),
        "device": str(device), "seconds": round(time.perf_counter() - started, 2),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return TrainResult(path=output_dir, metrics=metrics, labels=[], test_texts=[a for a, _ in test],
                       test_labels=[p for _, p in test])
