"""Account features the help centre promises: password reset by e-mail, editing name/e-mail, changing the
password. Django's own auth views behind the shop's pages, rate limited, without revealing accounts."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from .factories import make_user

pytestmark = pytest.mark.django_db

RESET_LINK = re.compile(r"https?://[^/\s]+(/account/password/reset/[^/\s]+/[^/\s]+/)")


def _request_reset(client, email, capture):
    with capture(execute=True):
        return client.post(reverse("shop:password_reset"), {"email": email})


def _without_csrf(page: str) -> str:
    """The page less its CSRF tokens, which are masked afresh on every response."""
    return re.sub(r'(csrf-token" content|csrfmiddlewaretoken" value)="[^"]+"', "", page)


def _link(message) -> str:
    match = RESET_LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def test_login_page_links_to_password_reset(client):
    page = client.get(reverse("shop:login")).content.decode()
    assert f'href="{reverse("shop:password_reset")}"' in page
    assert "Forgot password?" in page
    assert client.get("/account/password/reset/").status_code == 200


def test_reset_mail_for_a_known_address_has_a_working_link(client, django_capture_on_commit_callbacks):
    user = make_user("ada", password="old-pass-Horse-42")
    response = _request_reset(client, "ADA@example.com", django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response["Location"] == reverse("shop:password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.com"]
    assert message.subject == "Reset your Aisle password"
    assert "ada" in message.body and "24 hours" in message.body

    # The link opens the set-password form (Django swaps the token into the session first).
    form_page = client.get(_link(message), follow=True)
    assert form_page.status_code == 200
    assert b'name="new_password1"' in form_page.content
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": "brand-new-Pass-77",
                                                         "new_password2": "brand-new-Pass-77"})
    assert done.status_code == 302 and done["Location"] == reverse("shop:password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("brand-new-Pass-77")
    # Used once: the same link no longer works.
    again = client.get(_link(message), follow=True)
    assert b"no longer works" in again.content and b'name="new_password1"' not in again.content


def test_unknown_address_gets_the_same_answer_and_no_mail(client, django_capture_on_commit_callbacks):
    make_user("ada")
    known = _request_reset(client, "ada@example.com", django_capture_on_commit_callbacks)
    sent = len(mail.outbox)
    unknown = _request_reset(client, "nobody-here@example.com", django_capture_on_commit_callbacks)
    assert sent == 1 and len(mail.outbox) == 1  # nothing sent for the unknown address
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    done_known = _without_csrf(client.get(known["Location"]).content.decode())
    done_unknown = _without_csrf(client.get(unknown["Location"]).content.decode())
    assert done_known == done_unknown
    assert "If an account uses the address you typed" in done_unknown


def test_reset_form_rejects_bad_input_with_a_message(client):
    for bad in ("", "not-an-email", "a" * 300 + "@example.com", "<script>x</script>@example.com"):
        response = client.post(reverse("shop:password_reset"), {"email": bad})
        assert response.status_code == 400, bad
        assert b"field-error" in response.content and b"<script>x" not in response.content
    response = client.post(reverse("shop:password_reset"), {"email": "x\x00y@example.com"})
    assert response.status_code == 400 and b"NUL character" in response.content
    assert mail.outbox == []


def test_reset_requests_are_rate_limited(client, settings, django_capture_on_commit_callbacks):
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "password_reset": 3}
    make_user("ada")
    codes = [_request_reset(client, "ada@example.com", django_capture_on_commit_callbacks).status_code
             for _ in range(5)]
    assert codes == [302, 302, 302, 429, 429]
    assert len(mail.outbox) == 3  # the refused requests sent nothing


def test_invalid_reset_link_says_so(client):
    response = client.get("/account/password/reset/MQ/set-password/", follow=True)
    assert response.status_code == 200
    assert b"no longer works" in response.content


def test_account_pages_need_a_sign_in(client):
    for name in ("shop:account_details", "shop:password_change"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and reverse("shop:login") in response["Location"]


def test_edit_name_and_email(client):
    user = make_user("ada")
    client.force_login(user)
    page = client.get(reverse("shop:account")).content.decode()
    assert f'href="{reverse("shop:account_details")}"' in page and f'href="{reverse("shop:password_change")}"' in page
    response = client.post(reverse("shop:account_details"), {"first_name": "Ada", "last_name": "<b>Lovelace</b>",
                                                             "email": " Ada.L@Example.COM "})
    assert response.status_code == 302 and response["Location"] == reverse("shop:account")
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.email) == ("Ada", "<b>Lovelace</b>", "Ada.L@example.com")
    account = client.get(reverse("shop:account")).content.decode()
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in account and "<b>Lovelace</b>" not in account
    assert "Your details were saved." in account


def test_edit_rejects_a_taken_or_invalid_email_and_control_characters(client):
    make_user("grace")  # grace@example.com
    user = make_user("ada")
    client.force_login(user)
    cases = [({"email": "GRACE@example.com"}, "Another account already uses this e-mail address."),
             ({"email": "not-an-email"}, "Enter a valid email address."),
             ({"email": ""}, "This field is required."),
             ({"email": "ada@example.com", "first_name": "A\x07da"}, "Please use letters, spaces and punctuation")]
    for data, message in cases:
        response = client.post(reverse("shop:account_details"), {"first_name": "", "last_name": "", **data})
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    user.refresh_from_db()
    assert user.email == "ada@example.com" and user.first_name == ""


def test_change_password_keeps_the_session(client):
    user = make_user("ada", password="old-pass-Horse-42")
    client.force_login(user)
    wrong = client.post(reverse("shop:password_change"), {"old_password": "nope", "new_password1": "new-Pass-99x",
                                                          "new_password2": "new-Pass-99x"})
    assert wrong.status_code == 400 and b"field-error" in wrong.content
    response = client.post(reverse("shop:password_change"), {"old_password": "old-pass-Horse-42",
                                                             "new_password1": "new-Pass-99x",
                                                             "new_password2": "new-Pass-99x"})
    assert response.status_code == 302 and response["Location"] == reverse("shop:account")
    user.refresh_from_db()
    assert user.check_password("new-Pass-99x")
    assert client.get(reverse("shop:account")).status_code == 200  # still signed in
    assert get_user_model().objects.get(pk=user.pk).check_password("old-pass-Horse-42") is False
