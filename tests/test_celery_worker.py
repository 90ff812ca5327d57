"""A real Celery worker process on the real Redis broker runs a task and we see its effect."""


import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from shop import services
from shop.models import Review

from . import workers
from .factories import make_product, make_user

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="needs REDIS_URL and PostgreSQL"),
]


@pytest.fixture
def celery_worker(transactional_db):
    """Start `celery worker` as its own process, pointed at the test database."""
    celery_app.control.purge()  # drop messages left by any earlier run
    log_path = workers.ROOT / ".pytest_cache_worker.log"
    log = open(log_path, "w")  # noqa: SIM115
    process = workers.start_worker(log=log)
    try:
        yield process
    finally:
        workers.stop_worker(process)
        log.close()
        log_path.unlink(missing_ok=True)


def test_worker_refreshes_rating_after_moderation(celery_worker):
    product = make_product()
    first = services.post_review(product=product, user=make_user(), rating=5, title="Great",
                                 text="Works great, love it.")
    second = services.post_review(product=product, user=make_user(), rating=2, title="Meh",
                                  text="Stopped working soon.")
    assert product.rating_count == 0

    # Approving enqueues refresh_product_rating on Redis (the test process runs no task itself).
    services.moderate_reviews([first.pk, second.pk], Review.Status.APPROVED)

    def refreshed() -> bool:
        product.refresh_from_db()
        return product.rating_count == 2

    assert workers.wait_for(refreshed), \
        f"worker did not refresh the rating; worker alive: {celery_worker.poll() is None}"
    assert str(product.rating_average) == "3.50"
    assert celery_worker.poll() is None  # the worker process is still running


def test_task_sent_by_name_runs_in_the_worker_process(celery_worker):
    product = make_product()
    services.post_review(product=product, user=make_user(), rating=4, title="Good", text="Solid and quiet.",
                         status=Review.Status.APPROVED)
    result = celery_app.send_task("shop.tasks.refresh_product_rating", args=[product.pk])
    assert result.get(timeout=60) == f"{product.pk}: 4.00 over 1"
