"""Aisle's shared model layer: plain Python + torch, no Django app imports.

Public API (import from `ml`):
    embed(texts) -> np.ndarray                 normalised sentence embeddings
    classify(task, texts) -> list[Prediction]  sequence classification (sentiment, intent, ...)
    generate(prompt_or_messages, ...) -> str   chat-template generation with caps and a timeout
    VectorIndex                                exact + HNSW vector search, saved and updated incrementally
    vector_to_bytes / vector_from_bytes        embeddings as stored in a database column
    registry                                   task -> checkpoint resolution and lazy, thread-safe loading

The Django side (model versions, admin, Celery tasks, the `finetune` command) lives in
`ml.models`, `ml.versions`, `ml.admin`, `ml.tasks` and `ml.management`; the core modules
(`ml.devices`, `ml.registry`, `ml.inference`, `ml.index`, `ml.finetune`, `ml.metrics`,
`ml.prompts`) import neither Django nor any app, so they run in a plain Python shell.
Names are imported lazily so that a web process does not pay for torch until it needs a model.
"""

import importlib

_EXPORTS = {
    "choose_device": "devices",
    "VectorIndex": "index",
    "vector_from_bytes": "index",
    "vector_to_bytes": "index",
    "Generation": "inference",
    "Prediction": "inference",
    "classify": "inference",
    "embed": "inference",
    "generate": "inference",
    "generate_detailed": "inference",
    "ModelUnavailable": "registry",
    "registry": "registry",
    "PromptTemplate": "prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ml' has no attribute {name!r}")
