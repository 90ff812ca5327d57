"""Business logic of the sentiment app, callable from tasks, commands, views, the shell and tests.

Reviews are read through shop.services only. Scoring writes one ReviewSentiment per approved
review (plus its aspect mentions) and refreshes the product's summary in the same transaction;
the batch job is resumable and safe to run in several workers at once (see score_pending).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, F, Q
from django.utils import timezone

from ml import versions as ml_versions
from ml.models import ModelVersion
from ml.train_config import TrainConfig
from shop import services as shop

from . import scoring
from .conf import alert_emails, conf
from .models import (
    AspectMention,
    CategoryAspect,
    Label,
    ProductSentiment,
    ReviewSentiment,
    ScoringRun,
    SentimentAlert,
    TrainingRun,
)

log = logging.getLogger(__name__)
TASK = "sentiment"
STALE_RUN_AFTER = dt.timedelta(minutes=15)


# --- the serving model ---------------------------------------------------------------------------


def version_of(loaded) -> str:
    """The version tag stored with each score: "ml:sentiment:v<pk>" for a registered version."""
    if loaded.source == "active version":
        pk = ModelVersion.objects.filter(task=TASK, path=str(loaded.path)).values_list("pk", flat=True).first()
        if pk:
            return f"ml:{TASK}:v{pk}"
    return f"ml:{TASK}:{loaded.source.replace(' ', '-')}:{loaded.path.name}"


def serving_engine() -> scoring.Engine:
    """The fine-tuned classifier if one loads, else VADER (logged; never an error)."""
    try:
        return scoring.Engine.from_registry(version_of, task=TASK, max_length=conf("MAX_LENGTH"))
    except Exception:  # noqa: BLE001 - e.g. the version table unreachable: still score, with the baseline
        log.exception("Could not prepare the sentiment model; scoring with %s", scoring.VADER_VERSION)
        return scoring.Engine.vader()


def text_hash(title: str, text: str) -> str:
    return hashlib.sha1(scoring.review_text(title, text).encode()).hexdigest()[:32]


# --- aspect vocabularies -------------------------------------------------------------------------


def vocabularies() -> dict[int, scoring.AspectVocabulary]:
    """category id -> its aspect vocabulary (categories never discovered use the shop-wide default)."""
    aspects: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for category_id, name, terms in CategoryAspect.objects.values_list("category_id", "name", "terms"):
        aspects[category_id][name] = terms
    return {category_id: scoring.AspectVocabulary(names) for category_id, names in aspects.items()}


def vocabulary_for(category_id: int, known: dict[int, scoring.AspectVocabulary] | None = None
                   ) -> scoring.AspectVocabulary:
    if known is None:
        rows = CategoryAspect.objects.filter(category_id=category_id).values_list("name", "terms")
        return scoring.AspectVocabulary(dict(rows)) if rows else scoring.AspectVocabulary.default()
    return known.get(category_id) or scoring.AspectVocabulary.default()


@dataclass
class DiscoveryReport:
    categories: int = 0
    discovered: dict[str, list[str]] = field(default_factory=dict)  # category name -> aspect names
    changed: list[int] = field(default_factory=list)  # category ids whose vocabulary changed
    marked_for_rescore: int = 0


def _flatten(tree: list) -> list:
    out, stack = [], list(reversed(tree))
    while stack:
        category = stack.pop()
        out.append(category)
        stack.extend(reversed(getattr(category, "subcategories", [])))
    return out


def discover_category_aspects(now: dt.datetime | None = None) -> DiscoveryReport:
    """Re-discover every category's aspects from the approved reviews, and mark for re-scoring
    the reviews of categories whose vocabulary changed (their mentions are re-extracted)."""
    now = now or timezone.now()
    categories = _flatten(shop.category_tree())
    by_id = {category.pk: category for category in categories}
    children: dict[int | None, list[int]] = defaultdict(list)
    for category in categories:
        children[category.parent_id].append(category.pk)

    rows = list(shop.reviews_for_scoring().order_by("-created_at").values_list(
        "title", "text", "product__category_id", "product__brand", "product__title")[:conf("DISCOVERY_MAX_REVIEWS")])
    texts_by_category: dict[int, list[str]] = defaultdict(list)
    brands: dict[int, set[str]] = defaultdict(set)
    titles: dict[int, set[str]] = defaultdict(set)
    for title, text, category_id, brand, product_title in rows:
        texts_by_category[category_id].append(scoring.review_text(title, text))
        brands[category_id].add(brand or "")
        titles[category_id].add(product_title or "")
    background = scoring.document_frequencies(scoring.review_text(t, x) for t, x, *_ in rows)

    def subtree(category_id: int) -> list[int]:
        ids, frontier = [category_id], [category_id]
        while frontier:
            frontier = [child for parent in frontier for child in children.get(parent, [])]
            ids.extend(frontier)
        return ids

    own: dict[int, list[scoring.DiscoveredAspect]] = {}
    for category in categories:
        ids = subtree(category.pk)
        texts = [text for cid in ids for text in texts_by_category.get(cid, [])]
        if len(texts) < conf("DISCOVERY_MIN_REVIEWS"):
            continue
        exclude = _category_words(category, by_id, {b for cid in ids for b in brands.get(cid, ())},
                                  {t for cid in ids for t in titles.get(cid, ())})
        own[category.pk] = scoring.discover_aspects(texts, background, exclude=exclude,
                                                    max_aspects=conf("DISCOVERY_MAX_ASPECTS"))

    new_rows: list[CategoryAspect] = []
    report = DiscoveryReport(categories=len(categories))
    for category in categories:
        source, kind = category, CategoryAspect.Kind.DISCOVERED
        while source is not None and source.pk not in own:  # a small category uses its nearest parent's aspects
            source, kind = by_id.get(source.parent_id), CategoryAspect.Kind.INHERITED
        if source is None:
            found = [scoring.DiscoveredAspect(name, list(terms), 0, 1.0, "general")
                     for name, terms in scoring.GENERAL_ASPECTS.items()]
        else:
            found = own[source.pk]
        if source is category:
            report.discovered[category.name] = [aspect.name for aspect in found]
        for aspect in found:
            new_rows.append(CategoryAspect(
                category_id=category.pk, name=aspect.name[:80], terms=aspect.terms, support=aspect.support,
                lift=round(aspect.lift, 3), discovered_at=now,
                kind=CategoryAspect.Kind.GENERAL if aspect.kind == "general" else kind))

    old = vocabularies()
    with transaction.atomic():
        CategoryAspect.objects.all().delete()
        CategoryAspect.objects.bulk_create(new_rows)
        new = vocabularies()
        for category_id, vocabulary in new.items():
            previous = old.get(category_id) or scoring.AspectVocabulary.default()
            if previous.signature() != vocabulary.signature():
                report.changed.append(category_id)
                report.marked_for_rescore += ReviewSentiment.objects.filter(
                    product__category_id=category_id).exclude(aspect_set=vocabulary.signature()).update(
                    needs_rescore=True)
    log.info("Discovered aspects for %d categories; %d changed, %d reviews to re-score", len(own),
             len(report.changed), report.marked_for_rescore)
    return report


def _category_words(category, by_id: dict, brands: set[str], titles: set[str]) -> set[str]:
    """Words that name the product rather than an aspect of it: brands, the category's own name,
    and words in most of its product titles ("laptop", "tv")."""
    words = {word for brand in brands for word in scoring.tokens(brand)}
    node = category
    while node is not None:  # the category and its parents...
        words |= set(scoring.tokens(node.name))
        node = by_id.get(node.parent_id)
    stack = list(getattr(category, "subcategories", []))
    while stack:  # ...and the product types below it ("tablet" is not an aspect of Computers)
        node = stack.pop()
        words |= set(scoring.tokens(node.name))
        stack.extend(getattr(node, "subcategories", []))
    if len(titles) >= 2:
        counts = Counter(word for title in titles for word in set(scoring.tokens(title)))
        words |= {word for word, n in counts.items() if n >= 0.3 * len(titles)}
    return words


# --- scoring ---------------------------------------------------------------------------------------

SCORE_FIELDS = ["product_id", "rating", "reviewed_at", "label", "score", "model_version", "aspect_set",
                "needs_rescore", "text_hash", "scored_at", "times_scored"]


def _store(reviews: list, results: list[scoring.Scored], known: dict[int, scoring.AspectVocabulary],
           now: dt.datetime) -> None:
    """Write the scores and mentions of one batch (the caller holds the batch's transaction and locks)."""
    existing = {row.review_id: row for row in ReviewSentiment.objects.filter(review_id__in=[r.pk for r in reviews])}
    created, updated = [], []
    for review, result in zip(reviews, results, strict=True):
        row = existing.get(review.pk)
        if row is None:
            row = ReviewSentiment(review_id=review.pk, times_scored=0)
            created.append(row)
        else:
            updated.append(row)
        row.product_id = review.product_id
        row.rating = review.rating
        row.reviewed_at = review.created_at
        row.label = result.label
        row.score = result.score
        row.model_version = result.model_version
        row.aspect_set = vocabulary_for(review.product.category_id, known).signature()
        row.needs_rescore = False
        row.text_hash = text_hash(review.title, review.text)
        row.scored_at = now
        row.times_scored += 1
    if updated:
        ReviewSentiment.objects.bulk_update(updated, [f for f in SCORE_FIELDS if f != "product_id"] + ["product"])
        AspectMention.objects.filter(sentiment__in=updated).delete()
    ReviewSentiment.objects.bulk_create(created)
    rows = {row.review_id: row for row in created + updated}
    AspectMention.objects.bulk_create([
        AspectMention(sentiment=rows[review.pk], product_id=review.product_id, reviewed_at=review.created_at,
                      aspect=hit.aspect[:80], term=hit.term[:80], sentence=hit.sentence[:600], label=hit.label,
                      score=hit.score)
        for review, result in zip(reviews, results, strict=True) for hit in result.aspects
    ])


def _score_locked(reviews: list, engine: scoring.Engine, known: dict[int, scoring.AspectVocabulary]) -> None:
    items = [(scoring.review_text(r.title, r.text), vocabulary_for(r.product.category_id, known)) for r in reviews]
    _store(reviews, engine.score_many(items), known, timezone.now())
    refresh_product_summaries({review.product_id for review in reviews})


def score_review(review_id: int, *, engine: scoring.Engine | None = None) -> ReviewSentiment | None:
    """Score one review now (on post / approval / edit). Unapproved or deleted: forget its score.

    A no-op when its score is current (same model version, same text, same vocabulary).
    """
    engine = engine or serving_engine()
    with transaction.atomic():
        review = (shop.reviews_for_scoring().filter(pk=review_id)
                  .select_for_update(of=("self",), no_key=True).first())
        if review is None:
            forget_reviews([review_id])
            return None
        current = ReviewSentiment.objects.filter(review_id=review_id).first()
        vocabulary = vocabulary_for(review.product.category_id)
        if (current is not None and current.model_version == engine.version and not current.needs_rescore
                and current.text_hash == text_hash(review.title, review.text)
                and current.aspect_set == vocabulary.signature()):
            return current
        _score_locked([review], engine, {review.product.category_id: vocabulary})
    check_alerts(product_ids=[review.product_id])
    return ReviewSentiment.objects.get(review_id=review_id)


def forget_reviews(review_ids: Iterable[int]) -> int:
    """Drop the scores of reviews that are no longer approved (or no longer exist)."""
    with transaction.atomic():
        rows = ReviewSentiment.objects.filter(review_id__in=list(review_ids))
        product_ids = set(rows.values_list("product_id", flat=True))
        deleted = rows.delete()[1].get(ReviewSentiment._meta.label, 0)
        if product_ids:
            refresh_product_summaries(product_ids)
    return deleted


def prune_unapproved() -> int:
    stale = ReviewSentiment.objects.exclude(review_id__in=shop.reviews_for_scoring().values("pk"))
    return forget_reviews(stale.values_list("review_id", flat=True))


def pending_reviews(version: str):
    """Approved reviews with no score, or scored by another model version, or flagged for re-scoring."""
    current = ReviewSentiment.objects.filter(model_version=version, needs_rescore=False).values("review_id")
    return shop.reviews_for_scoring().exclude(pk__in=current)


def score_pending(*, batch_size: int | None = None, delay: float | None = None, limit: int | None = None,
                  trigger: str = "nightly", engine: scoring.Engine | None = None,
                  progress: Callable[[int], None] | None = None, alerts: bool = True) -> ScoringRun:
    """Score everything unscored or stale, in batches; resumable and safe with several workers.

    Each batch is one transaction: lock up to batch_size pending reviews (SELECT ... FOR NO KEY
    UPDATE SKIP LOCKED on PostgreSQL, so concurrent workers take disjoint batches), re-check under
    the lock that nobody scored them meanwhile, score, write, refresh the products' summaries and
    the run's counters, commit. A worker killed mid-batch loses only that uncommitted batch, which
    the next run selects again; nothing committed is selected again ("no score or another version").
    The cursor (ascending review id) guarantees termination even if the model fails and VADER's
    version is written instead of the run's.
    """
    batch_size = batch_size or conf("BATCH_SIZE")
    delay = conf("BATCH_DELAY") if delay is None else delay
    engine = engine or serving_engine()
    now = timezone.now()
    ScoringRun.objects.filter(status=ScoringRun.Status.RUNNING, heartbeat_at__lt=now - STALE_RUN_AFTER).update(
        status=ScoringRun.Status.INTERRUPTED)
    run = ScoringRun.objects.create(trigger=trigger, model_version=engine.version, batch_size=batch_size)
    known = vocabularies()
    cursor, touched = 0, set()
    try:
        while limit is None or run.scored < limit:
            size = batch_size if limit is None else min(batch_size, limit - run.scored)
            with transaction.atomic():
                reviews = list(pending_reviews(engine.version).filter(pk__gt=cursor).order_by("pk")
                               .select_for_update(of=("self",), skip_locked=True, no_key=True)[:size])
                if not reviews:
                    break
                cursor = reviews[-1].pk
                # Under the lock, with a fresh snapshot: drop any that another worker committed
                # after our selection's snapshot was taken.
                done = set(ReviewSentiment.objects.filter(
                    review_id__in=[r.pk for r in reviews], model_version=engine.version, needs_rescore=False,
                ).values_list("review_id", flat=True))
                reviews = [review for review in reviews if review.pk not in done]
                fallbacks_before = engine.fallbacks
                if reviews:
                    _score_locked(reviews, engine, known)
                ScoringRun.objects.filter(pk=run.pk).update(
                    scored=F("scored") + len(reviews), batches=F("batches") + 1, last_review_id=cursor,
                    fallbacks=F("fallbacks") + (engine.fallbacks - fallbacks_before), heartbeat_at=timezone.now())
            run.scored += len(reviews)
            touched |= {review.product_id for review in reviews}
            if progress:
                progress(len(reviews))
            if delay:
                time.sleep(delay)
    except Exception as exc:
        ScoringRun.objects.filter(pk=run.pk).update(status=ScoringRun.Status.FAILED, error=repr(exc)[:2000],
                                                    finished_at=timezone.now())
        raise
    ScoringRun.objects.filter(pk=run.pk).update(status=ScoringRun.Status.FINISHED, finished_at=timezone.now())
    run.refresh_from_db()
    if touched and alerts:
        check_alerts(product_ids=touched)
    seconds = max((run.finished_at - run.started_at).total_seconds(), 1e-3)
    log.info("Scoring run %s: %d reviews in %d batches with %s in %.1f s (%.1f reviews/s)", run.pk, run.scored,
             run.batches, run.model_version, seconds, run.scored / seconds)
    return run


def nightly() -> dict:
    """The nightly job: aspects (first time only; weekly otherwise), prune, score, alerts."""
    if not CategoryAspect.objects.exists():
        discover_category_aspects()
    pruned = prune_unapproved()
    run = score_pending(trigger="nightly")
    report = check_alerts()
    training = should_train()
    if training:  # the shop's first model: trained from its stars, then everything is re-scored with it
        from .tasks import train_model

        transaction.on_commit(lambda: train_model.delay(None, None, "nightly"))
    return {"run": run.pk, "scored": run.scored, "model_version": run.model_version, "pruned": pruned,
            "alerts_opened": len(report.opened), "episodes_ended": len(report.ended), "training": training}


# --- product summaries -------------------------------------------------------------------------------


def _summary_key(product_id: int) -> str:
    return f"sentiment:summary:v2:{product_id}"


def loves_and_complaints(aspects: dict[str, list[float]], *, min_mentions: int | None = None,
                         top: int = 3, raw: dict[str, list[int]] | None = None) -> tuple[list[str], list[str]]:
    """aspects: name -> [positive, neutral, negative] (weighted or not). Loves: >= 60% positive;
    complaints: >= 40% negative (and not a love); each needs min_mentions mentions and two of its own
    kind, counted in `raw` (the unweighted counts) when the shares are weighted. Most-mentioned
    first, then the clearest."""
    min_mentions = conf("SUMMARY_MIN_MENTIONS") if min_mentions is None else min_mentions
    raw = raw or aspects
    loves, complaints = [], []
    for name, (pos, neu, neg) in aspects.items():
        raw_pos, raw_neu, raw_neg = raw.get(name, (pos, neu, neg))
        total = pos + neu + neg
        if raw_pos + raw_neu + raw_neg < min_mentions or total <= 0:
            continue
        if raw_pos >= 2 and pos / total >= 0.6:
            loves.append((-pos, -pos / total, name))
        elif raw_neg >= 2 and neg / total >= 0.4:
            complaints.append((-neg, -neg / total, name))
    return [name for *_, name in sorted(loves)[:top]], [name for *_, name in sorted(complaints)[:top]]


def recency_weight(reviewed_at: dt.datetime, now: dt.datetime) -> float:
    age_days = max((now - reviewed_at).total_seconds() / 86400, 0.0)
    return 0.5 ** (age_days / conf("SUMMARY_HALF_LIFE_DAYS"))


def recent_state(ratings: list[int], recent_negative: dict[str, int]) -> dict:
    """The latest reviews on their own: how many, how many of them <= 2 stars, whether that is most of
    them (with enough of them to say), and the aspects they complain about (most-mentioned first)."""
    n, low = len(ratings), sum(rating <= 2 for rating in ratings)
    complaints = [name for name, k in sorted(recent_negative.items(), key=lambda item: (-item[1], item[0]))
                  if k >= 2][:3]
    return {"reviews": n, "low_stars": low, "mostly_low": n >= conf("SUMMARY_RECENT_MIN") and low * 2 > n,
            "complaints": complaints}


def summary_rule(loves: list[str], complaints: list[str], recent: dict) -> tuple[list[str], list[str]]:
    """When the recent reviews are mostly <= 2 stars, what shoppers complain about lately leads the
    complaints, and "Shoppers love" is never shown without complaints beside it."""
    if not recent.get("mostly_low"):
        return loves, complaints
    complaints = list(dict.fromkeys([*recent["complaints"], *complaints]))[:3]
    loves = [name for name in loves if name not in complaints] if complaints else []
    return loves, complaints


def refresh_product_summaries(product_ids: Iterable[int], *, now: dt.datetime | None = None) -> None:
    """Recompute ProductSentiment rows (a fixed number of queries + 1 upsert for any number of products).

    Aspect shares are recency-weighted (a mention's weight halves every SUMMARY_HALF_LIFE_DAYS), and
    the latest reviews are looked at on their own (summary_rule)."""
    ids = sorted(set(product_ids))
    if not ids:
        return
    now = now or timezone.now()
    totals = {row["product_id"]: row for row in ReviewSentiment.objects.filter(product_id__in=ids)
              .values("product_id").annotate(
                  n=Count("pk"), pos=Count("pk", filter=Q(label=Label.POSITIVE)),
                  neu=Count("pk", filter=Q(label=Label.NEUTRAL)), neg=Count("pk", filter=Q(label=Label.NEGATIVE)),
                  avg=Avg("score")).order_by()}
    version_counts: dict[int, Counter] = defaultdict(Counter)
    for product_id, model_version, n in (ReviewSentiment.objects.filter(product_id__in=ids)
                                         .values_list("product_id", "model_version").annotate(n=Count("pk"))
                                         .order_by()):
        version_counts[product_id][model_version] = n
    # The latest reviews of each product within the recent window (stars and ids).
    recent_since = now - dt.timedelta(days=conf("SUMMARY_RECENT_DAYS"))
    recent_rows: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for product_id, review_id, rating in (ReviewSentiment.objects.filter(product_id__in=ids,
                                                                         reviewed_at__gte=recent_since)
                                          .order_by("product_id", "-reviewed_at", "-pk")
                                          .values_list("product_id", "review_id", "rating")):
        if len(recent_rows[product_id]) < conf("SUMMARY_RECENT_MAX"):
            recent_rows[product_id].append((review_id, rating))
    recent_ids = {review_id for rows in recent_rows.values() for review_id, _ in rows}
    raw: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    weighted: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    recent_negative: dict[int, Counter] = defaultdict(Counter)
    slot = {Label.POSITIVE: 0, Label.NEUTRAL: 1, Label.NEGATIVE: 2}
    for product_id, aspect, label, reviewed_at, review_id in (
            AspectMention.objects.filter(product_id__in=ids)
            .values_list("product_id", "aspect", "label", "reviewed_at", "sentiment__review_id").iterator()):
        raw[product_id][aspect][slot[label]] += 1
        weighted[product_id][aspect][slot[label]] += recency_weight(reviewed_at, now)
        if label == Label.NEGATIVE and review_id in recent_ids:
            recent_negative[product_id][aspect] += 1
    rows = []
    for product_id, total in sorted(totals.items()):  # one lock order for concurrent batches: no deadlock
        counts = {name: list(values) for name, values in raw[product_id].items()}
        loves, complaints = loves_and_complaints(dict(weighted[product_id]), raw=counts)
        recent = recent_state([rating for _, rating in recent_rows[product_id]], recent_negative[product_id])
        recent["mixed"] = len(version_counts[product_id]) > 1  # scored by two versions: re-scoring under way
        loves, complaints = summary_rule(loves, complaints, recent)
        rows.append(ProductSentiment(
            product_id=product_id, reviews=total["n"], positive=total["pos"], neutral=total["neu"],
            negative=total["neg"], average_score=round(total["avg"] or 0.0, 4), loves=loves, complaints=complaints,
            aspects=counts, model_version=version_counts[product_id].most_common(1)[0][0], recent=recent))
    fields = ["reviews", "positive", "neutral", "negative", "average_score", "loves", "complaints", "aspects",
              "model_version", "recent", "updated_at"]
    ProductSentiment.objects.bulk_create(rows, update_conflicts=True, unique_fields=["product"], update_fields=fields)
    ProductSentiment.objects.filter(product_id__in=[i for i in ids if i not in totals]).delete()
    keys = [_summary_key(product_id) for product_id in ids]
    transaction.on_commit(lambda: cache.delete_many(keys))


def _summary_dict(row: ProductSentiment) -> dict:
    n = max(row.reviews, 1)
    return {
        "reviews": row.reviews,
        "positive_share": round(row.positive / n, 3),
        "neutral_share": round(row.neutral / n, 3),
        "negative_share": round(row.negative / n, 3),
        "average_score": round(row.average_score, 3),
        "loves": list(row.loves),
        "complaints": list(row.complaints),
        "aspects": {name: {"positive": c[0], "neutral": c[1], "negative": c[2]} for name, c in row.aspects.items()},
        "recent": dict(row.recent or {}),
        "model_version": row.model_version,
        "updated_at": row.updated_at.isoformat(),
    }


EMPTY_SUMMARY = {"reviews": 0, "positive_share": None, "neutral_share": None, "negative_share": None,
                 "average_score": None, "loves": [], "complaints": [], "aspects": {}, "recent": {},
                 "model_version": None, "updated_at": None}


def product_summary(product_id: int) -> dict:
    """The precomputed summary (cached, "none yet" too; no model runs here). A summary scored by VADER,
    or by two versions at once (mid re-scoring), is cached briefly only: the web processes (each with
    its own cache in the demo) pick up the re-scored summary soon after the shop's model is promoted."""
    key = _summary_key(product_id)
    summary = cache.get(key)
    if summary is None:
        row = ProductSentiment.objects.filter(product_id=product_id).first()
        summary = _summary_dict(row) if row is not None else dict(EMPTY_SUMMARY)
        settled = not (summary["model_version"] or "").startswith("vader") and not summary["recent"].get("mixed")
        cache.set(key, summary, conf("SUMMARY_CACHE_SECONDS") if settled else 30)
    return summary


def storefront_summary(product_id: int) -> dict | None:
    """The summary a product page shows: only with enough reviews and something to say, and with
    the scorer that produced it named."""
    summary = product_summary(product_id)
    recent = summary.get("recent") or {}
    if summary["reviews"] < conf("SUMMARY_MIN_REVIEWS") or not (
            summary["loves"] or summary["complaints"] or recent.get("mostly_low")):
        return None
    return {**summary, "scorer": describe_scorer(summary["model_version"])}


def product_summary_for_slug(slug: str) -> tuple[object, dict]:
    """(product, summary); raises ObjectDoesNotExist for an unknown or inactive product."""
    product = shop.get_product(slug)
    return product, product_summary(product.pk)


# --- alerts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareTest:
    window_n: int
    window_negative: int
    baseline_n: int
    baseline_negative: int
    z: float
    p_value: float

    @property
    def window_share(self) -> float:
        return self.window_negative / self.window_n if self.window_n else 0.0

    @property
    def baseline_share(self) -> float:
        return self.baseline_negative / self.baseline_n if self.baseline_n else 0.0

    @property
    def increase(self) -> float:
        return self.window_share - self.baseline_share


def two_proportion_test(window_negative: int, window_n: int, baseline_negative: int, baseline_n: int) -> ShareTest:
    """One-sided two-proportion z-test: is the window's negative share above the baseline's?"""
    z, p = 0.0, 1.0
    if window_n and baseline_n:
        pooled = (window_negative + baseline_negative) / (window_n + baseline_n)
        se = math.sqrt(pooled * (1 - pooled) * (1 / window_n + 1 / baseline_n))
        if se > 0:
            z = (window_negative / window_n - baseline_negative / baseline_n) / se
            p = 0.5 * math.erfc(z / math.sqrt(2))
    return ShareTest(window_n, window_negative, baseline_n, baseline_negative, z, p)


def is_significant_rise(test: ShareTest) -> bool:
    return (test.window_n >= conf("ALERT_MIN_REVIEWS") and test.baseline_n >= conf("ALERT_MIN_BASELINE_REVIEWS")
            and test.increase >= conf("ALERT_MIN_INCREASE") and test.z >= conf("ALERT_Z"))


def is_recovered(test: ShareTest) -> bool:
    # Judged only on enough recent reviews: no evidence either way keeps the episode going.
    return test.window_n >= conf("ALERT_MIN_REVIEWS") and (
        test.z < conf("ALERT_RECOVER_Z") or test.increase < conf("ALERT_MIN_INCREASE") / 2)


@dataclass
class AlertReport:
    checked: int = 0
    opened: list[SentimentAlert] = field(default_factory=list)
    ended: list[SentimentAlert] = field(default_factory=list)


def check_alerts(product_ids: Iterable[int] | None = None, *, now: dt.datetime | None = None) -> AlertReport:
    """Open an alert for each product whose negative share rose significantly above its baseline,
    once per episode; end the episodes of products whose share went back down."""
    now = now or timezone.now()
    window_start = now - dt.timedelta(days=conf("ALERT_WINDOW_DAYS"))
    baseline_start = window_start - dt.timedelta(days=conf("ALERT_BASELINE_DAYS"))
    rows = ReviewSentiment.objects.filter(reviewed_at__gte=baseline_start, reviewed_at__lte=now)
    if product_ids is not None:
        rows = rows.filter(product_id__in=list(product_ids))
    negative, recent = Q(label=Label.NEGATIVE), Q(reviewed_at__gte=window_start)
    stats = list(rows.values("product_id").annotate(
        win_n=Count("pk", filter=recent), win_neg=Count("pk", filter=recent & negative),
        base_n=Count("pk", filter=~recent), base_neg=Count("pk", filter=~recent & negative)).order_by())
    ongoing = {alert.product_id: alert for alert in SentimentAlert.objects.filter(
        episode_ended_at__isnull=True, product_id__in=[row["product_id"] for row in stats])}
    report = AlertReport(checked=len(stats))
    for row in stats:
        test = two_proportion_test(row["win_neg"], row["win_n"], row["base_neg"], row["base_n"])
        alert = ongoing.get(row["product_id"])
        if alert is not None:
            _continue_episode(alert, test, now, report)
        elif is_significant_rise(test):
            opened = _open_alert(row["product_id"], test, now)
            if opened is not None:
                report.opened.append(opened)
    return report


def _continue_episode(alert: SentimentAlert, test: ShareTest, now: dt.datetime, report: AlertReport) -> None:
    alert.last_checked_at = now
    alert.peak_share = max(alert.peak_share, test.window_share)
    fields = ["last_checked_at", "peak_share"]
    if is_recovered(test):
        alert.episode_ended_at = now
        fields.append("episode_ended_at")
        if alert.status != SentimentAlert.Status.RESOLVED:
            alert.status, alert.resolved_at = SentimentAlert.Status.RESOLVED, now
            fields += ["status", "resolved_at"]
        alert.note = (f"{alert.note}\nEpisode ended {now:%Y-%m-%d}: negative share back to "
                      f"{test.window_share:.0%} (baseline {test.baseline_share:.0%}).").strip()
        fields.append("note")
        report.ended.append(alert)
    alert.save(update_fields=fields)


def _open_alert(product_id: int, test: ShareTest, now: dt.datetime) -> SentimentAlert | None:
    since = now - dt.timedelta(days=conf("ALERT_WINDOW_DAYS") + conf("ALERT_BASELINE_DAYS"))
    model_version = (ReviewSentiment.objects.filter(product_id=product_id, reviewed_at__gte=since)
                     .values("model_version").annotate(n=Count("pk")).order_by("-n", "model_version")
                     .values_list("model_version", flat=True).first()) or ""
    try:
        with transaction.atomic():  # a concurrent check may have opened it: the constraint decides
            alert = SentimentAlert.objects.create(
                product_id=product_id, opened_at=now, window_days=conf("ALERT_WINDOW_DAYS"),
                baseline_days=conf("ALERT_BASELINE_DAYS"), window_reviews=test.window_n,
                window_negative=test.window_negative, baseline_reviews=test.baseline_n,
                baseline_negative=test.baseline_negative, window_share=test.window_share,
                baseline_share=test.baseline_share, z_score=round(test.z, 3), p_value=test.p_value,
                peak_share=test.window_share, last_checked_at=now, model_version=model_version)
    except IntegrityError:
        return None
    log.warning("Sentiment alert %s: product %s negative share %.0f%% vs baseline %.0f%% (z=%.2f)", alert.pk,
                product_id, test.window_share * 100, test.baseline_share * 100, test.z)
    if alert_emails():
        from .tasks import send_alert_email

        transaction.on_commit(lambda: send_alert_email.delay(alert.pk))
    return alert


def acknowledge_alerts(alerts, user) -> int:
    return alerts.filter(status=SentimentAlert.Status.OPEN).update(
        status=SentimentAlert.Status.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user)


def resolve_alerts(alerts, user) -> int:
    """Resolve by hand. The episode goes on until the share is back down: no new alert before that."""
    return alerts.exclude(status=SentimentAlert.Status.RESOLVED).update(
        status=SentimentAlert.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=user)


def send_alert_email(alert_id: int) -> bool:
    from django.core.mail import send_mail
    from django.template.loader import render_to_string

    recipients = alert_emails()
    alert = SentimentAlert.objects.select_related("product").filter(pk=alert_id, emailed_at__isnull=True).first()
    if alert is None or not recipients:
        return False
    body = render_to_string("sentiment/email/alert.txt", {"alert": alert})
    send_mail(f"Aisle: negative reviews rising for {alert.product.title[:80]}", body, None, recipients)
    SentimentAlert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())
    return True


# --- training ---------------------------------------------------------------------------------------


def training_data(max_reviews: int | None = None) -> scoring.TrainingRows:
    """The shop's approved reviews with their stars as free labels (1-2 negative, 3 neutral, 4-5
    positive), plus clause rows weakly labelled from the stars (scoring.clause_training_rows).
    Reviews with empty text, unusable stars or in another language are skipped and counted."""
    rows = shop.reviews_for_scoring().order_by("-created_at", "-pk").values_list("title", "text", "rating")
    return scoring.training_rows(rows[: max_reviews or conf("TRAIN_MAX_REVIEWS")], clauses_too=conf("TRAIN_CLAUSES"))


class NotEnoughReviews(ValueError):
    pass


@dataclass
class TrainingOutcome:
    version: ModelVersion
    vader_macro_f1: float
    model_macro_f1: float
    serving: bool  # the new version is the active one now
    run: TrainingRun | None = None

    def as_dict(self) -> dict:
        return {"version": self.version.pk, "macro_f1": self.model_macro_f1, "vader_macro_f1": self.vader_macro_f1,
                "serving": self.serving, "path": self.version.path,
                "skipped": self.run.skipped if self.run is not None else {}}


def vader_on_held_out(texts: list[str], labels: list[str], config: TrainConfig) -> dict:
    """VADER on the exact held-out split the fine-tune is evaluated on (same seeded stratified split;
    a clause row is scored on its clause alone)."""
    from ml import metrics
    from ml.finetune import stratified_split

    _, _, test = stratified_split(labels, config.val_fraction, config.test_fraction, config.seed)
    held_texts, held_labels = [texts[i] for i in test], [labels[i] for i in test]
    predicted = [label for label, _ in scoring.vader_polarity(held_texts)]
    report = metrics.classification_report(held_labels, predicted, labels=sorted(set(labels)))
    report["eval_set"] = ml_versions._fingerprint(held_texts, held_labels)
    return report


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=conf("TRAIN_EPOCHS"), max_length=conf("MAX_LENGTH"))


def train_model(config: TrainConfig | None = None, *, max_reviews: int | None = None,
                min_reviews: int | None = None, progress: bool = True, trigger: str = "command",
                rescore: bool = False, rescore_batch_size: int | None = None) -> TrainingOutcome:
    """Fine-tune MiniLM on the shop's reviews (stars as labels) through ml.versions; it serves only
    if it beats both the active version (ml's rule) and VADER on the same held-out rows.

    A TrainingRun row says meanwhile that the shop's model is training (the pages show it) and keeps
    the skipped-row counts. rescore: re-score every review with the new version once it serves.
    """
    config = config or default_train_config()
    run = TrainingRun.objects.create(trigger=trigger)
    cache.delete(STATUS_KEY)
    try:
        data = training_data(max_reviews)
        TrainingRun.objects.filter(pk=run.pk).update(reviews=data.reviews, clause_rows=data.clause_rows,
                                                     skipped=data.summary()["skipped"])
        if data.skipped:
            log.warning("Sentiment training skipped %d reviews: %s", sum(data.skipped.values()), dict(data.skipped))
        texts, labels = data.texts, data.labels
        min_reviews = conf("TRAIN_MIN_REVIEWS") if min_reviews is None else min_reviews
        if data.reviews < min_reviews or len(set(labels)) < 2:
            raise NotEnoughReviews(f"Need at least {min_reviews} usable approved reviews with at least two star "
                                   f"classes; have {data.reviews} ({dict(Counter(labels))}; skipped "
                                   f"{dict(data.skipped)}).")
        version = ml_versions.finetune_classifier(
            TASK, texts, labels, config=config, progress=progress,
            data_summary={"source": "approved shop reviews, stars as labels (1-2 negative, 3 neutral, 4-5 "
                                    "positive), plus clause rows weakly labelled from the stars",
                          **data.summary()})
        vader = vader_on_held_out(texts, labels, config)
        model_f1 = float(version.score or 0.0)
        same_set = vader["eval_set"] == version.eval_set
        version.metrics = {**version.metrics, "vader_baseline": vader}
        version.notes = (f"{version.notes}\nVADER on the same held-out rows: macro-F1 {vader['macro_f1']:.4f} "
                         f"(fine-tuned {model_f1:.4f}).").strip()
        version.save(update_fields=["metrics", "notes"])
        if not same_set:
            log.warning("VADER was evaluated on a different held-out set than version %s", version.pk)
        if version.is_active and model_f1 <= vader["macro_f1"]:
            # It must beat the baseline to serve; otherwise the previous version (or VADER) stays.
            ml_versions.rollback(TASK)
            version.refresh_from_db()
            version.notes = f"{version.notes}\nNot serving: did not beat VADER.".strip()
            version.save(update_fields=["notes"])
    except BaseException as exc:
        TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
                                                     error=repr(exc)[:2000])
        cache.delete(STATUS_KEY)
        raise
    status = TrainingRun.Status.SERVING if version.is_active else TrainingRun.Status.NOT_SERVING
    TrainingRun.objects.filter(pk=run.pk).update(status=status, version=version, finished_at=timezone.now())
    cache.delete(STATUS_KEY)
    run.refresh_from_db()
    outcome = TrainingOutcome(version=version, vader_macro_f1=vader["macro_f1"], model_macro_f1=model_f1,
                              serving=version.is_active, run=run)
    if rescore and outcome.serving:
        rescored = score_pending(trigger="promotion", engine=serving_engine(), batch_size=rescore_batch_size)
        TrainingRun.objects.filter(pk=run.pk).update(rescored=rescored.scored)
        run.rescored = rescored.scored
    return outcome


def trainable_reviews() -> int:
    return shop.reviews_for_scoring().count()


def should_train(now: dt.datetime | None = None) -> bool:
    """The nightly job's rule for a shop with no model of its own yet: train once enough starred
    reviews exist, unless a run is going on or one failed or lost in the last day."""
    if not conf("AUTO_TRAIN") or ml_versions.active_version(TASK) is not None:
        return False
    now = now or timezone.now()
    if TrainingRun.objects.filter(started_at__gte=now - dt.timedelta(days=1)).exclude(
            status=TrainingRun.Status.RUNNING, started_at__lt=now - STALE_TRAINING_AFTER).exists():
        return False
    return trainable_reviews() >= conf("TRAIN_MIN_REVIEWS")


# --- what scored what (for the pages) -----------------------------------------------------------------

STATUS_KEY = "sentiment:scorer-status:v1"
STALE_TRAINING_AFTER = dt.timedelta(hours=6)


def scorer_status() -> dict:
    """Which scorer serves now, and whether the shop's own model is training (cached briefly)."""
    status = cache.get(STATUS_KEY)
    if status is None:
        active = ml_versions.active_version(TASK)
        training = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING,
                                              started_at__gte=timezone.now() - STALE_TRAINING_AFTER).exists()
        status = {"serving": f"ml:{TASK}:v{active.pk}" if active else scoring.VADER_VERSION, "training": training}
        cache.set(STATUS_KEY, status, 10)
    return status


def describe_scorer(model_version: str | None, status: dict | None = None) -> dict:
    """How a page names the model that produced a figure: the shop's own fine-tuned model, or VADER as
    the fallback (saying whether the shop's model is training)."""
    status = status or scorer_status()
    version = model_version or ""
    fallback = not version or version.startswith("vader")
    if fallback:
        note = "scored by VADER (fallback)"
        if status["training"]:
            note += " — the shop's model is training"
        elif status["serving"] != scoring.VADER_VERSION:
            note += " — re-scoring with the shop's model"
    else:
        note = f"scored by the shop's fine-tuned model ({version})"
    return {"version": version, "fallback": fallback, "training": status["training"], "note": note,
            "current": version == status["serving"]}


def get_product_or_none(slug: str):
    try:
        return shop.get_product(slug)
    except ObjectDoesNotExist:
        return None


def copy_facts(product_id: int) -> dict:
    """Review aspects for merchandising's product copy (it reads them through this facade): what shoppers
    love and complain about, from the precomputed summary, once the product has as many scored reviews as
    the storefront needs to show them (fewer say too little to put in marketing copy)."""
    summary = product_summary(product_id)
    if summary["reviews"] < conf("SUMMARY_MIN_REVIEWS"):
        return {}
    return {"loved_aspects": list(summary["loves"]), "complained_aspects": list(summary["complaints"])}
