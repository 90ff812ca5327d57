import pytest
from django.core.cache import cache

from config.celery import app as celery_app


@pytest.fixture(autouse=True)
def _clear_cache():
    # The cache is the real Redis in `make test`; rate-limit counters must not leak between tests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _tasks_in_process(request):
    """Run Celery tasks in-process, except in tests that start a real worker (marked `worker`)."""
    eager = request.node.get_closest_marker("worker") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _no_embedding_on_save(request, settings):
    """Product saves flag the product for re-embedding either way; the embedding task (which loads
    MiniLM) is queued on save only in tests marked `embeddings`, to keep the others fast."""
    settings.AISLE_EMBED_ON_SAVE = request.node.get_closest_marker("embeddings") is not None
    yield
    from recommend.embeddings import reset_index

    reset_index()


@pytest.fixture(autouse=True)
def _restore_model_registry():
    """Tests that point the process-wide model registry at tiny checkpoints must not leak them."""
    from ml.registry import registry

    paths = dict(registry._paths)
    yield
    if registry._paths != paths:
        registry.configure(paths=paths)
