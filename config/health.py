"""Health and readiness for load balancers and operators.

`/healthz` checks each dependency (database, cache, broker) and reports the models this process has
loaded and the outbox backlog. The shop serves without Redis (config/cache.py, shop/outbox.py), so a
dead cache or broker is "degraded" (200); without the database the shop cannot serve: "down" (503).
`/readyz` answers 200 once this process has warmed its models (config/warmup.py), else 503.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from . import warmup

CHECK_TIMEOUT_S = 0.5


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        result = {"status": "ok", **(detail or {})}
    except Exception as exc:  # noqa: BLE001 - a failing dependency is the answer, not an error
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def check_cache() -> dict:
    if hasattr(cache, "ping"):
        cache.ping()
        return {}
    return {"backend": "local memory"}


def check_broker() -> dict:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return {"backend": "in-process (tasks run eagerly)"}
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _outbox_backlog() -> int | None:
    try:
        from shop.outbox import pending_count

        return pending_count()
    except Exception:  # noqa: BLE001 - the database check reports the cause
        return None


def _models() -> dict:
    from ml.registry import registry

    return {"loaded": sorted(registry.loaded()), "warm": warmup.STATE["warm"],
            "warm_seconds": warmup.STATE["seconds"], "errors": warmup.STATE["errors"]}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(check_database), "cache": _timed(check_cache), "broker": _timed(check_broker)}
    if checks["database"]["status"] != "ok":
        status, code = "down", 503
    elif any(check["status"] != "ok" for check in checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {"status": status, "checks": checks, "models": _models()}
    if checks["database"]["status"] == "ok":
        body["outbox_pending"] = _outbox_backlog()
    return JsonResponse(body, status=code)


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    models = _models()
    return JsonResponse({"ready": models["warm"], "models": models}, status=200 if models["warm"] else 503)
