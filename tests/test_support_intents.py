"""Support intents and mood: the labelled set, the embedding fallback, the fine-tuned classifier, mood and anger."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from config.celery import app as celery_app
from ml import packaged, versions
from ml.models import ModelVersion
from ml.registry import registry
from ml.train_config import TrainConfig
from support import intents
from support.intents import INTENTS, IntentResult
from support.models import Conversation, Message

from .ml_tiny import make_tiny_bert

# Phrasings written for these tests (not in the labelled set) that leave no doubt about the intent.
CLEAR = [
    ("hey, where is my order AS4K7M2QXP? it was due on tuesday", "order_status"),
    ("how many days does delivery to Chicago usually take", "shipping_time"),
    ("the speaker arrived broken and I want my money back", "return_refund"),
    ("please cancel the order I placed an hour ago", "cancel_order"),
    ("does the Sony soundbar support Dolby Atmos", "product_question"),
    ("which laptop would you suggest for a student on a budget of $700", "product_recommendation"),
    ("my card was charged two times for one order", "payment_problem"),
    ("I can't remember my password and the reset email never came", "account"),
    ("I want to talk to a real person, not a bot", "talk_to_human"),
    ("thank you, that's all I needed, bye", "small_talk"),
    ("what's the weather going to be like in Berlin this weekend", "out_of_scope"),
]
GIBBERISH = ["asdf qwer zxcv", "jkdfh sdkjfh qwoeiu", "zzzz xxqq"]
# A few steps are enough to get a checkpoint that loads and answers; what it learns is not under test here.
TINY_CONFIG = TrainConfig(epochs=1, max_steps=6, batch_size=32, learning_rate=3e-3, max_length=32)


def _shopper_message(text: str, intent: str, corrected: str) -> Message:
    conversation = Conversation.objects.create(visitor_id="v-test")
    return Message.objects.create(conversation=conversation, sender=Message.Sender.SHOPPER, text=text, intent=intent,
                                  corrected_intent=corrected)


# --- the labelled set -------------------------------------------------------------------------------------------

def test_labelled_set_is_well_formed():
    texts, labels = intents.labelled_set()
    assert len(texts) == len(labels) >= 1000
    counts = Counter(labels)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 50, counts
    keys = [intents.normalise_text(text) for text in texts]
    assert len(keys) == len(set(keys)), [k for k, n in Counter(keys).items() if n > 1]
    assert all(text == text.strip() and "{" not in text for text in texts)  # no unfilled template slots
    # Prompt-injection phrasings are labelled by what they ask for on the surface.
    injected = [label for text, label in zip(texts, labels, strict=True) if "ignore previous instructions" in text]
    assert injected and set(injected) <= set(INTENTS)


def test_split_is_stratified_deterministic_and_disjoint():
    (train, train_labels), (held, held_labels) = intents.split_labelled_set()
    again = intents.split_labelled_set()
    assert again == ((train, train_labels), (held, held_labels))
    assert not {intents.normalise_text(t) for t in train} & {intents.normalise_text(t) for t in held}
    total = Counter(train_labels) + Counter(held_labels)
    for intent in INTENTS:
        assert Counter(held_labels)[intent] == round(total[intent] * intents.HELD_OUT)
    assert intents.split_labelled_set(seed=14)[1][0] != held  # the seed decides the split


# --- the embedding fallback (real MiniLM) -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_fallback(django_db_blocker):
    if packaged.embedder_path() is None:
        pytest.skip("the packaged MiniLM is not installed")
    intents.reset_fallback()
    registry.unload("embedder")
    with django_db_blocker.unblock():  # the registry asks the version table whether an embedder was fine-tuned
        classifier = intents.fallback_classifier()
    yield classifier
    intents.reset_fallback()


@pytest.mark.slow
@pytest.mark.django_db
def test_fallback_gets_clear_phrasings_right_and_is_unsure_of_gibberish(minilm_fallback):
    results = [(text, expected, intents.classify_intent(text)) for text, expected in CLEAR]
    for text, expected, result in results:
        assert result.source == intents.SOURCE_FALLBACK
        assert result.intent == expected, (text, result)
    # Calibrated on the labelled set, the fallback may still doubt a clear phrasing now and then; rarely.
    assert sum(intents.is_confident(result) for _, _, result in results) >= len(CLEAR) - 1, results
    for text in GIBBERISH:
        result = intents.classify_intent(text)
        assert not intents.is_confident(result), (text, result)
    assert intents.classify_intent("   ") == IntentResult("out_of_scope", 0.0, intents.SOURCE_FALLBACK)


@pytest.mark.slow
def test_fallback_on_the_held_out_split_is_accurate_and_its_confidence_means_something(minilm_fallback):
    _, (texts, labels) = intents.split_labelled_set()
    predictions = minilm_fallback.predict(texts)
    right = [p[0] == label for p, label in zip(predictions, labels, strict=True)]
    assert sum(right) / len(right) >= 0.8
    confident = [r for r, p in zip(right, predictions, strict=True) if p[1] >= intents.intent_threshold()]
    unsure = [r for r, p in zip(right, predictions, strict=True) if p[1] < intents.intent_threshold()]
    # Calibrated: acting only above the threshold is right more often than acting below it.
    assert confident and unsure and sum(confident) / len(confident) > sum(unsure) / len(unsure)
    assert sum(confident) / len(confident) >= 0.9


def test_threshold_comes_from_settings(settings):
    result = IntentResult("order_status", 0.6, intents.SOURCE_FALLBACK)
    settings.AISLE_INTENT_THRESHOLD = 0.5
    assert intents.is_confident(result)
    settings.AISLE_INTENT_THRESHOLD = 0.7
    assert not intents.is_confident(result)
    assert intents.is_confident(result, threshold=0.6)


# --- mood -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "THIS IS THE WORST SERVICE I HAVE EVER HAD!!!",
    "where the f*** is my order, this is a scam",
    "This is unacceptable. I will file a chargeback and call my lawyer.",
    "i am furious, you people are useless and this is ridiculous",
    "STILL NOTHING?? THIS IS A JOKE!!!",  # VADER alone reads "joke" as positive
])
def test_angry_messages_are_strong_anger(text):
    mood = intents.mood_of(text)
    assert mood.label == intents.ANGRY and mood.score <= intents.STRONG_ANGER_SCORE, mood
    assert intents.is_strong_anger(mood) and mood.cues


@pytest.mark.parametrize("text, label", [
    ("Thanks so much, you've been really helpful!", "positive"),
    ("Hi, could you tell me where my order is?", "neutral"),
    ("Do you have the LG OLED TV with HDMI 2.1 in stock?", "neutral"),  # capitals that are names, not shouting
    ("I'm a bit disappointed that the TV arrived late", "negative"),
    ("THANK YOU SO MUCH!!! BEST SHOP EVER", "positive"),  # loud but happy
    ("WHERE IS MY ORDER", "neutral"),
])
def test_polite_or_mildly_unhappy_messages_are_not_strong_anger(text, label):
    mood = intents.mood_of(text)
    assert mood.label == label, mood
    assert -1.0 <= mood.score <= 1.0 and not intents.is_strong_anger(mood)


def test_anger_cues_lower_the_score_below_vader():
    calm, shouted = intents.mood_of("my order is late"), intents.mood_of("MY ORDER IS LATE!!! RIDICULOUS")
    assert shouted.score < calm.score and {"shouting", "exclamations", "anger words"} <= set(shouted.cues)


# --- training data and fine-tuning ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_agent_corrections_override_labels_in_training_examples():
    (train, train_labels), _ = intents.split_labelled_set()
    original, original_label = train[0], train_labels[0]
    corrected = next(intent for intent in INTENTS if intent != original_label)
    # Same text with other case and spacing: the agent's label replaces the labelled one, no duplicate.
    _shopper_message(f"  {original.upper()} ", original_label, corrected)
    _shopper_message("my parcel is stuck in customs since monday", "small_talk", "order_status")
    _shopper_message("nothing corrected here", "order_status", "")
    _shopper_message("not an intent", "order_status", "made_up_intent")
    bot = _shopper_message("bot text", "", "complaint")
    bot.sender = Message.Sender.BOT
    bot.save()

    texts, labels = intents.training_examples()
    by_text = {intents.normalise_text(t): label for t, label in zip(texts, labels, strict=True)}
    assert len(texts) == len(train) + 1 == len(by_text)
    assert by_text[intents.normalise_text(original)] == corrected
    assert by_text["my parcel is stuck in customs since monday"] == "order_status"
    assert "nothing corrected here" not in by_text and "not an intent" not in by_text and "bot text" not in by_text


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("intent-base") / "bert")


@pytest.fixture
def tiny_models(settings, tmp_path, tiny_base):
    """Fine-tune from the tiny BERT, and let it stand in for MiniLM as the embedder of the fallback."""
    settings.AISLE_MODEL_DIR = str(tmp_path / "models")
    settings.AISLE_FINETUNE_BASE = str(tiny_base)
    registry.configure(paths={**settings.AISLE_MODEL_PATHS, "embedder": str(tiny_base)})
    intents.reset_fallback()
    yield tiny_base
    intents.reset_fallback()
    registry.unload()


@pytest.mark.django_db
def test_the_fallback_embeddings_are_cached_on_disk_and_a_broken_cache_is_rebuilt(tiny_models):
    (texts, labels), _ = intents.split_labelled_set()
    path = intents.fallback_cache_path(texts, labels)
    assert not path.exists()
    built = intents.build_fallback_classifier(texts, labels)
    assert path.exists()
    # The next process reads the file instead of embedding again: whatever the file holds is what it serves.
    marked = built.vectors.copy()
    marked[0] = -marked[0]
    np.savez(path, vectors=marked, noise=built.noise_vectors)
    from_cache = intents.build_fallback_classifier(texts, labels)
    assert np.array_equal(from_cache.vectors, marked) and np.array_equal(from_cache.noise_vectors, built.noise_vectors)
    # Other examples (say, new labelled rows) are another file; a damaged file is ignored and written again.
    assert intents.fallback_cache_path(texts[:-1], labels[:-1]) != path
    path.write_bytes(b"not an npz file")
    rebuilt = intents.build_fallback_classifier(texts, labels)
    assert np.allclose(rebuilt.vectors, built.vectors, atol=1e-6)
    with np.load(path) as cached:
        assert np.allclose(cached["vectors"], built.vectors, atol=1e-6)


@pytest.mark.django_db
def test_a_message_without_words_is_not_understood_whatever_the_model_would_say(tiny_models):
    for text in ["hhhhh", "ggggg ttttt", "asdf qwer zxcv", "jkl; jkl; jkl;", "???", "......", "kjhkjh"]:
        assert not intents.has_words(text), text
        assert intents.classify_intent(text) == IntentResult("out_of_scope", 0.0, intents.SOURCE_FALLBACK)
    # Shop words the embedder's vocabulary lacks come from the labelled set; codes and other scripts count.
    for text in ["refund", "ASK4LJATXT", "where is my order", "ok", "¿dónde está mi pedido?", "thanks!!"]:
        assert intents.has_words(text), text
        assert intents.classify_intent(text).intent in INTENTS


@pytest.mark.django_db
def test_finetuned_version_is_registered_promoted_and_then_answers(tiny_models, django_capture_on_commit_callbacks):
    assert intents.classify_intent("where is my order").source == intents.SOURCE_FALLBACK
    with django_capture_on_commit_callbacks(execute=True):
        version = intents.finetune_intents(progress=False, config=TINY_CONFIG)
    assert version.task == "intent" and version.is_active and version.base_model == str(tiny_models)
    assert version.data_summary["examples"] == len(intents.split_labelled_set()[0][0])
    assert set(version.metrics["labels"]) == set(INTENTS)
    assert versions.active_path("intent") == version.path

    result = intents.classify_intent("where is my order")
    assert result.source == intents.SOURCE_MODEL and result.intent in INTENTS and 0.0 <= result.confidence <= 1.0
    # The model's confidence is scaled by how familiar the message looks to the labelled set (never above it).
    assert result.confidence <= intents.fallback_classifier().predict(["where is my order"])[0][2] + 1e-9


@pytest.mark.django_db
def test_a_broken_active_version_falls_back_to_embeddings(tiny_models, tmp_path, django_capture_on_commit_callbacks,
                                                         caplog):
    version = ModelVersion.objects.create(task="intent", path=str(tmp_path / "gone"), score=0.9)
    with django_capture_on_commit_callbacks(execute=True):
        versions.promote(version)
    result = intents.classify_intent("where is my order")
    assert result.source == intents.SOURCE_FALLBACK and result.intent in INTENTS
    assert "does not exist" in caplog.text


@pytest.mark.django_db
def test_train_intents_command_reports_held_out_figures(tiny_models, capsys):
    call_command("train_intents", "--epochs", "1", "--max-length", "32", "--max-steps", "4", "--quiet")
    out = capsys.readouterr().out
    assert "held-out accuracy" in out and "macro-F1" in out and "promoted (active)" in out
    version = ModelVersion.objects.get(task="intent")
    assert version.is_active and version.metrics["config"]["max_length"] == 32 and version.metrics["steps"] == 4


@pytest.mark.django_db
def test_celery_task_wraps_the_service(tiny_models):
    celery_app.loader.import_default_modules()  # what a worker does at start-up: the beat entry must resolve
    assert celery_app.conf.beat_schedule["support-finetune-intents"]["task"] in celery_app.tasks
    from support.tasks import finetune_intents

    summary = finetune_intents.delay({"epochs": 1, "max_steps": 3}).get()
    version = ModelVersion.objects.get(pk=summary["version"])
    assert summary["active"] and version.is_active and version.metrics["steps"] == 3
    # The project's training settings stay unless overridden.
    assert version.metrics["config"]["max_length"] == intents.MAX_LENGTH


@pytest.mark.slow
@pytest.mark.django_db
def test_finetuning_the_real_minilm_on_a_small_subset(settings, tmp_path, django_capture_on_commit_callbacks):
    if packaged.embedder_path() is None:
        pytest.skip("the packaged MiniLM is not installed")
    settings.AISLE_MODEL_DIR = str(tmp_path / "models")
    settings.AISLE_FINETUNE_BASE = ""  # -> the packaged MiniLM
    registry.unload()
    texts, labels = intents.training_examples()
    subset: dict[str, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        if len(subset.setdefault(label, [])) < 12:
            subset[label].append(text)
    sub_texts = [text for label in INTENTS for text in subset[label]]
    sub_labels = [label for label in INTENTS for _ in subset[label]]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            version = versions.finetune_classifier(
                "intent", sub_texts, sub_labels, progress=False,
                config=TrainConfig(epochs=1, batch_size=16, learning_rate=1e-4, max_length=32))
        assert version.is_active and version.base_model == str(packaged.embedder_path())
        assert (Path(version.path) / "model.safetensors").exists()
        result = intents.classify_intent("where is my order AS4K7M2QXP")
        assert result.source == intents.SOURCE_MODEL and result.intent in INTENTS
        assert registry.get("intent").path == Path(version.path)
    finally:
        intents.reset_fallback()
        registry.unload()

