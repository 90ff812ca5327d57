from django.core.management.base import BaseCommand, CommandError

from ml import versions
from ml.registry import GENERATOR, TASK_KINDS


class Command(BaseCommand):
    help = ("Fine-tune a model task from a data file, register the version, and promote it if it beats "
            "the active one on the same held-out set. Classifiers: CSV/JSONL with text,label. "
            "embedder: CSV with anchor,positive. generator: JSONL of product copy pairs, one "
            '{"facts": {"title", "brand", "features", ...}, "copy": "...", "kind", "tone", "length"} a line '
            "(a LoRA adapter; see README, 'Fine-tuning the generator').")

    def add_arguments(self, parser):
        parser.add_argument("task", help=f"one of {sorted(TASK_KINDS)}")
        parser.add_argument("--data", required=True, help="path to the training data file")
        # None: the task's default (classifiers: 3 epochs, max length 128; generator: ml.train_config.LoraTrainConfig).
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=None,
                            help="default: per device for encoders (16 on a CPU, 64 on a GPU), 4 for the generator")
        parser.add_argument("--lr", type=float, default=None, help="default: scaled with the batch size")
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--max-length", type=int, default=None)
        parser.add_argument("--patience", type=int, default=None)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--rank", type=int, default=None, help="generator: the LoRA rank (default 8)")
        parser.add_argument("--async", dest="run_async", action="store_true",
                            help="enqueue on the Celery `training` queue instead of training here")

    def handle(self, *args, **options):
        task = options["task"]
        if task not in TASK_KINDS:
            raise CommandError(f"Cannot fine-tune {task!r}; choose one of {sorted(TASK_KINDS)}")
        config = {"epochs": options["epochs"], "batch_size": options["batch_size"],
                  "learning_rate": options["lr"], "max_steps": options["max_steps"],
                  "max_length": options["max_length"], "patience": options["patience"], "seed": options["seed"]}
        if task == GENERATOR:
            config["r"] = options["rank"]
        if options["run_async"]:
            from ml.tasks import finetune

            result = finetune.delay(task, options["data"], {k: v for k, v in config.items() if v is not None})
            self.stdout.write(f"Enqueued fine-tuning of {task} as Celery task {result.id} (queue: training).")
            return
        try:
            version = versions.finetune_from_file(task, options["data"], versions.train_config_for(task, config))
        except (FileNotFoundError, ValueError) as exc:
            if task == GENERATOR:
                raise CommandError(f"Cannot fine-tune 'generator' from {options['data']}: {exc}") from exc
            raise CommandError(str(exc)) from exc
        verdict = "promoted (active)" if version.is_active else "registered, not promoted"
        if task == GENERATOR:
            gate = version.metrics.get("gate", {})
            self.stdout.write(self.style.SUCCESS(
                f"{task} v{version.pk}: LoRA adapter trained on {version.metrics.get('train_size')} pairs; "
                f"{verdict}. {gate.get('note', '')} Adapter: {version.path}"))
            return
        self.stdout.write(self.style.SUCCESS(
            f"{task} v{version.pk}: {version.primary_metric}={version.score:.4f} on {version.metrics['test_size']} "
            f"held-out examples; {verdict}. Checkpoint: {version.path}"))
