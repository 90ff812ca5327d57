"""`manage.py train_recommender`: train and publish the collaborative recommender now."""

import os

from django.core.management.base import BaseCommand, CommandError

from recommend import services


class Command(BaseCommand):
    help = ("Train the recommender's collaborative part (item-item neighbours, bought-together, implicit ALS) "
            "from recent behaviour events, save it under AISLE_MODEL_DIR/recommend and publish it. "
            "The same job runs on the beat schedule.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=90, help="how many days of events to learn from")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
        parser.add_argument("--sequential", action="store_true",
                            help="also train the next-item (SASRec) model, as the nightly training-queue job does")

    def handle(self, *args, **options):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        report = services.train_collaborative(days=options["days"], progress=not options["no_progress"])
        if report is None:
            raise CommandError("Another training run holds the lock; try again when it has finished.")
        self.stdout.write(self.style.SUCCESS(
            f"Trained recommender {report['version']} in {report['seconds']} s: {report['shoppers']} shoppers, "
            f"{report['products']} products, {report['interactions']} interactions, {report['orders']} orders"
            f"{', ALS' if report['als'] else ', no ALS (too little data)'}."))
        if options["sequential"]:
            seq = services.train_sequential(days=options["days"], progress=not options["no_progress"])
            if seq is None:
                raise CommandError("Another next-item training run holds the lock.")
            if seq["status"] == "trained":
                self.stdout.write(self.style.SUCCESS(
                    f"Trained next-item model {seq['version']} in {seq['seconds']} s on {seq['shoppers']} shoppers "
                    f"({seq['transitions']} transitions, {seq['epochs']} epochs, validation NDCG@10 "
                    f"{seq['validation_ndcg']})."))
            else:
                self.stdout.write(self.style.WARNING(f"No next-item model; popularity stands in: {seq['reason']}"))
