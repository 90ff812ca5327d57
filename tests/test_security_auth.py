"""Brute force: every way to sign in (admin login, shop login, HTTP basic auth on /api/) goes through
django-axes, so 30 wrong passwords lock the account and address, and the right password is then
refused (429) until the cool-off has passed."""

import base64
import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import make_user

PASSWORD = "s3cret-pass-123"
ATTEMPTS = 30


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def end_cool_off() -> None:
    """What waiting AXES_COOLOFF_TIME does: the recorded failures are older than the cool-off."""
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(days=1))


@pytest.fixture
def roomy_page_limits(settings):
    # The shop login's own per-minute page limit (20) would answer 429 first; this is about axes.
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "login": 1000}


@pytest.mark.django_db
def test_api_basic_auth_locks_out_after_repeated_failures(settings):
    user = make_user("victim", password=PASSWORD)
    client = APIClient()
    statuses = [client.get("/api/orders/", HTTP_AUTHORIZATION=basic("victim", f"guess-{i}")).status_code
                for i in range(ATTEMPTS)]
    limit = settings.AXES_FAILURE_LIMIT
    # The first failures are plain "not signed in" (403: session auth is DRF's first authenticator).
    assert set(statuses[:limit - 1]) == {403}
    assert set(statuses[limit:]) == {429}  # then locked: no more guesses are checked
    locked = client.get("/api/orders/", HTTP_AUTHORIZATION=basic("victim", PASSWORD))
    assert locked.status_code == 429
    assert locked.json() == {"detail": "Too many failed sign-in attempts. Please try again later."}
    assert int(locked["Retry-After"]) > 0
    end_cool_off()
    ok = client.get("/api/orders/", HTTP_AUTHORIZATION=basic("victim", PASSWORD))
    assert ok.status_code == 200, ok.content
    assert user.is_active


@pytest.mark.django_db
def test_a_locked_username_is_refused_from_another_address_too():
    make_user("victim2", password=PASSWORD)
    for i in range(ATTEMPTS):
        APIClient(REMOTE_ADDR="10.0.0.1").get("/api/orders/", HTTP_AUTHORIZATION=basic("victim2", f"x{i}"))
    other = APIClient(REMOTE_ADDR="10.0.0.2").get("/api/orders/", HTTP_AUTHORIZATION=basic("victim2", PASSWORD))
    assert other.status_code == 429


@pytest.mark.django_db
def test_admin_login_locks_out():
    get_user_model().objects.create_superuser("boss", "boss@example.com", PASSWORD)
    client = Client()
    statuses = [client.post("/admin/login/", {"username": "boss", "password": f"nope-{i}"}).status_code
                for i in range(ATTEMPTS)]
    assert statuses[0] == 200 and statuses[-1] == 429
    right = client.post("/admin/login/", {"username": "boss", "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    end_cool_off()
    right = client.post("/admin/login/", {"username": "boss", "password": PASSWORD, "next": "/admin/"})
    assert right.status_code == 302 and "_auth_user_id" in client.session


@pytest.mark.django_db
def test_shop_login_locks_out(roomy_page_limits):
    make_user("ada", password=PASSWORD)
    client = Client()
    statuses = [client.post("/account/login/", {"username": "ada", "password": f"nope-{i}"}).status_code
                for i in range(ATTEMPTS)]
    assert statuses[0] == 200 and statuses[-1] == 429
    assert client.post("/account/login/", {"username": "ada", "password": PASSWORD}).status_code == 429
    assert "_auth_user_id" not in client.session
    end_cool_off()
    assert client.post("/account/login/", {"username": "ada", "password": PASSWORD}).status_code == 302
    assert "_auth_user_id" in client.session


@pytest.mark.django_db
def test_a_sign_in_before_the_limit_resets_the_count(settings, roomy_page_limits):
    make_user("bob", password=PASSWORD)
    for _ in range(2):
        client = Client()
        for i in range(settings.AXES_FAILURE_LIMIT - 1):
            assert client.post("/account/login/", {"username": "bob", "password": f"typo{i}"}).status_code == 200
        assert client.post("/account/login/", {"username": "bob", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["ada\x00", "\x00"])
def test_nul_in_basic_auth_user_name_is_a_400(username):
    response = APIClient().get("/api/orders/", HTTP_AUTHORIZATION=basic(username, PASSWORD))
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
