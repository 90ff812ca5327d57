"""Fine-tuning the generator on product copy (issue #18, merchandising/training.py): training pairs from
accepted and edited drafts and from a JSON-lines file (bad rows skipped with reasons), the promotion gate
(fact-check pass rate against the served generator on the same held-out products; no template copies),
`manage.py finetune generator`, the weekly retrain on the `training` queue and its beat entry."""

import json
import logging

import pytest
from django.core.management import call_command
from django.utils import timezone

from merchandising import services as copywriting
from merchandising import training
from merchandising.models import ProductCopyDraft
from merchandising.services import CopyFacts, fact_check, template_copy
from ml import lora, versions
from ml.models import ModelVersion
from ml.registry import registry
from ml.train_config import LoraTrainConfig

from .factories import make_product
from .ml_tiny import make_tiny_generator

Status, Kind = ProductCopyDraft.Status, ProductCopyDraft.Kind
ZENKO = CopyFacts(title="Zenko Studio Headphones", brand="Zenko", category="Audio",
                  features=("Noise cancelling", "Soft ear cushions", "Foldable design"))
ORBIT = CopyFacts(title="Orbit Smart Lamp", brand="Orbit", category="Home",
                  features=("Warm white light", "Voice control", "Dimmable"))
# Copy in other words than the template's, every sentence grounded in the facts.
GOOD = {ZENKO.title: "With noise cancelling and soft ear cushions, the Zenko Studio Headphones are a foldable design.",
        ORBIT.title: "With voice control and warm white light, the Orbit Smart Lamp is dimmable."}
# Invented numbers, claims and another brand.
BAD = {ZENKO.title: "The Zenko Studio Headphones beat Sony with 50 dB of silence.",
       ORBIT.title: "The Orbit Smart Lamp is waterproof and lasts 20 years."}
# The tiny WordPiece tokenizer spells the copy prompt in ~500 tokens (SmolLM2: ~200-250).
SMALL = LoraTrainConfig(max_steps=2, batch_size=2, max_length=700)


def pair(facts: CopyFacts, text: str | None = None, **fields) -> training.CopyPair:
    return training.CopyPair(facts, text or GOOD[facts.title], **fields)


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    return make_tiny_generator(tmp_path_factory.mktemp("copy-lora") / "generator")


@pytest.fixture
def tiny_served(tiny_generator, settings, tmp_path):
    """The tiny generator serves (conftest restores the registry); versions are written under tmp_path."""
    settings.AISLE_MODEL_DIR = str(tmp_path / "models")
    registry.configure(paths={"generator": str(tiny_generator)})
    return tiny_generator


def product_for(facts: CopyFacts):
    return make_product(title=facts.title, brand=facts.brand, features=list(facts.features))


# --- training pairs ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pairs_come_from_accepted_and_edited_drafts_and_the_rest_are_skipped_with_reasons():
    def draft(product, text, *, status=Status.READY, engine="model", facts=True):
        return ProductCopyDraft.objects.create(
            product=product, kind=Kind.DESCRIPTION, tone="neutral", length="short", engine=engine, status=status,
            text=text, generated_text=text, facts=copywriting.gather_facts(product).as_dict() if facts else {})

    zenko, orbit = product_for(ZENKO), product_for(ORBIT)
    accepted = draft(zenko, GOOD[ZENKO.title])
    copywriting.accept_draft(accepted)
    edited = draft(orbit, BAD[ORBIT.title], status=Status.NEEDS_REVIEW)
    copywriting.edit_draft(edited, GOOD[ORBIT.title])  # a merchandiser fixed it: the fix is the example
    rejected = draft(orbit, "With voice control, the Orbit Smart Lamp is dimmable.")
    copywriting.edit_draft(rejected, "The Orbit Smart Lamp is dimmable.")
    copywriting.reject_draft(rejected)
    template = draft(zenko, template_copy(ZENKO, "description", "neutral", "short"), engine="template")
    copywriting.accept_draft(template)
    invented = draft(orbit, BAD[ORBIT.title])
    copywriting.accept_draft(invented)  # accepted with its flags: a person's call, but not a lesson
    no_facts = draft(zenko, GOOD[ZENKO.title], facts=False)
    copywriting.accept_draft(no_facts)

    pairs, skipped = copywriting.draft_pairs()
    assert [(p.product_id, p.copy, p.source) for p in pairs] == [
        (zenko.pk, GOOD[ZENKO.title], "accepted"), (orbit.pk, GOOD[ORBIT.title], "edited")]
    assert skipped == [
        f"draft {template.pk}: an unedited template draft (it would teach the template)",
        f"draft {invented.pk}: the copy fails the fact check ('20 years': year value not in the facts)",
        f"draft {no_facts.pk}: no stored facts",
    ]
    # The prompt of a pair is the one serving sends.
    assert pairs[0].example().messages == copywriting.build_messages(pairs[0].facts, "description", "neutral",
                                                                      "short")
    # Since the acceptance, only the later edit is new; since now, nothing.
    since = ProductCopyDraft.objects.get(pk=accepted.pk).decided_at
    assert [p.source for p in copywriting.draft_pairs(since=since)[0]] == ["edited"]
    assert copywriting.draft_pairs(since=timezone.now())[0] == []


@pytest.mark.django_db
def test_a_pairs_file_is_read_and_bad_lines_are_skipped_with_their_line_and_reason(tmp_path):
    good = {"facts": ZENKO.as_dict(), "copy": GOOD[ZENKO.title]}
    lines = [json.dumps(good), "{not json", json.dumps({"facts": ZENKO.as_dict()}),
             json.dumps({"facts": {"title": "Acme Speaker", "brand": "Acme"}, "copy": "Acme makes a speaker here."}),
             json.dumps({"facts": {**ZENKO.as_dict(), "features": ["<b>Loud</b>"]}, "copy": GOOD[ZENKO.title]}),
             json.dumps({"facts": ORBIT.as_dict(), "copy": BAD[ORBIT.title]}),
             json.dumps({**good, "kind": "sonnet"}), "",
             json.dumps({"facts": ORBIT.as_dict(), "copy": GOOD[ORBIT.title], "tone": "friendly"})]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines))
    pairs, skipped = copywriting.read_pairs_file(path)
    assert [(p.facts.title, p.tone) for p in pairs] == [(ZENKO.title, "neutral"), (ORBIT.title, "friendly")]
    assert skipped[0].startswith("line 2: not JSON")
    assert skipped[1] == "line 3: needs an object with `facts` (an object) and `copy` (a string)"
    assert skipped[2] == "line 4: the product has no facts beyond its title and category (no bullets)."
    assert skipped[3].startswith("line 5: markup in the product's facts")
    assert skipped[4].startswith("line 6: the copy fails the fact check")
    assert skipped[5] == "line 7: unknown kind 'sonnet'"
    # Written back as it was read.
    assert copywriting.read_pairs_file(copywriting.write_pairs_file(pairs, tmp_path / "again.jsonl"))[0] == pairs

    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="no usable pairs"):
        copywriting.read_pairs_file(path)


# --- the gate ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_gate_refuses_a_template_copy_and_a_lower_pass_rate_and_promotes_a_better_one(
        tiny_served, django_capture_on_commit_callbacks):
    held_out = [pair(ZENKO), pair(ORBIT)]
    good = [GOOD[p.facts.title] for p in held_out]
    bad = [BAD[p.facts.title] for p in held_out]
    templates = [template_copy(p.facts, p.kind, p.tone, p.length) for p in held_out]
    assert all(not fact_check(t, p.facts) for t, p in zip(good + templates, held_out * 2, strict=True))
    assert all(fact_check(t, p.facts) for t, p in zip(bad, held_out, strict=True))

    copied = training.compare(held_out, templates, bad)  # passes everything, but it is the template
    assert not copied.promote and "a copy of the template (mean similarity 100.0 > 80" in copied.note
    assert copied.metrics["candidate"]["pass_rate"] == 1.0 and copied.metrics["served"]["pass_rate"] == 0.0

    worse = training.compare(held_out, bad, good)
    assert not worse.promote and "pass rate (0%) is not higher than that of the served generator (100%)" in worse.note
    assert not training.compare(held_out, good, good).promote  # equal is not better

    better = training.compare(held_out, good, bad)
    assert better.promote and (better.score, better.active_score) == (1.0, 0.0)
    candidate = better.metrics["candidate"]
    assert candidate["template_similarity"] <= 80 and candidate["distinct_2"] > 0.9
    assert better.metrics["template"]["distinct_2"] and better.metrics["products"] == 2
    assert better.eval_set == training.eval_set_fingerprint(held_out) == copied.eval_set

    # Through ml's versions: the better candidate is recorded with the gate's numbers, promoted, and served.
    examples = [pair(ZENKO).example(), pair(ORBIT).example()]
    with django_capture_on_commit_callbacks(execute=True):
        version = versions.finetune_generator(examples, gate=lambda path: better, config=SMALL, progress=False)
    assert version.is_active and version.score == 1.0 and version.active_score_on_same_set == 0.0
    assert version.metrics["gate"]["candidate"]["template_similarity"] == candidate["template_similarity"]
    served = registry.get("generator")
    assert served.source == "active version" and str(served.path) == version.path and lora.is_adapter(served.path)
    with django_capture_on_commit_callbacks(execute=True):
        refused = versions.finetune_generator(examples, gate=lambda path: copied, config=SMALL, progress=False)
    assert not refused.is_active and "a copy of the template" in refused.notes
    assert ModelVersion.objects.get(is_active=True, task="generator") == version


# --- the command, the weekly job and its beat entry --------------------------------------------------------


@pytest.mark.django_db
def test_finetune_generator_command_trains_an_adapter_and_gates_it_on_held_out_products(tiny_served, tmp_path,
                                                                                        capsys):
    path = copywriting.write_pairs_file([pair(ZENKO), pair(ORBIT)], tmp_path / "pairs.jsonl")
    with path.open("a") as handle:
        handle.write("{broken\n")
    call_command("finetune", "generator", "--data", str(path), "--max-steps", "2", "--max-length", "700")
    out = capsys.readouterr().out
    version = ModelVersion.objects.get(task="generator")
    assert f"generator v{version.pk}: LoRA adapter trained on 1 pairs" in out
    assert lora.is_adapter(version.path) and version.base_model == str(tiny_served)
    assert version.data_summary["skipped"] == ["line 3: not JSON (Expecting property name enclosed in double quotes)"]
    gate = version.metrics["gate"]
    # The random tiny model writes nothing the fact check passes, tuned or not: not better, not promoted.
    assert gate["products"] == 1 and gate["candidate"]["pass_rate"] == gate["served"]["pass_rate"] == 0.0
    assert not version.is_active
    assert "not higher than that of the served generator (settings: generator)" in gate["note"]
    assert version.primary_metric == "fact_check_pass_rate" and version.score == 0.0

    with pytest.raises(Exception, match="Cannot fine-tune 'generator' from .*No such data file"):
        call_command("finetune", "generator", "--data", str(tmp_path / "pairs.jsonl.missing"))


@pytest.mark.django_db
def test_the_weekly_retrain_skips_with_a_logged_reason_then_trains_from_new_drafts(tiny_served, settings, caplog):
    from merchandising.tasks import retrain_generator

    settings.AISLE_COPY_TUNE_MIN_NEW_PAIRS, settings.AISLE_COPY_TUNE_GROUNDED = 2, 0
    settings.AISLE_COPY_TUNE_CONFIG = {"max_steps": 2, "max_length": 700}
    zenko = product_for(ZENKO)
    draft = ProductCopyDraft.objects.create(product=zenko, kind=Kind.DESCRIPTION, length="short",
                                            text=GOOD[ZENKO.title], status=Status.READY, facts=ZENKO.as_dict())
    copywriting.accept_draft(draft)
    with caplog.at_level(logging.INFO, logger="merchandising"):
        result = retrain_generator.delay().get()
    assert result == {"skipped": "Generator retraining skipped: 1 new accepted or edited drafts so far (needs 2).",
                      "new_pairs": 1}
    assert result["skipped"] in caplog.text and not ModelVersion.objects.exists()

    orbit = product_for(ORBIT)
    draft = ProductCopyDraft.objects.create(product=orbit, kind=Kind.DESCRIPTION, length="short",
                                            text=GOOD[ORBIT.title], status=Status.READY, facts=ORBIT.as_dict())
    copywriting.accept_draft(draft)
    result = retrain_generator.delay().get()
    version = ModelVersion.objects.get(task="generator")
    assert result["version"] == version.pk and result["new_pairs"] == result["pairs"] == 2
    assert version.status == ModelVersion.Status.READY and version.job_id  # the job's row, filled in
    assert version.data_summary["sources"] == {"accepted": 2} and version.data_summary["held_out_products"] == 1
    assert "gate" in version.metrics and lora.is_adapter(version.path)
    # Nothing new since this version: the next week skips.
    assert "0 new accepted or edited drafts since v" in retrain_generator.delay().get()["skipped"]


def test_the_weekly_retrain_is_a_registered_task_on_the_training_queue():
    from config.celery import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["merchandising-retrain-generator"]
    assert entry["task"] in app.tasks and entry["options"]["queue"] == "training"
    assert app.tasks[entry["task"]].queue == "training"
    assert versions.pipeline_for("generator") is not None  # `finetune generator` reaches merchandising's
