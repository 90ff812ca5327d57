"""The nightly scoring job in real Celery worker processes: SIGKILL one mid-run, resume with two
at once; every review ends up scored exactly once."""

import os
import signal
import subprocess

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from sentiment.models import ReviewSentiment, ScoringRun
from shop.models import Review

from . import workers
from .factories import make_product
from .test_sentiment_helpers import NEGATIVE, POSITIVE, bulk_reviews

REVIEWS, BATCH = 60, 5

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="needs REDIS_URL and PostgreSQL"),
]


@pytest.fixture
def start_worker(tmp_path):
    """Start `celery worker` processes pointed at the test database; all stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = workers.start_worker(name=name, log=log)
        started.append(process)
        return process

    celery_app.control.purge()
    yield start
    for process in started:
        workers.stop_worker(process)


def _ready(names: list[str]) -> bool:
    replies = celery_app.control.ping(timeout=0.5) or []
    answered = {name.split("@")[0] for reply in replies for name in reply}
    return set(names) <= answered


@pytest.mark.django_db(transaction=True)
def test_killed_worker_loses_nothing_and_two_workers_resume_without_overlap(start_worker):
    product = make_product()
    reviews = bulk_reviews(product, [(POSITIVE, 5), (NEGATIVE, 1)] * (REVIEWS // 2))  # no signals: nothing queued
    assert Review.objects.count() == REVIEWS

    first = start_worker("first")
    assert workers.wait_for(lambda: _ready(["first"]), timeout=60), "the first worker did not come up"
    celery_app.send_task("sentiment.tasks.score_pending", kwargs={"batch_size": BATCH, "delay": 0.3})
    assert workers.wait_for(lambda: ReviewSentiment.objects.count() >= 3 * BATCH, timeout=60)
    os.kill(first.pid, signal.SIGKILL)  # mid-run: no clean shutdown, the open batch transaction is lost
    first.wait(timeout=10)

    done = ReviewSentiment.objects.count()
    run = ScoringRun.objects.get()
    assert 3 * BATCH <= done < REVIEWS, "the kill did not land mid-run"
    assert done % BATCH == 0  # whole batches only: each one committed in one transaction, or not at all
    assert run.status == ScoringRun.Status.RUNNING and run.scored == done and run.finished_at is None

    # Two workers resume at the same time; SKIP LOCKED hands them disjoint batches.
    start_worker("second"), start_worker("third")
    assert workers.wait_for(lambda: _ready(["second", "third"]), timeout=60), "the resuming workers did not come up"
    results = [celery_app.send_task("sentiment.tasks.score_pending", kwargs={"batch_size": BATCH, "delay": 0.3})
               for _ in range(2)]
    outcomes = [result.get(timeout=90) for result in results]

    assert sum(outcome["scored"] for outcome in outcomes) == REVIEWS - done
    assert all(outcome["scored"] > 0 for outcome in outcomes), f"the workers did not run side by side: {outcomes}"
    rows = list(ReviewSentiment.objects.values_list("review_id", "times_scored", "model_version"))
    assert sorted(review_id for review_id, _, _ in rows) == sorted(review.pk for review in reviews)  # nothing lost
    assert {times for _, times, _ in rows} == {1}  # nothing scored twice
    assert {version for _, _, version in rows} == {"vader-3.3.2"}
    assert sum(ScoringRun.objects.values_list("scored", flat=True)) == REVIEWS
    assert ScoringRun.objects.filter(status=ScoringRun.Status.FINISHED).count() == 2
