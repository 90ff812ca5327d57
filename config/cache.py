"""A Redis cache that fails soft: the storefront serves without Redis.

Every cache use in a request (navigation, counters, rate limits, DRF throttles) is an optimisation or
a limit, never the data itself. When Redis is unreachable or frozen, each call here answers as a cache
miss (reads return the default, writes return False, `incr` answers 0 so limits fail open) after at most
the short socket timeouts of OPTIONS, logs a warning, and skips Redis altogether for `BACKOFF_S`
seconds, so a frozen Redis costs one timeout per process and back-off, not one per call.
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger(__name__)

FAILURES = (RedisConnectionError, RedisTimeoutError, RedisError, OSError)


class CacheUnavailable(RuntimeError):
    pass


class FailSoftRedisCache(RedisCache):
    BACKOFF_S = 5.0

    def __init__(self, server, params) -> None:
        options = dict(params.get("OPTIONS") or {})
        self.backoff_s = float(options.pop("backoff_s", self.BACKOFF_S))
        # Short timeouts unless configured: a shopper's request must not hang on the cache.
        options.setdefault("socket_connect_timeout", 0.5)
        options.setdefault("socket_timeout", 0.5)
        options.setdefault("retry_on_timeout", False)
        options.setdefault("retry", Retry(NoBackoff(), 0))  # redis-py retries 3 times by default
        super().__init__(server, {**params, "OPTIONS": options})
        self._down_until = 0.0

    # --- the guard -------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _guard(self, operation: str, call, default):
        if not self.available:
            return default
        try:
            return call()
        except FAILURES as exc:
            self._down_until = time.monotonic() + self.backoff_s
            log.warning("Cache unavailable (%s: %s); serving without it for %.0f s", operation, exc, self.backoff_s)
            return default

    def ping(self) -> None:
        """Raise CacheUnavailable unless Redis answers now (for /healthz; ignores the back-off)."""
        try:
            self._cache.get_client(write=True).ping()
        except FAILURES as exc:
            self._down_until = time.monotonic() + self.backoff_s
            raise CacheUnavailable(str(exc)) from exc
        self._down_until = 0.0

    # --- the cache API ---------------------------------------------------------------------

    def get(self, key, default=None, version=None):
        return self._guard("get", lambda: super(FailSoftRedisCache, self).get(key, default, version), default)

    def get_many(self, keys, version=None):
        return self._guard("get_many", lambda: super(FailSoftRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._guard("has_key", lambda: super(FailSoftRedisCache, self).has_key(key, version), False)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set", lambda: super(FailSoftRedisCache, self).set(key, value, timeout, version), None)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("add", lambda: super(FailSoftRedisCache, self).add(key, value, timeout, version), False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set_many", lambda: super(FailSoftRedisCache, self).set_many(data, timeout, version),
                           list(data))

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("touch", lambda: super(FailSoftRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key, version=None):
        return self._guard("delete", lambda: super(FailSoftRedisCache, self).delete(key, version), False)

    def delete_many(self, keys, version=None):
        return self._guard("delete_many", lambda: super(FailSoftRedisCache, self).delete_many(keys, version), None)

    def incr(self, key, delta=1, version=None):
        # 0 when Redis is down: a rate-limit counter reads "nothing counted yet", so limits fail open.
        return self._guard("incr", lambda: super(FailSoftRedisCache, self).incr(key, delta, version), 0)

    def clear(self):
        return self._guard("clear", lambda: super(FailSoftRedisCache, self).clear(), False)
