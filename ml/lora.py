"""LoRA adapters over the generator (peft): training on (prompt messages -> target text) pairs, and loading
base + adapter for serving. Plain Python + torch; it knows no app: the caller hands it chat messages built
the way serving builds them (merchandising's copy writer), so training and serving see the same prompt.

The base stays frozen (float32 while training); only the adapter's low-rank matrices learn, and the loss
is taken on the target's tokens only (the prompt's labels are -100), so the model learns to write the copy,
not to reproduce the prompt. An adapter folder holds peft's adapter files, the tokenizer (its chat
template) and `aisle_adapter.json` naming the base it was trained on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .devices import autocast_dtype, choose_device, inference_dtype
from .train_config import LoraTrainConfig, TrainResult

log = logging.getLogger(__name__)
ADAPTER_INFO = "aisle_adapter.json"


@dataclass(frozen=True)
class Example:
    """One training pair: the chat messages serving sends (system + user), and the text to learn."""

    messages: list[dict]
    target: str


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def plain_base(path: str | Path) -> Path:
    """A transformers folder for a base: a GGUF-only folder (the packaged SmolLM2) is unpacked once."""
    from .registry import _gguf_only, converted_gguf_checkpoint

    path = Path(path)
    return converted_gguf_checkpoint(path) if _gguf_only(path) else path


def adapter_base(path: str | Path) -> Path:
    """The base an adapter was trained on: the recorded folder, else where it came from (a GGUF folder is
    unpacked again, e.g. on a machine with another model cache)."""
    path = Path(path)
    info = json.loads((path / ADAPTER_INFO).read_text()) if (path / ADAPTER_INFO).exists() else {}
    peft_config = json.loads((path / "adapter_config.json").read_text())
    for candidate in (info.get("base_model"), peft_config.get("base_model_name_or_path"), info.get("base_source")):
        if candidate and Path(candidate).exists():
            return plain_base(candidate)
    raise FileNotFoundError(f"the base model of adapter {path} is gone (recorded: {info or peft_config})")


def load_adapter(path: str | Path, device: torch.device):
    """(model, tokenizer) for serving base + adapter. On the CPU the adapter is merged into the float32
    base (one matmul per layer, as fast as the base); on a GPU it stays a separate fp32 branch beside the
    half-precision base, so its small updates are not rounded away by merging into bf16 weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    base = adapter_base(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=inference_dtype(device))
    model = PeftModel.from_pretrained(model, path, is_trainable=False)
    if device.type == "cpu":
        model = model.merge_and_unload()
    return model.to(device).eval(), tokenizer


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The prompt's token ids exactly as ml.inference.generate_detailed builds them."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def encode_example(tokenizer, example: Example, max_length: int) -> tuple[list[int], list[int]] | str:
    """(input ids, labels) with the prompt masked out, or the reason the example cannot be used."""
    if not example.target.strip():
        return "empty target"
    prompt = prompt_ids(tokenizer, example.messages)
    target = tokenizer(example.target.strip(), add_special_tokens=False)["input_ids"]
    # The end-of-turn token, so the adapter also learns where copy stops.
    if tokenizer.eos_token_id is not None:
        target = [*target, tokenizer.eos_token_id]
    room = max_length - len(prompt)
    if room < min(8, len(target)):
        return f"prompt of {len(prompt)} tokens leaves no room for the copy within max_length {max_length}"
    target = target[:room]
    return prompt + target, [-100] * len(prompt) + target


def _batches(items: list, size: int, rng: random.Random) -> list[list]:
    order = list(range(len(items)))
    rng.shuffle(order)
    return [[items[i] for i in order[start:start + size]] for start in range(0, len(order), size)]


def _collate(items: list[tuple[list[int], list[int]]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, target) in enumerate(items):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, :len(target)] = torch.tensor(target)
        mask[row, :len(ids)] = 1
    return {"input_ids": input_ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def copy_loss(model, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, device: torch.device,
              batch_size: int = 8) -> float | None:
    """Mean cross-entropy per target token (the prompt excluded), over all the examples."""
    if not encoded:
        return None
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = _collate(list(encoded[start:start + batch_size]), pad_id, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        shifted, labels = logits[:, :-1], batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(shifted.reshape(-1, shifted.size(-1)), labels.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total += float(loss)
        tokens += int((labels != -100).sum())
    return total / tokens if tokens else None


def train_lora(examples: Sequence[Example], *, base_model: str | Path, output_dir: str | Path,
               config: LoraTrainConfig | None = None, eval_examples: Sequence[Example] | None = None,
               device: torch.device | None = None, progress: bool = True,
               on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on (messages -> target) pairs and save it to output_dir.

    Validation: `eval_examples` if given, else a seeded `val_fraction` of the examples; the copy loss on it
    before training (the base) and after each epoch is recorded, and the best epoch's adapter is kept."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    from .finetune import seed_everything

    config = config or LoraTrainConfig()
    seed_everything(config.seed)
    device = device or choose_device()
    amp = autocast_dtype(device)
    started = time.perf_counter()
    base_source = Path(base_model)
    base = plain_base(base_source)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    skipped: dict[str, int] = {}

    def encode(rows: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
        kept = []
        for example in rows:
            result = encode_example(tokenizer, example, config.max_length)
            if isinstance(result, str):
                key = "prompt longer than max_length" if "leaves no room" in result else result
                skipped[key] = skipped.get(key, 0) + 1
            else:
                kept.append(result)
        return kept

    rng = random.Random(config.seed)
    rows = list(examples)
    if eval_examples is None:
        rng.shuffle(rows)
        n_val = max(1, round(len(rows) * config.val_fraction)) if len(rows) >= 5 and config.val_fraction else 0
        eval_rows, rows = rows[:n_val], rows[n_val:]
    else:
        eval_rows = list(eval_examples)
    train, val = encode(rows), encode(eval_rows)
    if not train:
        raise ValueError(f"no usable training examples (skipped: {skipped or 'none given'})")

    # float32 master weights whatever the base was saved in; only the adapter trains.
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32).to(device)
    model.config.use_cache = False
    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    base_val_loss = copy_loss(model, val, pad_id, device)  # B starts at zero: this is the base's loss
    base_train_loss = copy_loss(model, train[:32], pad_id, device)

    steps_per_epoch = (len(train) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, desc="LoRA", unit="step", disable=not progress)
    step, history, stopped_early = 0, [], False
    best_loss, best_state, without_gain = float("inf"), None, 0
    train_started = time.perf_counter()
    while step < total_steps and not stopped_early:
        epoch_loss, epoch_steps = 0.0, 0
        for batch_items in _batches(train, config.batch_size, rng):
            model.train()
            batch = _collate(batch_items, pad_id, device)
            with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += float(loss.detach())
            epoch_steps += 1
            step += 1
            bar.update(1)
            if on_step:
                on_step(step, total_steps)
            if step >= total_steps:
                break
        val_loss = copy_loss(model, val, pad_id, device)
        history.append({"step": step, "train_loss": round(epoch_loss / max(epoch_steps, 1), 4),
                        "val_loss": round(val_loss, 4) if val_loss is not None else None})
        score = val_loss if val_loss is not None else epoch_loss / max(epoch_steps, 1)
        if score < best_loss:
            best_loss, without_gain = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if "lora_" in k}
        else:
            without_gain += 1
            stopped_early = without_gain >= config.patience
    bar.close()
    train_seconds = time.perf_counter() - train_started
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / ADAPTER_INFO).write_text(json.dumps({"base_model": str(base), "base_source": str(base_source)},
                                                      indent=2))
    metrics = {
        "kind": "lora", "base_model": str(base), "base_source": str(base_source),
        "train_size": len(train), "validation_size": len(val), "skipped": skipped,
        "base_val_loss": base_val_loss, "val_loss": copy_loss(model, val, pad_id, device),
        "base_train_loss": base_train_loss, "train_loss": copy_loss(model, train[:32], pad_id, device),
        "trainable_parameters": trainable, "parameters": total_params,
        "steps": step, "stopped_early": stopped_early, "history": history,
        "config": {**asdict(config), "target_modules": list(config.target_modules)}, "device": str(device),
        "train_seconds": round(train_seconds, 2), "seconds": round(time.perf_counter() - started, 2),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return TrainResult(path=output_dir, metrics=metrics, labels=[])
