"""DRF throttles keyed by account and by address.

ScopedRateThrottle counts a signed-in shopper by account only and an anonymous one by address only, so
new accounts (or a made-up X-Forwarded-For, before AISLE_TRUSTED_PROXIES) reset the count. Here every
request is counted against its address (config.clientip) and, when signed in, also against its account;
either reaching the scope's rate refuses it with 429 and Retry-After.
"""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from .clientip import client_ip


class AccountAndAddressThrottle(ScopedRateThrottle):
    def get_ident(self, request) -> str:
        return client_ip(request)

    def cache_keys(self, request) -> list[str]:
        keys = [self.cache_format % {"scope": self.scope, "ident": f"ip:{self.get_ident(request)}"}]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            keys.append(self.cache_format % {"scope": self.scope, "ident": f"user:{user.pk}"})
        return keys

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.now = self.timer()
        histories = []
        for key in self.cache_keys(request):
            history = [t for t in self.cache.get(key, []) if t > self.now - self.duration]
            if len(history) >= self.num_requests:
                self.key, self.history = key, history
                return self.throttle_failure()
            histories.append((key, history))
        for key, history in histories:
            self.cache.set(key, [self.now, *history], self.duration)
        self.key, self.history = histories[-1]
        return True
