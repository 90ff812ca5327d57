"""Jobs resume within minutes, and a dead fine-tune is visible and not retrained unasked: real Celery
workers on the test database and Redis, killed with SIGKILL mid-run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from ml import versions
from ml.models import ModelVersion
from sentiment import runs
from sentiment.models import ReviewSentiment, ScoringRun

from . import workers
from .factories import make_product
from .ml_tiny import make_tiny_bert
from .test_sentiment_helpers import NEGATIVE, POSITIVE, bulk_reviews

REVIEWS, BATCH = 60, 5

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="needs REDIS_URL and PostgreSQL"),
]


@pytest.fixture
def start_worker(tmp_path):
    started: list[subprocess.Popen] = []

    def start(name: str, **options) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = workers.start_worker(name=name, log=log, **options)
        started.append(process)
        assert workers.wait_for(lambda: _ready(name), timeout=60), f"worker {name} did not come up"
        return process

    celery_app.control.purge()
    yield start
    for process in started:
        workers.stop_worker(process)


def _ready(name: str) -> bool:
    replies = celery_app.control.ping(timeout=0.5) or []
    return any(worker.split("@")[0] == name for reply in replies for worker in reply)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _all_scored_once(reviews) -> bool:
    rows = list(ReviewSentiment.objects.values_list("review_id", "times_scored"))
    return sorted(review_id for review_id, _ in rows) == sorted(r.pk for r in reviews)


@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_child_is_retried_at_once_and_each_review_is_scored_once(start_worker, settings):
    reviews = bulk_reviews(make_product(), [(POSITIVE, 5), (NEGATIVE, 1)] * (REVIEWS // 2))
    worker = start_worker("prefork", pool="prefork")
    celery_app.send_task("sentiment.tasks.score_pending", kwargs={"batch_size": BATCH, "delay": 0.3})
    assert workers.wait_for(lambda: ReviewSentiment.objects.count() >= 3 * BATCH, timeout=60)
    (child,) = _children(worker.pid)
    os.kill(child, signal.SIGKILL)  # the pool child dies mid-run; the worker itself lives on

    # reject_on_worker_lost + acks_late: the message goes back to the queue at once and a new child resumes.
    assert workers.wait_for(lambda: _all_scored_once(reviews), timeout=90), \
        f"{ReviewSentiment.objects.count()} of {REVIEWS} scored"
    assert set(ReviewSentiment.objects.values_list("times_scored", flat=True)) == {1}
    killed = ScoringRun.objects.order_by("started_at").first()
    assert killed.status == ScoringRun.Status.RUNNING and 0 < killed.scored < REVIEWS
    assert workers.wait_for(lambda: ScoringRun.objects.filter(status=ScoringRun.Status.FINISHED).exists(), 30)
    assert sum(ScoringRun.objects.values_list("scored", flat=True)) == REVIEWS

    # The beat job marks the dead child's run interrupted (its heartbeat stopped).
    settings.AISLE_SCORING_STALE_S = 1
    time.sleep(1.5)
    assert runs.resume_stale_runs()["interrupted"] == [killed.pk]
    killed.refresh_from_db()
    assert killed.status == ScoringRun.Status.INTERRUPTED and "heartbeat" in killed.error


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_run_is_resumed_by_the_heartbeat_check_within_seconds(start_worker, settings):
    reviews = bulk_reviews(make_product(), [(POSITIVE, 5), (NEGATIVE, 1)] * (REVIEWS // 2))
    first = start_worker("first")
    celery_app.send_task("sentiment.tasks.score_pending", kwargs={"batch_size": BATCH, "delay": 0.3})
    assert workers.wait_for(lambda: ReviewSentiment.objects.count() >= 3 * BATCH, timeout=60)
    os.kill(first.pid, signal.SIGKILL)  # the whole worker: its message waits for the visibility timeout (10 min)
    first.wait(timeout=10)
    done = ReviewSentiment.objects.count()
    assert done < REVIEWS, "the kill did not land mid-run"

    start_worker("second", env={"AISLE_SCORING_STALE_S": "2"})
    time.sleep(2.5)
    started = time.monotonic()
    # What the every-minute beat entry sends; the worker marks the run interrupted and queues its resumption.
    outcome = celery_app.send_task("sentiment.tasks.resume_stale_runs").get(timeout=30)
    assert len(outcome["interrupted"]) == 1 and outcome["resumed"]
    assert workers.wait_for(lambda: _all_scored_once(reviews), timeout=90)
    assert time.monotonic() - started < 90
    assert set(ReviewSentiment.objects.values_list("times_scored", flat=True)) == {1}
    statuses = dict(ScoringRun.objects.values_list("status", "scored"))
    assert set(statuses) == {ScoringRun.Status.INTERRUPTED, ScoringRun.Status.FINISHED}
    assert statuses[ScoringRun.Status.FINISHED] == REVIEWS - done


@pytest.mark.django_db(transaction=True)
def test_a_killed_finetune_leaves_a_visible_interrupted_version_and_is_not_retrained(start_worker, tmp_path,
                                                                                    settings):
    tiny_base = make_tiny_bert(tmp_path / "bert")
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{POSITIVE},positive\n{NEGATIVE},negative\n" for _ in range(40)))
    env = {"AISLE_MODEL_DIR": str(tmp_path / "models"), "AISLE_FINETUNE_BASE": str(tiny_base),
           "AISLE_BROKER_VISIBILITY_TIMEOUT_S": "3"}  # an unacknowledged message would come back within seconds
    trainer = start_worker("trainer", queues="training", env=env)

    # A fine-tune that fails is recorded as failed, with the error.
    broken = celery_app.send_task("ml.tasks.finetune", args=["sentiment", str(tmp_path / "missing.csv")],
                                  queue="training")
    with pytest.raises(FileNotFoundError):
        broken.get(timeout=60, propagate=True)
    # (the result is stored just before the failure handler ends the row)
    assert workers.wait_for(lambda: ModelVersion.objects.filter(job_id=broken.id, status="failed").exists(), 10)
    assert "No such data file" in ModelVersion.objects.get(job_id=broken.id).notes

    # A long fine-tune whose worker is killed mid-training.
    job = celery_app.send_task("ml.tasks.finetune", args=["sentiment", str(data)],
                               kwargs={"config": {"epochs": 400, "batch_size": 4, "patience": 400}}, queue="training")
    assert workers.wait_for(lambda: ModelVersion.objects.filter(job_id=job.id).exists(), timeout=60)
    row = ModelVersion.objects.get(job_id=job.id)
    assert row.status == ModelVersion.Status.TRAINING and not row.is_active  # visible from the start
    time.sleep(1)
    os.kill(trainer.pid, signal.SIGKILL)
    trainer.wait(timeout=10)

    # The beat job (every 5 minutes; stale after 1 s here) marks it interrupted.
    settings.AISLE_TRAINING_STALE_S = 1
    time.sleep(1.5)
    assert versions.mark_stale_trainings() == [row.pk]
    row.refresh_from_db()
    assert row.status == ModelVersion.Status.INTERRUPTED and "worker lost" in row.notes and row.finished_at

    # A new training worker, past the visibility timeout: nothing is retrained unasked.
    start_worker("trainer2", queues="training", env=env)
    time.sleep(8)
    assert list(ModelVersion.objects.values_list("status", flat=True).order_by("pk")) == [
        ModelVersion.Status.FAILED, ModelVersion.Status.INTERRUPTED]
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert broker.llen("training") == 0 and broker.hlen("unacked") == 0
