"""Aisle's recommenders on real ratings: MovieLens-100k (100,000 ratings, 943 users, 1,682 movies).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/recommend.py [--seed 42] [--k 10] [--no-tune] [--genres]
                                                          [--als-iterations 15]

Needs `recbole==1.2.1` installed with --no-deps (requirements-bench.txt); only its data files are
read, the module is never imported. Protocol (recommend/evaluation.py): every rating is an implicit
interaction, a seeded random 80/20 split per user, the full catalogue ranked for each user with their
training items excluded; precision@k, recall@k, NDCG@k (binary relevance) and catalogue coverage@k.

Baselines run side by side in the same process on the same split: most-popular, item-kNN (cosine with
shrinkage, BM25), ALS from the `implicit` package, and content similarity alone (MiniLM embeddings of
"title (year) genres" via ml.embed; genre one-hots with --genres or when the model is unavailable).
Item-kNN's and ALS's hyper-parameters and the hybrid's weights are chosen on a validation split carved
out of the training data; the test split only scores the final models. The published NDCG@10 figures
for this setting are printed beside them. No database and no Django are needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommend.evaluation import (  # noqa: E402
    format_next_item_table,
    format_table,
    run_evaluation,
    run_next_item_evaluation,
)

# Published NDCG@10 on MovieLens-100k under this protocol (all ratings implicit, random 80/20, full ranking).
REFERENCE_NDCG = {"most-popular": 0.22, "item-kNN": 0.40, "ALS (implicit)": 0.44}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-tune", action="store_true", help="default item-kNN/ALS settings, no selection")
    parser.add_argument("--als-iterations", type=int, default=15)
    parser.add_argument("--genres", action="store_true", help="genre one-hots instead of MiniLM for content")
    parser.add_argument("--no-next-item", action="store_true", help="skip the leave-last-out (SASRec) table")
    parser.add_argument("--seq-epochs", type=int, default=40, help="SASRec epochs at most (early stopping)")
    args = parser.parse_args()

    started = time.perf_counter()
    try:
        report = run_evaluation(seed=args.seed, k=args.k, tune_hyperparameters=not args.no_tune,
                                als_iterations=args.als_iterations, use_embeddings=not args.genres)
    except FileNotFoundError as exc:
        sys.exit(str(exc))
    print()
    print(format_table(report, references=REFERENCE_NDCG if args.k == 10 else None))
    print("(ALS is the reference's matrix factorisation (MF) row; content is the hybrid's content component alone)")
    hybrid = report.hybrid.metrics
    baselines = [row for row in report.results if row.baseline]
    for metric, label in (("ndcg", f"NDCG@{args.k}"), ("precision", f"P@{args.k}"), ("recall", f"R@{args.k}")):
        best = max(baselines, key=lambda row, metric=metric: getattr(row.metrics, metric))
        verdict = "beats" if report.hybrid_beats_baselines(metric) else "does NOT beat"
        print(f"Aisle hybrid {verdict} every baseline run beside it on {label}: {getattr(hybrid, metric):.4f} "
              f"against the best baseline's {getattr(best.metrics, metric):.4f} ({best.name})")
    if not args.no_next_item:
        # Leave-last-out by rating time: SASRec beside most-popular, item-kNN and EASE^R. No published
        # figure for this exact protocol was found offline, so none is printed as a reference.
        next_item = run_next_item_evaluation(k=args.k, seq_config={"epochs": args.seq_epochs, "threads": 2})
        print()
        print(format_next_item_table(next_item, references={}))
        sasrec, ease = next_item.result("SASRec (Aisle)").metrics, next_item.result("EASE^R").metrics
        verdict = "beats" if sasrec.ndcg > ease.ndcg else "does NOT beat"
        print(f"SASRec {verdict} EASE^R on next-item NDCG@{args.k}: {sasrec.ndcg:.4f} against {ease.ndcg:.4f}")
    print(f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
