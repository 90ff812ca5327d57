import time

from django.core.management.base import BaseCommand

from ml.devices import choose_device, describe
from ml.registry import TASK_KINDS, ModelUnavailable, registry


class Command(BaseCommand):
    help = "Show which checkpoint each model task resolves to; with --load, load and try the packaged ones."

    def add_arguments(self, parser):
        parser.add_argument("--load", nargs="*", metavar="TASK",
                            help="load these tasks (default with no names: embedder and generator)")

    def handle(self, *args, **options):
        self.stdout.write(f"Device: {describe(choose_device(registry.device_override))}")
        for task in sorted(TASK_KINDS):
            candidates = registry.candidates(task)
            first = f"{candidates[0].path} ({candidates[0].source})" if candidates else "none yet (app fallback)"
            self.stdout.write(f"  {task:<10} -> {first}")
        if options["load"] is None:
            return
        for task in options["load"] or ["embedder", "generator"]:
            started = time.perf_counter()
            try:
                loaded = registry.get(task)
            except ModelUnavailable as exc:
                self.stdout.write(self.style.WARNING(f"{task}: {exc}"))
                continue
            self.stdout.write(self.style.SUCCESS(
                f"Loaded {task} from {loaded.path} ({loaded.source}) on {loaded.device} "
                f"in {time.perf_counter() - started:.1f} s"))
