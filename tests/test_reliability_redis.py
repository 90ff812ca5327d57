"""Redis is optional for shoppers: a real gunicorn server on the test database and its own redis-server,
which the test kills and freezes. Pages, login, cart and checkout answer; the confirmation e-mail waits
in the outbox and is published once Redis is back; /healthz tells which dependency is missing."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection

from shop.models import Order, OutboxMessage

from . import workers
from .factories import GOOD_ADDRESS, make_product, make_user

pytestmark = [
    pytest.mark.worker,  # real processes: nothing runs in this test process's eager Celery
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="needs REDIS_URL and PostgreSQL"),
]

PASSWORD = "s3cret-pass-123"
CHECKOUT = {"email": "ada@example.com", **GOOD_ADDRESS, "card_number": "4242 4242 4242 4242",
            "card_expiry": "12/99", "card_cvc": "123"}


@pytest.fixture
def stack(tmp_path, transactional_db):
    """(base URL, redis process, redis URL) with a gunicorn worker pointed at the test database."""
    redis_port, web_port = workers.free_port(), workers.free_port()
    redis_process = workers.start_redis(redis_port, tmp_path)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {"DATABASE_URL": workers.database_url(), "REDIS_URL": redis_url, "DJANGO_DEBUG": "1",
           "DJANGO_SECRET_KEY": "reliability-test", "AISLE_WARM_MODELS": "", "AISLE_WARM_SEARCH": "0",
           "AISLE_SEARCH_VECTORS": "0",
           "AISLE_TEST_GATEWAY_LEDGER": str(tmp_path / "ledger.sqlite3"), "AISLE_SUPPORT_GENERATE": "0"}
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115 - closed below
    web = workers.start_web(web_port, env=env, log=log, threads=4)
    try:
        yield f"http://127.0.0.1:{web_port}", redis_process, redis_url, env
    finally:
        for process in (web, redis_process):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)
        log.close()


def _csrf(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=15)
    assert page.status_code == 200, (url, page.status_code)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def _timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_shoppers_browse_sign_in_and_pay_with_redis_killed_then_frozen(stack, tmp_path):
    base, redis_process, redis_url, env = stack
    product = make_product(stock=5)
    user = make_user(password=PASSWORD)
    healthy = requests.get(base + "/healthz", timeout=10)
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"

    redis_process.kill()
    redis_process.wait(timeout=10)
    shopper = requests.Session()
    for path in ("/", f"/p/{product.slug}/", "/cart/", "/account/login/", "/api/products/"):
        response, seconds = _timed(lambda p=path: shopper.get(base + p, timeout=15))
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        assert seconds < 5, (path, seconds)
    token = _csrf(shopper, base + "/account/login/")
    login = shopper.post(base + "/account/login/", {"csrfmiddlewaretoken": token, "username": user.username,
                                                    "password": PASSWORD}, timeout=15, allow_redirects=False)
    assert login.status_code == 302, login.text[:500]
    token = _csrf(shopper, base + f"/p/{product.slug}/")
    added = shopper.post(base + f"/cart/add/{product.pk}/", {"csrfmiddlewaretoken": token, "quantity": 1},
                         timeout=15, allow_redirects=False)
    assert added.status_code == 302
    page = shopper.get(base + "/checkout/", timeout=15)
    assert page.status_code == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    paid, seconds = _timed(lambda: shopper.post(base + "/checkout/", {**CHECKOUT, "csrfmiddlewaretoken": token,
                                                                      "idempotency_key": key},
                                                timeout=30, allow_redirects=False))
    order = Order.objects.get(user=user)
    assert paid.status_code == 302 and paid.headers["Location"] == order.get_absolute_url()
    assert seconds < 5
    assert shopper.get(base + paid.headers["Location"], timeout=15).status_code == 200
    # The e-mail could not be queued: it waits in the outbox, committed with the order.
    waiting = OutboxMessage.objects.get(task_name="shop.tasks.send_order_confirmation")
    assert waiting.args == [order.pk] and waiting.sent_at is None and waiting.attempts >= 1

    health = requests.get(base + "/healthz", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "down" and body["checks"]["broker"]["status"] == "down"
    assert body["outbox_pending"] == 1

    # Redis comes back: the drain job publishes the e-mail to the broker.
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    revived = workers.start_redis(port, tmp_path)
    drain = subprocess.run([sys.executable, "-c", "import django; django.setup(); from shop import outbox; "
                            "print(outbox.drain(min_age_s=0))"],
                           cwd=workers.ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert drain.returncode == 0, drain.stderr[-2000:]
    waiting.refresh_from_db()
    assert waiting.sent_at is not None
    assert redis.Redis.from_url(redis_url).llen("default") == 1  # the confirmation task, queued for a worker
    assert requests.get(base + "/healthz", timeout=10).json()["status"] == "ok"

    # Frozen Redis (SIGSTOP): every call would hang; the short timeouts and the back-off keep pages fast.
    os.kill(revived.pid, signal.SIGSTOP)
    try:
        for path in ("/", f"/p/{product.slug}/", "/cart/", "/account/login/"):
            response, seconds = _timed(lambda p=path: shopper.get(base + p, timeout=30))
            assert response.status_code == 200 and seconds < 5, (path, response.status_code, seconds)
        frozen = requests.get(base + "/healthz", timeout=10)
        assert frozen.json()["status"] == "degraded"
    finally:
        os.kill(revived.pid, signal.SIGCONT)
        revived.kill()
        revived.wait(timeout=10)
    stack_redis = stack[1]
    assert stack_redis.poll() is not None


def test_without_the_database_healthz_is_503_and_the_api_answers_json(tmp_path):
    """A server whose database is unreachable (a closed port): the shop cannot serve, /healthz says so with
    a 503, the API answers JSON 503s with Retry-After (not HTML error pages), pages a plain 503 page."""
    dead_db = f"postgres://postgres:postgres@127.0.0.1:{workers.free_port()}/nowhere"
    web_port = workers.free_port()
    env = {"DATABASE_URL": dead_db, "REDIS_URL": settings.REDIS_URL, "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": "reliability-test", "AISLE_WARM_MODELS": "", "AISLE_WARM_SEARCH": "0"}
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115 - closed below
    web = workers.start_web(web_port, env=env, log=log, threads=2)
    base = f"http://127.0.0.1:{web_port}"
    try:
        health = requests.get(base + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "down"
        assert health.json()["checks"]["database"]["status"] == "down"
        for path in ("/api/products/", "/api/categories/", "/api/reviews/"):
            response = requests.get(base + path, timeout=10)
            assert response.status_code == 503, (path, response.status_code, response.text[:300])
            assert response.headers["Content-Type"] == "application/json"
            assert response.json()["detail"].startswith("The shop is briefly unavailable")
            assert response.headers["Retry-After"] == "5"
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 503 and "text/html" in page.headers["Content-Type"]
    finally:
        web.kill()
        web.wait(timeout=10)
        log.close()
