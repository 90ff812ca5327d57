"""Storefront load benchmark: requests/s and p50/p95 latency per page at N concurrent clients,
for anonymous visitors and for signed-in shoppers, in one run.

Run against a running server on the same database (e.g. `make demo` in another terminal):
    .venv/bin/python bench/storefront.py --url http://127.0.0.1:8000
or let it start gunicorn itself on the current settings (DATABASE_URL etc.) with --serve.

Baseline, measured side by side in the same run: /healthz, a request through the same
server, middleware and database connection that renders no page. The difference is
what the page itself costs.

Each client is one browser: it keeps its cookies (visitor id, CSRF, session), so after its first
request it is a returning visitor whose product views feed its own home rails. Signed-in clients
are bench shoppers (created once, `bench-shopper-N`, each with two products in the cart) whose
sessions are made directly in the database. Before the anonymous runs every discovered page is
fetched once, so they measure a warm page cache; the hit share is printed beside each row.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import start_gunicorn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["tv", "laptop", "headphones", "samsung", "camera", "gaming", "apple ipad", "router", "soundbar", "4k"]


def discover_paths(base: str) -> dict[str, list[str]]:
    """Find real category and product paths on the home and category pages."""
    home = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    categories = sorted(set(re.findall(r'href="(/c/[^"?#]+/)"', home)))
    products: set[str] = set(re.findall(r'href="(/p/[^"?#]+/)"', home))
    for path in categories[:6]:
        page = urllib.request.urlopen(base + path, timeout=30).read().decode()
        products.update(re.findall(r'href="(/p/[^"?#]+/)"', page))
    if not categories or not products:
        sys.exit("No categories/products found: load the demo store first (make demo).")
    return {
        "healthz (baseline)": ["/healthz"],
        "home": ["/"],
        "category": categories,
        "product": sorted(products),
        "search": [f"/search/?q={q.replace(' ', '+')}" for q in QUERIES],
    }


def signed_in_sessions(count: int) -> list[str]:
    """Session ids of `count` bench shoppers (created once, two products in each cart), in this database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)  # django-axes logs every force_login below
    from django.contrib.auth import get_user_model
    from django.test import Client

    from shop import services

    products = list(services.active_products().filter(price__isnull=False, stock__gt=5).order_by("pk")[:2])
    sessions = []
    for index in range(count):
        username = f"bench-shopper-{index}"
        user = get_user_model().objects.filter(username=username).first() or services.create_shopper(
            username=username, email=f"{username}@example.com", password=None)
        cart = services.get_cart(type("Request", (), {"user": user, "session": {}})(), create=True)
        if not cart.items.exists():
            for product in products:
                services.add_to_cart(cart, product, 1, user=user)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    return sessions


def _remember(jar: dict[str, str], response: http.client.HTTPResponse) -> None:
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]


def run_page(base: str, paths: list[str], clients: int, seconds: float, seed: int,
             sessions: list[str] | None = None) -> dict:
    parts = urlsplit(base)
    latencies: list[float] = []
    errors = 0
    cache_states: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        nonlocal errors
        rng = random.Random(seed + index)
        jar = {"sessionid": sessions[index % len(sessions)]} if sessions else {}
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        mine: list[float] = []
        states: dict[str, int] = {}
        bad = 0
        while time.perf_counter() < stop_at:
            path = rng.choice(paths)
            headers = {"Connection": "keep-alive"}
            if jar:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
            _remember(jar, response)
            state = response.headers.get("X-Page-Cache", "-")
            states[state] = states.get(state, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad
            for state, n in states.items():
                cache_states[state] = cache_states.get(state, 0) + n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    if not latencies:
        return {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p95_ms": float("nan"), "errors": errors,
                "hits": ""}
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] * 1000,
        "errors": errors,
        "hits": f"{100 * cache_states['hit'] / len(latencies):.0f}%" if "hit" in cache_states else "-",
    }


def warm(base: str, pages: dict[str, list[str]]) -> None:
    """Fetch every page once (anonymous), so the runs measure a warm page cache."""
    for name, paths in pages.items():
        if name != "healthz (baseline)":
            for path in paths:
                urllib.request.urlopen(base + path, timeout=60).read()


def start_server(port: int, workers: int) -> subprocess.Popen:
    # 20 clients from one address are a load test, not abuse: the search page's per-client limit is lifted.
    env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "0"),
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret"),
           "AISLE_RATE_SEARCH_PER_MIN": "1000000"}
    return start_gunicorn(port, workers, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="per page type")
    parser.add_argument("--serve", action="store_true", help="start gunicorn on --port with the current settings")
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", default="home,category,product,search",
                        help="comma-separated page types (healthz always runs)")
    parser.add_argument("--no-signed-in", action="store_true", help="anonymous visitors only")
    args = parser.parse_args()
    # The bench's sessions are signed with the server's key (start_server's default when --serve).
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret")

    server = None
    base = args.url.rstrip("/")
    if args.serve:
        if not os.environ.get("DJANGO_DEBUG"):
            # Static files are served from STATIC_ROOT outside DEBUG.
            subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True,
                           env={**os.environ, "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench")})
        server = start_server(args.port, args.workers)
        base = f"http://127.0.0.1:{args.port}"
    try:
        wanted = {"healthz (baseline)", *args.pages.split(",")}
        pages = {name: paths for name, paths in discover_paths(base).items() if name in wanted}
        sessions = [] if args.no_signed_in else signed_in_sessions(args.clients)
        warm(base, pages)
        runs = [(name, "-" if name.startswith("healthz") else "anonymous", None) for name in pages]
        runs += [(name, "signed-in", sessions) for name in pages if sessions and not name.startswith("healthz")]
        results = {}
        for name, mode, run_sessions in tqdm(runs, desc="pages", unit="run"):
            run_page(base, pages[name], clients=2, seconds=1.0, seed=0, sessions=run_sessions)  # connections
            results[(name, mode)] = run_page(base, pages[name], args.clients, args.seconds, seed=1,
                                             sessions=run_sessions)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)

    print(f"\nStorefront at {base}: {args.clients} concurrent clients, {args.seconds:.0f} s per page, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'page':<20}{'visitor':<11}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'errors':>8}"
          f"{'cached':>8}")
    for (name, mode), r in results.items():
        print(f"{name:<20}{mode:<11}{r['requests']:>10}{r['rps']:>10.1f}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}"
              f"{r['errors']:>8}{r['hits']:>8}")
    baseline = results[("healthz (baseline)", "-")]
    print(f"\nBaseline /healthz: {baseline['rps']:.1f} req/s; each page's cost over it is its own p50 "
          f"minus {baseline['p50_ms']:.1f} ms.")


if __name__ == "__main__":
    main()
