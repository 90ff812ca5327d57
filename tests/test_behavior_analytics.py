"""behavior.analytics on hand-built events: funnel, trends, trending products, interests, RFM,
forecast, and the retention rollup (same answers before and after, idempotent, few queries)."""

import datetime as dt
import math
from types import SimpleNamespace

import pytest

from behavior import analytics
from behavior.models import DailyAggregate, Event, IdentityLink, RolledUpDay
from behavior.services import record_event
from config.celery import app as celery_app
from shop import services as shop_services
from shop.models import Cart

from .factories import GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def at(day: dt.date, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def ev(event_type: str, when: dt.datetime, *, user=None, visitor: str = "", product=None, category_id=None,
       products=None, total=None, simulated: bool = False, **properties) -> Event:
    if products is not None:
        properties["products"] = [p.pk for p in products]
    if total is not None:
        properties["total"] = str(total)
    return record_event(event_type, user=user, visitor_id=visitor, product=product, category_id=category_id,
                        properties=properties, occurred_at=when, simulated=simulated)


def totals(series: list[analytics.TrendSeries]) -> dict[str, list[int]]:
    return {s.key: [count for _moment, count in s.points] for s in series}


@pytest.fixture
def shop():
    audio = make_category("Audio")
    headphones = make_category("Headphones", parent=audio)
    speakers = make_category("Speakers", parent=audio)
    kitchen = make_category("Kitchen")
    kettles = make_category("Kettles", parent=kitchen)
    return SimpleNamespace(
        audio=audio, headphones=headphones, speakers=speakers, kitchen=kitchen, kettles=kettles,
        phone=make_product(headphones, title="Studio headphones"), buds=make_product(headphones, title="Earbuds"),
        speaker=make_product(speakers, title="Bluetooth speaker"), kettle=make_product(kettles, title="Kettle"),
    )


# --- funnel --------------------------------------------------------------------------------

D = dt.date(2024, 3, 4)


def test_funnel_counts_each_shopper_once_per_step(shop):
    ada = make_user()
    # Ada, signed in from two browsers on two days, goes all the way: one shopper at every step.
    ev("product_viewed", at(D, 9), user=ada, visitor="ada-laptop", product=shop.phone)
    ev("product_viewed", at(D + dt.timedelta(days=1), 9), user=ada, visitor="ada-phone", product=shop.buds)
    ev("added_to_cart", at(D, 9, 5), user=ada, visitor="ada-laptop", product=shop.phone)
    ev("added_to_cart", at(D, 9, 6), user=ada, visitor="ada-laptop", product=shop.phone)
    ev("checkout_started", at(D, 9, 10), user=ada, visitor="ada-laptop", products=[shop.phone])
    ev("order_placed", at(D, 9, 12), user=ada, visitor="ada-laptop", products=[shop.phone], total="59.98")
    # Two anonymous browsers: one adds to cart, one only looks.
    ev("product_viewed", at(D, 10), visitor="bob", product=shop.phone)
    ev("product_viewed", at(D, 10, 1), visitor="bob", product=shop.kettle)
    ev("added_to_cart", at(D, 10, 2), visitor="bob", product=shop.kettle)
    ev("product_viewed", at(D + dt.timedelta(days=2), 23, 59, 59), visitor="cy", product=shop.speaker)
    # Not counted: no shopper at all, and outside the (inclusive) range.
    ev("product_viewed", at(D, 11), product=shop.phone)
    ev("product_viewed", at(D - dt.timedelta(days=1), 23, 59, 59), visitor="early", product=shop.phone)
    ev("product_viewed", at(D + dt.timedelta(days=3), 0), visitor="late", product=shop.phone)

    steps = analytics.funnel(D, D + dt.timedelta(days=2))
    assert [(s.event_type, s.label, s.shoppers) for s in steps] == [
        ("product_viewed", "Viewed a product", 3), ("added_to_cart", "Added to cart", 2),
        ("checkout_started", "Started checkout", 1), ("order_placed", "Ordered", 1)]
    assert (steps[0].conversion_from_previous, steps[0].conversion_from_start) == (None, None)
    assert steps[1].conversion_from_previous == pytest.approx(2 / 3)
    assert steps[2].conversion_from_previous == pytest.approx(1 / 2)
    assert steps[3].conversion_from_previous == pytest.approx(1.0)
    assert steps[3].conversion_from_start == pytest.approx(1 / 3)
    # One day less: Cy is out.
    assert [s.shoppers for s in analytics.funnel(D, D + dt.timedelta(days=1))] == [2, 2, 1, 1]


def test_funnel_category_filter_includes_descendants_and_listed_products(shop):
    ada, bea = make_user(), make_user()
    ev("product_viewed", at(D, 9), user=ada, product=shop.phone)
    ev("product_viewed", at(D, 9, 1), user=ada, product=shop.buds)
    ev("listing_viewed", at(D, 9, 2), user=ada, category_id=shop.audio.pk)  # not a funnel step
    ev("checkout_started", at(D, 9, 5), user=ada, products=[shop.kettle, shop.speaker])
    ev("order_placed", at(D, 9, 7), user=ada, products=[shop.kettle], total="20.00")
    ev("product_viewed", at(D, 10), user=bea, product=shop.kettle)
    ev("added_to_cart", at(D, 10, 1), visitor="bea-browser", product=shop.speaker)
    ev("order_placed", at(D, 10, 3), user=bea, products=[shop.speaker], total="49.99")

    def shoppers(category):
        return [s.shoppers for s in analytics.funnel(D, D, category_id=category.pk)]

    # Audio is a parent: its leaves' events count; a checkout counts when it lists an audio product.
    assert shoppers(shop.audio) == [1, 1, 1, 1]
    assert shoppers(shop.headphones) == [1, 0, 0, 0]
    assert shoppers(shop.speakers) == [0, 1, 1, 1]
    assert shoppers(shop.kitchen) == [1, 0, 1, 1]
    assert shoppers(shop.kettles) == [1, 0, 1, 1]
    assert [s.shoppers for s in analytics.funnel(D, D)] == [2, 1, 1, 2]
    empty = analytics.funnel(D, D, category_id=make_category("Garden").pk)
    assert [(s.shoppers, s.conversion_from_previous, s.conversion_from_start) for s in empty] == [
        (0, None, None), (0, None, None), (0, None, None), (0, None, None)]


def test_funnel_reads_the_events_the_shop_itself_records(shop, django_capture_on_commit_callbacks):
    """Checkout and order events as the receivers write them (properties.products, .total)."""
    user = make_user()
    cart = Cart.objects.create(user=user)
    when = at(D, 15)
    shop_services.record_product_view(shop.speaker, user=user, visitor_id="vid-1", occurred_at=when)
    shop_services.add_to_cart(cart, shop.speaker, 2, user=user, visitor_id="vid-1", occurred_at=when)
    shop_services.record_checkout_start(cart, shop_services.cart_lines(cart), user=user, visitor_id="vid-1",
                                        occurred_at=when)
    with django_capture_on_commit_callbacks(execute=True):
        order = shop_services.place_order(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD,
                                          user=user, visitor_id="vid-1", occurred_at=when)
    assert [s.shoppers for s in analytics.funnel(D, D, category_id=shop.audio.pk)] == [1, 1, 1, 1]
    assert [s.shoppers for s in analytics.funnel(D, D, category_id=shop.kitchen.pk)] == [0, 0, 0, 0]
    rfm = analytics.rfm_segments(as_of=D)
    assert rfm.customers == 1 and list(rfm.scores) == [user.pk]
    segment = next(s for s in rfm.segments if s.name == rfm.scores[user.pk][3])
    assert segment.avg_monetary == pytest.approx(float(order.total)) and segment.avg_recency_days == 0


# --- trends --------------------------------------------------------------------------------


def test_trends_fill_every_day_and_hour_bucket(shop):
    ev("product_viewed", at(D, 10, 15), visitor="a", product=shop.phone)
    ev("product_viewed", at(D, 10, 45), visitor="b", product=shop.kettle)
    ev("product_viewed", at(D + dt.timedelta(days=2), 23, 59, 59), visitor="c", product=shop.phone)
    ev("product_viewed", at(D + dt.timedelta(days=3), 0), visitor="d", product=shop.phone)  # after the range
    ev("product_viewed", at(D - dt.timedelta(days=1), 23, 59), visitor="e", product=shop.phone)  # before it
    ev("added_to_cart", at(D, 11), visitor="a", product=shop.phone, simulated=True)
    ev("checkout_started", at(D, 12), visitor="a", products=[shop.speaker])

    series = analytics.trends(D, D + dt.timedelta(days=2), event_types=["product_viewed", "added_to_cart"])
    assert [s.key for s in series] == ["product_viewed", "added_to_cart"]
    assert [moment for moment, _n in series[0].points] == [at(D + dt.timedelta(days=i), 0) for i in range(3)]
    assert totals(series) == {"product_viewed": [2, 0, 1], "added_to_cart": [1, 0, 0]}
    real = analytics.trends(D, D + dt.timedelta(days=2), event_types=["added_to_cart"], include_simulated=False)
    assert totals(real) == {"added_to_cart": [0, 0, 0]}

    everything = analytics.trends(D, D + dt.timedelta(days=2))
    assert [s.key for s in everything] == list(Event.Type.values)
    assert totals(everything)["checkout_started"] == [1, 0, 0]

    hourly = analytics.trends(D, D + dt.timedelta(days=2), interval="hour", event_types=["product_viewed"])
    points = hourly[0].points
    assert len(points) == 72 and points[0][0] == at(D, 0) and points[-1][0] == at(D + dt.timedelta(days=2), 23)
    assert points[10][1] == 2 and points[71][1] == 1 and sum(n for _m, n in points) == 3

    # A category keeps its subtree's events; checkouts count by their listed products.
    audio = totals(analytics.trends(D, D + dt.timedelta(days=2), category_id=shop.audio.pk,
                                    event_types=["product_viewed", "checkout_started"]))
    assert audio == {"product_viewed": [1, 0, 1], "checkout_started": [1, 0, 0]}
    kitchen = totals(analytics.trends(D, D, category_id=shop.kitchen.pk, event_types=["product_viewed"]))
    assert kitchen == {"product_viewed": [1]}
    with pytest.raises(ValueError):
        analytics.trends(D, D, interval="week")


def test_trends_by_category_keys_series_by_name_busiest_first(shop):
    for minute in range(3):
        ev("product_viewed", at(D, 9, minute), visitor=f"v{minute}", product=shop.phone)
    ev("product_viewed", at(D + dt.timedelta(days=1), 9), visitor="k", product=shop.kettle)
    ev("product_viewed", at(D, 9), visitor="s", product=shop.speaker, simulated=True)
    ev("order_placed", at(D, 10), visitor="o1", products=[shop.phone, shop.kettle], total="70")
    ev("order_placed", at(D + dt.timedelta(days=1), 10), visitor="o2", products=[shop.phone, shop.buds],
       total="99")

    views = analytics.trends_by_category(D, D + dt.timedelta(days=1))
    assert totals(views) == {"Headphones": [3, 0], "Kettles": [0, 1], "Speakers": [1, 0]}
    assert [s.key for s in views] == ["Headphones", "Kettles", "Speakers"]
    assert views[0].points[1][0] == at(D + dt.timedelta(days=1), 0)
    real = analytics.trends_by_category(D, D + dt.timedelta(days=1), include_simulated=False)
    assert "Speakers" not in totals(real)
    # Orders count once per category they list (two headphones in one order: once).
    orders = analytics.trends_by_category(D, D + dt.timedelta(days=1), event_type="order_placed")
    assert totals(orders) == {"Headphones": [1, 1], "Kettles": [1, 0]}
    assert analytics.trends_by_category(D, D, event_type="searched") == []


# --- trending products ---------------------------------------------------------------------

NOW = at(dt.date(2024, 3, 10), 0)


def _views(product, count_per_day: int, days: range, prefix: str):
    Event.objects.bulk_create([
        Event(event_type="product_viewed", product=product, category_id=product.category_id,
              visitor_id=f"{prefix}-{k}-{i}", occurred_at=NOW - dt.timedelta(days=k) + dt.timedelta(minutes=i))
        for k in days for i in range(count_per_day)])


def test_trending_ranks_a_spike_above_a_popular_steady_product(shop):
    # Days 1-7 before NOW are the recent window, 8-35 the baseline (28 days).
    _views(shop.phone, 10, range(8, 36), "steady-base")      # popular and steady...
    _views(shop.phone, 12, range(1, 8), "steady-now")        # ... a little busier lately: 84 views
    _views(shop.speaker, 1, range(8, 36, 7), "spike-base")   # a view a week...
    _views(shop.speaker, 10, range(1, 3), "spike-now")       # ... then 20 in two days
    _views(shop.buds, 10, range(8, 36), "fading-base")       # busy before, quiet now: not trending
    _views(shop.buds, 2, range(1, 8), "fading-now")
    for i in range(2):  # orders weigh 5, listed in properties.products
        ev("order_placed", NOW - dt.timedelta(days=1, minutes=i), visitor=f"buyer{i}", products=[shop.kettle],
           total="20")

    ranked = analytics.trending_products(now=NOW)
    by_id = {item.product_id: item for item in ranked}
    assert ranked[0].product_id == shop.speaker.pk and ranked[0].title == "Bluetooth speaker"
    assert shop.buds.pk not in by_id
    spike, steady = by_id[shop.speaker.pk], by_id[shop.phone.pk]
    assert steady.recent_events > spike.recent_events  # more views, yet ranked lower: score, not volume
    assert spike.score > steady.score > 0
    assert [item.score for item in ranked] == sorted((item.score for item in ranked), reverse=True)
    assert spike.recent_events == 20
    assert spike.expected_events == pytest.approx((4 + analytics.TRENDING_PRIOR_EVENTS) / 28 * 7)
    assert spike.lift == pytest.approx(20 / spike.expected_events, rel=1e-3)
    mu = spike.expected_events
    assert spike.score == pytest.approx(math.sqrt(2 * (20 * math.log(20 / mu) - (20 - mu))), rel=1e-3)
    assert steady.expected_events == pytest.approx((280 + analytics.TRENDING_PRIOR_EVENTS) / 4)
    assert all(item.lift > 1 for item in ranked)
    assert by_id[shop.kettle.pk].recent_events == 10

    audio = analytics.trending_products(now=NOW, category_id=shop.audio.pk)
    assert {item.product_id for item in audio} == {shop.speaker.pk, shop.phone.pk}
    assert [item.product_id for item in analytics.trending_products(now=NOW, category_id=shop.kitchen.pk)] == [
        shop.kettle.pk]
    assert len(analytics.trending_products(now=NOW, limit=1)) == 1
    assert analytics.trending_products(now=NOW - dt.timedelta(days=40)) == []  # no history before then


# --- recent interests ----------------------------------------------------------------------


def test_recent_interests_decay_with_age_weigh_orders_and_follow_linked_browsers(shop):
    now = at(dt.date(2024, 3, 10), 12)
    user = make_user()
    IdentityLink.objects.create(visitor_id="browser-1", user=user)
    # Anonymous browsing on a browser later linked to the account counts; hh:30 = the hour's middle.
    ev("product_viewed", now - dt.timedelta(days=1, minutes=30), visitor="browser-1", product=shop.phone)
    ev("added_to_cart", now - dt.timedelta(days=3, minutes=30), user=user, visitor="browser-2", product=shop.speaker)
    ev("order_placed", now - dt.timedelta(days=2), user=user, visitor="browser-2", products=[shop.kettle],
       total="20")
    ev("searched", now - dt.timedelta(days=1), visitor="browser-1", query="Noise  Cancelling")
    ev("searched", now - dt.timedelta(days=5), user=user, query="noise cancelling")
    ev("searched", now - dt.timedelta(days=6), user=user, query="kettle")
    ev("product_viewed", now - dt.timedelta(days=40), user=user, product=shop.buds)  # too old
    ev("product_viewed", now - dt.timedelta(hours=2), visitor="stranger", product=shop.buds)  # someone else

    interests = analytics.recent_interests(user=user, now=now)
    decay = {"view": 0.5 ** ((1 + 0.5 / 24) / 7), "cart": 0.5 ** ((3 + 0.5 / 24) / 7), "order": 0.5 ** (2 / 7)}
    assert [pk for pk, _w in interests["products"]] == [shop.kettle.pk, shop.speaker.pk, shop.phone.pk]
    weights = dict(interests["products"])
    assert weights[shop.kettle.pk] == pytest.approx(5 * decay["order"], rel=1e-3)
    assert weights[shop.speaker.pk] == pytest.approx(3 * decay["cart"], rel=1e-3)
    assert weights[shop.phone.pk] == pytest.approx(decay["view"], rel=1e-3)
    assert dict(interests["categories"]) == pytest.approx({
        shop.kettles.pk: 5 * decay["order"], shop.speakers.pk: 3 * decay["cart"], shop.headphones.pk: decay["view"]},
        rel=1e-3)
    assert interests["queries"] == ["noise cancelling", "kettle"]

    # A shorter half-life favours the newest signal; one browser alone sees its own events only.
    fast = analytics.recent_interests(user=user, now=now, half_life_days=0.25)
    assert fast["products"][0][0] == shop.phone.pk
    assert analytics.recent_interests(visitor_id="browser-1", now=now) == {
        "categories": [(shop.headphones.pk, pytest.approx(decay["view"], rel=1e-3))],
        "products": [(shop.phone.pk, pytest.approx(decay["view"], rel=1e-3))], "queries": ["noise cancelling"]}
    assert analytics.recent_interests(now=now) == {"categories": [], "products": [], "queries": []}
    assert len(analytics.recent_interests(user=user, now=now, limit=1)["products"]) == 1


# --- RFM -----------------------------------------------------------------------------------

AS_OF = dt.date(2024, 6, 1)


def _purchases(customer, days_ago: int, count: int, amount: float):
    """`count` purchases, the last one `days_ago` days before AS_OF."""
    return [(customer, AS_OF - dt.timedelta(days=days_ago + 30 * i), amount) for i in range(count)]


def test_rfm_scores_quintiles_and_names_segments():
    purchases = (_purchases("champ", 0, 5, 100) + _purchases("newbie", 10, 1, 20) + _purchases("loyal", 50, 4, 60)
                 + _purchases("slipping", 100, 3, 40) + _purchases("gone", 300, 2, 15))
    result = analytics.rfm_from_purchases(purchases, as_of=AS_OF)
    assert result.customers == 5 and result.as_of == AS_OF
    assert result.scores == {
        "champ": (5, 5, 5, "Champions"), "newbie": (4, 1, 1, "New"), "loyal": (3, 4, 4, "Loyal"),
        "slipping": (2, 3, 3, "At risk"), "gone": (1, 2, 2, "Lost")}
    assert [s.name for s in result.segments] == analytics.SEGMENTS
    segments = {s.name: s for s in result.segments}
    assert segments["Champions"].customers == 1 and segments["Champions"].share == pytest.approx(0.2)
    assert segments["Champions"].avg_monetary == pytest.approx(500)
    assert segments["Loyal"].avg_recency_days == 50 and segments["Loyal"].avg_frequency == 4
    assert segments["Hibernating"].customers == 0
    assert sum(s.share for s in result.segments) == pytest.approx(1)


def test_rfm_ties_default_as_of_and_input_types():
    # Everyone bought once, yesterday: all recent one-timers ("New"), not "Lost".
    same = [(f"c{i}", dt.date(2024, 5, 31), 10) for i in range(10)]
    result = analytics.rfm_from_purchases(same)
    assert result.as_of == dt.date(2024, 6, 1)  # the day after the last purchase
    assert {score for score in result.scores.values()} == {(5, 1, 1, "New")}
    # One-time buyers share F=1 however many there are; datetimes and Decimals are accepted.
    mixed = [(i, dt.datetime(2024, 5, 1 + i % 20, 8, tzinfo=UTC), __import__("decimal").Decimal("9.50"))
             for i in range(20)] + [(0, dt.datetime(2024, 5, 25, tzinfo=UTC), 5)] * 3
    mixed_result = analytics.rfm_from_purchases(mixed, as_of=dt.date(2024, 5, 31))
    assert {s[1] for c, s in mixed_result.scores.items() if c != 0} == {1}
    assert mixed_result.scores[0][1] == 5
    # Purchases after as_of are ignored; no purchases at all is an empty result.
    assert analytics.rfm_from_purchases([("late", dt.date(2024, 7, 1), 5)], as_of=AS_OF).customers == 0
    assert analytics.rfm_from_purchases([]).customers == 0


def test_rfm_segments_from_order_events(shop):
    user = make_user()
    for days_ago, total in ((3, "10.00"), (40, "25.50"), (90, "4.50")):
        ev("order_placed", at(AS_OF - dt.timedelta(days=days_ago)), user=user, visitor="u-browser",
           products=[shop.phone], total=total)
    ev("order_placed", at(AS_OF - dt.timedelta(days=200)), visitor="guest", products=[shop.kettle], total="99.99",
       simulated=True)
    ev("order_placed", at(AS_OF + dt.timedelta(days=1)), user=user, products=[shop.phone], total="1000")  # later
    ev("order_placed", at(AS_OF - dt.timedelta(days=5)), products=[shop.phone], total="7")  # nobody to credit

    result = analytics.rfm_segments(as_of=AS_OF)
    assert result.customers == 2 and set(result.scores) == {user.pk, "visitor:guest"}
    # Two customers: the better one scores 4, the other 2 (ranks at 1/4 and 3/4 of the way).
    assert result.scores[user.pk] == (4, 4, 2, "Loyal")
    assert result.scores["visitor:guest"] == (2, 2, 4, "Hibernating")
    segments = {s.name: s for s in result.segments}
    assert segments["Loyal"].avg_monetary == pytest.approx(40.0)
    assert segments["Loyal"].avg_frequency == 3 and segments["Loyal"].avg_recency_days == 3
    assert segments["Hibernating"].avg_monetary == pytest.approx(99.99)
    assert segments["Hibernating"].avg_recency_days == 200
    real = analytics.rfm_segments(as_of=AS_OF, include_simulated=False)
    assert set(real.scores) == {user.pk}
    assert analytics.rfm_segments(as_of=AS_OF - dt.timedelta(days=100)).customers == 1


# --- forecast ------------------------------------------------------------------------------

WEEK = [3, 4, 4, 5, 7, 10, 9]
F0 = dt.date(2024, 1, 1)


def _daily_orders(days: int, product, *, growth: float = 0.1, category_product=None):
    rows = []
    for t in range(days):
        count = round(WEEK[t % 7] + growth * t)
        for i in range(count):
            listed = [category_product.pk] if category_product and i == 0 else [product.pk]
            rows.append(Event(event_type="order_placed", visitor_id=f"c{t}-{i}", occurred_at=at(F0 + dt.timedelta(
                days=t), 9, i), properties={"products": listed, "total": "10.00"}))
    Event.objects.bulk_create(rows)
    return [round(WEEK[t % 7] + growth * t) for t in range(days)]


def test_forecast_of_a_growing_weekly_series_beats_seasonal_naive(shop):
    counts = _daily_orders(70, shop.phone, category_product=shop.kettle)
    fc = analytics.forecast_daily_orders(today=F0 + dt.timedelta(days=69), history_days=80)
    assert fc.category_id is None and "Holt-Winters" in fc.method
    assert fc.history == [(F0 + dt.timedelta(days=t), float(n)) for t, n in enumerate(counts)]  # leading gap cut
    assert [day for day, *_ in fc.forecast] == [F0 + dt.timedelta(days=70 + i) for i in range(14)]
    assert all(0 <= lower <= mean <= upper for _day, mean, lower, upper in fc.forecast)
    # The weekly shape carries on: the Saturday peak stays above the Monday trough.
    by_weekday = {day.weekday(): mean for day, mean, _lo, _hi in fc.forecast[:7]}
    assert by_weekday[5] > by_weekday[0] + 3
    # The series grows by 0.7 a week, which "same weekday last week" always lags behind.
    assert fc.backtest_mae < fc.baseline_mae
    assert fc.backtest_mape is not None and 0 <= fc.backtest_mape < 0.5

    kitchen = analytics.forecast_daily_orders(category_id=shop.kitchen.pk, today=F0 + dt.timedelta(days=69))
    assert kitchen.category_id == shop.kitchen.pk and {value for _d, value in kitchen.history} == {1.0}


def test_forecast_with_too_little_data_raises_value_error(shop):
    with pytest.raises(ValueError):
        analytics.forecast_daily_orders(today=F0)
    _daily_orders(6, shop.phone)
    with pytest.raises(ValueError):
        analytics.forecast_daily_orders(today=F0 + dt.timedelta(days=6))


def test_backtest_and_seasonal_naive_on_an_exact_weekly_pattern():
    result = analytics.backtest(WEEK * 6, holdout=14)
    assert result.baseline_mae == 0 and result.baseline == [float(v) for v in WEEK * 2]
    assert result.mae < 0.5 and len(result.predicted) == 14
    short = analytics.backtest([1, 2, 3, 4, 5, 6, 7, 8], holdout=2)
    assert "Holt" in short.method and len(short.predicted) == 2
    with pytest.raises(ValueError):
        analytics.backtest([1, 2], holdout=2)


# --- rollup --------------------------------------------------------------------------------

TODAY = dt.date(2024, 3, 31)
OLD_DAYS = [dt.date(2024, 3, d) for d in range(1, 6)]
RECENT_DAYS = [dt.date(2024, 3, d) for d in range(25, 31)]
RANGE = (dt.date(2024, 3, 1), dt.date(2024, 3, 30))


def _day_of_shopping(shop, day: dt.date) -> int:
    """Three shoppers, each active on this day only (so per-day distinct = distinct over the range)."""
    tag = day.isoformat()
    user = make_user(f"u-{tag}")
    events = [
        # a signed-in shopper who buys headphones and a kettle
        ev("listing_viewed", at(day, 9), user=user, visitor=f"b0-{tag}", category_id=shop.audio.pk, page=1),
        ev("product_viewed", at(day, 9, 1), user=user, visitor=f"b0-{tag}", product=shop.phone),
        ev("added_to_cart", at(day, 9, 2), user=user, visitor=f"b0-{tag}", product=shop.phone),
        ev("checkout_started", at(day, 9, 3), user=user, visitor=f"b0-{tag}", products=[shop.phone, shop.kettle]),
        ev("order_placed", at(day, 9, 4), user=user, visitor=f"b0-{tag}", products=[shop.phone, shop.kettle],
           total="100.00"),
        # an anonymous browser who changes their mind
        ev("searched", at(day, 14), visitor=f"b1-{tag}", query="speaker"),
        ev("product_viewed", at(day, 14, 1), visitor=f"b1-{tag}", product=shop.speaker),
        ev("product_viewed", at(day, 14, 2), visitor=f"b1-{tag}", product=shop.kettle),
        ev("added_to_cart", at(day, 14, 3), visitor=f"b1-{tag}", product=shop.speaker),
        ev("removed_from_cart", at(day, 14, 4), visitor=f"b1-{tag}", product=shop.speaker),
        # a simulated shopper
        ev("product_viewed", at(day, 20), visitor=f"b2-{tag}", product=shop.phone, simulated=True),
        ev("added_to_cart", at(day, 20, 1), visitor=f"b2-{tag}", product=shop.phone, simulated=True),
        ev("checkout_started", at(day, 20, 2), visitor=f"b2-{tag}", products=[shop.phone], simulated=True),
        ev("order_placed", at(day, 20, 3), visitor=f"b2-{tag}", products=[shop.phone], total="50.00",
           simulated=True),
        ev("review_posted", at(day, 21), visitor=f"b2-{tag}", product=shop.phone, simulated=True, rating=5),
    ]
    return len(events)


def _everything(shop) -> dict:
    """Every read the dashboard makes, over a range that covers the rolled-up days."""
    start, end = RANGE
    now = at(TODAY, 0)
    results = {}
    for name, category in (("all", None), ("audio", shop.audio.pk), ("headphones", shop.headphones.pk),
                           ("kitchen", shop.kitchen.pk)):
        for simulated in (True, False):
            key = (name, simulated)
            results[("funnel", key)] = analytics.funnel(start, end, category_id=category, include_simulated=simulated)
            results[("trends", key)] = analytics.trends(start, end, category_id=category,
                                                        include_simulated=simulated)
        results[("trending", name)] = analytics.trending_products(now=now, recent_days=14, baseline_days=28,
                                                                  category_id=category)
        results[("forecast", name)] = analytics.forecast_daily_orders(category_id=category, today=TODAY,
                                                                      history_days=40)
    for event_type in ("product_viewed", "listing_viewed", "added_to_cart", "checkout_started", "order_placed"):
        for simulated in (True, False):
            results[("by category", event_type, simulated)] = analytics.trends_by_category(
                start, end, event_type=event_type, include_simulated=simulated)
    for simulated in (True, False):
        results[("rfm", simulated)] = analytics.rfm_segments(as_of=TODAY, include_simulated=simulated)
    return results


@pytest.fixture
def history(shop):
    counts = {day: _day_of_shopping(shop, day) for day in OLD_DAYS + RECENT_DAYS}
    return SimpleNamespace(shop=shop, counts=counts)


def test_rollup_gives_the_same_answers_and_keeps_orders(history):
    shop = history.shop
    before = _everything(shop)
    assert [s.shoppers for s in before[("funnel", ("all", True))]] == [33, 33, 22, 22]  # sanity: data is there
    hourly_before = analytics.trends(RECENT_DAYS[0], RECENT_DAYS[-1], interval="hour")

    result = analytics.rollup_events(older_than_days=10, today=TODAY)  # cutoff 2024-03-21
    assert (result.days, result.raw_events) == (5, 5 * 15)
    assert result.aggregate_rows == DailyAggregate.objects.count() > 0
    assert {r.day: r.raw_events for r in RolledUpDay.objects.all()} == {day: 15 for day in OLD_DAYS}
    old = Event.objects.filter(occurred_at__lt=at(dt.date(2024, 3, 6), 0))
    # Raw rows are gone but for checkouts and orders (the customer ledger, exact basket counts).
    assert set(old.values_list("event_type", flat=True)) == {"checkout_started", "order_placed"}
    assert old.count() == 5 * 4
    assert Event.objects.filter(occurred_at__gte=at(RECENT_DAYS[0], 0)).count() == 6 * 15

    after = _everything(shop)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key
    assert analytics.trends(RECENT_DAYS[0], RECENT_DAYS[-1], interval="hour") == hourly_before


def test_rollup_aggregates_at_three_levels_with_the_simulated_flag(history):
    shop = history.shop
    analytics.rollup_events(older_than_days=10, today=TODAY)
    day = OLD_DAYS[0]

    def agg(level, event_type, simulated, **where):
        rows = DailyAggregate.objects.filter(day=day, level=level, event_type=event_type, is_simulated=simulated,
                                             **where)
        return [(row.events, row.visitors) for row in rows]

    assert agg("all", "product_viewed", False) == [(3, 2)]  # two real shoppers, three views
    assert agg("all", "product_viewed", True) == [(1, 1)]
    assert agg("all", "review_posted", True) == [(1, 1)] and agg("all", "review_posted", False) == []
    assert agg("product", "product_viewed", False, product=shop.phone) == [(1, 1)]
    assert DailyAggregate.objects.get(day=day, level="product", event_type="product_viewed", is_simulated=False,
                                      product=shop.phone).category_id == shop.headphones.pk
    assert agg("category", "listing_viewed", False, category_id=shop.audio.pk, product__isnull=True) == [(1, 1)]
    # Checkouts and orders per listed product and per category of those products.
    assert agg("product", "order_placed", False, product=shop.kettle) == [(1, 1)]
    assert agg("product", "order_placed", True, product=shop.phone) == [(1, 1)]
    assert agg("category", "checkout_started", False, category_id=shop.kettles.pk) == [(1, 1)]
    assert agg("category", "checkout_started", True, category_id=shop.headphones.pk) == [(1, 1)]
    assert not DailyAggregate.objects.filter(level="product", product__isnull=True).exists()
    assert not DailyAggregate.objects.filter(level="category", category_id__isnull=True).exists()
    assert not DailyAggregate.objects.filter(level="all").exclude(product=None, category_id=None).exists()


def test_rollup_is_idempotent_and_rolls_only_new_days(history):
    first = analytics.rollup_events(older_than_days=10, today=TODAY)
    rows = list(DailyAggregate.objects.order_by("pk").values())
    again = analytics.rollup_events(older_than_days=10, today=TODAY)
    assert (again.days, again.raw_events, again.aggregate_rows) == (0, 0, 0)
    assert list(DailyAggregate.objects.order_by("pk").values()) == rows
    assert first.days == 5 and RolledUpDay.objects.count() == 5
    # A week later the recent days are old too: only they are rolled.
    later = analytics.rollup_events(older_than_days=1, today=dt.date(2024, 4, 7))
    assert later.days == 6 and RolledUpDay.objects.count() == 11
    assert set(Event.objects.values_list("event_type", flat=True)) == {"checkout_started", "order_placed"}
    with pytest.raises(ValueError):
        analytics.rollup_events(older_than_days=0)


def test_rolled_days_have_no_hours_and_funnels_count_shopper_days(shop):
    """The documented differences: hourly buckets of rolled days, and cross-day de-duplication."""
    day1, day2 = OLD_DAYS[0], OLD_DAYS[1]
    ev("product_viewed", at(day1, 10), visitor="regular", product=shop.phone)
    ev("product_viewed", at(day2, 10), visitor="regular", product=shop.phone)
    assert analytics.funnel(day1, day2)[0].shoppers == 1
    assert sum(n for _m, n in analytics.trends(day1, day2, interval="hour")[0].points) == 2
    analytics.rollup_events(older_than_days=10, today=TODAY)
    assert analytics.funnel(day1, day2)[0].shoppers == 2  # one shopper on each of two days
    assert analytics.funnel(day1, day1)[0].shoppers == 1
    assert sum(n for _m, n in analytics.trends(day1, day2, interval="hour")[0].points) == 0
    assert totals(analytics.trends(day1, day2, event_types=["product_viewed"])) == {"product_viewed": [1, 1]}


def test_rollup_task_is_registered_under_the_beat_schedule_name(shop):
    from behavior import tasks

    assert "behavior.tasks.rollup_old_events" in celery_app.tasks
    assert celery_app.conf.beat_schedule["behavior-rollup-old-events"]["task"] == tasks.rollup_old_events.name
    from django.utils import timezone

    ev("product_viewed", timezone.now() - dt.timedelta(days=120), visitor="old", product=shop.phone)
    ev("product_viewed", timezone.now() - dt.timedelta(days=1), visitor="new", product=shop.phone)
    assert tasks.rollup_old_events.delay().get() == {"days": 1, "raw_events": 1, "aggregate_rows": 3}
    assert Event.objects.get().visitor_id == "new"


# --- queries: SQL aggregates, not per-row work ---------------------------------------------


@pytest.fixture
def busy_shop(shop):
    """30 products, 60 shoppers over 20 days; the first 10 days rolled up."""
    leaves = [shop.headphones, shop.speakers, shop.kettles]
    products = [make_product(leaves[i % 3], title=f"Item {i}") for i in range(30)]
    rows = []
    for s in range(60):
        day = dt.date(2024, 3, 1) + dt.timedelta(days=s % 20)
        for i in range(5):
            product = products[(s * 7 + i) % 30]
            rows.append(Event(event_type="product_viewed", visitor_id=f"s{s}", product=product,
                              category_id=product.category_id, occurred_at=at(day, 10, i), is_simulated=s % 2 == 0))
        rows.append(Event(event_type="added_to_cart", visitor_id=f"s{s}", product=product,
                          category_id=product.category_id, occurred_at=at(day, 11)))
        listed = [products[(s * 7 + i) % 30].pk for i in range(3)]
        rows.append(Event(event_type="checkout_started", visitor_id=f"s{s}", occurred_at=at(day, 12),
                          properties={"products": listed}))
        rows.append(Event(event_type="order_placed", visitor_id=f"s{s}", occurred_at=at(day, 12, 5),
                          properties={"products": listed, "total": "75.00"}))
        rows.append(Event(event_type="searched", visitor_id=f"s{s}", occurred_at=at(day, 9),
                          properties={"query": f"thing {s % 4}"}))
    Event.objects.bulk_create(rows)
    analytics.rollup_events(older_than_days=20, today=dt.date(2024, 3, 31))  # rolls March 1-10
    assert RolledUpDay.objects.count() == 10
    return SimpleNamespace(shop=shop, products=products)


def test_dashboard_reads_run_a_fixed_handful_of_queries(busy_shop, django_assert_max_num_queries):
    shop = busy_shop.shop
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 20)
    with django_assert_max_num_queries(3):
        steps = analytics.funnel(start, end)
    assert steps[0].shoppers == 60 and steps[3].shoppers == 60
    with django_assert_max_num_queries(5):
        analytics.funnel(start, end, category_id=shop.audio.pk)
    with django_assert_max_num_queries(3):
        series = analytics.trends(start, end)
    assert sum(n for s in series for _m, n in s.points) == 60 * 9
    with django_assert_max_num_queries(5):
        analytics.trends(start, end, category_id=shop.audio.pk)
    with django_assert_max_num_queries(4):
        assert len(analytics.trends_by_category(start, end)) == 3
    with django_assert_max_num_queries(6):
        analytics.trends_by_category(start, end, event_type="order_placed")
    with django_assert_max_num_queries(8):
        analytics.trending_products(now=at(dt.date(2024, 3, 21), 0))
    with django_assert_max_num_queries(10):
        analytics.trending_products(now=at(dt.date(2024, 3, 21), 0), category_id=shop.audio.pk)
    with django_assert_max_num_queries(1):
        assert analytics.rfm_segments(as_of=end).customers == 60
    with django_assert_max_num_queries(4):
        analytics.forecast_daily_orders(today=dt.date(2024, 3, 21), history_days=30)
    with django_assert_max_num_queries(4):
        assert analytics.recent_interests(visitor_id="s59", now=at(dt.date(2024, 3, 21), 0))["queries"] == [
            "thing 3"]


def test_rollup_runs_a_fixed_number_of_queries_per_day(busy_shop, django_assert_max_num_queries):
    with django_assert_max_num_queries(3 + 5 * 16):
        result = analytics.rollup_events(older_than_days=15, today=dt.date(2024, 3, 31))  # March 11-15
    assert result.days == 5


def test_no_events_at_all():
    today = dt.date(2024, 3, 1)
    assert [s.shoppers for s in analytics.funnel(today, today)] == [0, 0, 0, 0]
    assert all(n == 0 for s in analytics.trends(today, today) for _m, n in s.points)
    assert analytics.trends_by_category(today, today) == []
    assert analytics.trending_products(now=at(today, 0)) == []
    assert analytics.rfm_segments(as_of=today).customers == 0
    with pytest.raises(ValueError):
        analytics.forecast_daily_orders(today=today)
    assert analytics.rollup_events(today=today) == analytics.RollupResult(0, 0, 0)
