"""Today's ml/ code path before the speed work (issue 19), frozen here as the baseline that
bench/gpu.py, bench/ml.py and tests/test_ml_speed.py measure the new path against.

Verbatim copies of the old functions (only renamed, with the old defaults spelled out): the
fixed-batch-count `classify` and `embed`, and the fine-tuning loop that tokenizes inside the loop,
pads to the longest text of a random batch, runs fp32 and reads the loss back every step.
Do not "improve" this file: it is the measuring stick.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ml import metrics as M
from ml.devices import choose_device, inference_dtype
from ml.finetune import seed_everything, stratified_split
from ml.inference import Prediction
from ml.train_config import TrainConfig, TrainResult


def load_embedder_old(path: Path, device: torch.device):
    """ml.registry.load_embedder before: checkpoint dtype, then .half() on a GPU."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
    if device.type == "cuda":
        model.half()
    model.eval()
    return model


def load_classifier_old(path: Path, device: torch.device):
    """ml.registry.load_classifier before (default attention)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True,
                                                               dtype=inference_dtype(device))
    return model.to(device).eval(), tokenizer


def embed_old(model, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """ml.embed before: sentence-transformers' encode at a fixed 64 texts per batch."""
    vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)


@torch.inference_mode()
def classify_old(model, tokenizer, device: torch.device, texts: list[str], *, batch_size: int = 32,
                 max_length: int = 256) -> list[Prediction]:
    """ml.classify before: 32 texts per batch in input order, padded to the batch's longest."""
    id2label = {int(i): label for i, label in model.config.id2label.items()}
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)
        probabilities = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(Prediction(
                label=id2label[best], score=float(row[best]),
                probabilities={id2label[i]: float(p) for i, p in enumerate(row)},
            ))
    return predictions


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



def train_classifier_old(texts: Sequence[str], labels: Sequence[str], *, base_model: str | Path,
                     output_dir: str | Path, config: TrainConfig | None = None,
                     label_names: Sequence[str] | None = None,
                     test_set: tuple[Sequence[str], Sequence[str]] | None = None,
                     device: torch.device | None = None, progress: bool = True,
                     on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Fine-tune a sequence classifier from an encoder checkpoint and save it to output_dir."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    config = config or TrainConfig(batch_size=16, learning_rate=5e-5)
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
