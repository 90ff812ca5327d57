"""The copy desk's plain functions: where a draft's flagged words are (to highlight them), and how far a
batch of drafts has got (for the progress bar the admin polls)."""

from __future__ import annotations

import re
from collections import Counter

from .models import ProductCopyDraft

Status = ProductCopyDraft.Status
DONE = {Status.READY, Status.NEEDS_REVIEW, Status.FAILED, Status.ACCEPTED, Status.REJECTED}
MAX_BATCH = 200  # ids in one progress request


def flagged_spans(text: str, flags: list[dict]) -> list[tuple[int, int, str]]:
    """(start, end, reason) of every place a flag's words occur in the text, case-insensitively, merged
    where they overlap, in order. A flag whose text is not found (edited away) marks nothing."""
    spans: list[tuple[int, int, str]] = []
    for flag in flags or []:
        needle = str(flag.get("text", "")).strip()
        if not needle:
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)" if needle[:1].isalnum() else re.escape(needle),
                                 text or "", re.IGNORECASE):
            spans.append((match.start(), match.end(), str(flag.get("reason", ""))))
    merged: list[tuple[int, int, str]] = []
    for start, end, reason in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            reasons = last[2] if reason in last[2] else f"{last[2]}; {reason}"
            merged[-1] = (last[0], max(last[1], end), reasons)
        else:
            merged.append((start, end, reason))
    return merged


def parse_ids(raw: str) -> list[int]:
    """Draft ids from "1,2,3" (bad pieces ignored, at most MAX_BATCH)."""
    ids = [int(piece) for piece in (raw or "").split(",") if piece.strip().isdigit()]
    return list(dict.fromkeys(ids))[:MAX_BATCH]


def progress(draft_ids: list[int]) -> dict:
    """How far these drafts have got: counts by status, the share done, and each draft's state."""
    drafts = list(ProductCopyDraft.objects.filter(pk__in=draft_ids).select_related("product")
                  .order_by("pk").only("pk", "status", "flags", "error", "product__title", "kind"))
    counts = Counter(draft.status for draft in drafts)
    done = sum(counts[status] for status in DONE)
    return {
        "total": len(drafts), "done": done, "finished": done == len(drafts),
        "by_status": {status: counts.get(status, 0) for status in Status.values},
        "drafts": [{"id": d.pk, "status": d.status, "status_label": d.get_status_display(),
                    "product": d.product.title, "kind": d.get_kind_display(), "flags": len(d.flags or []),
                    "error": d.error[:200]} for d in drafts],
    }


def highlight_segments(text: str, flags: list[dict]) -> list[tuple[str, str, str]]:
    """The text cut into (piece, word reason, sentence reason): the copy rules' flags mark words, the
    grounding check's mark whole sentences, and a flagged word inside an unsupported sentence keeps both."""
    words = flagged_spans(text, [f for f in flags or [] if f.get("kind") != "grounding"])
    sentences = flagged_spans(text, [f for f in flags or [] if f.get("kind") == "grounding"])
    cuts = sorted({0, len(text), *(i for a, b, _ in words + sentences for i in (a, b))})

    def reason_at(spans, position):
        return next((reason for a, b, reason in spans if a <= position < b), "")

    return [(text[a:b], reason_at(words, a), reason_at(sentences, a))
            for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
