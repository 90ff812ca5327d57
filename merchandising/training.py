"""Fine-tuning the generator on product copy (issue #18): the training pairs, the promotion gate and the
weekly retrain. ml trains the LoRA adapter (ml.lora, via ml.versions.finetune_generator) from plain chat
messages; what the pairs are and what makes a candidate better is product copy's business, so it is here.

A pair is (facts -> copy): the prompt is writing.build_messages, the very prompt serving sends, and the copy
is the text to learn. Sources:
1. Drafts merchandisers accepted or edited (and did not reject): the text as it stands, with the facts the
   draft was written from. Skipped, each with its reason: no stored facts, facts unfit for copy
   (facts.skip_reason), empty text, an unedited template draft (it would teach the model the template),
   text that fails today's fact check, a duplicate.
2. Grounded examples: the served generator drafts catalogue products (greedy, then one sampled retry), and
   a draft is kept only if it passes the fact check and is not a near copy of the template draft. So each
   passes, by construction, the check the gate measures, in the model's own words; none is of a product
   the gate holds out.
3. A data file (`manage.py finetune generator --data pairs.jsonl`): one JSON object a line,
   {"facts": {"title", "brand", "category", "features": [...], ...}, "copy": "...", "kind": "description",
   "tone": "neutral", "length": "short"} (kind, tone and length optional, as shown). Its rows are checked
   like the drafts; bad ones are skipped with the line number and the reason.

The gate: products are split into training and held-out ones (never both). On the held-out products the
candidate (base + adapter, loaded as it would be served) and the generator served now each draft the same
copy; the candidate is promoted only if its fact-check pass rate is higher AND its drafts are not copies of
the template (mean rapidfuzz ratio to the template draft at most conf.tune_max_template_similarity).
Both numbers, with distinct-2 of each side and of the template, are kept in the version's metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Exists, OuterRef

from ml import versions
from ml.models import ModelVersion
from shop import services as shop

from . import conf
from .factcheck import fact_check
from .facts import CopyFacts, gather_facts, skip_reason
from .models import ProductCopyDraft, ProductCopyDraftEvent
from .writing import CopyGenerationError, build_messages, template_copy, write_copy

log = logging.getLogger(__name__)
Draft = ProductCopyDraft
Kind, Tone, LengthChoice, Status, Engine = (Draft.Kind, Draft.Tone, Draft.Length, Draft.Status, Draft.Engine)
GENERATOR = "generator"


@dataclass(frozen=True)
class CopyPair:
    facts: CopyFacts
    copy: str
    kind: str = Kind.DESCRIPTION
    tone: str = Tone.NEUTRAL
    length: str = LengthChoice.SHORT
    source: str = "file"  # accepted, edited, grounded, file
    product_id: int | None = None

    @property
    def product_key(self) -> str:
        """What makes two pairs the same product (a held-out product must not be trained on)."""
        return f"id:{self.product_id}" if self.product_id else f"title:{self.facts.title.strip().lower()}"

    def example(self):
        from ml.lora import Example

        return Example(messages=build_messages(self.facts, self.kind, self.tone, self.length), target=self.copy)

    def as_row(self) -> dict:
        return {"facts": self.facts.as_dict(), "copy": self.copy, "kind": self.kind, "tone": self.tone,
                "length": self.length, "source": self.source, "product_id": self.product_id}


# --- measures ------------------------------------------------------------------------------------------


def distinct_n(texts: list[str], n: int = 2) -> float | None:
    """Unique word n-grams / all word n-grams over a set of drafts (low: the same phrases again and again)."""
    grams = [tuple(words[i:i + n]) for text in texts for words in [text.lower().split()]
             for i in range(len(words) - n + 1)]
    return round(len(set(grams)) / len(grams), 3) if grams else None


def template_similarity(texts: list[str], templates: list[str]) -> float | None:
    """Mean rapidfuzz ratio (0-100) of each draft to the template draft of the same product."""
    from rapidfuzz import fuzz

    scores = [fuzz.ratio(text, template) for text, template in zip(texts, templates, strict=True) if text]
    return round(sum(scores) / len(scores), 1) if scores else None


def pair_problem(pair: CopyPair, *, check_facts: bool = True) -> str:
    """Why a pair must not be trained on ("" when it may)."""
    for value, choices, name in ((pair.kind, Kind, "kind"), (pair.tone, Tone, "tone"),
                                 (pair.length, LengthChoice, "length")):
        if value not in choices.values:
            return f"unknown {name} {value!r}"
    reason = skip_reason(pair.facts)
    if reason:
        return reason.removeprefix("Skipped: ")
    if len(pair.copy.split()) < 3:
        return "the copy is empty or shorter than three words"
    if check_facts:
        flags = fact_check(pair.copy, pair.facts)
        if flags:
            return f"the copy fails the fact check ({flags[0]['text'][:60]!r}: {flags[0]['reason']})"
    return ""


# --- sources -------------------------------------------------------------------------------------------


def draft_pairs(since=None) -> tuple[list[CopyPair], list[str]]:
    """Pairs from drafts merchandisers accepted, or edited without rejecting, (since a time: decided or
    edited after it); and the reasons the others were skipped."""
    edited = ProductCopyDraftEvent.objects.filter(draft=OuterRef("pk"), action=ProductCopyDraftEvent.Action.EDITED)
    if since is not None:
        edited = edited.filter(created_at__gt=since)
    drafts = Draft.objects.annotate(was_edited=Exists(edited)).order_by("pk")
    accepted = drafts.filter(status=Status.ACCEPTED)
    if since is not None:
        accepted = accepted.filter(decided_at__gt=since)
    open_edited = drafts.filter(was_edited=True, status__in=[Status.READY, Status.NEEDS_REVIEW])
    pairs, skipped, seen = [], [], set()
    for draft in (accepted | open_edited).distinct().order_by("pk"):
        label = f"draft {draft.pk}"
        if not draft.facts:
            skipped.append(f"{label}: no stored facts")
            continue
        if draft.engine == Engine.TEMPLATE and draft.text.strip() == draft.generated_text.strip():
            skipped.append(f"{label}: an unedited template draft (it would teach the template)")
            continue
        pair = CopyPair(CopyFacts.from_dict(draft.facts), draft.text.strip(), draft.kind, draft.tone, draft.length,
                        source="accepted" if draft.status == Status.ACCEPTED else "edited",
                        product_id=draft.product_id)
        problem = pair_problem(pair)
        if not problem and (pair.product_key, pair.kind, pair.copy) in seen:
            problem = "a duplicate of another draft"
        if problem:
            skipped.append(f"{label}: {problem}")
            continue
        seen.add((pair.product_key, pair.kind, pair.copy))
        pairs.append(pair)
    return pairs, skipped


def grounded_pairs(limit: int, *, exclude: set[str] = frozenset(), kind: str = Kind.DESCRIPTION,
                   tone: str = Tone.NEUTRAL, length: str = LengthChoice.SHORT, timeout: float | None = None,
                   seed: int = 0) -> tuple[list[CopyPair], Counter]:
    """Up to `limit` grounded examples: drafts the served generator writes for catalogue products (greedy,
    then one sampled retry) kept only when they pass the fact check and are no near copy of the template.
    Products are taken spread over the catalogue; those in `exclude` (product keys) are left out."""
    products = list(shop.active_products().select_related("category").order_by("pk"))
    random.Random(seed).shuffle(products)
    max_similarity = conf.tune_max_template_similarity()
    pairs: list[CopyPair] = []
    outcome: Counter = Counter()
    for product in products:
        if len(pairs) >= limit:
            break
        facts = gather_facts(product)
        if f"id:{product.pk}" in exclude or skip_reason(facts):
            continue
        template = template_copy(facts, kind, tone, length)
        for attempt, temperature in enumerate((0.0, 0.7)):
            try:
                text = write_copy(facts, kind, tone, length, timeout=timeout, temperature=temperature,
                                  seed=seed + attempt).text
            except CopyGenerationError:
                outcome["no usable draft"] += 1
                continue
            if fact_check(text, facts):
                outcome["failed the fact check"] += 1
                continue
            if template_similarity([text], [template]) > max_similarity:
                outcome["a copy of the template"] += 1
                continue
            outcome["kept"] += 1
            pairs.append(CopyPair(facts, text, kind, tone, length, source="grounded", product_id=product.pk))
            break
    return pairs, outcome


def read_pairs_file(path: str | Path) -> tuple[list[CopyPair], list[str]]:
    """Pairs from a JSON-lines file (see the module's docstring), and the skipped lines with their reasons."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such data file: {path}")
    pairs, skipped = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            skipped.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("facts"), dict) or not isinstance(row.get("copy"),
                                                                                                   str):
            skipped.append(f"line {number}: needs an object with `facts` (an object) and `copy` (a string)")
            continue
        try:
            pair = CopyPair(CopyFacts.from_dict(row["facts"]), row["copy"].strip(),
                            row.get("kind") or Kind.DESCRIPTION, row.get("tone") or Tone.NEUTRAL,
                            row.get("length") or LengthChoice.SHORT, source=str(row.get("source") or "file"),
                            product_id=int(row["product_id"]) if row.get("product_id") else None)
        except (TypeError, ValueError, AttributeError) as exc:
            skipped.append(f"line {number}: unreadable facts ({exc})")
            continue
        problem = pair_problem(pair)
        if problem:
            skipped.append(f"line {number}: {problem}")
            continue
        pairs.append(pair)
    if not pairs:
        raise ValueError(f"{path} has no usable pairs of JSON lines {{\"facts\": {{...}}, \"copy\": \"...\"}}"
                         + (f" (skipped: {'; '.join(skipped[:3])})" if skipped else ""))
    return pairs, skipped


def write_pairs_file(pairs: list[CopyPair], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(pair.as_row(), ensure_ascii=False) + "\n" for pair in pairs),
                    encoding="utf-8")
    return path


def build_training_pairs(*, grounded: int = 0, timeout: float | None = None) -> tuple[list[CopyPair], dict]:
    """The shop's pairs: accepted and edited drafts, plus up to `grounded` grounded examples."""
    pairs, skipped = draft_pairs()
    extra, outcome = grounded_pairs(grounded, exclude={p.product_key for p in pairs}, timeout=timeout) \
        if grounded else ([], Counter())
    summary = {"drafts": len(pairs), "skipped_drafts": len(skipped), "skipped": skipped[:20],
               "grounded": len(extra), "grounded_outcome": dict(outcome)}
    return pairs + extra, summary


# --- the gate --------------------------------------------------------------------------------------------


def split_held_out(pairs: list[CopyPair], *, seed: int = 42) -> tuple[list[CopyPair], list[CopyPair]]:
    """(training pairs, held-out pairs): whole products held out, a seeded share of them, at most
    conf.tune_held_out_products(); a product is never on both sides."""
    keys = sorted({pair.product_key for pair in pairs})
    if len(keys) < 2:
        raise ValueError(f"pairs of at least 2 products are needed (one to train on, one held out); got {len(keys)}")
    random.Random(seed).shuffle(keys)
    n = min(conf.tune_held_out_products(), len(keys) - 1, max(1, round(len(keys) * conf.tune_held_out_fraction())))
    held = set(keys[:n])
    held_out = [pair for pair in pairs if pair.product_key in held]
    # One pair per held-out product and kind: the gate drafts each once per model.
    unique = {(pair.product_key, pair.kind): pair for pair in held_out}
    return [pair for pair in pairs if pair.product_key not in held], list(unique.values())


def eval_set_fingerprint(held_out: list[CopyPair]) -> str:
    payload = json.dumps(sorted([pair.product_key, pair.kind, pair.tone, pair.length] for pair in held_out))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _measure(held_out: list[CopyPair], texts: list[str]) -> dict:
    """A model's drafts of the held-out products ("" where it wrote nothing usable): pass rate (a failure
    counts as not passing), distinct-2 and the mean similarity to the template."""
    templates = [template_copy(p.facts, p.kind, p.tone, p.length) for p in held_out]
    passed = [bool(text) and not fact_check(text, pair.facts) for pair, text in zip(held_out, texts, strict=True)]
    written = [text for text in texts if text]
    return {"pass_rate": round(sum(passed) / len(held_out), 3) if held_out else None,
            "passed": sum(passed), "failed": len(texts) - len(written), "distinct_2": distinct_n(written),
            "template_similarity": template_similarity(texts, templates)}


def compare(held_out: list[CopyPair], candidate_texts: list[str], served_texts: list[str], *,
            served: str = "the served generator"):
    """The gate's decision from both models' drafts of the same held-out products."""
    candidate, current = _measure(held_out, candidate_texts), _measure(held_out, served_texts)
    templates = [template_copy(p.facts, p.kind, p.tone, p.length) for p in held_out]
    limit = conf.tune_max_template_similarity()
    metrics = {"products": len(held_out), "candidate": candidate, "served": {**current, "model": served},
               "template": {"distinct_2": distinct_n(templates), "pass_rate": 1.0},
               "max_template_similarity": limit, "metric": "fact-check pass rate"}
    similarity = candidate["template_similarity"]
    if similarity is None:
        promote, note = False, "Not promoted: it wrote no usable draft of the held-out products."
    elif similarity > limit:
        promote, note = False, (f"Not promoted: a copy of the template (mean similarity {similarity:.1f} > "
                                f"{limit:.0f} to the template draft on {len(held_out)} held-out products).")
    elif candidate["pass_rate"] <= current["pass_rate"]:
        promote, note = False, (f"Not promoted: its fact-check pass rate ({candidate['pass_rate']:.0%}) is not "
                                f"higher than that of {served} ({current['pass_rate']:.0%}) on the same "
                                f"{len(held_out)} held-out products.")
    else:
        promote, note = True, (f"Beat {served}: fact-check pass rate {candidate['pass_rate']:.0%} against "
                               f"{current['pass_rate']:.0%} on the same {len(held_out)} held-out products; "
                               f"template similarity {similarity:.1f} <= {limit:.0f}, distinct-2 "
                               f"{candidate['distinct_2']}.")
    return versions.GateDecision(promote=promote, note=note, score=candidate["pass_rate"],
                                 active_score=current["pass_rate"], eval_set=eval_set_fingerprint(held_out),
                                 metrics=metrics)


def draft_texts(held_out: list[CopyPair], loaded=None, timeout: float | None = None) -> list[str]:
    """One draft per held-out pair, written as serving writes it ("" where the model wrote nothing usable)."""
    texts = []
    for pair in held_out:
        try:
            texts.append(write_copy(pair.facts, pair.kind, pair.tone, pair.length, loaded=loaded,
                                    timeout=timeout).text)
        except CopyGenerationError as exc:
            log.info("Gate: no draft of %r: %s", pair.facts.title[:60], exc)
            texts.append("")
    return texts


def gate(candidate_path: str | Path, held_out: list[CopyPair], *, timeout: float | None = None):
    """Draft the held-out products with the candidate (loaded as it would be served) and with the generator
    served now, and decide (compare)."""
    from ml.registry import registry

    candidate = registry.load_path(GENERATOR, candidate_path, source="candidate")
    candidate_texts = draft_texts(held_out, loaded=candidate, timeout=timeout)
    del candidate
    served_texts = draft_texts(held_out, timeout=timeout)
    try:
        loaded = registry.get(GENERATOR)
        which = f"v{versions.active_version(GENERATOR).pk}" if loaded.source == "active version" \
            else f"{loaded.source}: {loaded.path.name}"
        served = f"the served generator ({which})"
    except Exception:  # noqa: BLE001 - a remote generator: named by its URL in the drafts
        served = "the served generator"
    return compare(held_out, candidate_texts, served_texts, served=served)


# --- training -------------------------------------------------------------------------------------------


def finetune_pairs(pairs: list[CopyPair], *, config=None, data_summary: dict | None = None,
                   progress: bool = True, timeout: float | None = None) -> ModelVersion:
    """Split off held-out products, train the adapter on the rest (ml), gate it on the held-out ones."""
    train, held_out = split_held_out(pairs)
    summary = {"pairs": len(pairs), "train_pairs": len(train), "held_out_products": len(held_out),
               "sources": dict(Counter(pair.source for pair in pairs)), **(data_summary or {})}
    return versions.finetune_generator(
        [pair.example() for pair in train], eval_examples=[pair.example() for pair in held_out],
        gate=lambda path: gate(path, held_out, timeout=timeout), config=config, data_summary=summary,
        primary_metric="fact_check_pass_rate", progress=progress)


def finetune_from_file(data_path: str | Path, config=None, progress: bool = True) -> ModelVersion:
    """ml's `finetune generator --data FILE` (installed in apps.py)."""
    pairs, skipped = read_pairs_file(data_path)
    for reason in skipped:
        log.warning("Skipped %s %s", data_path, reason)
    return finetune_pairs(pairs, config=config, progress=progress,
                          data_summary={"source": str(data_path), "skipped_rows": len(skipped),
                                        "skipped": skipped[:20]})


def retrain_from_drafts(*, job_id: str | None = None, config=None) -> dict:
    """The weekly job: retrain when enough drafts were accepted or edited since the last generator version
    (else skip, with the reason logged), on every such draft plus grounded examples."""
    last = ModelVersion.objects.filter(task=GENERATOR).exclude(status=ModelVersion.Status.FAILED).first()
    since = last.created_at if last else None
    new, _ = draft_pairs(since=since)
    needed = conf.tune_min_new_pairs()
    if len(new) < needed:
        when = f"since v{last.pk}" if last else "so far"
        reason = f"Generator retraining skipped: {len(new)} new accepted or edited drafts {when} (needs {needed})."
        log.info(reason)
        return {"skipped": reason, "new_pairs": len(new)}
    row = versions.start_training_job(GENERATOR, job_id or f"copy-retrain-{uuid.uuid4().hex}",
                                      summary={"job": "merchandising.tasks.retrain_generator"})
    if row is None:
        return {"skipped": "this job already ran; not retrained unasked", "new_pairs": len(new)}
    try:
        pairs, summary = build_training_pairs(grounded=conf.tune_grounded_examples())
        config = config or versions.train_config_for(GENERATOR, conf.tune_config())
        version = finetune_pairs(pairs, config=config, progress=False,
                                 data_summary={**summary, "new_pairs": len(new), "job": "weekly"})
    except BaseException as exc:
        versions.finish_training_job(row, exc)
        raise
    versions.finish_training_job(row)  # leaves the row alone: the version filled it in as ready
    return {"version": version.pk, "active": version.is_active, "new_pairs": len(new), "pairs": len(pairs),
            "note": version.metrics.get("gate", {}).get("note", "")}
