"""The generator behind a single worker thread with a wall-clock budget, for the assistant's answers
and the console's suggested replies (each its own slot)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import connections

log = logging.getLogger(__name__)


def switched_on(value) -> bool:
    """A generation setting (AISLE_SUPPORT_GENERATE, AISLE_SUPPORT_SUGGEST_GENERATE): True/False, "1"/"0",
    or "auto": on only where the generator runs on a GPU. On a 2-core CPU SmolLM2 needs 5-15 s for a short
    answer, so the extractive answer (well under a second) is sent instead of making people wait for
    phrasing that adds nothing to it."""
    if isinstance(value, str):
        value = value.strip().lower()
        if value == "auto":
            from ml.devices import choose_device

            return choose_device().type == "cuda"
        return value in ("1", "true", "yes", "on")
    return bool(value)


class GeneratorSlot:
    """One generation at a time: a second caller while the model is busy gets None at once rather than a
    queue of CPU-bound generations piling up behind the first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._busy = threading.Lock()

    def generate(self, messages: list[dict], *, max_new_tokens: int, timeout_s: float):
        """ml.Generation, or None when busy, late (loading the model counts too) or failing."""
        if not self._busy.acquire(blocking=False):
            return None

        def run():
            try:
                import ml

                return ml.generate_detailed(messages, max_new_tokens=max_new_tokens, timeout_s=timeout_s)
            finally:
                # The registry's active-version lookup may have opened a DB connection in this worker
                # thread; close it, or it lingers (and blocks dropping the test database).
                connections.close_all()
                self._busy.release()

        future = self._pool.submit(run)
        try:
            return future.result(timeout=timeout_s + 1.0)  # a late result is simply dropped
        except FutureTimeout:
            log.info("%s: nothing generated within %.1fs", self.name, timeout_s)
        except Exception:  # noqa: BLE001 - ModelUnavailable or a broken checkpoint: the caller's fallback stands
            log.warning("%s: generation failed", self.name, exc_info=True)
        return None
