"""`manage.py evaluate_recommender`: the offline MovieLens-100k evaluation of recommend.algorithms."""

import os

from django.core.management.base import BaseCommand, CommandError

from recommend.evaluation import format_table, run_evaluation


class Command(BaseCommand):
    help = ("Evaluate most-popular, item-kNN, implicit ALS and Aisle's hybrid on MovieLens-100k "
            "(needs recbole==1.2.1 installed with --no-deps; see requirements-bench.txt).")

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="seed of the 80/20 split and of every model")
        parser.add_argument("--k", type=int, default=10, help="cut-off of the ranked lists (default 10)")
        parser.add_argument("--no-tune", action="store_true",
                            help="use the default item-kNN and ALS settings instead of selecting them on validation")
        parser.add_argument("--als-iterations", type=int, default=15)
        parser.add_argument("--genres", action="store_true",
                            help="genre one-hots as content vectors instead of MiniLM embeddings (faster)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args, **options):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if options["k"] < 1:
            raise CommandError("--k must be at least 1")
        try:
            report = run_evaluation(seed=options["seed"], k=options["k"],
                                    tune_hyperparameters=not options["no_tune"],
                                    als_iterations=options["als_iterations"], use_embeddings=not options["genres"],
                                    progress=not options["no_progress"])
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(format_table(report))
        verdict = "beats" if report.hybrid_beats_baselines("ndcg") else "does NOT beat"
        style = self.style.SUCCESS if report.hybrid_beats_baselines("ndcg") else self.style.WARNING
        self.stdout.write(style(f"The hybrid {verdict} every baseline beside it on NDCG@{report.k}."))
