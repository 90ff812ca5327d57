"""Hardening: `check --deploy` is clean with production-like settings, HSTS and the HTTPS redirect come with
DJANGO_SECURE_SSL, a strict Content-Security-Policy (no inline script anywhere) under which the storefront,
the chat widget and the dashboards (charts too) still work, and orders are never stored by caches."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from behavior.models import Event
from tests.factories import make_category, make_product, make_user
from tests.support_factories import make_order

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def production_env(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST"))}
    env.update({
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "shop.example.com",
        "DJANGO_SECURE_SSL": "1",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/aisle"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"),
        **extra,
    })
    return env


def settings_in(env: dict, *names: str) -> dict:
    """Settings as a fresh process with this environment sees them (the test process is not production)."""
    code = ("import json, django; django.setup(); from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}, default=str))")
    env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_ssl():
    # The check is not blind: the same settings without HTTPS are flagged (HSTS, redirect, cookies).
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=production_env(DJANGO_SECURE_SSL="0"), capture_output=True, text=True,
                            timeout=180)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout


def test_secure_ssl_turns_on_hsts_redirect_and_secure_cookies():
    on = settings_in(production_env(), "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
                     "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER", "AISLE_TRUSTED_PROXIES")
    assert on["SECURE_HSTS_SECONDS"] >= 31_536_000 and on["SECURE_SSL_REDIRECT"]
    assert on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"]
    # No proxy trusted: a client's X-Forwarded-Proto is not believed either.
    assert on["SECURE_PROXY_SSL_HEADER"] is None and on["AISLE_TRUSTED_PROXIES"] == 0
    behind = settings_in(production_env(AISLE_TRUSTED_PROXIES="1"), "SECURE_PROXY_SSL_HEADER")
    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


@pytest.mark.django_db
def test_hsts_header_on_https_responses(settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/").status_code == 301  # plain HTTP is sent to HTTPS
    assert client.get("/healthz").status_code in (200, 503)  # probes are exempt
    response = client.get("/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


# --- Content-Security-Policy -------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_carries_a_strict_csp():
    make_product()
    for url in ("/", "/support/", "/api/docs/", "/admin/login/"):
        policy = Client().get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'", url
        assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I)


def test_templates_hold_no_inline_script_or_handler():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, re.compile(r"javascript:", re.I)):
            offenders.extend(f"{path.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer(text))
    assert offenders == []


def test_the_inline_checks_catch_what_they_look_for():
    assert INLINE_SCRIPT.search('<script>alert(1)</script>') and not INLINE_SCRIPT.search('<script src="/a.js">')
    assert INLINE_HANDLER.search('<button onclick="go()">') and not INLINE_HANDLER.search('<a data-on="x">')


# --- no-store on orders -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_order_pages_and_the_orders_api_are_not_stored():
    shopper = make_user()
    order = make_order(shopper)
    page = Client()
    page.force_login(shopper)
    api = APIClient()
    api.force_login(shopper)
    for response in (page.get(order.get_absolute_url()), page.get("/account/"), api.get("/api/orders/"),
                     api.get(f"/api/orders/{order.number}/"), api.get("/api/orders/NOPE/")):
        assert "no-store" in response["Cache-Control"], response.request
        assert "private" in response["Cache-Control"]
    assert "no-store" not in Client().get("/").get("Cache-Control", "")


# --- the storefront, chat widget and dashboards under the policy, in Chromium ---------------------------


def _seed_dashboards(shopper) -> None:
    now = timezone.now()
    product = make_product(make_category("Headphones"), title="Quiet Comfort Headphones", brand="Bose",
                           price=Decimal("199.00"), stock=5)
    events = []
    for day in range(5):
        for n, kind in enumerate([Event.Type.PRODUCT_VIEWED, Event.Type.ADDED_TO_CART, Event.Type.CHECKOUT_STARTED,
                                  Event.Type.ORDER_PLACED]):
            events.extend(Event(event_type=kind, visitor_id=f"v{day}-{i}", product=product,
                                category_id=product.category_id, occurred_at=now - dt.timedelta(days=day, hours=n))
                          for i in range(4 - n))
    Event.objects.bulk_create(events)
    make_order(shopper, products=[product])


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is installed by `make test`")
@pytest.mark.django_db(transaction=True)
def test_pages_work_under_the_policy_in_a_browser(live_server, browser):
    shopper = make_user("ada")
    _seed_dashboards(shopper)
    product = make_product(title="Studio Monitor Speakers")
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    staff = Client()
    staff.force_login(boss)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": staff.cookies["sessionid"].value,
                          "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(f"page error: {e}"))

    page.goto(live_server.url + "/")
    page.goto(live_server.url + product.get_absolute_url())
    page.locator("#add-to-cart").wait_for()
    # The chat widget's script runs (a file, not inline) and reaches the API (connect-src 'self').
    page.locator("#chat-launcher").click()
    page.locator("#chat-panel").wait_for(state="visible")
    page.locator("#chat-panel [data-chat-log] > li").first.wait_for()  # the greeting arrived
    page.goto(live_server.url + "/admin/behavior/dashboard/")
    page.locator("#bd-funnel-chart").wait_for()
    # Chart.js drew the funnel: the canvas has pixels (it needs only our own script files).
    drawn = page.evaluate("""() => {
        const c = document.querySelector('#bd-funnel-chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.some((v, i) => i % 4 === 3 && v > 0);
    }""")
    assert drawn
    page.goto(live_server.url + "/admin/sentiment/dashboard/")
    page.goto(live_server.url + "/admin/support/console/")
    page.goto(live_server.url + "/api/docs/")
    page.locator(".swagger-ui").first.wait_for()
    assert violations == []
    # The listener hears a violation when there is one: an inline script injected now is refused.
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1';
                             document.body.appendChild(s); }""")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.inlineRan === undefined")
    assert any("inline" in text for text in violations)
    context.close()
