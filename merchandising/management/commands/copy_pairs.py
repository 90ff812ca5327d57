from django.core.management.base import BaseCommand

from merchandising import services


class Command(BaseCommand):
    help = ("Write the generator's training pairs as JSON lines for `manage.py finetune generator --data FILE`: "
            "accepted and edited copy drafts, plus --grounded N grounded examples (served-model drafts kept only "
            "when they pass the fact check and are not copies of the template).")

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="the JSON-lines file to write")
        parser.add_argument("--grounded", type=int, default=0, help="grounded examples to add (default 0)")
        parser.add_argument("--timeout", type=float, default=None, help="per draft, seconds")

    def handle(self, *args, **options):
        pairs, summary = services.build_training_pairs(grounded=options["grounded"], timeout=options["timeout"])
        for reason in summary["skipped"]:
            self.stdout.write(f"skipped {reason}")
        services.write_pairs_file(pairs, options["out"])
        self.stdout.write(self.style.SUCCESS(
            f"{len(pairs)} pairs written to {options['out']}: {summary['drafts']} from drafts "
            f"({summary['skipped_drafts']} skipped), {summary['grounded']} grounded "
            f"(outcomes: {summary['grounded_outcome']})."))
