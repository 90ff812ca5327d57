"""Behaviour events at scale, on PostgreSQL.

    .venv/bin/python bench/events.py [--database-url URL] [--events 1000000] [--seconds 10]

1. Ingestion: sustained events/s through POST /api/events/batch (gunicorn, 8 concurrent
   clients, each with its own visitor cookie and CSRF token), at batch sizes 1 (the baseline:
   one request per event), 10 and 100. Every acknowledged event is checked to be in the table
   exactly once afterwards. Then the storing alone, in this process, batch 100: today's path
   (bench/events_baseline.py: product rows, a SELECT for stored ids, the ORM's bulk_create)
   beside the new one (behavior.services.ingest_client_batch: one INSERT ... ON CONFLICT), each
   also with every batch sent twice (a retry: the second stores nothing).
2. Dashboard queries with --events rows in the events table: p50/p95 of each analytics
   function over 30 and 90 days, then the same after the retention job has rolled events
   older than 30 days into daily aggregates (the baseline is the raw table).

It creates (and drops) its own database, so it never touches your data.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._server import start_gunicorn  # noqa: E402


def run(cmd: list[str], env: dict) -> None:
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def setup_database(url: str, env: dict) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    run([sys.executable, "manage.py", "migrate", "-v0"], env)
    run([sys.executable, "manage.py", "load_demo", "--shoppers", "40", "--days", "30", "--no-review-history",
         "--no-progress"], env)
    run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], env)  # gunicorn runs with DEBUG off


class BeaconClient:
    """One browser: its own cookies (visitor id, CSRF) and keep-alive connection."""

    def __init__(self, port: int, product_ids: list[int]) -> None:
        self.port = port
        self.products = product_ids
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/")
        response = self.conn.getresponse()
        html = response.read().decode()
        cookies = {}
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
        self.cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)

    def post(self, events: list[dict]) -> tuple[int, dict]:
        body = json.dumps({"events": events})
        self.conn.request("POST", "/api/events/batch", body=body, headers={
            "Content-Type": "application/json", "X-CSRFToken": self.token, "Cookie": self.cookie,
            "Referer": f"http://127.0.0.1:{self.port}/"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")


def ingest(port: int, product_ids: list[int], clients: int, batch_size: int, seconds: float) -> dict:
    latencies: list[float] = []
    acknowledged = 0
    failures = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    kinds = ["rec_shown", "rec_clicked", "dwell"]

    def work(index: int) -> None:
        nonlocal acknowledged, failures
        client = BeaconClient(port, product_ids)
        mine, stored, bad = [], 0, 0
        n = 0
        while time.perf_counter() < stop_at:
            events = []
            for _ in range(batch_size):
                kind = kinds[n % 3]
                n += 1
                events.append({"id": uuid.uuid4().hex, "type": kind, "product": product_ids[n % len(product_ids)],
                               "occurred_at": datetime.now(UTC).isoformat(),
                               "properties": {"ms": 1000 + n} if kind == "dwell" else {"rail": "bench"}})
            started = time.perf_counter()
            status, body = client.post(events)
            mine.append(time.perf_counter() - started)
            if status == 200:
                stored += body["stored"]
            else:
                bad += 1
        with lock:
            latencies.extend(mine)
            acknowledged += stored
            failures += bad

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"batch": batch_size, "events_per_s": acknowledged / elapsed, "requests": len(latencies),
            "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000, "acknowledged": acknowledged,
            "failed_requests": failures}


FILL_SQL = """
WITH p AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(category_id ORDER BY id) AS cats FROM shop_product),
     g AS (SELECT n, random() AS r, 1 + (n * 7919) %% (SELECT count(*) FROM shop_product) AS k
           FROM generate_series(1, %(n)s) AS n)
INSERT INTO behavior_event (event_type, source, user_id, visitor_id, product_id, category_id, properties,
                            occurred_at, received_at, client_event_id, is_simulated)
SELECT kind, 'server', NULL, 'bench' || (g.n %% 50000), p.ids[g.k], p.cats[g.k],
       CASE WHEN kind = 'order_placed'
            THEN jsonb_build_object('total', '99.00', 'products', jsonb_build_array(p.ids[g.k]))
            ELSE '{}'::jsonb END,
       now() - (random() * interval '120 days'), now(), NULL, true
FROM g CROSS JOIN p
CROSS JOIN LATERAL (SELECT CASE WHEN g.r < 0.70 THEN 'product_viewed' WHEN g.r < 0.82 THEN 'listing_viewed'
                                WHEN g.r < 0.90 THEN 'added_to_cart' WHEN g.r < 0.94 THEN 'searched'
                                WHEN g.r < 0.97 THEN 'checkout_started' ELSE 'order_placed' END AS kind) AS t
"""


def service_paths(product_ids: list[int], batches: int) -> dict[str, float]:
    """events/s of the storing alone (no HTTP), batch 100, today's path beside the new one."""
    from behavior import services
    from bench.events_baseline import ingest_client_batch_orm

    def batch(seed: int) -> list[dict]:
        return [{"id": uuid.uuid4().hex, "type": "rec_shown", "product": product_ids[(seed + i) % len(product_ids)],
                 "occurred_at": datetime.now(UTC).isoformat(), "properties": {"rail": "bench"}} for i in range(100)]

    paths = {
        "today's path (ORM)": lambda events: ingest_client_batch_orm(events, visitor_id="bench-service")[0],
        "one INSERT ... ON CONFLICT": lambda events: services.ingest_client_batch(
            events, visitor_id="bench-service").stored,
    }
    results = {}
    for name, store in paths.items():
        for retried in (False, True):
            work = [batch(n) for n in range(batches)]
            started = time.perf_counter()
            stored = 0
            for events in work:
                stored += store(events)
                if retried:
                    assert store(events) == 0, "a retried batch stored events twice"
            elapsed = time.perf_counter() - started
            assert stored == 100 * batches, f"{name}: stored {stored} of {100 * batches}"
            results[name + (", each batch retried" if retried else "")] = stored / elapsed
    return results


def time_queries(label: str, repeats: int) -> dict[str, tuple[float, float]]:
    from behavior import analytics

    today = datetime.now(UTC).date()
    queries = {
        "funnel 30d": lambda: analytics.funnel(today - timedelta(days=30), today),
        "funnel 90d": lambda: analytics.funnel(today - timedelta(days=90), today),
        "trends 30d": lambda: analytics.trends(today - timedelta(days=30), today),
        "trends 90d": lambda: analytics.trends(today - timedelta(days=90), today),
        "trends by category 90d": lambda: analytics.trends_by_category(today - timedelta(days=90), today),
        "trending products": lambda: analytics.trending_products(),
        "RFM segments": lambda: analytics.rfm_segments(),
        "order forecast": lambda: analytics.forecast_daily_orders(),
    }
    results = {}
    for name, query in tqdm(queries.items(), desc=f"dashboard queries ({label})", unit="query"):
        query()  # warm
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            query()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        results[name] = (statistics.median(samples), samples[int(0.95 * (len(samples) - 1))])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres:postgres@127.0.0.1:5432/aisle_bench_events")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--port", type=int, default=8078)
    parser.add_argument("--service-batches", type=int, default=100, help="batches of 100 per in-process path")
    args = parser.parse_args()

    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
           "DJANGO_SECRET_KEY": "bench-only", "AISLE_RATE_EVENTS": "100000000/min", "HF_HUB_OFFLINE": "1"}
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print("Setting up the bench database (migrate + demo catalogue)...")
    setup_database(args.database_url, env)

    import django

    django.setup()
    from django.db import connection

    from behavior.models import Event
    from shop import services as shop_services

    product_ids = [p.pk for p in shop_services.active_products()[:200]]
    server = start_gunicorn(args.port, 3, env)
    ingestion = []
    try:
        for batch_size in tqdm([1, 10, 100], desc="ingestion", unit="batch size"):
            ingestion.append(ingest(args.port, product_ids, args.clients, batch_size, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = Event.objects.filter(source="client").count()
    acknowledged = sum(r["acknowledged"] for r in ingestion)
    service = service_paths(product_ids, args.service_batches)

    existing = Event.objects.count()
    missing = max(0, args.events - existing)
    print(f"Filling the events table to {args.events:,} rows ({missing:,} generated in SQL)...")
    with connection.cursor() as cursor:
        step = 200_000
        for offset in tqdm(range(0, missing, step), desc="fill", unit="chunk"):
            cursor.execute(FILL_SQL, {"n": min(step, missing - offset)})
        cursor.execute("ANALYZE behavior_event")
    total = Event.objects.count()
    raw = time_queries("raw events", args.repeats)

    from behavior import analytics

    started = time.perf_counter()
    rolled = analytics.rollup_events(older_than_days=30)
    rollup_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE behavior_event")
        cursor.execute("ANALYZE behavior_dailyaggregate")
    after = time_queries("after rollup", args.repeats)

    print(f"\nIngestion through /api/events/batch: gunicorn 3 workers, {args.clients} clients, "
          f"{args.seconds:.0f} s per batch size, PostgreSQL, {os.cpu_count()} CPU cores")
    print(f"{'batch size':>10}{'events/s':>11}{'requests':>10}{'p50 ms':>9}{'p95 ms':>9}{'failed':>8}")
    for r in ingestion:
        print(f"{r['batch']:>10}{r['events_per_s']:>11.0f}{r['requests']:>10}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
              f"{r['failed_requests']:>8}")
    verdict = "exactly once" if stored == acknowledged else "MISMATCH"
    print(f"baseline (1 event per request): {ingestion[0]['events_per_s']:.0f} events/s; "
          f"acknowledged {acknowledged:,}, stored {stored:,} ({verdict})")

    print("\nStoring alone (in this process, PostgreSQL, batch 100, beside today's path):")
    for name, rate in service.items():
        print(f"  {name:<45}{rate:>10,.0f} events/s")

    print(f"\nDashboard queries, {total:,} events over 120 days ({args.repeats} runs each)")
    print(f"{'query':<26}{'raw p50':>9}{'raw p95':>9}{'rolled p50':>12}{'rolled p95':>12}   ms")
    for name in raw:
        print(f"{name:<26}{raw[name][0]:>9.1f}{raw[name][1]:>9.1f}{after[name][0]:>12.1f}{after[name][1]:>12.1f}")
    print(f"rollup of events older than 30 days: {rolled.days} days, {rolled.raw_events:,} raw rows -> "
          f"{rolled.aggregate_rows:,} aggregate rows in {rollup_seconds:.1f} s")


if __name__ == "__main__":
    main()
