"""embed / classify / generate on whatever checkpoint the registry resolves."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .registry import registry

MAX_NEW_TOKENS_CAP = 512
DEFAULT_GENERATION_TIMEOUT_S = 30.0


def embed(texts: list[str] | str, *, batch_size: int = 64, task: str = "embedder") -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim)."""
    if isinstance(texts, str):
        texts = [texts]
    loaded = registry.get(task)
    if not texts:
        return np.zeros((0, loaded.model.get_embedding_dimension()), dtype=np.float32)
    vectors = loaded.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]


@torch.inference_mode()
def classify(task: str, texts: list[str] | str, *, batch_size: int = 32, max_length: int = 256) -> list[Prediction]:
    """Label and class probabilities for each text, from the task's classifier."""
    if isinstance(texts, str):
        texts = [texts]
    loaded = registry.get(task)
    model, tokenizer = loaded.model, loaded.tokenizer
    id2label = {int(i): label for i, label in model.config.id2label.items()}
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(loaded.device)
        probabilities = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(Prediction(
                label=id2label[best], score=float(row[best]),
                probabilities={id2label[i]: float(p) for i, p in enumerate(row)},
            ))
    return predictions


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    seconds: float
    stopped_by_timeout: bool

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def avoided_token_sequences(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Token sequences that spell each word as it appears in running text ("best", " best", " Best",
    "Best"), for generate's bad_words_ids: the model then cannot write the word in those spellings."""
    sequences: list[list[int]] = []
    for word in words:
        word = word.strip()
        if not word:
            continue
        for form in dict.fromkeys((f" {word}", f" {word.capitalize()}", word.capitalize(), word)):
            ids = tokenizer(form, add_special_tokens=False)["input_ids"]
            if ids and ids not in sequences:
                sequences.append(ids)
    return sequences


@torch.inference_mode()
def generate_detailed(prompt: str | list[dict], *, max_new_tokens: int = 128, temperature: float = 0.0,
                      timeout_s: float = DEFAULT_GENERATION_TIMEOUT_S, task: str = "generator",
                      seed: int | None = 0, avoid_words: Sequence[str] = ()) -> Generation:
    """Generate with the model's chat template; output length capped, wall time bounded.

    avoid_words: words the output must not contain (constrained decoding, not a filter afterwards),
    e.g. the claims a fact check would reject.
    """
    loaded = registry.get(task)
    model, tokenizer = loaded.model, loaded.tokenizer
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(loaded.device)
    max_new_tokens = max(1, min(int(max_new_tokens), MAX_NEW_TOKENS_CAP))
    if seed is not None:
        torch.manual_seed(seed)
    options = {"max_new_tokens": max_new_tokens, "max_time": timeout_s, "repetition_penalty": 1.1,
               "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
    if avoid_words:
        options["bad_words_ids"] = avoided_token_sequences(tokenizer, avoid_words)
    if temperature > 0:
        options.update(do_sample=True, temperature=temperature, top_p=0.9)
    else:
        options.update(do_sample=False)
    started = time.perf_counter()
    output = model.generate(**inputs, **options)
    seconds = time.perf_counter() - started
    new = output[0, inputs["input_ids"].shape[1]:]
    finished = bool((new == tokenizer.eos_token_id).any()) or len(new) >= max_new_tokens
    return Generation(text=tokenizer.decode(new, skip_special_tokens=True).strip(), new_tokens=int(len(new)),
                      seconds=seconds, stopped_by_timeout=not finished and seconds >= timeout_s)


def generate(prompt: str | list[dict], *, max_new_tokens: int = 128, temperature: float = 0.0,
             timeout_s: float = DEFAULT_GENERATION_TIMEOUT_S, task: str = "generator") -> str:
    return generate_detailed(prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                             timeout_s=timeout_s, task=task).text
