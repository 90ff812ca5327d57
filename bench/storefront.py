"""Storefront load benchmark: requests/s and p50/p95 latency per page at N concurrent clients.

Run against a running server (e.g. `make demo` in another terminal):
    .venv/bin/python bench/storefront.py --url http://127.0.0.1:8000
or let it start gunicorn itself on the current settings (DATABASE_URL etc.) with --serve.

Baseline, measured side by side in the same run: /healthz, a request through the same
server, middleware and database connection that renders no page. The difference is
what the page itself costs.
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


def run_page(base: str, paths: list[str], clients: int, seconds: float, seed: int) -> dict:
    parts = urlsplit(base)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        nonlocal errors
        rng = random.Random(seed + index)
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < stop_at:
            path = rng.choice(paths)
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Connection": "keep-alive"})
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
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    if not latencies:
        return {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p95_ms": float("nan"), "errors": errors}
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] * 1000,
        "errors": errors,
    }


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "0"),
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret")}
    return start_gunicorn(port, workers, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="per page type")
    parser.add_argument("--serve", action="store_true", help="start gunicorn on --port with the current settings")
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

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
        pages = discover_paths(base)
        results = {}
        for name, paths in tqdm(pages.items(), desc="pages", unit="page"):
            run_page(base, paths, clients=2, seconds=1.0, seed=0)  # warm caches and connections
            results[name] = run_page(base, paths, args.clients, args.seconds, seed=1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)

    print(f"\nStorefront at {base}: {args.clients} concurrent clients, {args.seconds:.0f} s per page, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'page':<20}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'errors':>8}")
    for name, r in results.items():
        print(f"{name:<20}{r['requests']:>10}{r['rps']:>10.1f}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['errors']:>8}")
    baseline = results["healthz (baseline)"]
    print(f"\nBaseline /healthz: {baseline['rps']:.1f} req/s; each page's cost over it is its own p50 "
          f"minus {baseline['p50_ms']:.1f} ms.")


if __name__ == "__main__":
    main()
