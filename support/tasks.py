"""Celery tasks of the support app: thin wrappers around services."""

from celery import shared_task


@shared_task(name="support.tasks.finetune_intents", acks_late=True)
def finetune_intents(config: dict | None = None) -> dict:
    """Weekly (config/celery.py): fine-tune the intent classifier on the labelled set plus agent corrections.
    `config`: TrainConfig fields that override support.intents' defaults, e.g. {"epochs": 2}."""
    from dataclasses import replace

    from . import intents

    train_config = replace(intents.default_train_config(), **(config or {}))
    version = intents.finetune_intents(progress=False, config=train_config)
    return {"version": version.pk, "active": version.is_active, "macro_f1": version.score,
            "active_score_on_same_set": version.active_score_on_same_set}
