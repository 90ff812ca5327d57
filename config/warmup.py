"""Warm a web process before it serves: load the models a shopper's first search or chat needs.

Called from gunicorn's `post_fork` (gunicorn.conf.py), so each worker loads its models before it
accepts a request instead of making the first shopper wait (~30 s for search, ~40 s for chat cold).
`/readyz` answers 200 once this has run in the process that answers it.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

log = logging.getLogger(__name__)

STATE: dict = {"warm": False, "started": None, "seconds": None, "models": {}, "errors": {}}


def model_tasks() -> list[str]:
    return [t.strip() for t in getattr(settings, "AISLE_WARM_MODELS", "").split(",") if t.strip()]


def warm() -> dict:
    """Load every model named in AISLE_WARM_MODELS and run one search (which builds the vector index).
    A model that cannot load is recorded, not raised: the page that needs it falls back or says so."""
    from ml.registry import registry

    STATE["started"] = time.time()
    started = time.perf_counter()
    for task in model_tasks():
        began = time.perf_counter()
        try:
            registry.get(task)
            STATE["models"][task] = round(time.perf_counter() - began, 2)
        except Exception as exc:  # noqa: BLE001 - an optional model (e.g. no fine-tuned intent model yet)
            STATE["errors"][task] = str(exc)[:200]
            log.warning("Warm-up: model %s did not load: %s", task, exc)
    if getattr(settings, "AISLE_WARM_SEARCH", True):
        try:
            from search import services as search

            # The embedder, the catalogue snapshot and the vector index; records no `searched` event.
            STATE["models"].update(search.warm_up())
        except Exception as exc:  # noqa: BLE001 - e.g. no database yet at first boot
            STATE["errors"]["search-index"] = str(exc)[:200]
            log.warning("Warm-up: search did not warm: %s", exc)
        finally:
            from django.db import connections

            connections.close_all()  # a forked worker must not share a connection opened here
    STATE["seconds"] = round(time.perf_counter() - started, 2)
    STATE["warm"] = True
    log.info("Warm-up done in %.1f s: %s", STATE["seconds"], STATE["models"])
    return STATE
