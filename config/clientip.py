"""The client's address, as every limit sees it (axes lockouts, page rate limits, DRF throttles).

`X-Forwarded-For` is written by whoever sends the request, so it is believed only as far as our own
proxies wrote it: AISLE_TRUSTED_PROXIES is how many proxies stand in front of the app (default 0: the
header is ignored and REMOTE_ADDR is the client). With N proxies, each appends the address it got the
request from, so the client is the N-th entry from the right; anything further left was sent by the
client and may be made up (a new value per request would otherwise reset every limit).
DRF's throttles use the same rule through NUM_PROXIES (set from the same setting).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "0.0.0.0"


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The address of the client, counted AISLE_TRUSTED_PROXIES entries from the right of X-Forwarded-For."""
    meta = getattr(request, "META", {})
    remote = _valid(meta.get("REMOTE_ADDR", "") or "") or UNKNOWN
    proxies = getattr(settings, "AISLE_TRUSTED_PROXIES", 0)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    # Fewer entries than proxies: the request skipped a proxy; the leftmost is the best we have.
    return _valid(forwarded[-min(proxies, len(forwarded))]) or remote
