"""Merchandising's settings, read from Django settings with these defaults (each overridable there)."""

from django.conf import settings


def _get(name: str, default):
    return getattr(settings, name, default)


def tune_min_new_pairs() -> int:
    """The weekly retrain runs only when at least this many accepted or edited drafts came in since the
    last generator version: fewer would not move the adapter, and each run costs CPU time."""
    return int(_get("AISLE_COPY_TUNE_MIN_NEW_PAIRS", 20))


def tune_grounded_examples() -> int:
    """How many grounded examples (model drafts that pass the fact check) the weekly retrain adds."""
    return int(_get("AISLE_COPY_TUNE_GROUNDED", 40))


def tune_held_out_products() -> int:
    """At most this many held-out products in the gate (each is drafted twice: candidate and served)."""
    return int(_get("AISLE_COPY_TUNE_HELD_OUT", 20))


def tune_held_out_fraction() -> float:
    return float(_get("AISLE_COPY_TUNE_HELD_OUT_FRACTION", 0.2))


def tune_max_template_similarity() -> float:
    """The gate refuses a candidate whose drafts are, on average, more alike to the template draft of the
    same product than this (rapidfuzz ratio, 0-100): above it the model has learnt to fill in the template.
    The template itself scores 100; SmolLM2 un-tuned scores far below (README, 'Fine-tuning the generator')."""
    return float(_get("AISLE_COPY_TUNE_MAX_TEMPLATE_SIMILARITY", 80.0))


def tune_config() -> dict:
    """Overrides of ml.train_config.LoraTrainConfig for the weekly retrain (e.g. a bigger batch on a GPU
    worker): {"batch_size": 16, "epochs": 3}."""
    return dict(_get("AISLE_COPY_TUNE_CONFIG", {}))
