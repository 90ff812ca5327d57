"""Hybrid search at scale, on PostgreSQL, beside plain keyword search in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/search.py [--database-url URL] [--sizes 1000,10000,100000]
                                                      [--queries 40]

1. Category-hit rate on the real catalogue (643 products): queries built from its own sub-categories (the
   reviews' noun for the category, "best ...", "cheap ... under $N", "<brand in that category> ...", the
   category's name); a hit is a top result in the expected sub-category (or one of its children).
2. Latency: p50/p95 of one search through the search service in a warm process (hybrid: parse + full-text on the
   stored GIN-indexed documents + query embedding + vector search + fusion) beside PostgreSQL full-text alone (the
   same service with AISLE_SEARCH_VECTORS off) and the shop's own keyword filter, at each catalogue size.
3. Vector search at each size: exact float32 matrix search (the true top-k) beside HNSW with the defaults
   (M=16, ef 128/64) and with the tuned parameters search uses (M=32, ef 200/256): p95 per query and recall@10
   against exact; search uses exact below AISLE_SEARCH_HNSW_FROM (200,000) and the tuned HNSW above.
4. First request in a new gunicorn worker (gunicorn.conf.py, one worker) at the largest size: the first search page
   and the first GET /api/search/ after /readyz, with models warmed in post_fork and, beside it, cold
   (AISLE_WARM_SEARCH=0). `--first-request-only` runs just this against an existing database.

Scale is synthetic, and says so: extra products are real products with their title words recombined with
another product's of the same category, and their bullets shuffled; their vectors are the source product's
real MiniLM vector plus small Gaussian noise (sigma 0.02 per dimension, re-normalised) instead of
re-embedding 100k texts. The real 643 products are embedded with MiniLM once (about a minute on CPU).
It creates (and drops) its own database, so it never touches your data.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PHRASINGS = ("{noun}", "best {noun}", "cheap {noun} under ${price}", "{brand} {noun}", "{name}")
SKIP_NOUNS = {"purchase", "product"}


def setup_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}"')


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def category_queries(rng: random.Random) -> list[tuple[str, int]]:
    """(query, expected category id) for each real sub-category."""
    from shop import services as shop
    from shop.demo.texts import NOUNS

    queries = []
    for root in shop.category_tree():
        for leaf in root.subcategories:
            products = list(shop.active_products().filter(category=leaf).exclude(price__isnull=True))
            if not products:
                continue
            noun = NOUNS.get(leaf.name, "")
            brands = sorted({p.brand for p in products if p.brand and p.brand.lower() != "unbranded"})
            median_price = sorted(p.price for p in products)[len(products) // 2]
            for phrasing in PHRASINGS:
                if "{noun}" in phrasing and (not noun or noun in SKIP_NOUNS):
                    continue
                if "{brand}" in phrasing and not brands:
                    continue
                text = phrasing.format(noun=noun, name=leaf.name, brand=rng.choice(brands) if brands else "",
                                       price=int(median_price * Decimal("1.2")))
                queries.append((text, leaf.pk))
    return queries


def category_hits(queries: list[tuple[str, int]]) -> dict[str, float]:
    from search import engine as search
    from shop import services as shop
    from shop.models import Category

    hits = {"hybrid": 0, "keyword": 0}
    for text, expected in tqdm(queries, desc="category-hit queries", unit="query"):
        allowed = set(shop.category_and_descendant_ids(Category.objects.get(pk=expected)))
        hybrid = search.search(text, limit=1).products
        keyword = _keyword(text, 1)
        hits["hybrid"] += bool(hybrid) and hybrid[0].category_id in allowed
        hits["keyword"] += bool(keyword) and keyword[0].category_id in allowed
    return {name: count / len(queries) for name, count in hits.items()}


def _keyword(text: str, limit: int) -> list:
    """The shop's own keyword filter (every word in the title, brand, category or bullets): the baseline."""
    from shop import services as shop

    return list(shop.filter_products(shop.ProductFilters(query=text))[:limit])


def grow_catalogue(target: int, rng: random.Random, progress: tqdm) -> None:
    """Synthetic products (recombined real ones) and noisy copies of their vectors, up to `target` products."""
    import numpy as np

    from ml.index import vector_from_bytes, vector_to_bytes
    from search.models import ProductEmbedding
    from shop import services as shop
    from shop.models import Product

    real = list(shop.active_products().filter(source_key__isnull=False).order_by("pk"))
    vectors = {}
    for row in ProductEmbedding.objects.filter(product_id__in=[p.pk for p in real], vector__isnull=False):
        vectors[row.product_id] = vector_from_bytes(row.vector)
    by_category: dict[int, list] = {}
    for product in real:
        by_category.setdefault(product.category_id, []).append(product)
    count = Product.objects.count()
    while count < target:
        batch = min(5000, target - count)
        products, sources = [], []
        for n in range(batch):
            source = rng.choice(real)
            other = rng.choice(by_category[source.category_id])
            words = source.title.split()
            extra = [w for w in other.title.split() if w not in words][:3]
            cut = rng.randint(max(1, len(words) // 2), len(words))
            title = " ".join(words[:cut] + extra)[:290]
            features = list(source.features or [])
            rng.shuffle(features)
            products.append(Product(
                category_id=source.category_id, title=title, slug=f"synthetic-{count + n}", brand=source.brand,
                price=source.price, stock=source.stock, features=features[:5], description=source.description,
                source_review_count=rng.randint(0, 200), is_active=True))
            sources.append(source.pk)
        created = Product.objects.bulk_create(products, batch_size=1000)
        rows = []
        for product, source in zip(created, sources, strict=True):
            base = vectors.get(source)
            if base is None:
                continue
            noisy = base + np.random.default_rng(product.pk).normal(0, 0.02, base.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy)
            rows.append(ProductEmbedding(product_id=product.pk, vector=vector_to_bytes(noisy),
                                         dim=noisy.shape[0], is_dirty=False, model_version="bench-noise"))
        ProductEmbedding.objects.bulk_create(rows, batch_size=2000)
        count += batch
        progress.update(batch)


def time_searches(queries: list[str], label: str) -> dict[str, tuple[float, float]]:
    from django.conf import settings

    from search import embeddings
    from search import services as search

    def full_text(query: str) -> list:
        settings.AISLE_SEARCH_VECTORS = False
        try:
            return list(search.search(query, source=search.SOURCE_INTERNAL))
        finally:
            settings.AISLE_SEARCH_VECTORS = True

    search.reset_caches()
    search.warm_up()  # the embedder, the vocabulary and the index, as gunicorn's post_fork does
    full_text("warm up")
    _keyword("warm", 48)
    results = {}
    for name, run in (("hybrid", lambda q: list(search.search(q, source=search.SOURCE_INTERNAL))),
                      ("full-text", full_text), ("keyword", lambda q: _keyword(q, 48))):
        samples = []
        for query in tqdm(queries, desc=f"{name} latency @ {label}", unit="query", leave=False):
            embeddings.embed_query.cache_clear()  # count the query's encoding every time
            started = time.perf_counter()
            run(query)
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = percentiles(samples)
    return results


def vector_options(queries: list[str], k: int = 10) -> dict[str, tuple[float, float]]:
    """(p95 ms, recall@10) of exact float32 search and of HNSW with default and with tuned parameters."""
    import numpy as np
    from usearch.index import Index

    from search import embeddings

    index = embeddings.product_index()
    ids = index.ids
    matrix = np.vstack([index.vector(i) for i in ids])
    vectors = np.vstack([embeddings.embed_query(q) for q in queries])

    def exact(vector):
        scores = matrix @ vector
        top = np.argpartition(-scores, k)[:k]
        return ids[top[np.argsort(-scores[top])]]

    truth = [set(exact(v).tolist()) for v in vectors]
    found = {}
    for name, params in (("exact float32", None), ("HNSW 16/128/64", (16, 128, 64)),
                         ("HNSW 32/200/256", (32, 200, 256))):
        if params is None:
            run = exact
        else:
            hnsw = Index(ndim=matrix.shape[1], metric="cos", dtype="f32", connectivity=params[0],
                         expansion_add=params[1], expansion_search=params[2])
            hnsw.add(ids, matrix)
            run = lambda v, hnsw=hnsw: np.asarray(hnsw.search(v, k).keys)  # noqa: E731
        samples, recall = [], []
        for vector, expected in zip(vectors, truth, strict=True):
            began = time.perf_counter()
            got = run(vector)
            samples.append((time.perf_counter() - began) * 1000)
            recall.append(len(set(np.asarray(got).tolist()) & expected) / k)
        found[name] = (percentiles(samples)[1], float(np.mean(recall)))
    return found


def hnsw_recall(queries: list[str], k: int = 10) -> tuple[float, str]:
    import numpy as np

    from search import embeddings

    index = embeddings.product_index()
    vectors = np.vstack([embeddings.embed_query(q) for q in queries])
    sample = index.ids[np.random.default_rng(0).choice(len(index), size=min(200, len(index)), replace=False)]
    vectors = np.vstack([vectors, np.vstack([index.vector(i) for i in sample])])
    approx, _ = index.search(vectors, k)
    exact, _ = index.search(vectors, k, exact=True)
    recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)])
    return float(recall), index.backend


def first_request(url: str) -> dict[str, tuple[float, float, float]]:
    """label -> (seconds to /readyz, first search page, first API search) in a new gunicorn worker."""
    import subprocess
    import urllib.request

    from tests import workers

    # gunicorn runs with DEBUG off, so the pages' static files come from STATIC_ROOT's manifest (a fresh clone has
    # none until collectstatic has run: every page would answer 500).
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "DJANGO_SECRET_KEY": "bench-only", "DATABASE_URL": url})
    found = {}
    for label, warm in (("cold", {"AISLE_WARM_MODELS": "", "AISLE_WARM_SEARCH": "0"}),
                        ("warm (post_fork)", {"AISLE_WARM_MODELS": "embedder", "AISLE_WARM_SEARCH": "1"})):
        port = workers.free_port()
        env = {"DATABASE_URL": url, "REDIS_URL": "", "DJANGO_SECRET_KEY": "bench-only", "AISLE_SEARCH_VECTORS": "1",
               **warm}
        began = time.perf_counter()
        web = workers.start_web(port, env=env, workers=1, threads=2)
        ready = time.perf_counter() - began
        try:
            timings = []
            for path in ("/search/?q=quiet+laptop+with+long+battery+life", "/api/search/?q=4k+tv"):
                started = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=180) as response:
                    response.read()
                timings.append(time.perf_counter() - started)
        finally:
            web.kill()
            web.wait()
        found[label] = (ready, *timings)
    return found


def print_first_request(found: dict) -> None:
    print("\nFirst request in a new gunicorn worker (s): ready (/readyz), first search page, first API search")
    for label, (ready, page, api) in found.items():
        print(f"  {label:<18} ready {ready:6.1f}   page {page:6.2f}   api {api:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres:postgres@127.0.0.1:5432/aisle_bench_search")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=40, help="timed queries per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-database", action="store_true", help="leave the bench database for profiling")
    parser.add_argument("--first-request-only", action="store_true",
                        help="only part 4, against the existing database at --database-url")
    args = parser.parse_args()
    if args.first_request_only:
        print_first_request(first_request(args.database_url))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng = random.Random(args.seed)

    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "DJANGO_SECRET_KEY": "bench-only", "AISLE_EMBED_ON_SAVE": "0",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    setup_database(args.database_url)
    import django

    django.setup()
    import logging

    logging.getLogger("search").setLevel(logging.ERROR)
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from search import embeddings
    from shop.demo import catalogue

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    cache.clear()
    catalogue.import_catalogue(catalogue.read_rows())
    from shop.models import Product

    real_count = Product.objects.count()
    with tqdm(total=real_count, desc="embedding the real catalogue (MiniLM)", unit="product") as bar:
        embeddings.embed_dirty(everything=True, progress=bar.update)

    queries = category_queries(rng)
    hits = category_hits(queries)
    timed = [text for text, _ in rng.sample(queries, min(args.queries, len(queries)))]

    rows = []
    with tqdm(total=max(sizes) - real_count, desc="synthetic products", unit="product") as bar:
        for size in sizes:
            grow_catalogue(size, rng, bar)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE shop_product")
            cache.clear()
            latency = time_searches(timed, f"{size:,}")
            recall, backend = hnsw_recall(timed)
            rows.append((size, latency, recall, backend, vector_options(timed)))

    print(f"\nCategory-hit rate, real catalogue ({real_count} products, {len(queries)} queries from its "
          f"sub-categories): hybrid {hits['hybrid']:.1%}, keyword baseline {hits['keyword']:.1%}")
    print(f"\nSearch latency (ms, {len(timed)} queries each, query encoding included, {os.cpu_count()} CPU cores, "
          "PostgreSQL; synthetic products beyond the real 643)")
    print(f"{'products':>9}{'hybrid p50':>12}{'hybrid p95':>12}{'full-text p50':>15}{'full-text p95':>15}"
          f"{'keyword p50':>13}{'keyword p95':>13}{'index':>7}{'recall@10':>11}")
    for size, latency, recall, backend, _options in rows:
        print(f"{size:>9,}{latency['hybrid'][0]:>12.1f}{latency['hybrid'][1]:>12.1f}{latency['full-text'][0]:>15.1f}"
              f"{latency['full-text'][1]:>15.1f}{latency['keyword'][0]:>13.1f}{latency['keyword'][1]:>13.1f}"
              f"{backend:>7}{recall:>11.3f}")
    print("recall@10: the search's index against exact (brute-force) search over the same vectors; 1.000 where "
          "the index is exact")
    print("\nVector search alone (p95 ms / recall@10 against exact)")
    names = list(rows[0][4])
    print(f"{'products':>9}" + "".join(f"{name:>22}" for name in names))
    for size, *_rest, options in rows:
        print(f"{size:>9,}" + "".join(f"{f'{options[n][0]:.1f} / {options[n][1]:.3f}':>22}" for n in names))
    connection.close()
    print_first_request(first_request(args.database_url))
    print(f"whole run {time.perf_counter() - started:.0f} s")
    if not args.keep_database:
        drop_database(args.database_url)


if __name__ == "__main__":
    main()
