"""embed / classify / generate on whatever checkpoint the registry resolves.

Encoders (embed, classify) run through one batching path that keeps the device busy:
- texts are tokenized without padding, sorted by length within windows of WINDOW texts and cut
  into batches by a token budget (rows x padded length; large on a GPU, cache-sized on a CPU,
  see ml.devices.token_budget), each padded only to its own longest text;
- a background thread tokenizes and pads the next batches (into pinned memory on CUDA) while the
  device computes the current one;
- outputs stay on the device until a window is done, then come back in one copy, and are put back
  in input order.
On the CPU, a checkpoint with a verified int8 ONNX export (ml.onnx_int8) runs on ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import remote
from .devices import token_budget as device_token_budget
from .llama_engine import LlamaGenerator
from .registry import LoadedModel, registry

log = logging.getLogger(__name__)

MAX_NEW_TOKENS_CAP = 512
DEFAULT_GENERATION_TIMEOUT_S = 30.0
WINDOW = 8192  # texts tokenized and length-sorted together; bounds host memory on huge inputs
PREFETCH_BATCHES = 4


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # positions of these texts in the caller's list
    arrays: dict[str, np.ndarray]  # input_ids, attention_mask (+ token_type_ids), padded to this batch's longest


def length_batches(lengths: Sequence[int] | np.ndarray, budget: int, max_rows: int | None = None) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first, each within `budget` padded
    tokens (at least one row) and `max_rows` rows. Every index appears exactly once."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        rows = max(1, budget // longest)
        if max_rows:
            rows = min(rows, max_rows)
        batches.append(order[start:start + rows])
        start += rows
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, multiple_of: int = 1,
              type_ids: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Right-padded int64 input_ids / attention_mask (/ token_type_ids) for one batch."""
    longest = max(len(s) for s in sequences)
    if multiple_of > 1:
        longest = -(-longest // multiple_of) * multiple_of
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = sequence
        mask[row, :len(sequence)] = 1
    arrays = {"input_ids": ids, "attention_mask": mask}
    if type_ids is not None:
        types = np.zeros((len(sequences), longest), dtype=np.int64)
        for row, sequence in enumerate(type_ids):
            types[row, :len(sequence)] = sequence
        arrays["token_type_ids"] = types
    return arrays


def encoded_batches(tokenizer, texts: Sequence[str], *, max_length: int, budget: int,
                    max_rows: int | None = None, window: int = WINDOW) -> Iterator[Batch]:
    """Tokenize window by window, sort each window by length and yield budget-sized padded batches."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for offset in range(0, len(texts), window):
        chunk = list(texts[offset:offset + window])
        encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=False)
        ids = encoded["input_ids"]
        types = encoded.get("token_type_ids")
        for rows in length_batches([len(s) for s in ids], budget, max_rows):
            arrays = pad_batch([ids[i] for i in rows], pad_id,
                               type_ids=[types[i] for i in rows] if types is not None else None)
            yield Batch(rows=rows + offset, arrays=arrays)


def prefetch(items: Iterable, depth: int = PREFETCH_BATCHES, prepare: Callable | None = None) -> Iterator:
    """Iterate `items` in a background thread (with `prepare` applied there), `depth` ahead of the
    consumer. The tokenizer releases the GIL, so tokenizing overlaps the model's forward pass.
    Errors in the producer are raised in the consumer; a consumer that stops early stops it."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                item = prepare(item) if prepare else item
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="ml-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def run_batched(tokenizer, texts: Sequence[str], forward: Callable[[dict], object], *, device: torch.device,
                max_length: int, budget: int | None = None, max_rows: int | None = None,
                numpy_forward: bool = False) -> np.ndarray:
    """forward(batch) -> (rows, ...) outputs for every text, float32, in input order.

    forward receives torch tensors on `device` (or numpy arrays with numpy_forward, for ONNX
    Runtime) and returns a tensor (or array). Outputs stay on the device until the end of a window
    so the host never waits on the GPU mid-stream."""
    budget = budget or device_token_budget(device)
    cuda = device.type == "cuda" and not numpy_forward

    def to_host_tensors(batch: Batch) -> Batch:
        if numpy_forward:
            return batch
        tensors = {k: torch.from_numpy(v) for k, v in batch.arrays.items()}
        if cuda:
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return Batch(rows=batch.rows, arrays=tensors)

    pending_rows: list[np.ndarray] = []
    pending_out: list = []
    done_rows: list[np.ndarray] = []
    done_out: list[np.ndarray] = []

    def flush() -> None:
        if not pending_out:
            return
        if numpy_forward:
            values = np.concatenate([np.asarray(o, dtype=np.float32) for o in pending_out])
        else:
            values = torch.cat([o.float() for o in pending_out]).cpu().numpy()
        done_rows.append(np.concatenate(pending_rows))
        done_out.append(values)
        pending_rows.clear()
        pending_out.clear()

    batches = encoded_batches(tokenizer, texts, max_length=max_length, budget=budget, max_rows=max_rows)
    held = 0
    for batch in prefetch(batches, prepare=to_host_tensors):
        inputs = batch.arrays if numpy_forward else {k: v.to(device, non_blocking=cuda)
                                                     for k, v in batch.arrays.items()}
        pending_out.append(forward(inputs))
        pending_rows.append(batch.rows)
        held += len(batch.rows)
        if held >= WINDOW:
            flush()
            held = 0
    flush()
    if not done_out:
        return np.zeros((0,), dtype=np.float32)
    rows, values = np.concatenate(done_rows), np.concatenate(done_out)
    ordered = np.empty_like(values)
    ordered[rows] = values
    return ordered


def _rate(what: str, rows: int, started: float, loaded) -> None:
    seconds = time.perf_counter() - started
    # INFO for bulk calls only (not per chat message nor per scoring chunk; the jobs log their own rate).
    log.log(logging.INFO if rows >= 1024 else logging.DEBUG, "%s: %d rows in %.2f s (%.0f rows/s) on %s%s", what,
            rows, seconds, rows / max(seconds, 1e-9), loaded.device,
            " int8 ONNX" if getattr(loaded, "int8", None) is not None else "")


def _plain_tokenization(model) -> bool:
    """Whether the SentenceTransformer feeds its encoder the plain tokenizer output (checked once per
    model): then the batching path may tokenize for it."""
    known = getattr(model, "_aisle_plain_tokenization", None)
    if known is None:
        probe = ["Plain tokenization probe, 2 sentences.", "Second"]
        prepare = getattr(model, "preprocess", None) or model.tokenize
        theirs = prepare(probe)
        ours = model.tokenizer(probe, padding=True, truncation=True, max_length=model.max_seq_length or 512,
                               return_tensors="pt")
        known = all(key in theirs and torch.is_tensor(theirs[key]) and torch.equal(theirs[key], ours[key])
                    for key in ("input_ids", "attention_mask"))
        model._aisle_plain_tokenization = known
    return known


def sentence_embeddings(model, texts: Sequence[str], device: torch.device, *, budget: int | None = None,
                        max_rows: int | None = None) -> np.ndarray:
    """A SentenceTransformer's pooled embeddings (not normalised), through the batching path."""
    if not _plain_tokenization(model):
        # The model prepares its input some other way (e.g. a chat template): its own encode does it.
        return model.encode(list(texts), batch_size=max_rows or 64, convert_to_numpy=True, show_progress_bar=False)
    first = model[0]
    if getattr(first, "do_lower_case", False):
        texts = [text.lower() for text in texts]

    @torch.inference_mode()
    def forward(batch: dict) -> torch.Tensor:
        return model(batch)["sentence_embedding"]

    return run_batched(model.tokenizer, texts, forward, device=device, max_length=model.max_seq_length or 512,
                       budget=budget, max_rows=max_rows)


def classifier_probabilities(model, tokenizer, texts: Sequence[str], device: torch.device, *, max_length: int,
                             budget: int | None = None, max_rows: int | None = None,
                             autocast: torch.dtype | None = None) -> np.ndarray:
    """Class probabilities (rows, labels) of a sequence classifier, through the batching path.
    `autocast` runs an fp32 model in that dtype (validation during bf16 training)."""

    @torch.inference_mode()
    def forward(batch: dict) -> torch.Tensor:
        with torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext():
            logits = model(**batch).logits
        return torch.softmax(logits.float(), dim=-1)

    if not len(texts):
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    return run_batched(tokenizer, texts, forward, device=device, max_length=max_length, budget=budget,
                       max_rows=max_rows)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def embed(texts: list[str] | str, *, batch_size: int | None = None, task: str = "embedder",
          token_budget: int | None = None) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim), in the order of `texts`.

    Batches are sized by tokens for the device (ml.devices.token_budget); batch_size, if given,
    caps the rows of one batch."""
    if isinstance(texts, str):
        texts = [texts]
    loaded = registry.get(task)
    if not texts:
        return np.zeros((0, loaded.model.get_embedding_dimension()), dtype=np.float32)
    started = time.perf_counter()
    if loaded.int8 is not None:
        vectors = loaded.int8.embed(list(texts), budget=token_budget, max_rows=batch_size)
    else:
        vectors = sentence_embeddings(loaded.model, list(texts), loaded.device, budget=token_budget,
                                      max_rows=batch_size)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    _rate(f"embed {task}", len(texts), started, loaded)
    return vectors.astype(np.float32, copy=False)


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: dict[str, float]


def classify(task: str, texts: list[str] | str, *, batch_size: int | None = None, max_length: int = 256,
             token_budget: int | None = None) -> list[Prediction]:
    """Label and class probabilities for each text (in the order of `texts`), from the task's
    classifier. Batches are sized by tokens for the device; batch_size, if given, caps the rows."""
    if isinstance(texts, str):
        texts = [texts]
    loaded = registry.get(task)
    model, tokenizer = loaded.model, loaded.tokenizer
    names = [label for _, label in sorted((int(i), label) for i, label in model.config.id2label.items())]
    if not texts:
        return []
    started = time.perf_counter()
    if loaded.int8 is not None:
        probabilities = softmax(loaded.int8.logits(list(texts), max_length=max_length, budget=token_budget,
                                                   max_rows=batch_size))
    else:
        probabilities = classifier_probabilities(model, tokenizer, list(texts), loaded.device, max_length=max_length,
                                                 budget=token_budget, max_rows=batch_size)
    best = probabilities.argmax(axis=1).tolist()
    predictions = [Prediction(label=names[b], score=row[b], probabilities=dict(zip(names, row, strict=True)))
                   for b, row in zip(best, probabilities.tolist(), strict=True)]
    _rate(f"classify {task}", len(texts), started, loaded)
    return predictions


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    seconds: float
    stopped_by_timeout: bool
    # What wrote it: "transformers: <checkpoint>", "server: <model> at <url>", ... (for drafts and logs).
    engine: str = ""

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
                      seed: int | None = 0, avoid_words: Sequence[str] = (),
                      loaded: LoadedModel | None = None) -> Generation:
    """Generate with the model's chat template; output length capped, wall time bounded.

    avoid_words: words the output must not contain (constrained decoding, not a filter afterwards),
    e.g. the claims a fact check would reject.

    With AISLE_GENERATOR_URL set, the generator task runs on that OpenAI-compatible server instead
    (ml.remote: bounded timeouts and retries; avoid_words are left to the caller's checks).

    loaded: a model from registry.load_path (a candidate version under evaluation) instead of the task's
    served one.
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    max_new_tokens = max(1, min(int(max_new_tokens), MAX_NEW_TOKENS_CAP))
    server = remote.server_config() if task == "generator" and loaded is None else None
    if server is not None:
        started = time.perf_counter()
        text, tokens, _, model_name = remote.chat(server, messages, max_new_tokens=max_new_tokens,
                                                  temperature=temperature, timeout_s=timeout_s, seed=seed)
        return Generation(text=text, new_tokens=tokens, seconds=time.perf_counter() - started,
                          stopped_by_timeout=False, engine=f"server: {model_name} at {server.base}")
    loaded = loaded or registry.get(task)
    model, tokenizer = loaded.model, loaded.tokenizer
    if isinstance(model, LlamaGenerator):
        text, tokens, seconds, timed_out, _ = model.generate(messages, max_new_tokens=max_new_tokens,
                                                             temperature=temperature, timeout_s=timeout_s,
                                                             avoid_words=avoid_words, seed=seed)
        return Generation(text=text, new_tokens=tokens, seconds=seconds, stopped_by_timeout=timed_out,
                          engine=f"llama.cpp ({loaded.source}): {loaded.path.name}")
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(loaded.device)
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
                      seconds=seconds, stopped_by_timeout=not finished and seconds >= timeout_s,
                      engine=f"{loaded.source}: {loaded.path.name}")


def generate(prompt: str | list[dict], *, max_new_tokens: int = 128, temperature: float = 0.0,
             timeout_s: float = DEFAULT_GENERATION_TIMEOUT_S, task: str = "generator") -> str:
    return generate_detailed(prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                             timeout_s=timeout_s, task=task).text
