"""Sentiment on the web: the product summary API and page line, the staff dashboard (access,
filters, 400 on bad input, escaping, query counts) and the alert admin actions."""

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from sentiment import services
from sentiment.models import ProductSentiment, SentimentAlert

from .factories import make_category, make_product
from .test_sentiment_helpers import NEGATIVE, POSITIVE, bulk_reviews

pytestmark = pytest.mark.django_db
DASHBOARD = "/admin/sentiment/dashboard/"


def staff(username: str = "merch", *, superuser: bool = True, perms: tuple[str, ...] = ()):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-123456789",
                                                is_staff=True, is_superuser=superuser)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def headphones():
    """A product whose shoppers love the sound and the battery and complain about the fit."""
    product = make_product(make_category("Headphones"), title="Acme <b>Bass</b> Headphones", brand="Acme")
    bulk_reviews(product, [
        ("Great sound and the battery is excellent. The fit is awful.", 4),
        ("The sound is superb, love the battery. Sadly the fit is painful.", 4),
        ("Great sound. The battery is great. The fit is terrible.", 3),
        ("Awesome sound.", 5),
    ])
    return product


@pytest.fixture
def scored_headphones(headphones, settings):
    # Give the category's vocabulary the words these reviews use, as discovery would with more reviews.
    from sentiment.models import CategoryAspect

    now = timezone.now()
    for name in ("sound", "battery", "size/fit"):
        CategoryAspect.objects.create(category=headphones.category, name=name, kind="discovered", discovered_at=now,
                                      terms=[name] if name != "size/fit" else ["fit", "size"])
    services.score_pending()
    return headphones


def test_api_summary_loves_complaints_and_query_counts(client, scored_headphones, django_assert_max_num_queries):
    url = f"/api/sentiment/products/{scored_headphones.slug}/summary"
    with django_assert_max_num_queries(2):  # the product, the precomputed summary row
        body = client.get(url).json()
    assert body["product"] == scored_headphones.slug and body["reviews"] == 4
    assert body["loves"] == ["sound", "battery"] and body["complaints"] == ["size/fit"]
    assert body["positive_share"] >= 0.5 and body["model_version"] == "vader-3.3.2"
    assert body["aspects"]["size/fit"] == {"positive": 0, "neutral": 0, "negative": 3}
    with django_assert_max_num_queries(1):  # cached: only the product lookup
        assert client.get(url).json() == body
    assert client.get("/api/sentiment/products/no-such-thing/summary").status_code == 404


def test_api_summary_without_reviews_and_after_new_scores(client, headphones, django_capture_on_commit_callbacks):
    url = f"/api/sentiment/products/{headphones.slug}/summary"
    assert client.get(url).json()["reviews"] == 0  # cached "none yet"...
    with django_capture_on_commit_callbacks(execute=True):
        services.score_pending()
    assert client.get(url).json()["reviews"] == 4  # ...and invalidated when the product's scores change


def test_product_page_shows_the_summary_escaped(client, scored_headphones):
    page = client.get(scored_headphones.get_absolute_url()).content.decode()
    assert "Shoppers love: sound, battery" in page and "complain about: size/fit" in page

    ProductSentiment.objects.filter(product=scored_headphones).update(loves=["<script>alert(1)</script>"])
    cache.clear()
    page = client.get(scored_headphones.get_absolute_url()).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page


def test_product_page_never_fails_because_of_the_summary(client, headphones, monkeypatch):
    def broken(product_id):
        raise RuntimeError("summary store down")

    monkeypatch.setattr(services, "storefront_summary", broken)
    response = client.get(headphones.get_absolute_url())
    assert response.status_code == 200 and "Shoppers love" not in response.content.decode()


# --- dashboard -------------------------------------------------------------------------------------


@pytest.fixture
def dashboard_shop():
    """Two categories, three brands; one product improving, one worsening, one 5-star rant."""
    now = timezone.now()
    audio, cameras = make_category("Audio"), make_category("Cameras")
    earbuds = make_category("Earbuds", parent=audio)
    better = make_product(earbuds, title="Rising Earbuds", brand="Acme")
    worse = make_product(audio, title="Falling <i>Speaker</i>", brand="Bolt")
    camera = make_product(cameras, title="Steady Camera", brand="Zeta")
    for i in range(4):  # previous window (31-60 days ago) and this one (the last 30 days)
        bulk_reviews(better, [(NEGATIVE, 2)], at=now - dt.timedelta(days=40 + i))
        bulk_reviews(better, [(POSITIVE, 5)], at=now - dt.timedelta(days=5 + i))
        bulk_reviews(worse, [(POSITIVE, 5)], at=now - dt.timedelta(days=40 + i))
        bulk_reviews(worse, [(NEGATIVE, 1)], at=now - dt.timedelta(days=5 + i))
        bulk_reviews(camera, [("The lens is sharp and I love it.", 5)], at=now - dt.timedelta(days=3 + i))
    rant = bulk_reviews(camera, [("Terrible, horrible, the worst camera ever. I hate it <script>x</script>", 5)],
                        at=now - dt.timedelta(days=2))[0]
    for n in range(20):  # more products must not mean more queries
        bulk_reviews(make_product(cameras, title=f"Filler {n}", brand="Zeta"), [(POSITIVE, 4)],
                     at=now - dt.timedelta(days=1))
    services.discover_category_aspects()
    services.score_pending()
    return {"audio": audio, "earbuds": earbuds, "cameras": cameras, "better": better, "worse": worse,
            "camera": camera, "rant": rant}


def test_dashboard_is_for_staff_with_permission_only(client, dashboard_shop):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    shopper = get_user_model().objects.create_user("shopper", "s@example.com", "pw-123456789")
    client.force_login(shopper)
    assert client.get(DASHBOARD).status_code == 302  # not staff: the admin login
    client.force_login(staff("clerk", superuser=False))
    assert client.get(DASHBOARD).status_code == 403  # staff without the sentiment permission
    client.force_login(staff("analyst", superuser=False, perms=("view_reviewsentiment",)))
    assert client.get(DASHBOARD).status_code == 200


def test_dashboard_content_links_and_escaping(client, dashboard_shop, django_assert_max_num_queries):
    client.force_login(staff())
    start = (timezone.now() - dt.timedelta(days=30)).date().isoformat()
    # +3 for the scorer line: the versions in range, and the serving version and training run (cached 10 s).
    with django_assert_max_num_queries(19):
        response = client.get(DASHBOARD, {"start": start, "min_reviews": 3})
    assert response.status_code == 200
    page = response.content.decode()
    board = response.context["board"]

    assert [row["product__title"] for row in board.improved] == ["Rising Earbuds"]
    assert [row["product__title"] for row in board.worsened] == ["Falling <i>Speaker</i>"]
    assert board.worsened[0]["cur_neg_share"] == 1.0 and board.worsened[0]["prev_neg_share"] == 0.0
    # The 5-star review with a furious text is the top disagreement, linked to the review admin.
    assert board.disagreements[0].review_id == dashboard_shop["rant"].pk
    assert reverse("admin:shop_review_change", args=[dashboard_shop["rant"].pk]) in page
    assert dashboard_shop["camera"].get_absolute_url() in page
    # Aspect breakdown (the cameras' own aspect, discovered) with an example sentence.
    lens = next(row for row in board.aspects if row["aspect"] == "lens")
    assert (lens["n"], lens["pos"]) == (4, 4)
    assert lens["examples"]["positive"]["sentence"] == "The lens is sharp and I love it."
    assert "“The lens is sharp and I love it.”" in page
    # Chart data travels in json_script; user text is escaped everywhere.
    data = json.loads(page.split('<script id="sentiment-data" type="application/json">')[1].split("</script>")[0])
    assert sum(point["n"] for point in data["timeseries"]) == board.totals["n"] == 4 * 3 + 1 + 20
    assert "Falling &lt;i&gt;Speaker&lt;/i&gt;" in page and "<i>Speaker</i>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    assert "\\u003Ci\\u003ESpeaker" in page  # the series names inside json_script


def test_dashboard_filters(client, dashboard_shop):
    client.force_login(staff())
    start = (timezone.now() - dt.timedelta(days=30)).date().isoformat()

    def titles(**params):
        board = client.get(DASHBOARD, {"start": start, **params}).context["board"]
        return {row["product__title"] for row in board.breakdown}

    assert titles(category=dashboard_shop["audio"].pk) == {"Rising Earbuds", "Falling <i>Speaker</i>"}  # + children
    assert titles(category=dashboard_shop["earbuds"].pk) == {"Rising Earbuds"}
    assert titles(brand="bolt") == {"Falling <i>Speaker</i>"}
    assert titles(q="steady cam") == {"Steady Camera"}
    old = (timezone.now() - dt.timedelta(days=60)).date().isoformat()
    end = (timezone.now() - dt.timedelta(days=31)).date().isoformat()
    board = client.get(DASHBOARD, {"start": old, "end": end, "group": "brand"}).context["board"]
    assert {row["product__brand"]: row["n"] for row in board.breakdown} == {"Acme": 4, "Bolt": 4}
    assert board.filters.bucket == "day"
    monthly = client.get(DASHBOARD, {"start": "2025-01-01", "end": timezone.now().date().isoformat(),
                                     "group": "category"}).context["board"]
    assert monthly.filters.bucket == "month" and {r["product__category__name"] for r in monthly.breakdown} == {
        "Audio", "Earbuds", "Cameras"}


@pytest.mark.parametrize("params", [
    {"start": "not-a-date"}, {"start": "2026-05-02", "end": "2026-05-01"}, {"start": "2010-01-01", "end": "2026-01-01"},
    {"category": "999999"}, {"category": "abc"}, {"bucket": "year"}, {"group": "colour"}, {"min_reviews": "-1"},
    {"q": "x" * 500}, {"q": "nul\x00byte"}, {"start": "0001-01-01", "end": "0001-01-02"}, {"end": "9999-12-31"},
])
def test_dashboard_bad_filters_are_a_400_with_a_message(client, dashboard_shop, params):
    client.force_login(staff())
    response = client.get(DASHBOARD, params)
    assert response.status_code == 400
    page = response.content.decode()
    if "\x00" in "".join(params.values()):  # refused before any view, by the shop-wide NUL guard, with its message
        assert "NUL character" in page
        return
    assert "Some filters are not valid" in page and "errorlist" in page and "board" not in response.context


def test_alert_admin_actions(client, dashboard_shop):
    now = timezone.now()
    alert = SentimentAlert.objects.create(
        product=dashboard_shop["worse"], opened_at=now, window_days=14, baseline_days=90, window_reviews=10,
        window_negative=7, baseline_reviews=20, baseline_negative=2, window_share=0.7, baseline_share=0.1,
        z_score=3.38, p_value=0.0004, peak_share=0.7, last_checked_at=now)
    user = staff()
    client.force_login(user)
    url = reverse("admin:sentiment_sentimentalert_changelist")
    page = client.get(url).content.decode()
    assert "70% of 10" in page and "Falling &lt;i&gt;Speaker&lt;/i&gt;" in page
    client.post(url, {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == user
    client.post(url, {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_by == user and alert.episode_ended_at is None
    assert DASHBOARD in client.get(reverse("admin:sentiment_reviewsentiment_changelist")).content.decode()
