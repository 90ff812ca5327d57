"""Hybrid search at scale, on PostgreSQL, beside plain keyword search in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/search.py [--database-url URL] [--sizes 1000,10000,100000]
                                                      [--queries 40]

1. Category-hit rate on the real catalogue (643 products): queries built from its own sub-categories (the
   reviews' noun for the category, "best ...", "cheap ... under $N", "<brand in that category> ...", the
   category's name); a hit is a top result in the expected sub-category (or one of its children).
2. Latency: p50/p95 of one search (hybrid: parse + full-text + query embedding + vector search + fusion; keyword:
   shop.services.keyword_search_backend) at each catalogue size.
3. Recall@10 of the approximate index (usearch HNSW, used from 20,000 vectors) against exact search, at sizes
   where the index is HNSW.

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
    from recommend import search
    from shop import services as shop
    from shop.models import Category

    hits = {"hybrid": 0, "keyword": 0}
    for text, expected in tqdm(queries, desc="category-hit queries", unit="query"):
        allowed = set(shop.category_and_descendant_ids(Category.objects.get(pk=expected)))
        hybrid = search.search(text, limit=1).products
        keyword = shop.keyword_search_backend(text, limit=1)
        hits["hybrid"] += bool(hybrid) and hybrid[0].category_id in allowed
        hits["keyword"] += bool(keyword) and keyword[0].category_id in allowed
    return {name: count / len(queries) for name, count in hits.items()}


def grow_catalogue(target: int, rng: random.Random, progress: tqdm) -> None:
    """Synthetic products (recombined real ones) and noisy copies of their vectors, up to `target` products."""
    import numpy as np

    from ml.index import vector_from_bytes, vector_to_bytes
    from recommend.models import ProductEmbedding
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
    from recommend import embeddings, search
    from shop import services as shop

    search.reset_caches()
    embeddings.reset_index()
    search.search("warm up the index", limit=48)  # builds the index and the vocabulary once
    shop.keyword_search_backend("warm", limit=48)
    results = {}
    for name, run in (("hybrid", lambda q: search.search(q, limit=48).products),
                      ("keyword", lambda q: list(shop.keyword_search_backend(q, limit=48)))):
        samples = []
        for query in tqdm(queries, desc=f"{name} latency @ {label}", unit="query", leave=False):
            embeddings.embed_query.cache_clear()  # count the query's encoding every time
            started = time.perf_counter()
            run(query)
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = percentiles(samples)
    return results


def hnsw_recall(queries: list[str], k: int = 10) -> tuple[float, str]:
    import numpy as np

    from recommend import embeddings

    index = embeddings.product_index()
    vectors = np.vstack([embeddings.embed_query(q) for q in queries])
    sample = index.ids[np.random.default_rng(0).choice(len(index), size=min(200, len(index)), replace=False)]
    vectors = np.vstack([vectors, np.vstack([index.vector(i) for i in sample])])
    approx, _ = index.search(vectors, k)
    exact, _ = index.search(vectors, k, exact=True)
    recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / k for a, e in zip(approx, exact, strict=True)])
    return float(recall), index.backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres:postgres@127.0.0.1:5432/aisle_bench_search")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=40, help="timed queries per size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng = random.Random(args.seed)

    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "DJANGO_SECRET_KEY": "bench-only", "AISLE_EMBED_ON_SAVE": "0",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    setup_database(args.database_url)
    import django

    django.setup()
    import logging

    logging.getLogger("recommend").setLevel(logging.ERROR)
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from recommend import embeddings
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
            rows.append((size, latency, recall, backend))

    print(f"\nCategory-hit rate, real catalogue ({real_count} products, {len(queries)} queries from its "
          f"sub-categories): hybrid {hits['hybrid']:.1%}, keyword baseline {hits['keyword']:.1%}")
    print(f"\nSearch latency (ms, {len(timed)} queries each, query encoding included, {os.cpu_count()} CPU cores, "
          "PostgreSQL; synthetic products beyond the real 643)")
    print(f"{'products':>9}{'hybrid p50':>12}{'hybrid p95':>12}{'keyword p50':>13}{'keyword p95':>13}"
          f"{'index':>7}{'recall@10':>11}")
    for size, latency, recall, backend in rows:
        print(f"{size:>9,}{latency['hybrid'][0]:>12.1f}{latency['hybrid'][1]:>12.1f}{latency['keyword'][0]:>13.1f}"
              f"{latency['keyword'][1]:>13.1f}{backend:>7}{recall:>11.3f}")
    print("recall@10: the index's answer against exact (brute-force) search over the same vectors; 1.000 where "
          "the index is exact")
    print(f"whole run {time.perf_counter() - started:.0f} s")
    connection.close()
    drop_database(args.database_url)


if __name__ == "__main__":
    main()
