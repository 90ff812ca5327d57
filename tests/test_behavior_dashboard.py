"""The merchandisers' behaviour dashboard (staff only, in the admin) and the behaviour admins."""

import datetime as dt
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from behavior import analytics
from behavior.models import DailyAggregate, Event, IdentityLink, RolledUpDay
from behavior.services import record_event

from .factories import make_category, make_product, make_user

# Until config/urls.py mounts behavior.urls, tests.dashboard_urls does (the same line).
pytestmark = pytest.mark.django_db

URL = "/admin/behavior/dashboard/"
DATA_IDS = {
    "funnel": "behavior-funnel-data",
    "trends": "behavior-trends-data",
    "category-trends": "behavior-category-trends-data",
    "trending": "behavior-trending-data",
    "rfm": "behavior-rfm-data",
    "forecast": "behavior-forecast-data",
}
HEADINGS = {
    "funnel": "Conversion funnel",
    "trends": "Events over time",
    "category-trends": "Product views by category",
    "trending": "Trending products",
    "rfm": "Customer segments (RFM)",
    "forecast": "Daily orders forecast",
}
NOT_ENOUGH = "not enough data yet"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def staff_client(client):
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client.force_login(boss)
    return client


def section(html: str, key: str) -> str:
    """The HTML of one dashboard section."""
    match = re.search(rf'<section[^>]*id="bd-{key}".*?</section>', html, re.S)
    assert match, f"section {key} missing"
    return match.group(0)


def json_data(html: str, data_id: str):
    match = re.search(rf'<script id="{data_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"json_script {data_id} missing"
    return json.loads(match.group(1))


# --- fake analytics, to test the page on its own -----------------------------------------


def fake_analytics(monkeypatch, calls: dict, *, trending_title: str = "Rising kettle", trending_id: int = 1):
    """Replace every analytics function by one returning fixed data and recording its arguments."""
    day = timezone.localdate()

    def record(name, result):
        def fake(*args, **kwargs):
            calls[name] = (args, kwargs)
            return result(*args, **kwargs) if callable(result) else result
        monkeypatch.setattr(analytics, name, fake)

    record("funnel", [
        analytics.FunnelStep("product_viewed", "Viewed a product", 200, None, None),
        analytics.FunnelStep("added_to_cart", "Added to cart", 50, 0.25, 0.25),
        analytics.FunnelStep("checkout_started", "Started checkout", 20, 0.4, 0.1),
        analytics.FunnelStep("order_placed", "Ordered", 10, 0.5, 0.05),
    ])

    def series(start, end, **kwargs):
        step = dt.timedelta(hours=1) if kwargs.get("interval") == "hour" else dt.timedelta(days=1)
        first = timezone.make_aware(dt.datetime.combine(start, dt.time.min))
        count = int((timezone.make_aware(dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min)) - first)
                    / step)
        return [analytics.TrendSeries("product_viewed", [(first + i * step, i % 5 + 1) for i in range(count)]),
                analytics.TrendSeries("added_to_cart", [(first + i * step, i % 2) for i in range(count)])]

    record("trends", series)
    record("trends_by_category", lambda start, end, **kw: [
        analytics.TrendSeries(name, s.points)
        for name, s in zip(["Audio", "Kettles"], series(start, end, **kw), strict=True)])
    record("trending_products", [analytics.TrendingProduct(trending_id, trending_title, 30, 4.0, 7.5, 9.1)])
    record("rfm_segments", analytics.RfmResult(as_of=day, customers=10, segments=[
        analytics.Segment("Champions", 4, 0.4, 5.0, 6.0, 420.0),
        analytics.Segment("At risk", 6, 0.6, 80.0, 2.0, 90.0),
    ]))
    history = [(day - dt.timedelta(days=89 - i), float(i % 7)) for i in range(90)]
    record("forecast_daily_orders", analytics.Forecast(
        category_id=None, history=history,
        forecast=[(day + dt.timedelta(days=i + 1), 3.0, 1.0, 5.0) for i in range(14)],
        backtest_mae=1.25, backtest_mape=0.3, baseline_mae=1.75, method="Holt-Winters (additive, weekly)"))


def test_staff_sees_every_section_with_its_chart_data(staff_client, monkeypatch):
    calls = {}
    fake_analytics(monkeypatch, calls)
    response = staff_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Demo data is simulated" in html
    assert 'src="/static/vendor/chart.js/chart.umd.min.js"' in html
    assert "cdn" not in html.lower()
    for key, heading in HEADINGS.items():
        part = section(html, key)
        assert heading in part
        assert NOT_ENOUGH not in part.lower()
        json_data(part, DATA_IDS[key])
    funnel = json_data(html, DATA_IDS["funnel"])
    assert funnel["shoppers"] == [200, 50, 20, 10] and funnel["fromPrevious"] == [None, 25.0, 40.0, 50.0]
    forecast = section(html, "forecast")
    assert "1.25" in forecast and "1.75" in forecast and "30.0%" in forecast and "Holt-Winters" in forecast
    # Defaults: the last 30 days, by day, all categories, simulated data included.
    today = timezone.localdate()
    args, kwargs = calls["funnel"]
    assert args == (today - dt.timedelta(days=29), today)
    assert kwargs == {"category_id": None, "include_simulated": True}
    assert calls["trends"][1]["interval"] == "day"
    assert len(json_data(html, DATA_IDS["trends"])["labels"]) == 30
    assert calls["rfm_segments"][1]["include_simulated"] is True
    assert 'name="simulated" checked' in html or re.search(r'<input[^>]*name="simulated"[^>]*checked', html)


def test_filters_reach_every_analytics_function(staff_client, monkeypatch):
    calls = {}
    fake_analytics(monkeypatch, calls)
    parent = make_category("Home")
    child = make_category("Kettles", parent=parent)
    response = staff_client.get(URL, {"start": "2024-03-01", "end": "2024-03-02", "category": parent.pk,
                                      "applied": "1"})  # simulated checkbox left unticked
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<option value="{child.pk}">' in html and f'<option value="{parent.pk}" selected>' in html
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    assert calls["funnel"] == ((start, end), {"category_id": parent.pk, "include_simulated": False})
    assert calls["trends"][1] == {"interval": "hour", "category_id": parent.pk, "include_simulated": False}
    assert calls["trends_by_category"][1] == {"event_type": "product_viewed", "include_simulated": False,
                                              "interval": "hour"}
    assert calls["trending_products"][1]["category_id"] == parent.pk
    assert calls["trending_products"][1]["now"] == timezone.make_aware(dt.datetime(2024, 3, 3))
    assert calls["rfm_segments"][1] == {"as_of": end, "include_simulated": False}
    assert calls["forecast_daily_orders"][1] == {"category_id": parent.pk, "today": end, "include_simulated": False}
    assert len(json_data(html, DATA_IDS["trends"])["labels"]) == 48  # hour buckets for a short range
    # Views by category keep the chosen category's subtree only.
    assert [s["label"] for s in json_data(html, DATA_IDS["category-trends"])["series"]] == ["Kettles"]
    assert "real data only" in html


@pytest.mark.parametrize("params, message", [
    ({"start": "2024-02-30"}, "Enter a valid date"),
    ({"end": "yesterday"}, "Enter a valid date"),
    ({"start": "2024-05-10", "end": "2024-05-01"}, "on or before"),
    ({"start": "2023-01-01", "end": "2024-06-01"}, "at most 400 days"),
    ({"start": "0001-01-01", "end": "0001-01-02"}, "between 2000 and 2100"),
    ({"category": "not-a-category"}, "Select a valid choice"),
])
def test_bad_filters_give_400_with_a_message(staff_client, monkeypatch, params, message):
    calls = {}
    fake_analytics(monkeypatch, calls)
    response = staff_client.get(URL, params)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'id="bd-filter-errors"' in html
    assert calls == {}  # nothing computed for invalid filters
    assert 'id="bd-filters"' in html  # the form is still there to fix


def test_400_days_is_allowed(staff_client, monkeypatch):
    fake_analytics(monkeypatch, {})
    assert staff_client.get(URL, {"start": "2023-01-01", "end": "2024-02-04"}).status_code == 200


@pytest.mark.parametrize("who", ["anonymous", "shopper"])
def test_non_staff_are_sent_to_the_admin_login(client, monkeypatch, who):
    calls = {}
    fake_analytics(monkeypatch, calls)
    if who == "shopper":
        client.force_login(make_user())
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")
    assert calls == {}


def test_a_section_that_raises_shows_not_enough_data(staff_client, monkeypatch):
    fake_analytics(monkeypatch, {})

    def too_little(**kwargs):
        raise ValueError("need at least 28 days of orders")

    monkeypatch.setattr(analytics, "forecast_daily_orders", too_little)
    response = staff_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert NOT_ENOUGH in section(html, "forecast").lower()
    assert DATA_IDS["forecast"] not in html
    assert NOT_ENOUGH not in section(html, "funnel").lower()
    json_data(section(html, "funnel"), DATA_IDS["funnel"])


def test_fake_title_is_escaped_in_table_and_chart_data(staff_client, monkeypatch):
    product = make_product(title=XSS)
    fake_analytics(monkeypatch, {}, trending_title=XSS, trending_id=product.pk)
    html = staff_client.get(URL).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(html, "trending")
    assert json_data(html, DATA_IDS["trending"])["labels"] == [XSS]  # intact data, escaped transport
    assert f'href="/p/{product.slug}/"' in section(html, "trending")


# --- the admin ------------------------------------------------------------------------------


def test_dashboard_is_linked_from_the_admin_index_and_the_event_changelist(staff_client):
    assert f'href="{URL}"' in staff_client.get(reverse("admin:index")).content.decode()
    record_event("product_viewed", visitor_id="v1", product=make_product())
    response = staff_client.get(reverse("admin:behavior_event_changelist"))
    assert response.status_code == 200 and f'href="{URL}"' in response.content.decode()


def test_behaviour_admins_are_read_only(staff_client):
    product = make_product()
    user = make_user()
    event = record_event("product_viewed", visitor_id="v1", product=product)
    link = IdentityLink.objects.create(visitor_id="v1", user=user)
    aggregate = DailyAggregate.objects.create(day=dt.date(2024, 1, 1), level="all", event_type="product_viewed",
                                              events=3, visitors=2)
    rolled = RolledUpDay.objects.create(day=dt.date(2024, 1, 1), raw_events=3)
    for name, obj in [("event", event), ("identitylink", link), ("dailyaggregate", aggregate),
                      ("rolledupday", rolled)]:
        assert staff_client.get(reverse(f"admin:behavior_{name}_changelist")).status_code == 200
        assert staff_client.get(reverse(f"admin:behavior_{name}_add")).status_code == 403
        change = staff_client.get(reverse(f"admin:behavior_{name}_change", args=[obj.pk]))
        assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    event_url = reverse("admin:behavior_event_change", args=[event.pk])
    staff_client.post(event_url, {"event_type": "order_placed"})
    event.refresh_from_db()
    assert event.event_type == "product_viewed"
    assert staff_client.get(reverse("admin:behavior_event_delete", args=[event.pk])).status_code == 403
    # Deleting a shopper cascades to their identity links; the admin must still allow it.
    response = staff_client.post(reverse("admin:auth_user_delete", args=[user.pk]), {"post": "yes"})
    assert response.status_code == 302 and not get_user_model().objects.filter(pk=user.pk).exists()
    assert Event.objects.filter(pk=event.pk).exists()


def test_event_changelist_filters(staff_client):
    record_event("product_viewed", visitor_id="v1", product=make_product())
    html = staff_client.get(reverse("admin:behavior_event_changelist")).content.decode()
    for param in ("event_type__exact", "source__exact", "is_simulated__exact"):
        assert param in html
    assert "occurred_at__year" in html or "date-hierarchy" in html


# --- with the real analytics ----------------------------------------------------------------


def _shoppers(product, now, *, count: int, days_ago: float, event_type: str = "product_viewed",
              simulated: bool = False, prefix: str = "v"):
    for i in range(count):
        record_event(event_type, visitor_id=f"{prefix}{product.pk}-{i}", product=product,
                     occurred_at=now - dt.timedelta(days=days_ago, minutes=i), simulated=simulated)


@pytest.fixture
def catalogue():
    audio, kitchen = make_category("Audio"), make_category("Kitchen")
    return {"audio": audio, "kitchen": kitchen,
            "headphones": make_product(audio, title="Rising headphones"),
            "kettle": make_product(kitchen, title=XSS)}


def _spike(product, now):
    """A quiet baseline, then a burst of views in the last few days."""
    for week in range(1, 5):
        _shoppers(product, now, count=1, days_ago=7 * week + 2, prefix=f"base{week}-")
    _shoppers(product, now, count=30, days_ago=1, prefix="burst-")


def test_real_analytics_trending_respects_the_category_and_escapes_titles(staff_client, catalogue):
    now = timezone.now()
    _spike(catalogue["headphones"], now)
    _spike(catalogue["kettle"], now)
    html = staff_client.get(URL).content.decode()
    trending = section(html, "trending")
    assert "Rising headphones" in trending and "&lt;script&gt;alert(1)&lt;/script&gt;" in trending
    assert XSS not in html
    assert f'href="/p/{catalogue["headphones"].slug}/"' in trending

    html = staff_client.get(URL, {"category": catalogue["audio"].pk}).content.decode()
    trending = section(html, "trending")
    assert "Rising headphones" in trending
    assert "alert(1)" not in trending and "alert(1)" not in json.dumps(json_data(html, DATA_IDS["trending"]))


def test_real_analytics_funnel_counts_and_simulated_switch(staff_client, catalogue):
    now = timezone.now()
    product = catalogue["headphones"]
    for i, steps in enumerate([4, 3, 2, 1, 1, 1]):
        for j, event_type in enumerate(analytics.FUNNEL_STEPS[:steps]):
            record_event(event_type, visitor_id=f"shopper-{i}", product=product,
                         occurred_at=now - dt.timedelta(days=2, minutes=i) + dt.timedelta(seconds=10 * j),
                         simulated=True)
    html = staff_client.get(URL).content.decode()
    assert json_data(html, DATA_IDS["funnel"])["shoppers"] == [6, 3, 2, 1]
    assert NOT_ENOUGH not in section(html, "trends").lower()
    # Only simulated events: with simulated data excluded there is nothing to show.
    html = staff_client.get(URL, {"applied": "1"}).content.decode()
    assert NOT_ENOUGH in section(html, "funnel").lower()
    assert DATA_IDS["funnel"] not in html


def test_no_events_at_all_renders_not_enough_data_everywhere(staff_client):
    response = staff_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for key in HEADINGS:
        part = section(html, key)
        assert NOT_ENOUGH in part.lower(), key
        assert DATA_IDS[key] not in part


def test_real_analytics_forecast_and_segments_from_orders(staff_client):
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    shoppers = [make_user() for _ in range(6)]
    for days_ago in range(1, 43):
        for i in range(1 + (days_ago % 7 == 0) * 3 + days_ago % 2):
            record_event("order_placed", user=shoppers[(days_ago + i) % len(shoppers)],
                         properties={"order": f"AS{days_ago}-{i}", "total": "40.00"},
                         occurred_at=today - dt.timedelta(days=days_ago, minutes=i))
    html = staff_client.get(URL).content.decode()
    forecast = section(html, "forecast")
    assert NOT_ENOUGH not in forecast.lower()
    data = json_data(forecast, DATA_IDS["forecast"])
    assert len(data["labels"]) == len(data["history"]) == len(data["upper"]) and data["labels"]
    assert data["upper"][-1] >= data["lower"][-1] >= 0
    assert "Seasonal-naive MAE" in forecast
    rfm = json_data(section(html, "rfm"), DATA_IDS["rfm"])
    assert sum(rfm["customers"]) == len(shoppers)
    # A range ending before the first order: no history to forecast from.
    old = staff_client.get(URL, {"start": "2020-01-01", "end": "2020-01-31"}).content.decode()
    assert NOT_ENOUGH in section(old, "forecast").lower() and NOT_ENOUGH in section(old, "rfm").lower()
