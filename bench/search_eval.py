"""Judged search evaluation on the real catalogue: NDCG@10, zero-result and junk rates, beside keyword baselines.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/search_eval.py [--database-url URL] [--reuse]

bench/data/search_eval.json holds 152 hand-written shopper queries (head nouns, needs such as "laptop for
college", brands, sizes and resolutions, prices, words with two meanings, typos, and 18 products the shop does not
sell), each with graded relevance judged from the products' real fields (its `_about` says how). Every query is
run one by one through:

- search: the search service (search.services.search: parse, full-text + MiniLM vectors, fusion, not-found);
- full-text only: the same service with AISLE_SEARCH_VECTORS off (PostgreSQL full-text search and the parser);
- keyword filter: the shop's own keyword filter (every word in title, brand, category or bullets), the baseline.

Printed per system: NDCG@10 over the queries for sold products (the ideal ranking is the catalogue's own best
grades), the zero-result rate (no product shown), the junk rate (shown top-10 products judged 0) and how many
not-sold queries were answered "not found" with no grid; then NDCG@10 by kind of query. It loads the real
catalogue into its own database and embeds it with MiniLM (a few minutes on 2 cores); `--reuse` keeps a database
from an earlier run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = ROOT / "bench" / "data" / "search_eval.json"
K = 10


def grade(product: dict, rules: list) -> int:
    best = 0
    for value, rule in rules:
        if "cat" in rule and product["category"] not in rule["cat"]:
            continue
        if "title" in rule and not re.search(rule["title"], product["title"], re.I):
            continue
        if "not_title" in rule and re.search(rule["not_title"], product["title"], re.I):
            continue
        if "text" in rule and not re.search(rule["text"], product["text"], re.I):
            continue
        if "price_max" in rule and (product["price"] is None or product["price"] > rule["price_max"]):
            continue
        if "price_min" in rule and (product["price"] is None or product["price"] < rule["price_min"]):
            continue
        best = max(best, value)
    return best


def dcg(grades: list[int]) -> float:
    return sum((2 ** g - 1) / math.log2(rank + 2) for rank, g in enumerate(grades[:K]))


def evaluate(name: str, run, queries: list[dict], catalogue: dict[int, dict]) -> dict:
    ndcg, by_kind, zero, shown, junk, absent_ok, absent_total, scores = [], {}, 0, 0, 0, 0, 0, {}
    for query in queries:
        ids, not_found = run(query["q"])
        if query.get("absent"):
            absent_total += 1
            absent_ok += bool(not ids)
            continue
        grades = [grade(catalogue[pk], query["judge"]) for pk in ids[:K] if pk in catalogue]
        ideal = sorted((grade(p, query["judge"]) for p in catalogue.values()), reverse=True)
        score = dcg(grades) / dcg(ideal) if dcg(ideal) else 0.0
        ndcg.append(score)
        scores[query["q"]] = score
        by_kind.setdefault(query["kind"], []).append(score)
        zero += not ids
        shown += len(grades)
        junk += sum(1 for g in grades if g == 0)
    return {"name": name, "ndcg": sum(ndcg) / len(ndcg), "zero": zero / len(ndcg), "junk": junk / max(shown, 1),
            "absent": (absent_ok, absent_total),
            "kinds": {kind: sum(v) / len(v) for kind, v in by_kind.items()}, "n": len(ndcg), "scores": scores}


def setup(url: str, reuse: bool) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not (reuse and exists):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres:postgres@127.0.0.1:5432/aisle_bench_search_eval")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--reuse", action="store_true", help="keep the database of an earlier run (no re-embedding)")
    parser.add_argument("--show", default="", help="print the top results of the queries containing this text")
    parser.add_argument("--worst", type=int, default=0, help="list the search's N lowest-scoring queries")
    args = parser.parse_args()
    os.environ.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                       "DJANGO_SECRET_KEY": "bench-only", "AISLE_EMBED_ON_SAVE": "0",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    setup(args.database_url, args.reuse)
    import django

    django.setup()
    import logging

    logging.getLogger("search").setLevel(logging.ERROR)
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command

    from search import attributes, embeddings, engine
    from search import services as search
    from shop import services as shop
    from shop.demo import catalogue as demo

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    cache.clear()
    if not shop.active_products().exists():
        demo.import_catalogue(demo.read_rows())
    attributes.ensure_attributes()
    embeddings.embed_dirty(everything=True)
    search.reset_caches()

    catalogue = {p.pk: {"title": p.title, "category": p.category.name, "price": float(p.price) if p.price else None,
                        "text": "\n".join([p.title, *map(str, p.features or [])])}
                 for p in shop.active_products().select_related("category")}
    queries = json.loads(DATA.read_text())["queries"]

    def service(text: str) -> tuple[list[int], bool]:
        found = search.search(text, source=search.SOURCE_INTERNAL)
        return [p.pk for p in found], found.not_found

    def full_text(text: str) -> tuple[list[int], bool]:
        settings.AISLE_SEARCH_VECTORS = False
        try:
            return service(text)
        finally:
            settings.AISLE_SEARCH_VECTORS = True

    def keyword_filter(text: str) -> tuple[list[int], bool]:
        return [p.pk for p in shop.filter_products(shop.ProductFilters(query=text))[:48]], False

    service("warm up")
    systems = [evaluate("search (hybrid)", service, queries, catalogue),
               evaluate("full-text only", full_text, queries, catalogue),
               evaluate("keyword filter", keyword_filter, queries, catalogue)]
    if args.show:
        for query in queries:
            if args.show in query["q"]:
                ids, not_found = service(query["q"])
                print(f"\n{query['q']!r} not_found={not_found}")
                for pk in ids[:K]:
                    print(f"  {grade(catalogue[pk], query['judge'])}  {catalogue[pk]['title'][:90]}")
    for text, score in sorted(systems[0]["scores"].items(), key=lambda pair: pair[1])[:args.worst]:
        print(f"  worst: {score:.3f}  {text}")
    kinds = sorted({q["kind"] for q in queries if not q.get("absent")})
    print(f"\nJudged search evaluation: {len(queries)} queries on the real catalogue ({len(catalogue)} products), "
          f"NDCG@{K} over the {systems[0]['n']} queries for sold products")
    print(f"{'system':<18}{'NDCG@10':>9}{'zero-result':>13}{'junk':>7}{'not sold -> not found':>24}")
    for row in systems:
        ok, total = row["absent"]
        print(f"{row['name']:<18}{row['ndcg']:>9.3f}{row['zero']:>13.1%}{row['junk']:>7.1%}{f'{ok}/{total}':>24}")
    print("\nNDCG@10 by kind of query")
    print(f"{'kind':<12}" + "".join(f"{row['name']:>18}" for row in systems))
    for kind in kinds:
        count = sum(1 for q in queries if q["kind"] == kind)
        print(f"{kind + f' ({count})':<12}" + "".join(f"{row['kinds'][kind]:>18.3f}" for row in systems))
    print(f"whole run {time.perf_counter() - started:.0f} s (engine {engine.__name__})")


if __name__ == "__main__":
    main()
