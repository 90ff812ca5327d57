import time

from django.core.management.base import BaseCommand

from support import intents


class Command(BaseCommand):
    help = ("Fine-tune the intent classifier from the MiniLM encoder on the labelled intent set (train split) plus "
            "agent-corrected shopper messages. It serves only if it beats the active version on the same held-out "
            "examples; the project's held-out split is then scored with it and with the embedding fallback.")

    def add_arguments(self, parser):
        parser.add_argument("--epochs", type=int, default=intents.DEFAULT_EPOCHS)
        parser.add_argument("--max-length", type=int, default=intents.MAX_LENGTH)
        parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        from ml import finetune

        config = intents.default_train_config(options["epochs"], options["max_length"])
        config.max_steps = options["max_steps"]
        started = time.perf_counter()
        version = intents.finetune_intents(progress=not options["quiet"], config=config)
        seconds = time.perf_counter() - started
        # The project's held-out split was never trained on (training_examples() uses the train split only),
        # so it measures the model on phrasings it has not seen.
        _, (texts, labels) = intents.split_labelled_set()
        report = finetune.evaluate_classifier(version.path, texts, labels, max_length=options["max_length"])
        verdict = "promoted (active)" if version.is_active else (
            f"registered, not promoted: macro-F1 {version.score:.4f} vs the active version's "
            f"{version.active_score_on_same_set:.4f} on the same held-out examples of the training run")
        self.stdout.write(self.style.SUCCESS(
            f"intent v{version.pk}: held-out accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} "
            f"on {len(texts)} phrasings; {verdict}. Trained on {version.metrics.get('train_size')} examples in "
            f"{seconds:.0f} s. Checkpoint: {version.path}"))
