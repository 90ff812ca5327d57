"""What the sentiment pages say agrees with the reviews: weak clause labels from the stars, bad
training rows skipped and counted, the promotion gate on equal footing, the summary rule on the
planted bad batch, and which scorer produced what the pages show."""

import datetime as dt
import random

import pytest
from django.core.cache import cache
from django.utils import timezone

from ml import finetune, versions
from ml.registry import registry
from ml.train_config import TrainConfig
from sentiment import scoring, services
from sentiment.models import ProductSentiment, SentimentAlert, TrainingRun
from shop.demo import texts
from shop.models import Review

from .factories import make_category, make_product
from .ml_tiny import make_tiny_bert
from .test_sentiment_helpers import bulk_reviews

VADER = scoring.VADER_VERSION


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("truth-base") / "bert")


@pytest.fixture
def tiny_models(settings, tmp_path, tiny_base):
    settings.AISLE_MODEL_DIR = str(tmp_path / "models")
    settings.AISLE_FINETUNE_BASE = str(tiny_base)
    settings.AISLE_SENTIMENT = {"MAX_LENGTH": 64, "TRAIN_MIN_REVIEWS": 20}
    registry.unload()
    yield
    registry.unload()


# --- weak clause labels and bad rows (no database) -----------------------------------------------


def test_clause_rows_follow_the_stated_rules():
    happy = "Great sound and a comfortable fit, but the battery life is terrible. It arrived on Tuesday."
    rows = dict((scoring.clause_of(unit), label) for unit, label in scoring.clause_training_rows(happy, 4))
    # The complaint inside a 4-star review takes its words' side; the praise takes the stars'; no opinion: dropped.
    assert rows == {"the battery life is terrible.": "negative", "Great sound and a comfortable fit": "positive"}
    # Each clause row carries its review as context, after the separator the encoder reads as a pair.
    unit = scoring.clause_training_rows(happy, 4)[0][0]
    assert unit == scoring.clause_input("the battery life is terrible.", happy)
    angry = "A complete waste of money. To be fair, the screen is great and beautiful. Battery drains."
    rows = dict((scoring.clause_of(u), label) for u, label in scoring.clause_training_rows(angry, 1))
    assert rows == {"A complete waste of money.": "negative",
                    "To be fair, the screen is great and beautiful.": "positive"}
    # A mildly positive word inside a 1-star review is not enough to call the clause positive.
    assert [scoring.clause_of(unit) for unit, _ in scoring.clause_training_rows(
        "The screen is okay. It broke after a week.", 2)] == ["It broke after a week."]
    assert scoring.clause_training_rows("Great sound, but the battery is terrible.", 3) == []  # mixed: dropped


def test_bad_training_rows_are_skipped_and_counted_never_raised():
    rows = [
        ("Love it", "Great sound and a comfortable fit.", 5),
        ("", "", 4), (None, None, 2), ("  ", " \n ", 1), ("...", "!!", 5),          # empty text
        ("Fine", "Does the job.", None), ("Odd", "Works.", 0), ("Odd", "Works.", 6),  # stars missing / out of range
        ("Half", "Works.", 3.5), ("Text", "Works.", "five"),
        ("Muy bueno", "El producto es muy bueno y llegó rápido, pero la batería dura poco.", 5),  # other languages
        ("Sehr gut", "Das Gerät ist sehr gut und die Lieferung war schnell.", 4),
        ("Отлично", "Очень хороший звук и удобные наушники.", 5),
        ("Broke", "Terrible monitor. Save your money.", 1),
        ("Okay", "It is fine.", 3.0),
    ]
    data = scoring.training_rows(rows)
    assert data.reviews == 3
    assert data.summary()["skipped"] == {"empty_text": 4, "bad_stars": 5, "other_language": 3}
    assert data.summary()["skipped_total"] == 12
    reviews = [(text, label) for text, label in zip(data.texts, data.labels, strict=True)
               if scoring.PAIR_SEPARATOR not in text]
    assert reviews == [("Love it. Great sound and a comfortable fit.", "positive"),
                       ("Broke. Terrible monitor. Save your money.", "negative"), ("Okay. It is fine.", "neutral")]


def test_aspect_clauses_are_classified_with_their_review_as_context():
    text = "Great sound, but the battery dies fast."
    vocabulary = scoring.AspectVocabulary({"battery": ["battery"], "sound": ["sound"]})
    seen: list[str] = []

    def classifier(units: list[str]) -> list[tuple[str, float]]:  # the model's inputs, as Engine builds them
        seen.extend(units)
        return [("positive", 0.5)] * len(units)

    [result] = scoring.Engine(classifier, "ml:sentiment:v9").score_many([(text, vocabulary)])
    assert seen == [text, scoring.clause_input("Great sound", text), scoring.clause_input("the battery dies fast.",
                                                                                          text)]
    assert [(hit.aspect, hit.sentence) for hit in result.aspects] == [("sound", text), ("battery", text)]
    # VADER, the fallback, reads the clause alone (not the review after the separator).
    [vader] = scoring.Engine.vader().score_many([(text, vocabulary)])
    assert {hit.aspect: hit.label for hit in vader.aspects} == {"sound": "positive", "battery": "neutral"}


@pytest.mark.django_db
def test_training_job_skips_bad_reviews_and_records_them(tiny_models):
    product = make_product()
    good = [("love this laptop", 5), ("great sound and long battery life", 4), ("ok for now", 3),
            ("hate the keyboard", 1), ("terrible screen and it broke after a week", 2)] * 6
    bulk_reviews(product, good)
    now = timezone.now()
    Review.objects.bulk_create([
        Review(product=product, rating=5, title="", text="", author_name="x", status=Review.Status.APPROVED,
               created_at=now),
        Review(product=product, rating=5, title="Genial", text="El portátil es muy rápido y la pantalla es preciosa.",
               author_name="x", status=Review.Status.APPROVED, created_at=now),
        Review(product=product, rating=1, title="Schlecht", text="Der Akku ist nach einer Woche kaputt und das ist "
               "nicht gut.", author_name="x", status=Review.Status.APPROVED, created_at=now),
    ])
    outcome = services.train_model(TrainConfig(epochs=1, batch_size=8, max_length=32, max_steps=2), progress=False)
    run = TrainingRun.objects.get()
    assert run == outcome.run and run.status in (TrainingRun.Status.SERVING, TrainingRun.Status.NOT_SERVING)
    assert run.skipped == {"empty_text": 1, "bad_stars": 0, "other_language": 2}
    assert run.reviews == 30 and run.version == outcome.version and run.finished_at is not None
    assert outcome.version.data_summary["skipped"] == run.skipped

    # Not enough usable reviews: a clear error, recorded as a failed run (the job never crashes on the rows).
    Review.objects.filter(text__in=[text for text, _ in good]).delete()
    with pytest.raises(services.NotEnoughReviews, match="usable"):
        services.train_model(progress=False)
    assert TrainingRun.objects.first().status == TrainingRun.Status.FAILED


# --- the gate ------------------------------------------------------------------------------------

FILLER = "where is my order please cancel my order please where is my order"


@pytest.mark.django_db
def test_gate_scores_both_versions_on_the_same_rows_with_the_same_settings(tiny_models,
                                                                          django_capture_on_commit_callbacks):
    # The cue sits after ~16 tokens of filler: a model evaluated at 64 tokens sees it, at 8 it cannot.
    texts_ = [f"{FILLER} love this laptop"] * 40 + [f"{FILLER} hate the keyboard"] * 40
    labels = ["positive"] * 40 + ["negative"] * 40
    with django_capture_on_commit_callbacks(execute=True):
        active = versions.finetune_classifier("sentiment", texts_, labels, progress=False, config=TrainConfig(
            epochs=8, batch_size=8, learning_rate=3e-3, max_length=64, patience=3))
        candidate = versions.finetune_classifier("sentiment", texts_, labels, progress=False, config=TrainConfig(
            epochs=1, batch_size=8, learning_rate=3e-3, max_length=8, max_steps=2))
    gate = candidate.metrics["gate"]
    held_texts = [texts_[i] for i in finetune.stratified_split(labels, 0.1, 0.1, 42)[2]]
    assert gate["max_length"] == 8 and gate["active_version"] == active.pk and gate["rows"] == len(held_texts) == 8
    assert gate["eval_set"] == candidate.eval_set
    # Both numbers recorded, each what the one evaluation function gives on those rows at that max_length.
    held_labels = ["positive" if "love" in text else "negative" for text in held_texts]
    same = finetune.evaluate_classifier(active.path, held_texts, held_labels, max_length=8)["macro_f1"]
    assert gate["active"] == candidate.active_score_on_same_set == pytest.approx(same)
    assert gate["candidate"] == candidate.score == pytest.approx(
        finetune.evaluate_classifier(candidate.path, held_texts, held_labels, max_length=8)["macro_f1"])
    # At another max_length the active version would look much better: that was the tilt.
    assert finetune.evaluate_classifier(active.path, held_texts, held_labels, max_length=64)["macro_f1"] > same + 0.3
    active.refresh_from_db()
    assert active.is_active == (gate["candidate"] <= gate["active"])


# --- the summary rule on the planted bad batch ---------------------------------------------------


def planted_bad_batch(seed: int = 7):
    """As shop.demo.simulator plants it: a well-loved laptop with a newer baseline of mostly 4-5 star
    reviews, then, in the last 12 days, a bad batch (85% 1-2 stars, each about one fault) -- the demo's
    MacBook Air."""
    rng = random.Random(seed)
    group, leaf = "Computers", "Laptops & Notebook Computers"
    laptops = make_category(leaf, parent=make_category(group))
    product = make_product(laptops, title='MacBook Air 13.6" Laptop', brand="Apple")
    now = timezone.now()
    rows = []

    def add(stars: int, at: dt.datetime, focus: str | None = None) -> None:
        review = texts.compose_review(rng, stars, group=group, leaf=leaf, brand="Apple", focus=focus)
        rows.append(Review(product=product, rating=stars, title=review.title, text=review.text, author_name="Sim",
                           status=Review.Status.APPROVED, created_at=at))

    for _ in range(24):
        add(max(1, min(5, round(rng.gauss(4.7, 0.85)))), now - dt.timedelta(days=12, seconds=rng.uniform(3600,
                                                                                                     100 * 86400)))
    for _ in range(20):
        at = now - dt.timedelta(seconds=rng.uniform(3600, 12 * 86400))
        if rng.random() < 0.85:
            add(rng.choice((1, 1, 2)), at, focus="battery")
        else:
            add(rng.choice((4, 5)), at)
    Review.objects.bulk_create(rows)
    return product


@pytest.mark.django_db
def test_recent_bad_batch_never_shows_shoppers_love_without_its_complaints(client):
    product = planted_bad_batch()
    services.discover_category_aspects()
    services.score_pending()
    row = ProductSentiment.objects.get(product=product)
    recent = row.recent
    assert recent["mostly_low"] and recent["low_stars"] * 2 > recent["reviews"] >= 5
    assert row.complaints and row.complaints[0] == "battery"  # what the recent reviews complain about leads
    assert row.model_version == VADER

    page = client.get(product.get_absolute_url()).content.decode()
    assert "Recent reviews are mostly negative" in page and "Shoppers complain about: battery" in page
    assert "Shoppers love" not in page
    assert "scored by VADER (fallback)" in page
    # The alert on the same rise records the scorer too.
    alert = SentimentAlert.objects.get(product=product)
    assert alert.model_version == VADER


def test_summary_rule_keeps_loves_only_beside_complaints():
    bad = {"reviews": 10, "low_stars": 8, "mostly_low": True, "complaints": ["battery"]}
    assert services.summary_rule(["price/value", "battery"], [], bad) == (["price/value"], ["battery"])
    silent = {**bad, "complaints": []}  # the model found nothing to name: no "Shoppers love" at all
    assert services.summary_rule(["price/value", "delivery"], [], silent) == ([], [])
    fine = {"reviews": 10, "low_stars": 2, "mostly_low": False, "complaints": []}
    assert services.summary_rule(["price/value"], [], fine) == (["price/value"], [])
    assert services.recent_state([1, 1, 2, 5], {"battery": 3})["mostly_low"] is False  # too few to say
    assert services.recent_state([1, 1, 2, 5, 1], {"battery": 3, "delivery": 1}) == {
        "reviews": 5, "low_stars": 4, "mostly_low": True, "complaints": ["battery"]}


@pytest.mark.django_db
def test_summary_weights_recent_mentions():
    product = make_product(make_category("Speakers"))
    now = timezone.now()
    old = [("The sound is great and rich.", 5)] * 6
    new = [("The sound is awful and tinny.", 2)] * 3 + [("Sound is good.", 4)]
    bulk_reviews(product, old, at=now - dt.timedelta(days=400))
    bulk_reviews(product, new, at=now - dt.timedelta(days=40))
    from sentiment.models import CategoryAspect

    CategoryAspect.objects.create(category=product.category, name="sound", kind="discovered", discovered_at=now,
                                  terms=["sound"])
    services.score_pending()
    row = ProductSentiment.objects.get(product=product)
    assert row.aspects["sound"] == [7, 0, 3]  # counts as they are: 7 of 10 mentions positive...
    assert row.complaints == ["sound"] and row.loves == []  # ...but the recent ones weigh more


# --- which scorer produced what --------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_say_which_scorer_produced_them(client):
    product = make_product(make_category("Headphones"))
    bulk_reviews(product, [("Great value for the price.", 5), ("Great value, love it.", 5),
                           ("Good value for money.", 4)])
    services.score_pending()
    assert services.storefront_summary(product.pk)["scorer"]["note"] == "scored by VADER (fallback)"
    TrainingRun.objects.create(trigger="demo")
    cache.delete(services.STATUS_KEY)
    page = client.get(product.get_absolute_url()).content.decode()
    assert "scored by VADER (fallback) \u2014 the shop&#x27;s model is training" in page
    assert services.describe_scorer("ml:sentiment:v3")["note"] == "scored by the shop's fine-tuned model " \
                                                                  "(ml:sentiment:v3)"


@pytest.mark.django_db
def test_nightly_trains_the_first_model_once_enough_starred_reviews_exist(settings,
                                                                         django_capture_on_commit_callbacks):
    settings.AISLE_SENTIMENT = {"TRAIN_MIN_REVIEWS": 4}
    product = make_product()
    bulk_reviews(product, [("Great.", 5), ("Bad.", 1), ("Fine.", 3)])
    assert services.nightly()["training"] is False  # 3 reviews: not enough yet
    bulk_reviews(product, [("Great.", 5)])
    assert services.should_train()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.nightly()["training"] is True
    assert any("train_model" in callback.__code__.co_freevars for callback in callbacks)
    TrainingRun.objects.create(trigger="nightly")  # one is running (or ran today): not again
    assert not services.should_train()
    TrainingRun.objects.all().delete()
    settings.AISLE_SENTIMENT = {"TRAIN_MIN_REVIEWS": 4, "AUTO_TRAIN": False}
    assert not services.should_train()
