"""The generator on llama.cpp (llama-cpp-python), for the CPU: the packaged GGUF runs as it ships (Q4_1),
with no de-quantisation, so it is several times faster than transformers on the same cores (bench/ml.py
--engines prints both). Used when the generator's checkpoint is a GGUF folder, the device is the CPU and
llama_cpp is installed (the Dockerfile builds it; AISLE_GENERATOR_ENGINE=transformers turns it off);
anything else keeps transformers (CUDA, fine-tuned folders, LoRA adapters).

Greedy decoding by default like the transformers path; wall time bounded by streaming and stopping at
the deadline; avoid_words become logit biases on the words' single-token spellings (multi-token
spellings are left to the caller's checks). Imports no app.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def gguf_file(path: Path) -> Path | None:
    """The GGUF of a checkpoint folder that holds only a GGUF (the packaged default), else None."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if (path / "config.json").exists():
        return None
    files = sorted(path.glob("*.gguf")) if path.is_dir() else []
    return files[0] if files else None


def threads() -> int:
    return int(os.environ.get("AISLE_GENERATOR_THREADS") or len(os.sched_getaffinity(0)))


def wanted() -> bool:
    """AISLE_GENERATOR_ENGINE: "auto" (default: llama.cpp when installed), "llama_cpp" (required) or
    "transformers" (never)."""
    engine = os.environ.get("AISLE_GENERATOR_ENGINE", "auto").strip().lower()
    if engine == "transformers":
        return False
    if engine in ("llama_cpp", "llama.cpp", "llamacpp"):
        if not available():
            raise RuntimeError("AISLE_GENERATOR_ENGINE=llama_cpp but llama-cpp-python is not installed")
        return True
    return available()


class LlamaGenerator:
    """A GGUF checkpoint on llama.cpp; read-only once loaded, so one instance serves every thread (calls
    are serialised: a llama.cpp context decodes one sequence at a time)."""

    def __init__(self, path: Path, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        from llama_cpp import Llama

        self.path = Path(path)
        self.n_threads = n_threads or threads()
        self.llama = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=self.n_threads,
                           n_threads_batch=self.n_threads, seed=0, verbose=False)
        self._lock = threading.Lock()

    def _avoid_biases(self, words: Sequence[str]) -> dict[int, float]:
        biases: dict[int, float] = {}
        for word in words:
            word = word.strip()
            for form in {f" {word}", f" {word.capitalize()}", word, word.capitalize()}:
                ids = self.llama.tokenize(form.encode(), add_bos=False, special=False)
                if len(ids) == 1:
                    biases[ids[0]] = -100.0
        return biases

    def generate(self, messages: list[dict], *, max_new_tokens: int, temperature: float = 0.0,
                 timeout_s: float = 30.0, avoid_words: Sequence[str] = (),
                 seed: int | None = 0) -> tuple[str, int, float, bool, float]:
        """(text, new tokens, seconds, stopped by the deadline, seconds to the first token)."""
        options = {"max_tokens": max_new_tokens, "repeat_penalty": 1.1, "stream": True,
                   "seed": seed if seed is not None else -1}
        options.update({"temperature": 0.0, "top_k": 1} if temperature <= 0 else
                       {"temperature": temperature, "top_p": 0.9})
        with self._lock:
            if avoid_words:
                options["logit_bias"] = self._avoid_biases(avoid_words)
            started = time.perf_counter()
            pieces: list[str] = []
            tokens, first, timed_out = 0, 0.0, False
            for chunk in self.llama.create_chat_completion(messages=messages, **options):
                delta = chunk["choices"][0].get("delta", {}).get("content")
                if delta:
                    if not pieces:
                        first = time.perf_counter() - started
                    pieces.append(delta)
                    tokens += 1  # one streamed chunk per generated token
                if time.perf_counter() - started >= timeout_s:
                    timed_out = True
                    break
            return "".join(pieces).strip(), tokens, time.perf_counter() - started, timed_out, first
