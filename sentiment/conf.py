"""Settings of the sentiment app: settings.AISLE_SENTIMENT overrides any of these defaults."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "BATCH_SIZE": 64,             # reviews per scoring transaction
    "BATCH_DELAY": 0.0,           # seconds to sleep between batches (throttling; tests use it to kill mid-run)
    "MAX_LENGTH": 256,            # tokens per text for the classifier
    "SUMMARY_MIN_REVIEWS": 3,     # scored reviews before a product page shows a summary
    "SUMMARY_MIN_MENTIONS": 2,    # mentions of an aspect before it can be a "love" or a "complaint"
    "SUMMARY_CACHE_SECONDS": 3600,
    "DISCOVERY_MIN_REVIEWS": 20,  # reviews a category needs for its own aspects (else its parent's)
    "DISCOVERY_MAX_REVIEWS": 50000,
    "DISCOVERY_MAX_ASPECTS": 10,
    "ALERT_WINDOW_DAYS": 14,
    "ALERT_BASELINE_DAYS": 90,
    "ALERT_MIN_REVIEWS": 8,       # in the window
    "ALERT_MIN_BASELINE_REVIEWS": 10,
    "ALERT_MIN_INCREASE": 0.10,   # absolute rise of the negative share
    "ALERT_Z": 2.33,              # one-sided p < 0.01, two-proportion z-test
    "ALERT_RECOVER_Z": 1.0,       # the episode ends when the rise is no longer even mildly significant
    "TRAIN_MIN_REVIEWS": 60,     # usable starred reviews before the nightly job trains the shop's first model
    "TRAIN_MAX_REVIEWS": 50000,
    "TRAIN_EPOCHS": 3,
    "TRAIN_CLAUSES": True,       # add clause rows weakly labelled from the stars (aspect polarity)
    "AUTO_TRAIN": True,          # the nightly job trains the first model by itself (on the training queue)
    "SUMMARY_HALF_LIFE_DAYS": 90,  # a mention's weight in the summary halves every this many days
    "SUMMARY_RECENT_DAYS": 30,     # "recent reviews" for the summary's rule...
    "SUMMARY_RECENT_MAX": 20,      # ...at most the latest this many of them...
    "SUMMARY_RECENT_MIN": 5,       # ...and at least this many before they can overrule the rest
}


def conf(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "AISLE_SENTIMENT", {})}[name]


def alert_emails() -> list[str]:
    value = getattr(settings, "AISLE_ALERT_EMAILS", []) or []
    return [value] if isinstance(value, str) else list(value)
