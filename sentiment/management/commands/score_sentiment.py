from django.core.management.base import BaseCommand
from tqdm import tqdm

from sentiment import services
from sentiment.models import SentimentAlert


class Command(BaseCommand):
    help = ("Score every approved review that has no score or was scored by another model version (resumable: "
            "stop it any time and run it again). Optionally re-discover aspects first and check alerts after.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--delay", type=float, default=None, help="seconds to sleep between batches")
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--discover", action="store_true", help="re-discover each category's aspects first")
        parser.add_argument("--no-alerts", action="store_true")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        if options["discover"]:
            report = services.discover_category_aspects()
            for name, aspects in sorted(report.discovered.items()):
                self.stdout.write(f"  {name}: {', '.join(aspects)}")
            self.stdout.write(f"Aspects changed in {len(report.changed)} categories; "
                              f"{report.marked_for_rescore} reviews to re-score.")
        alerts_before = set(SentimentAlert.objects.values_list("pk", flat=True))
        engine = services.serving_engine()
        total = services.pending_reviews(engine.version).count()
        bar = tqdm(total=total if options["limit"] is None else min(total, options["limit"]), unit="review",
                   desc=f"scoring with {engine.version}", disable=options["no_progress"])
        run = services.score_pending(batch_size=options["batch_size"], delay=options["delay"], limit=options["limit"],
                                     trigger="command", engine=engine, progress=bar.update)
        bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"Scored {run.scored} reviews in {run.batches} batches with {run.model_version}"
            f"{f' ({run.fallbacks} by VADER after model errors)' if run.fallbacks else ''}."))
        if not options["no_alerts"]:
            report = services.check_alerts()
            new = SentimentAlert.objects.exclude(pk__in=alerts_before).select_related("product")
            self.stdout.write(f"Alerts: checked {report.checked} products; {len(new)} opened, "
                              f"{len(report.ended)} episodes ended.")
            for alert in new:
                self.stdout.write(f"  negative reviews rising for {alert.product.title}: {alert.window_share:.0%} "
                                  f"in {alert.window_days} days vs {alert.baseline_share:.0%} before "
                                  f"(z={alert.z_score:.1f})")
