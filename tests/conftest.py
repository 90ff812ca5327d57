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
    from search.embeddings import reset_index

    reset_index()


@pytest.fixture(autouse=True)
def _int8_export_when_marked(request, settings):
    """Promotions export int8 ONNX (seconds per version) only in tests marked `int8`."""
    settings.AISLE_INT8_EXPORT = request.node.get_closest_marker("int8") is not None


@pytest.fixture(autouse=True)
def _restore_model_registry():
    """Tests that point the process-wide model registry at tiny checkpoints must not leak them."""
    from ml.registry import registry

    paths = dict(registry._paths)
    yield
    if registry._paths != paths:
        registry.configure(paths=paths)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(monkeypatch):
    """Debian's Chromium driven by Playwright (its own browser download fails here), headless."""
    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
    # inside one unless told it is safe (it is: the loop only drives the browser).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield launched
        launched.close()
        # ORM calls made inside Playwright's context got their own connection (Django keeps
        # connections per context); close it so the test database can be dropped.
        connections.close_all()
