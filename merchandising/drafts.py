"""The life of a copy draft: requested (queued, one Celery task each), generated (written, cleaned and
fact-checked: "ready" when nothing was flagged, else "needs_review"), edited (checked again), then
accepted (published on the product through shop's facade) or rejected. Every step is an event row, so
the history shows who did what and when.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from shop import services as shop

from .factcheck import fact_check
from .facts import CopyFacts, gather_facts, skip_reason
from .models import ProductCopyDraft, ProductCopyDraftEvent
from .writing import CopyGenerationError, timeout_s, write_copy

log = logging.getLogger(__name__)

Draft = ProductCopyDraft
Kind, Tone, LengthChoice, Status, Engine = (Draft.Kind, Draft.Tone, Draft.Length, Draft.Status, Draft.Engine)
Action = ProductCopyDraftEvent.Action
NEEDS_COPY_MIN_WORDS = 25

# The field each kind is published to when accepted.
PUBLISH_FIELDS = {Kind.DESCRIPTION: "description", Kind.MARKETING_LINE: "marketing_line",
                  Kind.EMAIL_BLURB: "email_blurb"}


def status_for(flags: list) -> str:
    return Status.NEEDS_REVIEW if flags else Status.READY


def _validate_choices(kind: str, tone: str, length: str, engine: str) -> None:
    for value, choices, name in ((kind, Kind, "kind"), (tone, Tone, "tone"), (length, LengthChoice, "length"),
                                 (engine, Engine, "engine")):
        if value not in choices.values:
            raise ValidationError(f"Unknown {name} {value!r}; choose one of {', '.join(choices.values)}.")


def _event(draft: Draft, action: str, actor=None, **details) -> ProductCopyDraftEvent:
    return ProductCopyDraftEvent.objects.create(draft=draft, action=action, actor=actor, status=draft.status,
                                                text=draft.text, details=details)


def request_drafts(product_ids: Iterable[int], kind: str, tone: str = Tone.NEUTRAL,
                   length: str = LengthChoice.MEDIUM, requested_by=None, *,
                   engine: str = Engine.MODEL) -> list[Draft]:
    """Queue one draft per product and one generation task each (sent once the rows are committed).

    A product that already has a draft of this kind waiting or being written gets no second one, so a
    double-clicked action does not queue the same work twice."""
    _validate_choices(kind, tone, length, engine)
    ids = list(dict.fromkeys(int(pk) for pk in product_ids))
    busy = set(Draft.objects.filter(product_id__in=ids, kind=kind, status__in=[Status.QUEUED, Status.GENERATING])
               .values_list("product_id", flat=True))
    drafts: list[Draft] = []
    with transaction.atomic():
        for product_id in shop.products_for_copy(ids).exclude(pk__in=busy).values_list("pk", flat=True):
            draft = Draft.objects.create(product_id=product_id, kind=kind, tone=tone, length=length, engine=engine,
                                         requested_by=requested_by)
            _event(draft, Action.REQUESTED, requested_by, tone=tone, length=length, engine=engine)
            drafts.append(draft)
        if drafts:
            transaction.on_commit(lambda: _enqueue([draft.pk for draft in drafts]))
    return drafts


GENERATE_TASK = "merchandising.tasks.generate_copy_draft"


def _enqueue(draft_ids: list[int]) -> None:
    """One task per draft, published without waiting on the broker (shop's outbox keeps what it cannot
    publish). Without a broker (eager mode: a demo with no Redis) the drafts are written in a background
    thread instead of inside the merchandiser's request, so the page never waits on the generator."""
    from config.celery import app

    if app.conf.task_always_eager and getattr(settings, "AISLE_COPY_BACKGROUND_WHEN_EAGER", True):
        threading.Thread(target=_generate_in_background, args=(list(draft_ids),), daemon=True,
                         name="copy-drafts").start()
        return
    for draft_id in draft_ids:
        shop.queue_task(GENERATE_TASK, [draft_id])


def _generate_in_background(draft_ids: list[int]) -> None:
    try:
        for draft_id in draft_ids:
            generate_draft(draft_id)
    finally:
        connection.close()  # this thread's own database connection


def _claim(draft_id: int) -> dt.datetime | None:
    """Mark a queued draft as being generated; None if another delivery has it or it is done.

    With late acknowledgement a task may be delivered twice (a worker died, a broker redelivered):
    only a queued draft, or one whose claim is older than any generation can take, is claimed."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=timeout_s() + 120)
    claimed = Draft.objects.filter(pk=draft_id).filter(
        Q(status=Status.QUEUED) | Q(status=Status.GENERATING, claimed_at__lt=stale)
    ).update(status=Status.GENERATING, claimed_at=now)
    return now if claimed else None


def generate_draft(draft_id: int, *, timeout: float | None = None) -> str:
    """Write, clean and fact-check one queued draft; returns its status. Never raises for a model failure:
    the draft is marked failed with the error, so the admin shows it instead of an error page."""
    claimed_at = _claim(draft_id)
    if claimed_at is None:
        status = Draft.objects.filter(pk=draft_id).values_list("status", flat=True).first()
        log.info("Copy draft %s not generated again (status %s)", draft_id, status)
        return status or "missing"
    draft = Draft.objects.select_related("product__category").get(pk=draft_id)
    facts = gather_facts(draft.product)
    written, flags, error = None, [], skip_reason(facts)
    try:
        if error:
            raise CopyGenerationError(error)
        written = write_copy(facts, draft.kind, draft.tone, draft.length, engine=draft.engine, timeout=timeout)
        flags = fact_check(written.text, facts)
    except CopyGenerationError as exc:
        written, error = None, str(exc)
        log.warning("Copy draft %s failed: %s", draft_id, error)
    except Exception as exc:  # noqa: BLE001 - a bug here must not leave the draft "generating" for ever
        log.exception("Copy draft %s failed unexpectedly", draft_id)
        written, error = None, f"Unexpected error: {exc.__class__.__name__}: {exc}"

    with transaction.atomic():
        draft = Draft.objects.select_for_update().get(pk=draft_id)
        if draft.status != Status.GENERATING or draft.claimed_at != claimed_at:
            return draft.status  # a reject or a newer claim came first: theirs stands
        draft.facts, draft.generated_at = facts.as_dict(), timezone.now()
        if written is None:
            draft.status, draft.error = Status.FAILED, error
            draft.save(update_fields=["facts", "generated_at", "status", "error"])
            _event(draft, Action.FAILED, error=error)
            return draft.status
        draft.text = draft.generated_text = written.text
        draft.flags, draft.status, draft.error = flags, status_for(flags), ""
        draft.generator, draft.generation_seconds = written.generator, round(written.seconds, 3)
        draft.new_tokens = written.new_tokens
        draft.save(update_fields=["facts", "generated_at", "text", "generated_text", "flags", "status", "error",
                                  "generator", "generation_seconds", "new_tokens"])
        _event(draft, Action.GENERATED, flags=flags, generator=written.generator)
    return draft.status


def _locked(draft: Draft | int) -> Draft:
    return Draft.objects.select_for_update().get(pk=draft.pk if isinstance(draft, Draft) else draft)


def edit_draft(draft: Draft | int, text: str, user=None) -> Draft:
    """Replace a draft's text and check it again against the facts it was written from."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("A draft cannot be empty.")
    with transaction.atomic():
        draft = _locked(draft)
        if not draft.is_open:
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be edited.")
        if text == draft.text:
            return draft
        facts = CopyFacts.from_dict(draft.facts) if draft.facts else gather_facts(draft.product)
        draft.text, draft.flags = text, fact_check(text, facts)
        draft.status, draft.error = status_for(draft.flags), ""
        if not draft.facts:
            draft.facts = facts.as_dict()
        draft.save(update_fields=["text", "flags", "status", "error", "facts"])
        _event(draft, Action.EDITED, user, flags=draft.flags)
    return draft


def accept_draft(draft: Draft | int, user=None) -> Draft:
    """Publish the draft's text on the product (description, marketing line or e-mail blurb)."""
    with transaction.atomic():
        draft = _locked(draft)
        if draft.status not in (Status.READY, Status.NEEDS_REVIEW) or not draft.text.strip():
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be accepted.")
        field_name = PUBLISH_FIELDS[draft.kind]
        previous = shop.publish_copy(draft.product_id, field_name, draft.text)
        draft.status, draft.decided_at, draft.decided_by = Status.ACCEPTED, timezone.now(), user
        draft.save(update_fields=["status", "decided_at", "decided_by"])
        # Unresolved flags are kept in the history: accepting them was a person's decision.
        _event(draft, Action.ACCEPTED, user, field=field_name, previous=previous, flags=draft.flags)
    return draft


def reject_draft(draft: Draft | int, user=None, note: str = "") -> Draft:
    """Reject a draft; the product keeps its text. A queued draft rejected before its task runs is
    never generated (the task only claims queued drafts)."""
    with transaction.atomic():
        draft = _locked(draft)
        if not (draft.is_open or draft.status == Status.QUEUED):
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be rejected.")
        draft.status, draft.decided_at, draft.decided_by = Status.REJECTED, timezone.now(), user
        draft.save(update_fields=["status", "decided_at", "decided_by"])
        _event(draft, Action.REJECTED, user, note=note[:500])
    return draft


def history(draft: Draft | int) -> QuerySet[ProductCopyDraftEvent]:
    draft_id = draft.pk if isinstance(draft, Draft) else draft
    return ProductCopyDraftEvent.objects.filter(draft_id=draft_id).select_related("actor")




# --- products that need copy ---------------------------------------------------------------------------


def with_copy_words(queryset):
    return shop.with_copy_words(queryset)


def needs_copy_products(min_words: int = NEEDS_COPY_MIN_WORDS):
    """Active products with thin copy: no description, or fewer than min_words words; thinnest first."""
    return shop.thin_copy_products(min_words)
