"""Staff permissions mean something: every page of the admin area (the admin itself and the staff pages
mounted under /admin/) is walked from the URLconf as a staff member holding no permission, who must be
refused (403) or sent away (redirect); the dashboards and consoles each open for the permission they name."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from shop.models import Review
from support import services as support_services
from tests.factories import make_product, make_user
from tests.support_factories import make_order

pytestmark = pytest.mark.django_db

# Pages every staff member may open whatever their permissions: the admin's own front door, their own
# password, the JavaScript translations, and the login page (which sends a signed-in member on).
ACCOUNT_PAGES = {"admin:index", "admin:password_change", "admin:password_change_done", "admin:jsi18n", "admin:login",
                 "admin:logout"}
# The staff pages outside the model admins and the permission each checks.
NAMED_PERMISSIONS = {
    "behavior:dashboard": "behavior.view_event",
    "sentiment:dashboard": "sentiment.view_reviewsentiment",
    "support_agent:queue": "support.change_conversation",
    "support_agent:counts": "support.change_conversation",
    "admin:merchandising_needs_copy": "shop.change_product",  # merchandising's page over shop's products
}
# Views that act on POST only (a GET is 405 whoever asks), so the walk posts to them.
POST_ONLY = re.compile(r"^(support_agent:(assign|reply|hand_back|resolve|correct_intent)"
                       r"|admin:merchandising_draft_thin)$")


def admin_area_urls() -> list[tuple[str, str, dict]]:
    """(name, route, kwargs placeholders) of every named URL under /admin/, from the URLconf itself."""
    found = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                route = prefix + str(pattern.pattern)
                if route.startswith("admin/"):
                    found.append((namespace + pattern.name, route, list(pattern.pattern.regex.groupindex)))

    walk(get_resolver().url_patterns, "", "")
    return found


def model_of(name: str):
    """The model of an admin URL name such as admin:shop_product_change."""
    for model in apps.get_models():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if name.startswith(prefix):
            return model
    return None


@pytest.fixture
def world():
    """One row of the things staff pages show, so object pages have something to open."""
    shopper = make_user()
    order = make_order(shopper)
    product = order.items.first().product
    Review.objects.create(product=product, user=shopper, author_name="Ada", rating=4, title="Good",
                          text="Works as it should.", created_at=timezone.now())
    conversation, _ = support_services.get_or_start_conversation(user=shopper)
    return {"conversation": conversation, "message": conversation.messages.first(), "product": make_product()}


def concrete_urls(world) -> list[tuple[str, str]]:
    """(name, URL) for each admin-area URL, with real ids where the page is about one object."""
    urls = []
    for name, _route, groups in admin_area_urls():
        kwargs_options = [{}]
        if "app_label" in groups:
            kwargs_options = [{"app_label": label} for label in ("auth", "shop", "behavior", "sentiment", "support",
                                                                 "merchandising")]
        elif groups:
            kwargs = {}
            for group in groups:
                if group == "pk":
                    kwargs[group] = world["conversation"].pk
                elif group == "message_id":
                    kwargs[group] = world["message"].pk
                elif group == "product_id":  # e.g. merchandising's "draft copy for this product"
                    kwargs[group] = world["product"].pk
                elif group in ("object_id", "id"):
                    model = model_of(name)
                    instance = model.objects.order_by("pk").first() if model else None
                    if instance is None:
                        break
                    kwargs[group] = instance.pk
                else:
                    break
            else:
                kwargs_options = [kwargs]
                urls.extend((name, reverse(name, kwargs=k)) for k in kwargs_options)
            continue
        urls.extend((name, reverse(name, kwargs=k)) for k in kwargs_options)
    return urls


def staff(username: str, *permissions: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-staff-123", is_staff=True)
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_walk_covers_the_staff_pages(world):
    names = {name for name, _url in concrete_urls(world)}
    assert set(NAMED_PERMISSIONS) <= names
    assert {"admin:shop_order_change", "admin:merchandising_draft_copy", "support_agent:conversation",
            "support_agent:reply", "admin:support_conversation_change"} <= names
    assert len(names) > 100


def test_a_staff_member_without_permissions_opens_nothing(world):
    client = staff("nobody")
    opened = []
    for name, url in concrete_urls(world):
        if name in ACCOUNT_PAGES:
            continue
        response = client.post(url) if POST_ONLY.match(name) else client.get(url)
        refused = response.status_code == 403 or (response.status_code == 302 and response.url != url)
        if name == "admin:app_list" or name == "admin:view_on_site":
            refused = refused or response.status_code == 404  # the admin hides apps one may not see
        if not refused:
            opened.append((name, url, response.status_code))
    assert opened == []


@pytest.mark.parametrize(("name", "permission"), sorted(NAMED_PERMISSIONS.items()))
def test_each_staff_page_opens_with_its_permission_only(world, name, permission):
    allowed = staff("holder", permission)
    assert allowed.get(reverse(name)).status_code == 200
    others = {other for other, perm in NAMED_PERMISSIONS.items() if perm != permission}
    for other in others:
        assert allowed.get(reverse(other)).status_code == 403, other


def test_the_admin_index_lists_only_the_pages_one_may_open(world):
    page = staff("agent", "support.change_conversation").get("/admin/").content.decode()
    assert 'id="support-console-link"' in page
    assert 'id="behavior-dashboard-link"' not in page and 'id="needs-copy-link"' not in page


def disabled_for(user, name: str) -> bool:
    """True for an add or delete page its model admin switches off for everyone (read-only logs)."""
    model = model_of(name)
    if model is None or not name.endswith(("_add", "_delete")):
        return False
    request = RequestFactory().get("/admin/")
    request.user = user
    model_admin = admin.site._registry[model]
    if name.endswith("_add"):
        return not model_admin.has_add_permission(request)
    return not model_admin.has_delete_permission(request, model.objects.order_by("pk").first())


def test_a_superuser_opens_every_page(world):
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client = Client()
    client.force_login(boss)
    failures = []
    for name, url in concrete_urls(world):
        if POST_ONLY.match(name) or name in {"admin:logout", "admin:login", "admin:view_on_site",
                                             "admin:autocomplete"}:
            continue
        status = client.get(url).status_code
        if status != (403 if disabled_for(boss, name) else 200):
            failures.append((name, url, status))
    assert failures == [], "\n".join(map(str, failures))
