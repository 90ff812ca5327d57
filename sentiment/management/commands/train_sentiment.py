from django.core.management.base import BaseCommand, CommandError

from ml.train_config import TrainConfig
from sentiment import services


class Command(BaseCommand):
    help = ("Fine-tune the sentiment classifier from the MiniLM encoder on the shop's approved reviews, stars as "
            "labels (1-2 negative, 3 neutral, 4-5 positive). It serves only if it beats the active version and "
            "VADER on the same held-out reviews.")

    def add_arguments(self, parser):
        parser.add_argument("--epochs", type=int, default=3)
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--lr", type=float, default=5e-5)
        parser.add_argument("--max-length", type=int, default=256)
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--max-reviews", type=int, default=None, help="the most recent N reviews")
        parser.add_argument("--min-reviews", type=int, default=None)
        parser.add_argument("--patience", type=int, default=2, help="validations without gain before stopping")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--async", dest="run_async", action="store_true",
                            help="enqueue on Celery (the training queue) instead of training here")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--rescore", action="store_true",
                            help="re-score every review with the new version once it serves")
        parser.add_argument("--demo", action="store_true",
                            help="the demo's budget: 1 epoch, 128 tokens, the latest 2,000 reviews; re-scores after")
        parser.add_argument("--trigger", default="command", help="recorded on the training run")

    def handle(self, *args, **options):
        if options["demo"]:
            from ml.versions import active_version

            if active_version(services.TASK) is not None:
                self.stdout.write("The shop's sentiment model already serves; not training it again for the demo.")
                return
            options.update(epochs=1, max_length=128, max_reviews=options["max_reviews"] or 2000, rescore=True)
        config = {"epochs": options["epochs"], "batch_size": options["batch_size"], "learning_rate": options["lr"],
                  "max_length": options["max_length"], "max_steps": options["max_steps"], "seed": options["seed"],
                  "patience": options["patience"]}
        if options["run_async"]:
            from sentiment.tasks import train_model

            result = train_model.delay(config, options["max_reviews"])
            self.stdout.write(f"Enqueued sentiment fine-tuning as Celery task {result.id}.")
            return
        try:
            outcome = services.train_model(TrainConfig(**config), max_reviews=options["max_reviews"],
                                           min_reviews=options["min_reviews"], progress=not options["no_progress"],
                                           trigger=options["trigger"], rescore=options["rescore"],
                                           # small batches: short write transactions beside the demo's server
                                           rescore_batch_size=16 if options["demo"] else None)
        except services.NotEnoughReviews as exc:
            raise CommandError(str(exc)) from exc
        version = outcome.version
        verdict = "serving now" if outcome.serving else "registered, not serving"
        self.stdout.write(self.style.SUCCESS(
            f"sentiment v{version.pk}: macro-F1 {outcome.model_macro_f1:.4f} vs VADER {outcome.vader_macro_f1:.4f} on "
            f"{version.metrics.get('test_size')} held-out reviews; {verdict}. Checkpoint: {version.path}"))
        skipped = outcome.run.skipped if outcome.run else {}
        if any(skipped.values()):
            self.stdout.write(f"Skipped reviews: {', '.join(f'{k} {v}' for k, v in skipped.items() if v)}.")
        gate = version.metrics.get("gate", {})
        if gate.get("active") is not None:
            self.stdout.write(f"Gate (same {gate['rows']} held-out rows, max_length {gate['max_length']}): "
                              f"new {gate['candidate']:.4f} vs active v{gate['active_version']} {gate['active']:.4f}.")
        if outcome.serving and options["rescore"]:
            self.stdout.write(f"Re-scored {outcome.run.rescored} reviews with {services.scorer_status()['serving']}.")
        elif outcome.serving:
            self.stdout.write("Run `python manage.py score_sentiment` (or wait for the nightly job) to re-score.")
