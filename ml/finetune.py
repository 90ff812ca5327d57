"""Fine-tuning: a sequence classifier from the MiniLM encoder, and a contrastive embedder fine-tune.

Seeded, with a stratified train / validation / test split, early stopping on validation
macro-F1, and a checkpoint folder holding the weights, the tokenizer, `labels.json` and
`metrics.json`. The test split is the held-out set a new version is compared on before it
may replace the active one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as M
from .devices import autocast_dtype, choose_device, enable_tf32, inference_dtype, train_defaults
from .devices import loader_workers as device_loader_workers
from .inference import classifier_probabilities, pad_batch
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


def predict(model, tokenizer, texts: Sequence[str], device: torch.device, *, batch_size: int | None = None,
            max_length: int = 128, autocast: torch.dtype | None = None) -> np.ndarray:
    """Class probabilities, shape (len(texts), n_labels), in the order of `texts` (token-budget batches;
    batch_size, if given, caps the rows of one)."""
    model.eval()
    return classifier_probabilities(model, tokenizer, list(texts), device, max_length=max_length,
                                    max_rows=batch_size, autocast=autocast)


def evaluate_classifier(path: str | Path, texts: Sequence[str], labels: Sequence[str], *,
                        device: torch.device | None = None, max_length: int = 128) -> dict:
    """Metrics of a saved classifier on a labelled set (labels compared by name)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device = device or choose_device()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, local_files_only=True, dtype=inference_dtype(device), attn_implementation="sdpa").to(device)
    id2label = {int(i): name for i, name in model.config.id2label.items()}
    probabilities = predict(model, tokenizer, texts, device, max_length=max_length)
    predicted = [id2label[int(i)] for i in probabilities.argmax(axis=1)]
    return M.classification_report(list(labels), predicted, labels=sorted(set(labels)))


class EncodedTexts(torch.utils.data.Dataset):
    """Texts tokenized once before training (no padding), with their label ids."""

    def __init__(self, input_ids: list[list[int]], labels: list[int]) -> None:
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.input_ids[index], self.labels[index]


class PadCollate:
    """A batch padded to its own longest text (rounded up to `multiple_of`), as int64 tensors."""

    def __init__(self, pad_id: int, multiple_of: int = 1) -> None:
        self.pad_id, self.multiple_of = pad_id, multiple_of

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        arrays = pad_batch([ids for ids, _ in items], self.pad_id, multiple_of=self.multiple_of)
        batch = {key: torch.from_numpy(value) for key, value in arrays.items()}
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
        return batch


class EpochBatches(torch.utils.data.Sampler):
    """One epoch of training batches, drawn from `generator` at each pass.

    Without grouping: a random permutation cut into batches (the old loop's order). With grouping:
    the permutation is cut into groups of `group_batches` batches, each group sorted by length
    rounded down to `granularity` tokens (texts within one such step stay in random order, so short
    texts of a small data set still mix as before, rather than a batch of copies of one sentence)
    and cut into batches, and the batches shuffled, the longest batch first (so a batch size that
    does not fit in memory fails on the first step, not an hour in)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator, *,
                 group_by_length: bool = True, group_batches: int = 50, granularity: int = 16) -> None:
        self.lengths, self.batch_size, self.generator = list(lengths), batch_size, generator
        self.group_by_length, self.group_batches, self.granularity = group_by_length, group_batches, granularity

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        size = self.batch_size
        if not self.group_by_length:
            yield from (order[start:start + size] for start in range(0, len(order), size))
            return
        span = size * self.group_batches
        batches = []
        for start in range(0, len(order), span):
            group = sorted(order[start:start + span], key=lambda i: -(self.lengths[i] // self.granularity))
            batches += [group[i:i + size] for i in range(0, len(group), size)]
        longest = max(range(len(batches)), key=lambda b: max(self.lengths[i] for i in batches[b]))
        batches[0], batches[longest] = batches[longest], batches[0]
        rest = torch.randperm(len(batches) - 1, generator=self.generator).tolist()
        yield batches[0]
        yield from (batches[1 + i] for i in rest)


def _compile_requested(config: TrainConfig) -> bool:
    return config.compile or os.environ.get("AISLE_TORCH_COMPILE", "").strip() == "1"


def train_classifier(texts: Sequence[str], labels: Sequence[str], *, base_model: str | Path,
                     output_dir: str | Path, config: TrainConfig | None = None,
                     label_names: Sequence[str] | None = None,
                     test_set: tuple[Sequence[str], Sequence[str]] | None = None,
                     device: torch.device | None = None, progress: bool = True,
                     on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Fine-tune a sequence classifier from an encoder checkpoint and save it to output_dir.

    The device is kept busy: texts are tokenized once up front; batches of similar length are
    padded only to their own longest text, by DataLoader workers into pinned memory on a GPU;
    on a GPU the forward and backward passes run in bf16 autocast over fp32 master weights (TF32
    for what stays fp32), and the loss is read back only every `log_every` steps and at
    validations, so the host never waits on the device in between."""
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
    batch_size, learning_rate = train_defaults(device, config.batch_size, config.learning_rate)
    config = replace(config, batch_size=batch_size, learning_rate=learning_rate)
    amp = autocast_dtype(device)
    cuda = device.type == "cuda"
    if cuda:
        enable_tf32()
    started = time.perf_counter()

    test_fraction = 0.0 if test_set is not None else config.test_fraction
    train_idx, val_idx, test_idx = stratified_split(labels, config.val_fraction, test_fraction, config.seed)
    train_texts = [texts[i] for i in train_idx]
    val_texts, val_labels = [texts[i] for i in val_idx], [labels[i] for i in val_idx]
    if test_set is not None:
        test_texts, test_labels = list(test_set[0]), [str(label) for label in test_set[1]]
    else:
        test_texts, test_labels = [texts[i] for i in test_idx], [labels[i] for i in test_idx]

    tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    # fp32 master weights whatever dtype the base was saved in (autocast makes the bf16 copies).
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model, local_files_only=True, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id=label2id, ignore_mismatched_sizes=True, dtype=torch.float32, attn_implementation="sdpa",
    ).to(device)
    step_model = torch.compile(model, dynamic=True) if _compile_requested(config) else model

    encoded = tokenizer(train_texts, truncation=True, max_length=config.max_length)["input_ids"]
    dataset = EncodedTexts(encoded, [label2id[labels[i]] for i in train_idx])
    generator = torch.Generator().manual_seed(config.seed)
    sampler = EpochBatches([len(ids) for ids in encoded], batch_size, generator,
                           group_by_length=config.group_by_length)
    workers = device_loader_workers(device) if config.loader_workers is None else config.loader_workers
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # The loader gets its own generator: drawing its seed from the global one would change dropout.
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler,
                                         collate_fn=PadCollate(pad_id, multiple_of=8 if cuda else 1),
                                         num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(config.seed))

    steps_per_epoch = max(1, len(sampler))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    eval_every = config.eval_every or steps_per_epoch
    log_every = max(1, config.log_every)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay,
                                  fused=cuda)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)

    def validate() -> dict:
        if not val_texts:
            return {"macro_f1": 0.0, "accuracy": 0.0}
        probabilities = predict(model, tokenizer, val_texts, device, max_length=config.max_length, autocast=amp)
        predicted = [names[int(i)] for i in probabilities.argmax(axis=1)]
        return M.classification_report(val_labels, predicted, labels=names)

    best_score, best_state, best_step, evals_without_gain = -1.0, None, 0, 0
    history: list[dict] = []
    step, stopped_early = 0, False
    loss_sum, loss_steps = torch.zeros((), device=device), 0  # on the device: adding does not wait on it
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not progress)
    train_started = time.perf_counter()
    while step < total_steps and not stopped_early:
        model.train()
        for batch in loader:
            batch = {key: value.to(device, non_blocking=cuda) for key, value in batch.items()}
            with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                loss = step_model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            loss_steps += 1
            step += 1
            bar.update(1)
            if progress and step % log_every == 0:
                bar.set_postfix(loss=f"{(loss_sum / loss_steps).item():.3f}")
            if on_step:
                on_step(step, total_steps)
            if step % eval_every == 0 or step == total_steps:
                report = validate()
                history.append({"step": step, "loss": float((loss_sum / loss_steps).item()),
                                "val_macro_f1": report["macro_f1"], "val_accuracy": report["accuracy"]})
                loss_sum, loss_steps = torch.zeros((), device=device), 0
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
    train_seconds = time.perf_counter() - train_started
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)

    probabilities = predict(model, tokenizer, test_texts, device, max_length=config.max_length, autocast=amp)
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
        "precision": f"{str(amp).removeprefix('torch.')} autocast" if amp is not None else "fp32",
        "compiled": step_model is not model, "loader_workers": workers,
        "train_seconds": round(train_seconds, 2), "steps_per_second": round(step / max(train_seconds, 1e-9), 2),
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

    config = config or TrainConfig()
    # In-batch negatives want a larger batch than classification: 32 pairs at 2e-5 unless told otherwise.
    config = replace(config, batch_size=config.batch_size or 32,
                     learning_rate=config.learning_rate if config.learning_rate is not None else 2e-5)
    seed_everything(config.seed)
    device = device or choose_device()
    started = time.perf_counter()
    pairs = list(pairs)
    rng = random.Random(config.seed)
    rng.shuffle(pairs)
    n_test = max(1, int(len(pairs) * config.test_fraction))
    n_val = max(1, int(len(pairs) * config.val_fraction))
    test, val, train = pairs[:n_test], pairs[n_test:n_test + n_val], pairs[n_test + n_val:]

    model = SentenceTransformer(str(base_model), device=str(device), local_files_only=True,
                                model_kwargs={"dtype": torch.float32})  # fp32 master weights
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
