"""The whole password reset in headless Debian Chromium: "Forgot password?" on the sign-in page, the
e-mail, the link, a new password, and signing in with it."""

import re
from pathlib import Path

import pytest
from django.core import mail

from .factories import make_user

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is installed by `make test`"),
]


@pytest.mark.django_db(transaction=True)
def test_forgotten_password_reset_by_email_then_sign_in(live_server, browser):
    user = make_user("ada", password="old-pass-Horse-42")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)

    page.goto(live_server.url + "/account/login/")
    page.locator("#forgot-password").click()
    page.wait_for_url(re.compile(r"/account/password/reset/$"))
    page.fill("#password-reset-form input[name=email]", "ada@example.com")
    page.locator("#password-reset-button").click()
    page.wait_for_url(re.compile(r"/account/password/reset/done/$"))
    assert "Check your e-mail" in page.locator("#password-reset-sent").inner_text()

    # The live server runs in this process: the test mail backend keeps the message in mail.outbox.
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    link = re.search(r"https?://\S+/account/password/reset/\S+/", mail.outbox[0].body).group(0)
    assert link.startswith(live_server.url)
    page.goto(link)
    page.wait_for_url(re.compile(r"/set-password/$"))  # Django moves the token out of the address bar
    page.fill("input[name=new_password1]", "brand-new-Pass-77")
    page.fill("input[name=new_password2]", "brand-new-Pass-77")
    page.locator("#password-set-button").click()
    page.wait_for_url(re.compile(r"/account/password/reset/complete/$"))

    page.locator("#password-reset-login").click()
    page.wait_for_url(re.compile(r"/account/login/"))
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "brand-new-Pass-77")
    page.locator("#login-button").click()
    page.wait_for_url(re.compile(r"/account/$"))
    assert "Signed in as" in page.content()
    user.refresh_from_db()
    assert user.check_password("brand-new-Pass-77")

    # The link was for one use: opening it again says so.
    page.goto(link)
    assert "no longer works" in page.content()
    page.close()
