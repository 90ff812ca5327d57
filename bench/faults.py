"""Fault-and-load probe: ~20 clients against a gunicorn + Celery + PostgreSQL + Redis stack started here
(loopback only, bounded: about two minutes), with each fault injected once:

  baseline -> Redis killed -> Redis frozen (SIGSTOP) -> Celery worker killed mid scoring run
  -> double checkouts (the same idempotency key submitted twice at once) -> after

Each client signs in, browses (home, product), sends beacon events and checks out now and then. For
each phase it prints requests, errors by status, p95 latency, and the invariants read from the database
and the payment gateway's ledger: paid orders = charges, stock sold = units ordered, events acknowledged
= events stored, confirmation e-mails queued or waiting in the outbox, reviews scored exactly once.

    .venv/bin/python bench/faults.py [--clients 20] [--seconds 8] [--database-url URL]

It creates (and drops) its own database `<name>_faults` and its own redis-server, so it touches nothing
of yours. `--warm-check` also starts one worker with and one without the post_fork warm-up and times the
first search and chat message in each (loads the real models: about a minute more).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pass-123"
CHECKOUT = {"email": "bench@example.com", "full_name": "Bench Shopper", "address_line1": "1 Loop Road",
            "address_line2": "", "city": "Seattle", "postal_code": "98101", "country": "US", "phone": "",
            "card_number": "4242 4242 4242 4242", "card_expiry": "12/99", "card_cvc": "123"}
HIGH_LIMITS = {"AISLE_RATE_LOGIN_PER_MIN": "100000", "AISLE_RATE_CHECKOUT_PER_MIN": "100000",
               "AISLE_RATE_EVENTS": "100000/min", "AISLE_RATE_CART": "100000/min", "AISLE_RATE_CHECKOUT": "100000/min",
               "AISLE_LOGIN_FAILURE_LIMIT": "100000"}


def create_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(clients: int) -> dict:
    """A small catalogue with plenty of stock, one shopper per client, 60 unscored reviews."""
    from shop import services
    from shop.models import Category, Product, Review

    category = Category.objects.create(name="Bench", slug="bench")
    products = [Product.objects.create(category=category, title=f"Bench product {i}", slug=f"bench-{i}",
                                       brand="Acme", price="19.99", stock=10_000, features=["Sturdy"],
                                       description="A product for the fault bench.") for i in range(10)]
    users = [services.create_shopper(username=f"bench{i}", email=f"bench{i}@example.com", password=PASSWORD)
             for i in range(clients)]
    Review.objects.bulk_create([Review(product=products[i % 10], user=None, rating=5 if i % 2 else 1,
                                       title="Bench", text="Great, I love it." if i % 2 else "Terrible, I hate it.",
                                       author_name="Bench", status=Review.Status.APPROVED,
                                       created_at=datetime.now(UTC)) for i in range(60)])
    return {"products": [(p.pk, p.slug) for p in products], "users": [u.username for u in users],
            "stock": sum(p.stock for p in products)}


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.latencies: list[float] = []
            self.statuses: Counter = Counter()

    def record(self, seconds: float, status) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.statuses[status] += 1

    def summary(self) -> dict:
        with self.lock:
            latencies = sorted(self.latencies)
            errors = {str(k): v for k, v in sorted(self.statuses.items(), key=str) if not (
                isinstance(k, int) and k < 400)}
            p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else 0.0
            return {"requests": len(latencies), "errors": errors, "p95_ms": round(p95, 1),
                    "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0.0}


class Client:
    """One shopper with its own session: signs in, browses, sends events, checks out every few rounds."""

    def __init__(self, base: str, username: str, products: list, stats: Stats, counters: dict) -> None:
        self.base, self.products, self.stats, self.counters = base, products, stats, counters
        self.session = requests.Session()
        page = self.session.get(base + "/account/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        login = self.session.post(base + "/account/login/", {"csrfmiddlewaretoken": token, "username": username,
                                                             "password": PASSWORD}, timeout=30, allow_redirects=False)
        assert login.status_code == 302, f"login failed: {login.status_code}"
        self.n = 0

    def call(self, method: str, path: str, **kwargs):
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.base + path, timeout=30, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            self.stats.record(time.perf_counter() - started, type(exc).__name__)
            return None
        self.stats.record(time.perf_counter() - started, response.status_code)
        return response

    def token(self, html: str) -> str:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html) or re.search(
            r'name="csrf-token" content="([^"]+)"', html)
        return found.group(1) if found else self.session.cookies.get("csrftoken", "")

    def round(self) -> None:
        self.n += 1
        product_id, slug = self.products[self.n % len(self.products)]
        self.call("GET", "/")
        page = self.call("GET", f"/p/{slug}/")
        token = self.token(page.text) if page is not None and page.status_code == 200 else \
            self.session.cookies.get("csrftoken", "")
        events = [{"id": uuid.uuid4().hex, "type": "dwell", "product": product_id,
                   "occurred_at": datetime.now(UTC).isoformat(), "properties": {"ms": 1000 + i}} for i in range(5)]
        sent = self.call("POST", "/api/events/batch", json={"events": events},
                         headers={"X-CSRFToken": token, "Referer": self.base + "/"})
        if sent is not None and sent.status_code == 200:
            with self.stats.lock:
                self.counters["events_acknowledged"] += sent.json().get("stored", 0)
                self.counters["event_ids"].extend(e["id"] for e in events)
        if self.n % 3 == 0:
            self.checkout(product_id, token)

    def checkout(self, product_id: int, token: str, *, double: bool = False) -> None:
        added = self.call("POST", f"/cart/add/{product_id}/", data={"csrfmiddlewaretoken": token, "quantity": 1})
        if added is None or added.status_code != 302:
            return
        page = self.call("GET", "/checkout/")
        if page is None or page.status_code != 200:
            return
        data = {**CHECKOUT, "csrfmiddlewaretoken": self.token(page.text),
                "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)}
        if not double:
            self.call("POST", "/checkout/", data=data)
            return
        # A double-click: the same form submitted twice at the same instant.
        barrier = threading.Barrier(2)

        def submit():
            barrier.wait()
            self.call("POST", "/checkout/", data=data)

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self.stats.lock:
            self.counters["double_submits"] += 1


def invariants(seeded: dict, counters: dict) -> dict:
    from django.db import connections
    from django.db.models import Count, Sum

    from behavior.models import Event
    from sentiment.models import ReviewSentiment
    from shop.models import Order, OrderItem, OutboxMessage, Product
    from shop.payments import ledger_charges

    paid = Order.objects.filter(status=Order.Status.PAID).count()
    units = OrderItem.objects.aggregate(n=Sum("quantity"))["n"] or 0
    stock = Product.objects.aggregate(n=Sum("stock"))["n"]
    ids = list(counters["event_ids"])
    stored = sum(Event.objects.filter(client_event_id__in=ids[i:i + 5000]).count() for i in range(0, len(ids), 5000))
    twice = ReviewSentiment.objects.filter(times_scored__gt=1).count()
    duplicates = Order.objects.exclude(idempotency_key="").values("user", "idempotency_key").annotate(
        n=Count("pk")).filter(n__gt=1).count()
    result = {
        "orders_paid": paid, "charges": len(ledger_charges("Aisle order")),
        "stock_ok": seeded["stock"] - stock == units, "units_sold": units,
        "events_acknowledged": counters["events_acknowledged"], "events_stored": stored,
        "emails_queued": OutboxMessage.objects.filter(task_name="shop.tasks.send_order_confirmation",
                                                      sent_at__isnull=False).count(),
        "emails_waiting": OutboxMessage.objects.filter(sent_at__isnull=True).count(),
        "reviews_scored": ReviewSentiment.objects.count(), "scored_twice": twice,
        "duplicate_orders_per_key": duplicates,
    }
    connections.close_all()
    return result


def run_phase(name: str, clients: list[Client], stats: Stats, seconds: float, seeded: dict, counters: dict,
              during=None) -> dict:
    stats.reset()
    stop = threading.Event()

    def loop(client: Client) -> None:
        while not stop.is_set():
            client.round()

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    if during:
        during()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    summary = {"phase": name, **stats.summary(), **invariants(seeded, counters)}
    print(f"\n== {name}: {summary['requests']} requests, errors {summary['errors'] or 'none'}, "
          f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms")
    print(f"   orders paid {summary['orders_paid']} = charges {summary['charges']}: "
          f"{summary['orders_paid'] == summary['charges']}; stock sold = units ordered ({summary['units_sold']}): "
          f"{summary['stock_ok']}; events acknowledged {summary['events_acknowledged']} = stored "
          f"{summary['events_stored']}: {summary['events_acknowledged'] == summary['events_stored']}")
    print(f"   e-mails queued {summary['emails_queued']}, waiting in the outbox {summary['emails_waiting']}; "
          f"reviews scored {summary['reviews_scored']}/60, scored twice {summary['scored_twice']}; "
          f"orders per key > 1: {summary['duplicate_orders_per_key']}", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0, help="load per phase")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--warm-check", action="store_true")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        sys.exit("Needs PostgreSQL: --database-url or DATABASE_URL")
    url = args.database_url.rsplit("/", 1)[0] + "/" + urlsplit(args.database_url).path.lstrip("/") + "_faults"
    tmp = Path(tempfile.mkdtemp(prefix="aisle-faults-"))
    create_database(url)

    from tests import workers  # noqa: E402 - the same real-process helpers as the tests

    redis_port, web_port = workers.free_port(), workers.free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "DJANGO_DEBUG": "1", "DJANGO_SECRET_KEY": "faults-bench",
           "AISLE_WARM_MODELS": "", "AISLE_WARM_SEARCH": "0",
           "AISLE_SEARCH_VECTORS": "0",
           "AISLE_TEST_GATEWAY_LEDGER": str(tmp / "ledger.sqlite3"), "AISLE_SCORING_STALE_S": "3",
           "AISLE_EMBED_ON_SAVE": "0", "AISLE_LOG_LEVEL": "ERROR", **HIGH_LIMITS}
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seeded = seed(args.clients + 5)
    processes = {"redis": workers.start_redis(redis_port, tmp)}
    logs = {name: open(tmp / f"{name}.log", "w") for name in ("web", "worker")}  # noqa: SIM115
    processes["web"] = workers.start_web(web_port, env=env, log=logs["web"], workers=2, threads=8)
    processes["worker"] = workers.start_worker(env=env, log=logs["worker"], loglevel="WARNING", pool="prefork")
    print(f"Stack up in {time.perf_counter() - started:.0f} s: gunicorn 2x8 on :{web_port}, celery prefork, "
          f"redis on :{redis_port}, PostgreSQL {urlsplit(url).path}; {args.clients} clients, {args.seconds:.0f} s "
          "a phase", flush=True)
    from config.celery import app as celery_app

    base = f"http://127.0.0.1:{web_port}"
    stats, counters = Stats(), {"events_acknowledged": 0, "event_ids": [], "double_submits": 0}
    clients = [Client(base, name, seeded["products"], stats, counters) for name in seeded["users"][:args.clients]]
    # Five more shoppers only double-click (no other request of theirs races with it).
    clickers = [Client(base, name, seeded["products"], stats, counters) for name in seeded["users"][args.clients:]]
    phases = []
    try:
        phases.append(run_phase("baseline", clients, stats, args.seconds, seeded, counters))

        def kill_redis():
            processes["redis"].kill()
            processes["redis"].wait()

        phases.append(run_phase("Redis killed", clients, stats, args.seconds, seeded, counters, kill_redis))
        processes["redis"] = workers.start_redis(redis_port, tmp)

        phases.append(run_phase("Redis frozen (SIGSTOP)", clients, stats, args.seconds, seeded, counters,
                                lambda: os.kill(processes["redis"].pid, signal.SIGSTOP)))
        os.kill(processes["redis"].pid, signal.SIGCONT)
        celery_app.send_task("shop.tasks.drain_outbox")  # what the minutely beat entry sends

        def kill_worker():
            celery_app.send_task("sentiment.tasks.score_pending", kwargs={"batch_size": 5, "delay": 0.3})
            time.sleep(2.0)
            processes["worker"].kill()  # the whole worker, mid-run
            processes["worker"].wait()
            processes["worker"] = workers.start_worker(env=env, log=logs["worker"], loglevel="WARNING",
                                                       pool="prefork")
            time.sleep(4.0)  # past AISLE_SCORING_STALE_S
            celery_app.send_task("sentiment.tasks.resume_stale_runs")  # what the minutely beat entry sends

        phases.append(run_phase("Celery worker killed mid-run", clients, stats, args.seconds, seeded, counters,
                                kill_worker))

        def double_checkouts():
            for client in clickers:
                client.checkout(seeded["products"][0][0], client.session.cookies.get("csrftoken", ""), double=True)

        phases.append(run_phase("double checkouts (5 double-clicks)", clients, stats, args.seconds, seeded,
                                counters, double_checkouts))
        celery_app.send_task("shop.tasks.drain_outbox")
        phases.append(run_phase("after", clients, stats, args.seconds, seeded, counters))
        from shop import outbox

        drained = outbox.drain(min_age_s=0)  # what the minutely beat entry does, without waiting for the minute
        final = invariants(seeded, counters)
        print(f"\nOutbox drained: {drained['sent']} published, {final['emails_waiting']} waiting; e-mails queued "
              f"{final['emails_queued']} for {final['orders_paid']} paid orders", flush=True)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
        for log in logs.values():
            log.close()
        drop_database(url)
    print(f"\nTotal {time.perf_counter() - started:.0f} s. Logs in {tmp}")
    if args.warm_check:
        warm_check(url)


def warm_check(url: str) -> None:
    """First search and first chat message in a new worker, cold and warmed in post_fork; worker memory."""
    from tests import workers

    create_database(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed(1)
    for label, warm_env in (("cold", {"AISLE_WARM_MODELS": "", "AISLE_WARM_SEARCH": "0"}),
                            ("warm (post_fork)", {"AISLE_WARM_MODELS": "embedder,intent,generator",
                                                  "AISLE_WARM_SEARCH": "1"})):
        port = workers.free_port()
        env = {"DATABASE_URL": url, "REDIS_URL": "", "AISLE_SUPPORT_GENERATE": "0",
               "AISLE_SEARCH_VECTORS": "1", **warm_env}
        began = time.perf_counter()
        web = workers.start_web(port, env=env, workers=1, threads=2)
        ready = time.perf_counter() - began
        child = [int(c) for c in Path(f"/proc/{web.pid}/task/{web.pid}/children").read_text().split()][0]
        base = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        requests.get(base + "/search/?q=sturdy+product", timeout=180)
        first_search = time.perf_counter() - t
        session = requests.Session()
        page = session.get(base + "/", timeout=60)
        headers = {"X-CSRFToken": re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1),
                   "Referer": base + "/"}
        conversation = session.post(base + "/api/support/conversations/", json={}, headers=headers, timeout=120)
        token = conversation.json().get("token", "")
        t = time.perf_counter()
        reply = session.post(base + f"/api/support/conversations/{token}/messages/",
                             json={"text": "where is my order?"}, headers=headers, timeout=180)
        first_chat = time.perf_counter() - t
        rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{child}/status").read_text()).group(1)) / 1024
        print(f"{label}: ready after {ready:.1f} s; first search {first_search:.2f} s, first chat message "
              f"{first_chat:.2f} s (HTTP {reply.status_code}); worker RSS {rss:.0f} MB", flush=True)
        web.kill()
        web.wait()
    drop_database(url)


if __name__ == "__main__":
    main()
