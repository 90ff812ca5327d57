"""The next-item model: recommend.sequential (SASRec, torch, no database), the leave-last-out metrics,
and its use in the shop (recommend.nextitem): training from sessions, the fallback when data is too
thin, and the "Because you viewed" rail following the order of a session."""

import datetime as dt
import logging
import uuid

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from behavior import services as behavior
from recommend import engine, nextitem, services
from recommend.algorithms import EASE
from recommend.evaluation import next_item_metrics, sequences_matrix
from recommend.sequential import SeqConfig, SequentialRecommender, pad_left, training_windows
from shop import services as shop

from .factories import make_category, make_product

TINY = {"dim": 16, "layers": 1, "heads": 1, "dropout": 0.1, "learning_rate": 5e-3, "batch_size": 32}


def cycle_sequences(n_items: int = 12, users: int = 40, length: int = 8, seed: int = 0) -> list[list[int]]:
    """Every shopper walks the same loop 0 -> 1 -> ... -> n-1 -> 0 from a random start."""
    rng = np.random.default_rng(seed)
    return [[(start + step) % n_items for step in range(length)] for start in rng.integers(0, n_items, users)]


# --- the model (no database) ------------------------------------------------------------------


def test_windows_cover_every_target_once_and_pad_on_the_left():
    inputs, targets = training_windows([[0, 1, 2, 3, 4, 5, 6]], max_len=3)
    predicted = sorted(int(t) - 1 for t in targets.ravel() if t > 0)
    assert predicted == [1, 2, 3, 4, 5, 6]
    for x, y in zip(inputs, targets, strict=True):  # each target is the item after its input
        for a, b in zip(x, y, strict=True):
            if b:
                assert b == a + 1
    assert pad_left([[4, 5]], 4).tolist() == [[0, 0, 5, 6]]


def test_sasrec_learns_the_direction_of_a_session_which_ease_cannot():
    sequences = cycle_sequences()
    model = SequentialRecommender(SeqConfig(n_items=12, epochs=40, max_len=8, **TINY)).fit(sequences)
    for history, expected in (([3, 4, 5], 6), ([10, 11], 0), ([7], 8)):
        assert model.recommend(history, k=1, exclude=history)[0][0] == expected
    # EASE^R sees the same sessions as sets: after [7] it cannot tell 8 from 6.
    ease = EASE(l2=1.0).fit(sequences_matrix(sequences, 12))
    scores = ease.score_history(sequences_matrix([[7]], 12))[0]
    assert abs(scores[8] - scores[6]) < 0.25 * max(scores[8], scores[6])


def test_saved_model_scores_the_same_after_loading(tmp_path):
    model = SequentialRecommender(SeqConfig(n_items=12, epochs=2, max_len=8, **TINY)).fit(cycle_sequences())
    model.save(tmp_path / "m.pt")
    again = SequentialRecommender.load(tmp_path / "m.pt")
    np.testing.assert_allclose(again.score([[1, 2, 3]]), model.score([[1, 2, 3]]), rtol=1e-5, atol=1e-5)


def test_early_stopping_keeps_the_best_check():
    values = iter([0.1, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    config = SeqConfig(n_items=12, epochs=20, max_len=8, check_every=1, patience=3, **TINY)
    model = SequentialRecommender(config).fit(cycle_sequences(), validate=lambda _m: next(values))
    assert model.best_epoch == 2 and [e for e, _v in model.history] == [1, 2, 3, 4, 5]


def test_next_item_metrics_on_a_hand_computed_example():
    scores = np.array([[0.9, 0.8, 0.1, 0.5],    # history {0}: ranking 1, 3, 2 -> target 3 at rank 1
                       [0.1, 0.2, 0.3, 0.4]])   # history {}: ranking 3, 2, 1, 0 -> target 0 at rank 3
    metrics = next_item_metrics(scores, [[0], []], [3, 0], k=2)
    assert metrics.hit_rate == 0.5
    assert metrics.ndcg == pytest.approx((1 / np.log2(3)) / 2)


# --- in the shop ------------------------------------------------------------------------------


@pytest.fixture
def _model_dir(settings, tmp_path):
    settings.AISLE_MODEL_DIR = str(tmp_path)
    settings.AISLE_RECOMMEND_SEQUENTIAL = {**TINY, "epochs": 40, "max_len": 10, "check_every": 5, "patience": 4}
    engine.reset()
    nextitem.reset()
    yield
    engine.reset()
    nextitem.reset()


@pytest.fixture
def loop(_model_dir):
    """Four headphones, each with its own cable: h0, c0, h1, c1, ..."""
    headphones, cables = make_category("Headphones"), make_category("Cables")
    h = [make_product(headphones, title=f"Headphone {i}") for i in range(4)]
    c = [make_product(cables, title=f"Cable {i}") for i in range(4)]
    return [p for pair in zip(h, c, strict=True) for p in pair]


def walk(products, *, shoppers: int = 25, pairs: int = 5) -> None:
    """Each shopper looks at a headphone, then at its own cable, then at another headphone...: only
    the order of the session says which cable comes next (every shopper sees several of each)."""
    start = timezone.now() - dt.timedelta(days=1)
    rng = np.random.default_rng(1)
    for n in range(shoppers):
        at = start + dt.timedelta(minutes=n)
        for step, i in enumerate(rng.permutation(4).tolist() + [int(rng.integers(0, 4))][: max(0, pairs - 4)]):
            for offset, product in enumerate((products[2 * i], products[2 * i + 1])):
                shop.record_product_view(product, visitor_id=f"{n:032x}",
                                         occurred_at=at + dt.timedelta(seconds=2 * step + offset))


def rail(response, key):
    return next((r for r in response.context["rails"] if r.key == key), None)


@pytest.mark.django_db
def test_a_shop_with_three_orders_falls_back_to_popularity_with_a_logged_reason(client, loop, caplog):
    for n in range(3):
        shop.record_product_view(loop[n], visitor_id=f"{n:032x}")
        shop.record_product_view(loop[n + 1], visitor_id=f"{n:032x}")
        behavior.record_event("order_placed", properties={"products": [loop[n + 1].pk]}, visitor_id=f"{n:032x}")
    services.train_collaborative()
    with caplog.at_level(logging.WARNING, logger="recommend.nextitem"):
        report = services.train_sequential()
    assert report["status"] == "fallback" and "too little data" in report["reason"]
    assert "too little data" in caplog.text
    assert services.sequential_status()["reason"] == report["reason"]
    assert nextitem.current_version() is None
    client.cookies["aisle_vid"] = uuid.uuid4().hex
    client.get(loop[0].get_absolute_url())
    response = client.get(reverse("shop:home"))
    for_you = rail(response, "for-you")
    assert response.status_code == 200 and for_you.items
    assert {item.reason for item in for_you.items} <= {"Popular with shoppers", "Trending now",
                                                         "Because you viewed Headphone 0"}


@pytest.mark.django_db
def test_a_failed_fit_is_logged_and_leaves_the_fallback(loop, monkeypatch, caplog):
    walk(loop)

    def broken(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SequentialRecommender, "fit", broken)
    report = services.train_sequential()
    assert report["status"] == "fallback" and "out of memory" in report["reason"]
    assert "Next-item model training failed" in caplog.text and nextitem.current_version() is None


@pytest.mark.django_db
def test_because_you_viewed_follows_the_order_of_the_session(client, loop):
    walk(loop)
    report = services.train_sequential()
    assert report["status"] == "trained" and report["shoppers"] == 25 and report["validation_ndcg"] > 0.3

    client.cookies["aisle_vid"] = uuid.uuid4().hex
    client.get(loop[2].get_absolute_url())  # Headphone 1
    because = rail(client.get(reverse("shop:home")), "because-you-viewed")
    assert because.title == "Because you viewed Headphone 1"
    assert because.items[0].product == loop[3]  # Cable 1 comes next in the sessions
    assert because.items[0].reason == "Shoppers often look at this next"

    client.get(loop[4].get_absolute_url())  # then Headphone 2: the next page's rail moves on
    response = client.get(reverse("shop:home"))
    because = rail(response, "because-you-viewed")
    assert because.title == "Because you viewed Headphone 2" and because.items[0].product == loop[5]
    for_you = rail(response, "for-you")
    assert for_you.items[0].product == loop[5] and for_you.items[0].reason == "Because you viewed Headphone 2"


@pytest.mark.django_db
def test_a_damaged_model_file_leaves_the_page_working(client, loop, settings, caplog):
    walk(loop)
    version = services.train_sequential()["version"]
    (nextitem.model_dir() / f"sequential-{version}.pt").write_bytes(b"not a model")
    nextitem.reset()
    client.cookies["aisle_vid"] = uuid.uuid4().hex
    client.get(loop[2].get_absolute_url())
    response = client.get(reverse("shop:home"))
    assert response.status_code == 200 and rail(response, "because-you-viewed") is None
    assert "Could not load the next-item model" in caplog.text


def test_the_nightly_job_runs_on_the_training_queue():
    from config.celery import app
    from recommend import tasks

    entry = app.conf.beat_schedule["recommend-train-sequential"]
    assert entry["task"] == tasks.train_sequential.name == "recommend.tasks.train_sequential"
    assert entry["options"]["queue"] == "training" and tasks.train_sequential.queue == "training"
