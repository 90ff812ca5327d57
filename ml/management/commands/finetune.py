from django.core.management.base import BaseCommand, CommandError

from ml import versions
from ml.registry import TASK_KINDS
from ml.train_config import TrainConfig


class Command(BaseCommand):
    help = ("Fine-tune a model task from a data file, register the version, and promote it if it beats "
            "the active one on the same held-out set. Classifiers: CSV/JSONL with text,label. "
            "embedder: CSV with anchor,positive.")

    def add_arguments(self, parser):
        parser.add_argument("task", help=f"one of {sorted(TASK_KINDS)}")
        parser.add_argument("--data", required=True, help="path to the training data file")
        parser.add_argument("--epochs", type=int, default=3)
        parser.add_argument("--batch-size", type=int, default=None,
                            help="default: per device (16 on a CPU, 64 on a GPU; ml.devices.train_defaults)")
        parser.add_argument("--lr", type=float, default=None, help="default: scaled with the batch size")
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--max-length", type=int, default=128)
        parser.add_argument("--patience", type=int, default=2)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--async", dest="run_async", action="store_true",
                            help="enqueue on the Celery `training` queue instead of training here")

    def handle(self, *args, **options):
        task = options["task"]
        if task not in TASK_KINDS or task == "generator":
            raise CommandError(f"Cannot fine-tune {task!r}; choose one of "
                               f"{sorted(t for t in TASK_KINDS if t != 'generator')}")
        config = {"epochs": options["epochs"], "batch_size": options["batch_size"],
                  "learning_rate": options["lr"], "max_steps": options["max_steps"],
                  "max_length": options["max_length"], "patience": options["patience"], "seed": options["seed"]}
        if options["run_async"]:
            from ml.tasks import finetune

            result = finetune.delay(task, options["data"], config)
            self.stdout.write(f"Enqueued fine-tuning of {task} as Celery task {result.id} (queue: training).")
            return
        try:
            version = versions.finetune_from_file(task, options["data"], TrainConfig(**config))
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        verdict = "promoted (active)" if version.is_active else "registered, not promoted (did not beat the active)"
        self.stdout.write(self.style.SUCCESS(
            f"{task} v{version.pk}: {version.primary_metric}={version.score:.4f} on {version.metrics['test_size']} "
            f"held-out examples; {verdict}. Checkpoint: {version.path}"))
