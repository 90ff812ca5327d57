"""Analytics over shopper events: plain functions, reusable by other apps and the dashboard.

Every read covers both raw `Event` rows and days already rolled into `DailyAggregate`
(retention), so results do not change when old events are rolled up.

How the two sources are combined
--------------------------------
A day listed in `RolledUpDay` is read from `DailyAggregate` only; every other day from raw
`Event` rows only (one small query for the rolled days in the range, then the raw side is
restricted to the stretches of time between them, which keeps the occurred_at indexes usable).

Checkouts and orders ("basket" events, about 5-10 % of all rows) are the exception: the
rollup aggregates them like every other type but does *not* delete them. Orders are the
customer ledger that RFM (per customer) and recent interests (per shopper) need, which no
daily aggregate can hold; and both list their products in properties.products, so a count
for a parent category ("checkouts holding any audio product") cannot be summed exactly from
per-leaf aggregates. Every read but the funnel takes them from the raw rows, for every day.

What can differ after a rollup (documented trade-offs; everything else is identical, tested):
* funnel: on rolled days a shopper is counted once per *day* (aggregates keep distinct
  visitors per day), so a shopper active on several rolled days counts several times in a
  range; with a parent-category filter also once per leaf category. Every step, checkouts and
  orders included, counts that way on rolled days, so that the conversions compare like with
  like.
* per-hour trends: rolled days have no hours; their buckets read 0.
* trending products: windows that start mid-day include a rolled day whole (the dashboard's
  windows start at midnight or at "now", which is never on a rolled day).
* recent interests read the shopper's raw events only: on rolled days (older than the 90-day
  retention, beyond its 30-day window) only their checkouts and orders remain.
* shopper keys on rolled days are split by the simulated flag, so a shopper with both kinds
  of events on one day counts once in each (does not happen with the demo simulator).

Shopper = the signed-in user, else the browser's visitor id (events with neither are not
counted as shoppers). Days are UTC days; `start`/`end` are inclusive.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Concat, TruncDate, TruncDay, TruncHour
from django.utils import timezone

from shop import services as shop_services

from . import services
from .models import DailyAggregate, Event, RolledUpDay

# The funnel's steps, in order.
FUNNEL_STEPS = ["product_viewed", "added_to_cart", "checkout_started", "order_placed"]

UTC = dt.UTC

STEP_LABELS = {
    "product_viewed": "Viewed a product",
    "added_to_cart": "Added to cart",
    "checkout_started": "Started checkout",
    "order_placed": "Ordered",
}
# Events whose products are listed in properties.products instead of the product column.
BASKET_TYPES = (Event.Type.CHECKOUT_STARTED.value, Event.Type.ORDER_PLACED.value)
# Kept as raw rows by the rollup (see the module docstring) and always read raw.
KEPT_TYPES = BASKET_TYPES
# Trending: weighted interactions per product.
TRENDING_WEIGHTS = {"product_viewed": 1, "added_to_cart": 3, "order_placed": 5}
# A product with no baseline behaves as if it had this many weighted events in the baseline
# window: new products need a real burst to trend, not two views.
TRENDING_PRIOR_EVENTS = 1.0
# Recent interests: how much each kind of action says about what a shopper wants.
INTEREST_WEIGHTS = {
    "listing_viewed": 0.5, "product_viewed": 1.0, "rec_clicked": 1.0, "review_posted": 2.0,
    "added_to_cart": 3.0, "checkout_started": 4.0, "order_placed": 5.0,
}
INTEREST_MAX_ROWS = 1000  # per-shopper cap on basket and search rows read (bots, load tests)

# RFM: segments by recency score (rows, 5 = most recent) and frequency score (columns 1..5),
# the usual R x F grid folded into eight named segments.
SEGMENTS = ["Champions", "Loyal", "Potential loyalist", "New", "At risk", "Can't lose them", "Hibernating", "Lost"]
SEGMENT_GRID = {
    5: ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
    4: ["New", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    3: ["Hibernating", "Hibernating", "Potential loyalist", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"],
    1: ["Lost", "Lost", "At risk", "At risk", "Can't lose them"],
}

SEASON = 7  # days: the weekly shopping rhythm
MIN_FORECAST_DAYS = 10
INTERVAL_Z = 1.96  # ~95 % interval from the back-test residuals


@dataclass
class FunnelStep:
    event_type: str
    label: str
    shoppers: int            # distinct shoppers (user, else visitor id) who did this step in the range
    conversion_from_previous: float | None  # shoppers / previous step's shoppers (None for the first)
    conversion_from_start: float | None


@dataclass
class TrendSeries:
    key: str                 # event type, or category name when grouped by category
    points: list[tuple[dt.datetime, int]]  # (bucket start, count), every bucket present (zeros filled)


@dataclass
class TrendingProduct:
    product_id: int
    title: str
    recent_events: int       # weighted interactions in the recent window
    expected_events: float   # what the baseline rate predicts for the recent window
    lift: float              # recent / expected
    score: float             # significance (e.g. Poisson z-score / log-likelihood ratio), not a raw count


@dataclass
class Segment:
    name: str                # e.g. "Champions", "Loyal", "At risk", "Hibernating", "New", ...
    customers: int
    share: float
    avg_recency_days: float
    avg_frequency: float
    avg_monetary: float


@dataclass
class RfmResult:
    as_of: dt.date
    customers: int
    segments: list[Segment]
    # customer id -> (recency_score, frequency_score, monetary_score, segment name)
    scores: dict = field(default_factory=dict)


@dataclass
class Forecast:
    category_id: int | None
    history: list[tuple[dt.date, float]]
    forecast: list[tuple[dt.date, float, float, float]]  # (day, mean, lower, upper)
    backtest_mae: float
    backtest_mape: float | None
    baseline_mae: float      # seasonal-naive (same weekday last week) on the same back-test window
    method: str              # e.g. "Holt-Winters (additive, weekly)"


@dataclass
class RollupResult:
    days: int
    raw_events: int
    aggregate_rows: int


# --- shared helpers ------------------------------------------------------------------------


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


def _day_range(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) in UTC: the inclusive date range as a half-open time range."""
    return _midnight(start), _midnight(end + dt.timedelta(days=1))


def _utc_today() -> dt.date:
    return timezone.now().astimezone(UTC).date()


def _as_utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment.astimezone(UTC)


def _shopper_expr() -> Case:
    """The shopper key in the ORM: 'u<user id>' if signed in, else 'v<visitor id>', else NULL."""
    return Case(
        When(user__isnull=False, then=Concat(Value("u"), Cast("user_id", CharField()))),
        When(~Q(visitor_id=""), then=Concat(Value("v"), F("visitor_id"))),
        default=Value(None), output_field=CharField(),
    )


@dataclass
class _Split:
    """A time range cut into raw stretches and rolled-up days."""

    start_at: dt.datetime
    end_at: dt.datetime
    rolled_days: list[dt.date]
    raw_ranges: list[tuple[dt.datetime, dt.datetime]]

    def raw_q(self, event_types: Iterable[str], *, raw_always: Iterable[str] = KEPT_TYPES) -> Q:
        """Raw rows of these types to read: `raw_always` types (kept by the rollup) over the whole
        range, the others between rolled days."""
        types = list(event_types)
        kept = [t for t in types if t in raw_always]
        rolled = [t for t in types if t not in raw_always]
        whole = Q(occurred_at__gte=self.start_at, occurred_at__lt=self.end_at)
        if not self.rolled_days:  # the common case: one plain range, one index range scan
            return Q(event_type__in=types) & whole
        q = Q(pk__in=[])
        if rolled and self.raw_ranges:
            stretches = Q(pk__in=[])
            for low, high in self.raw_ranges:
                stretches |= Q(occurred_at__gte=low, occurred_at__lt=high)
            q |= Q(event_type__in=rolled) & stretches
        if kept:
            q |= Q(event_type__in=kept) & whole
        return q

    def rolled_types(self, event_types: Iterable[str], *, raw_always: Iterable[str] = KEPT_TYPES) -> list[str]:
        return [t for t in event_types if t not in raw_always] if self.rolled_days else []


def _split(start_at: dt.datetime, end_at: dt.datetime) -> _Split:
    first_day = start_at.astimezone(UTC).date()
    last_day = (end_at - dt.timedelta(microseconds=1)).astimezone(UTC).date()
    rolled = sorted(RolledUpDay.objects.filter(day__gte=first_day, day__lte=last_day)
                    .values_list("day", flat=True))
    ranges, cursor = [], start_at
    for day in rolled:
        low, high = _midnight(day), _midnight(day + dt.timedelta(days=1))
        if low > cursor:
            ranges.append((cursor, min(low, end_at)))
        cursor = max(cursor, high)
    if cursor < end_at:
        ranges.append((cursor, end_at))
    return _Split(start_at, end_at, rolled, ranges)


@dataclass
class _Scope:
    """A category filter: the category with its descendants, and the (active) products in them."""

    category_ids: list[int]
    product_ids: list[int]

    def event_q(self) -> Q:
        """Events of the scope: by the category column, or for checkouts and orders, by a listed product."""
        q = Q(category_id__in=self.category_ids)
        if self.product_ids:
            q |= Q(event_type__in=BASKET_TYPES) & Q(_basket_overlap(self.product_ids))
        return q


class _Categories:
    """The category tree from shop.services (one query)."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.parents: dict[int, int | None] = {}
        self.children: dict[int, list[int]] = defaultdict(list)
        self._name_counts: dict[str, int] = defaultdict(int)
        stack = list(shop_services.category_tree())
        while stack:
            category = stack.pop()
            self.names[category.pk] = category.name
            self._name_counts[category.name] += 1
            self.parents[category.pk] = category.parent_id
            for child in getattr(category, "subcategories", []):
                self.children[category.pk].append(child.pk)
                stack.append(child)

    def subtree(self, category_id: int) -> list[int]:
        ids, frontier = [category_id], [category_id]
        while frontier:
            frontier = [child for parent in frontier for child in self.children.get(parent, [])]
            ids.extend(frontier)
        return ids

    def label(self, category_id: int) -> str:
        name = self.names.get(category_id)
        if name is None:
            return f"Category {category_id}"
        if self._name_counts[name] > 1:  # disambiguate repeated names
            parent = self.names.get(self.parents.get(category_id) or -1)
            return f"{name} ({parent})" if parent else f"{name} (#{category_id})"
        return name


def _scope(category_id: int | None) -> _Scope | None:
    if category_id is None:
        return None
    category_ids = _Categories().subtree(category_id)
    product_ids = list(shop_services.active_products().filter(category_id__in=category_ids)
                       .order_by().values_list("pk", flat=True))
    return _Scope(category_ids, product_ids)


# --- vendor SQL for products listed in properties.products ----------------------------------


def _pg() -> bool:
    if connection.vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"behavior.analytics supports PostgreSQL and SQLite, not {connection.vendor}")
    return connection.vendor == "postgresql"


def _basket_overlap(product_ids: list[int]) -> RawSQL:
    """True when the event's properties.products lists one of these products (one JSON parameter)."""
    wanted = json.dumps([str(pk) for pk in product_ids])
    if _pg():
        sql = ("EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof("
               "\"behavior_event\".\"properties\" -> 'products') = 'array' THEN \"behavior_event\".\"properties\" "
               "-> 'products' ELSE '[]'::jsonb END) AS x(pid) "
               "WHERE x.pid IN (SELECT jsonb_array_elements_text(%s::jsonb)))")
    else:
        sql = ("EXISTS (SELECT 1 FROM json_each(\"behavior_event\".\"properties\", '$.products') AS x "
               "WHERE json_type(\"behavior_event\".\"properties\", '$.products') = 'array' "
               "AND CAST(x.value AS TEXT) IN (SELECT CAST(value AS TEXT) FROM json_each(%s)))")
    return RawSQL(sql, [wanted], output_field=BooleanField())


def _shopper_sql(alias: str = "e") -> str:
    return (f"CASE WHEN {alias}.user_id IS NOT NULL THEN 'u' || CAST({alias}.user_id AS VARCHAR(20)) "
            f"WHEN {alias}.visitor_id <> '' THEN 'v' || {alias}.visitor_id END")


def _dt_param(moment: dt.datetime):
    return connection.ops.adapt_datetimefield_value(moment)


def _basket_rows_sql(where: str) -> str:
    """One row per (checkout/order event, product): products from properties.products (src 0),
    plus the product column when set (src 1, events recorded by hand). Columns: id, event_type,
    occurred_at, is_simulated, shopper, product_id, col_category, src. `where` (on alias e)
    appears twice: pass its parameters twice."""
    if _pg():
        explode = ("CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.properties -> 'products')"
                   " = 'array' THEN e.properties -> 'products' ELSE '[]'::jsonb END) AS x(pid)")
        pid, guard = "CAST(x.pid AS BIGINT)", ""
    else:
        explode = "JOIN json_each(e.properties, '$.products') AS x"
        pid, guard = "CAST(x.value AS BIGINT)", " AND json_type(e.properties, '$.products') = 'array'"
    types = ", ".join(f"'{t}'" for t in BASKET_TYPES)
    common = f"e.id, e.event_type, e.occurred_at, e.is_simulated, {_shopper_sql('e')} AS shopper"
    return (f"SELECT {common}, {pid} AS product_id, CAST(NULL AS INTEGER) AS col_category, 0 AS src "
            f"FROM behavior_event e {explode} WHERE ({where}){guard} AND e.event_type IN ({types}) "
            f"UNION SELECT {common}, e.product_id, e.category_id, 1 FROM behavior_event e "
            f"WHERE ({where}) AND e.event_type IN ({types}) AND e.product_id IS NOT NULL")


def _mapping_join(alias: str = "b") -> tuple[str, str]:
    """(LEFT JOIN of a {product id: category id} JSON parameter, the mapped category expression)."""
    if _pg():
        return (f"LEFT JOIN jsonb_each_text(%s::jsonb) AS m(k, v) ON m.k = CAST({alias}.product_id AS TEXT)",
                "CAST(m.v AS INTEGER)")
    return (f"LEFT JOIN json_each(%s) AS m ON m.key = CAST({alias}.product_id AS TEXT)",
            "CAST(m.value AS INTEGER)")


def _bucket_sql(interval: str, column: str) -> str:
    if _pg():
        return f"date_trunc('{interval}', {column} AT TIME ZONE 'UTC')"
    # '%%': the statement runs with parameters.
    return f"strftime('{'%%Y-%%m-%%d 00:00:00' if interval == 'day' else '%%Y-%%m-%%d %%H:00:00'}', {column})"


def _parse_bucket(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return _midnight(value)
    return _as_utc(value)


def _category_map(product_ids: Iterable[int]) -> dict[int, int]:
    """Current category of each (active) product, through shop.services."""
    ids = sorted({pk for pk in product_ids if pk is not None})
    return {product.pk: product.category_id for product in shop_services.get_products(ids)} if ids else {}


def _time_where(ranges: list[tuple[dt.datetime, dt.datetime]]) -> tuple[str, list]:
    parts, params = [], []
    for low, high in ranges:
        parts.append("(e.occurred_at >= %s AND e.occurred_at < %s)")
        params += [_dt_param(low), _dt_param(high)]
    return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), params


# --- funnel --------------------------------------------------------------------------------


def funnel(start: dt.date, end: dt.date, *, category_id: int | None = None,
           include_simulated: bool = True) -> list[FunnelStep]:
    """Distinct shoppers per funnel step in [start, end] (UTC days, inclusive).

    With a category (its descendants included), views and cart adds count when the event's
    product is in it, checkouts and orders when one of their listed products is. A shopper is
    counted at each step they reached in the range, whether or not they did the previous one.
    Rolled-up days add their per-day distinct visitors (see the module docstring).
    """
    start_at, end_at = _day_range(start, end)
    split = _split(start_at, end_at)
    scope = _scope(category_id)
    # Checkouts and orders too are read from the aggregates on rolled days, though their rows are kept:
    # every step must count the same way (shopper-days there) for the conversions to mean anything.
    raw = Event.objects.filter(split.raw_q(FUNNEL_STEPS, raw_always=()))
    if not include_simulated:
        raw = raw.filter(is_simulated=False)
    if scope is not None:
        raw = raw.filter(scope.event_q())
    counts: dict[str, int] = defaultdict(int)
    for event_type, shoppers in _distinct_shoppers(raw):
        counts[event_type] += shoppers
    rolled_types = split.rolled_types(FUNNEL_STEPS, raw_always=())
    if rolled_types:
        aggregates = _aggregates(split.rolled_days, rolled_types, scope, include_simulated)
        for event_type, visitors in (aggregates.order_by().values("event_type")
                                     .annotate(n=Sum("visitors")).values_list("event_type", "n")):
            counts[event_type] += visitors or 0
    steps, first, previous = [], None, None
    for event_type in FUNNEL_STEPS:
        shoppers = counts.get(event_type, 0)
        if first is None:
            steps.append(FunnelStep(event_type, STEP_LABELS[event_type], shoppers, None, None))
            first = shoppers
        else:
            steps.append(FunnelStep(event_type, STEP_LABELS[event_type], shoppers,
                                    shoppers / previous if previous else None, shoppers / first if first else None))
        previous = shoppers
    return steps


def _distinct_shoppers(events) -> list[tuple[str, int]]:
    """(event type, distinct shoppers) in one query: SELECT DISTINCT (type, user, anonymous
    visitor) in a subquery, counted outside. PostgreSQL hashes the distinct pairs, which is
    about 40 % faster on a million rows than COUNT(DISTINCT <shopper key>) per group (a sort per
    group of concatenated strings)."""
    pairs = (events.filter(Q(user__isnull=False) | ~Q(visitor_id="")).order_by()
             .values("event_type", "user_id", anonymous=Case(When(user__isnull=True, then=F("visitor_id")),
                                                             default=Value(None), output_field=CharField()))
             .distinct())
    try:
        sql, params = pairs.query.sql_with_params()
    except EmptyResultSet:  # e.g. only rolled-up days in the range
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pairs.event_type, COUNT(*) FROM ({sql}) AS pairs GROUP BY pairs.event_type", params)
        return cursor.fetchall()


def _aggregates(days: list[dt.date], event_types: list[str], scope: _Scope | None, include_simulated: bool):
    """Aggregate rows of rolled-up days: whole-shop rows, or category rows of the scope."""
    rows = DailyAggregate.objects.filter(day__in=days, event_type__in=event_types)
    if scope is None:
        rows = rows.filter(level=DailyAggregate.Level.ALL)
    else:
        rows = rows.filter(level=DailyAggregate.Level.CATEGORY, category_id__in=scope.category_ids)
    if not include_simulated:
        rows = rows.filter(is_simulated=False)
    return rows


# --- trends --------------------------------------------------------------------------------


def _buckets(start: dt.date, end: dt.date, interval: str) -> list[dt.datetime]:
    if interval not in ("day", "hour"):
        raise ValueError("interval must be 'day' or 'hour'")
    if end < start:
        raise ValueError("end must be on or after start")
    start_at, end_at = _day_range(start, end)
    step = dt.timedelta(days=1) if interval == "day" else dt.timedelta(hours=1)
    count = int((end_at - start_at) / step)
    return [start_at + i * step for i in range(count)]


def _trunc(interval: str):
    return (TruncDay if interval == "day" else TruncHour)("occurred_at", tzinfo=UTC)


def _type_counts(event_types: list[str], start: dt.date, end: dt.date, interval: str, scope: _Scope | None,
                 include_simulated: bool) -> dict[tuple[str, dt.datetime], int]:
    """(event type, bucket start) -> events, counted in SQL, raw and rolled-up days together."""
    start_at, end_at = _day_range(start, end)
    split = _split(start_at, end_at)
    raw = Event.objects.filter(split.raw_q(event_types))
    if not include_simulated:
        raw = raw.filter(is_simulated=False)
    if scope is not None:
        raw = raw.filter(scope.event_q())
    counts: dict[tuple[str, dt.datetime], int] = defaultdict(int)
    for event_type, bucket, n in (raw.order_by().annotate(bucket=_trunc(interval)).values("event_type", "bucket")
                                  .annotate(n=Count("pk")).values_list("event_type", "bucket", "n")):
        counts[(event_type, _as_utc(bucket))] += n
    rolled_types = split.rolled_types(event_types)
    if rolled_types and interval == "day":  # rolled days have no hours: hourly buckets stay 0
        rows = _aggregates(split.rolled_days, rolled_types, scope, include_simulated)
        for event_type, day, n in (rows.order_by().values("event_type", "day").annotate(n=Sum("events"))
                                   .values_list("event_type", "day", "n")):
            counts[(event_type, _midnight(day))] += n or 0
    return counts


def trends(start: dt.date, end: dt.date, *, interval: str = "day", event_types: list[str] | None = None,
           category_id: int | None = None, include_simulated: bool = True) -> list[TrendSeries]:
    """Events per day (or hour) and type in [start, end], one series per type, zeros filled.

    Counted in the database (TruncDay/TruncHour + COUNT, SUM over aggregates). Per-hour
    buckets exist for raw days only; a rolled-up day's hours read 0.
    """
    buckets = _buckets(start, end, interval)
    types = list(event_types) if event_types else list(Event.Type.values)
    counts = _type_counts(types, start, end, interval, _scope(category_id), include_simulated)
    return [TrendSeries(event_type, [(bucket, counts.get((event_type, bucket), 0)) for bucket in buckets])
            for event_type in types]


def trends_by_category(start: dt.date, end: dt.date, *, event_type: str = "product_viewed",
                       include_simulated: bool = True, interval: str = "day") -> list[TrendSeries]:
    """Events of one type per category (the category an event was recorded under, or for
    checkouts/orders the current category of each listed product) per day, zeros filled;
    one series per category with events, keyed by category name, busiest first."""
    buckets = _buckets(start, end, interval)
    start_at, end_at = _day_range(start, end)
    split = _split(start_at, end_at)
    counts: dict[tuple[int, dt.datetime], int] = defaultdict(int)
    raw_ranges = [(start_at, end_at)] if event_type in KEPT_TYPES else split.raw_ranges
    if event_type in BASKET_TYPES:
        for category_id, bucket, n in _basket_category_counts(event_type, raw_ranges, interval, include_simulated):
            counts[(category_id, bucket)] += n
    else:
        raw = Event.objects.filter(split.raw_q([event_type]), category_id__isnull=False)
        if not include_simulated:
            raw = raw.filter(is_simulated=False)
        for category_id, bucket, n in (raw.order_by().annotate(bucket=_trunc(interval))
                                       .values("category_id", "bucket").annotate(n=Count("pk"))
                                       .values_list("category_id", "bucket", "n")):
            counts[(category_id, _as_utc(bucket))] += n
    if split.rolled_types([event_type]) and interval == "day":
        rows = DailyAggregate.objects.filter(day__in=split.rolled_days, event_type=event_type,
                                             level=DailyAggregate.Level.CATEGORY, category_id__isnull=False)
        if not include_simulated:
            rows = rows.filter(is_simulated=False)
        for category_id, day, n in (rows.order_by().values("category_id", "day").annotate(n=Sum("events"))
                                    .values_list("category_id", "day", "n")):
            counts[(category_id, _midnight(day))] += n or 0
    if not counts:
        return []
    categories = _Categories()
    totals: dict[int, int] = defaultdict(int)
    for (category_id, _bucket), n in counts.items():
        totals[category_id] += n
    ordered = sorted((cid for cid, total in totals.items() if total),
                     key=lambda cid: (-totals[cid], categories.label(cid)))
    return [TrendSeries(categories.label(cid), [(bucket, counts.get((cid, bucket), 0)) for bucket in buckets])
            for cid in ordered]


def _basket_category_counts(event_type: str, ranges: list[tuple[dt.datetime, dt.datetime]], interval: str,
                            include_simulated: bool) -> list[tuple[int, dt.datetime, int]]:
    """(category, bucket, events) for checkouts/orders, each event once per category it touches."""
    if not ranges:
        return []
    where, params = _time_where(ranges)
    where = f"{where} AND e.event_type = %s" + ("" if include_simulated else " AND e.is_simulated = %s")
    params = [*params, event_type] + ([] if include_simulated else [False])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT b.product_id FROM ({_basket_rows_sql(where)}) b", params * 2)
        mapping = _category_map(pk for (pk,) in cursor.fetchall())
        join, mapped = _mapping_join("b")
        cursor.execute(
            f"SELECT COALESCE({mapped}, b.col_category) AS category, {_bucket_sql(interval, 'b.occurred_at')}, "
            f"COUNT(DISTINCT b.id) FROM ({_basket_rows_sql(where)}) b {join} "
            f"WHERE COALESCE({mapped}, b.col_category) IS NOT NULL GROUP BY 1, 2",
            [*params, *params, json.dumps({str(k): v for k, v in mapping.items()})],
        )
        return [(category, _parse_bucket(bucket), n) for category, bucket, n in cursor.fetchall()]


# --- trending products ---------------------------------------------------------------------


def _poisson_score(observed: float, expected: float) -> float:
    """Signed root of the Poisson log-likelihood ratio of `observed` against `expected`: about a
    z-score, but sound for small counts (where (x - mu) / sqrt(mu) overstates tiny bursts)."""
    if expected <= 0:
        return 0.0
    if observed <= 0:
        statistic = 2 * expected
    else:
        statistic = 2 * (observed * math.log(observed / expected) - (observed - expected))
    return math.copysign(math.sqrt(max(statistic, 0.0)), observed - expected)


def trending_products(*, now: dt.datetime | None = None, recent_days: int = 7, baseline_days: int = 28,
                      category_id: int | None = None, limit: int = 10) -> list[TrendingProduct]:
    """Products whose weighted interactions (view 1, cart add 3, order 5) in the last `recent_days`
    beat their own rate over the `baseline_days` before, ranked by significance, not volume.

    expected = (baseline events + prior) / baseline length * recent length, where the baseline
    length is cut to the shop's event history (from the first event's day) when that is
    shorter. score = signed root of the Poisson likelihood ratio; only products with lift > 1
    are returned.
    """
    if recent_days < 1 or baseline_days < 1:
        raise ValueError("recent_days and baseline_days must be at least 1")
    now = _as_utc(now or timezone.now())
    recent_start = now - dt.timedelta(days=recent_days)
    baseline_start = recent_start - dt.timedelta(days=baseline_days)
    scope = _scope(category_id)
    split = _split(baseline_start, now)
    recent: dict[int, float] = defaultdict(float)
    baseline: dict[int, float] = defaultdict(float)

    # Views and cart adds of raw days: one GROUP BY product with the windows as conditional sums.
    plain = [t for t in TRENDING_WEIGHTS if t not in BASKET_TYPES]
    weight = Case(*[When(event_type=t, then=Value(w)) for t, w in TRENDING_WEIGHTS.items() if t in plain],
                  default=Value(0))
    raw = Event.objects.filter(split.raw_q(plain), product__isnull=False)
    if scope is not None:
        raw = raw.filter(category_id__in=scope.category_ids)
    for product_id, in_recent, in_baseline in (
            raw.order_by().values("product_id").annotate(
                r=Sum(Case(When(occurred_at__gte=recent_start, then=weight), default=Value(0))),
                b=Sum(Case(When(occurred_at__lt=recent_start, then=weight), default=Value(0))))
            .values_list("product_id", "r", "b")):
        recent[product_id] += in_recent or 0
        baseline[product_id] += in_baseline or 0
    # ... of rolled-up days: product-level aggregates (a day belongs to the window it starts in).
    rolled_types = split.rolled_types(plain)
    if rolled_types:
        rows = DailyAggregate.objects.filter(day__in=split.rolled_days, event_type__in=rolled_types,
                                             level=DailyAggregate.Level.PRODUCT, product__isnull=False)
        if scope is not None:
            rows = rows.filter(category_id__in=scope.category_ids)
        day_weight = Case(*[When(event_type=t, then=ExpressionWrapper(F("events") * w, output_field=IntegerField()))
                            for t, w in TRENDING_WEIGHTS.items() if t in rolled_types],
                          default=Value(0), output_field=IntegerField())
        first_recent_day = recent_start.date() if recent_start == _midnight(recent_start.date()) \
            else recent_start.date() + dt.timedelta(days=1)
        for product_id, in_recent, in_baseline in (
                rows.order_by().values("product_id").annotate(
                    r=Sum(Case(When(day__gte=first_recent_day, then=day_weight), default=Value(0))),
                    b=Sum(Case(When(day__lt=first_recent_day, then=day_weight), default=Value(0))))
                .values_list("product_id", "r", "b")):
            recent[product_id] += in_recent or 0
            baseline[product_id] += in_baseline or 0
    # Orders: always raw (kept by the rollup); their products are listed in properties.
    order_weight = TRENDING_WEIGHTS["order_placed"]
    for product_id, in_recent, in_baseline in _order_product_counts(baseline_start, now, recent_start, scope):
        recent[product_id] += order_weight * in_recent
        baseline[product_id] += order_weight * in_baseline

    # The baseline window, cut to the history the shop has (a young shop has a short baseline).
    history_start = _first_event_at()
    effective_start = max(baseline_start, history_start) if history_start else recent_start
    baseline_length = (recent_start - effective_start).total_seconds() / 86400
    if baseline_length < 1:  # less than a day of history before the window: nothing to compare with
        return []
    candidates = []
    for product_id, observed in recent.items():
        if observed <= 0:
            continue
        expected = (baseline.get(product_id, 0.0) + TRENDING_PRIOR_EVENTS) / baseline_length * recent_days
        lift = observed / expected
        if lift <= 1:
            continue
        candidates.append((_poisson_score(observed, expected), observed, expected, lift, product_id))
    candidates.sort(key=lambda c: (-c[0], -c[1], c[4]))
    results: list[TrendingProduct] = []
    # Titles through shop.services, a chunk at a time (inactive products are skipped).
    chunk = max(limit * 2, 20)
    for offset in range(0, len(candidates), chunk):
        part = candidates[offset:offset + chunk]
        products = {p.pk: p for p in shop_services.get_products([c[4] for c in part])}
        for score, observed, expected, lift, product_id in part:
            if product_id in products and len(results) < limit:
                results.append(TrendingProduct(product_id, products[product_id].title, int(round(observed)),
                                               round(expected, 4), round(lift, 4), round(score, 4)))
        if len(results) >= limit:
            break
    return results


def _first_event_at() -> dt.datetime | None:
    """The start (midnight UTC: a rolled-up day has no times) of the shop's event history, raw or
    rolled up (both are index lookups)."""
    first_raw = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    first_day = RolledUpDay.objects.order_by("day").values_list("day", flat=True).first()
    days = [_as_utc(first_raw).date()] if first_raw else []
    if first_day:
        days.append(first_day)
    return _midnight(min(days)) if days else None


def _order_product_counts(start_at: dt.datetime, end_at: dt.datetime, recent_start: dt.datetime,
                          scope: _Scope | None) -> list[tuple[int, int, int]]:
    """(product, orders in the recent window, orders before it) from raw order events."""
    where = "e.occurred_at >= %s AND e.occurred_at < %s AND e.event_type = %s"
    params = [_dt_param(start_at), _dt_param(end_at), Event.Type.ORDER_PLACED.value]
    extra, extra_params = "", []
    if scope is not None:
        if not scope.product_ids and not scope.category_ids:
            return []
        # Listed products of the scope, or the product column's category (events made by hand).
        extra = (" WHERE b.product_id IN (SELECT CAST(value AS BIGINT) FROM "
                 + ("jsonb_array_elements_text(%s::jsonb) AS value" if _pg() else "json_each(%s)")
                 + ") OR b.col_category IN (SELECT CAST(value AS INTEGER) FROM "
                 + ("jsonb_array_elements_text(%s::jsonb) AS value" if _pg() else "json_each(%s)") + ")")
        extra_params = [json.dumps(scope.product_ids), json.dumps(scope.category_ids)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b.product_id, COUNT(DISTINCT CASE WHEN b.occurred_at >= %s THEN b.id END), "
            "COUNT(DISTINCT CASE WHEN b.occurred_at < %s THEN b.id END) "
            f"FROM ({_basket_rows_sql(where)}) b{extra} GROUP BY b.product_id",
            [_dt_param(recent_start), _dt_param(recent_start), *params, *params, *extra_params],
        )
        return [(int(pk), recent, before) for pk, recent, before in cursor.fetchall()]


# --- recent interests ----------------------------------------------------------------------


def recent_interests(*, user=None, visitor_id: str = "", days: int = 30, half_life_days: float = 7.0,
                     limit: int = 10, now: dt.datetime | None = None) -> dict:
    """{"categories": [(category_id, weight)], "products": [(product_id, weight)], "queries": [str]},
    recency-weighted (views < carts < orders), from the shopper's own and linked-browser events."""
    now = _as_utc(now or timezone.now())
    since = now - dt.timedelta(days=days)
    events = services.events_of_shopper(user=user, visitor_id=visitor_id).filter(
        occurred_at__gte=since, occurred_at__lte=now)
    decay = math.log(2) / (half_life_days * 86400)

    def weight(kind: str, moment: dt.datetime) -> float:
        age = max(0.0, (now - _as_utc(moment)).total_seconds())
        return INTEREST_WEIGHTS.get(kind, 0.0) * math.exp(-decay * age)

    products: dict[int, float] = defaultdict(float)
    categories: dict[int, float] = defaultdict(float)
    # Product and category events: counted per hour in SQL (the half-life is days, an hour is plenty).
    plain = [t for t in INTEREST_WEIGHTS if t not in BASKET_TYPES]
    for kind, product_id, category_id, hour, n in (
            events.filter(event_type__in=plain).order_by()
            .values("event_type", "product_id", "category_id", hour=TruncHour("occurred_at", tzinfo=UTC))
            .annotate(n=Count("pk")).values_list("event_type", "product_id", "category_id", "hour", "n")):
        w = n * weight(kind, hour + dt.timedelta(minutes=30))
        if product_id is not None:
            products[product_id] += w
        if category_id is not None:
            categories[category_id] += w
    # Checkouts and orders list their products in properties; a shopper has few of them.
    basket_rows = list(events.filter(event_type__in=BASKET_TYPES).order_by("-occurred_at")
                       .values_list("event_type", "occurred_at", "properties", "product_id")[:INTEREST_MAX_ROWS])
    listed: list[tuple[float, int]] = []
    for kind, moment, properties, product_id in basket_rows:
        ids = properties.get("products") if isinstance(properties, dict) else None
        ids = {pk for pk in (ids if isinstance(ids, list) else []) if isinstance(pk, int)}
        if product_id is not None:
            ids.add(product_id)
        listed += [(weight(kind, moment), pk) for pk in ids]
    category_of = _category_map(pk for _w, pk in listed)
    for w, pk in listed:
        products[pk] += w
        if pk in category_of:
            categories[category_of[pk]] += w
    # Searches: the queries, normalised, weighted by recency like a view.
    queries: dict[str, float] = defaultdict(float)
    for moment, query in (events.filter(event_type=Event.Type.SEARCHED).order_by("-occurred_at")
                          .values_list("occurred_at", KT("properties__query"))[:INTEREST_MAX_ROWS]):
        text = " ".join(str(query or "").lower().split())
        if text:
            queries[text] += weight("product_viewed", moment)

    def top(weights: dict) -> list:
        ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
        return [(key, round(value, 4)) for key, value in ranked[:limit] if value > 0]

    return {"categories": top(categories), "products": top(products),
            "queries": [query for query, _w in top(queries)]}


# --- RFM -----------------------------------------------------------------------------------


def _quintiles(values: list[float], *, ties: str) -> list[int]:
    """Quintile scores 1-5 by rank (higher value = higher score): 1 + floor(5 (rank + 1/2) / n),
    so that n distinct values spread evenly over 1..5. Tied customers share one rank: the
    lowest of their block (ties="low": every one-time buyer has F=1, however many there are) or
    the highest (ties="high": a shop whose customers all bought today scores them all R=5)."""
    ordered = sorted(values)
    n = len(ordered)
    scores = []
    for value in values:
        rank = bisect_left(ordered, value) if ties == "low" else bisect_right(ordered, value) - 1
        scores.append(min(5, 1 + (10 * rank + 5) // (2 * n)))
    return scores


def _rfm(customers: dict, as_of: dt.date) -> RfmResult:
    """customers: id -> (last purchase date, purchases, total spent)."""
    ids = list(customers)
    if not ids:
        return RfmResult(as_of=as_of, customers=0, segments=[Segment(name, 0, 0.0, 0.0, 0.0, 0.0)
                                                            for name in SEGMENTS])
    recency = [(as_of - customers[c][0]).days for c in ids]
    frequency = [customers[c][1] for c in ids]
    monetary = [customers[c][2] for c in ids]
    r_scores = _quintiles([-r for r in recency], ties="high")
    f_scores = _quintiles(frequency, ties="low")
    m_scores = _quintiles(monetary, ties="low")
    members: dict[str, list[int]] = defaultdict(list)
    scores = {}
    for i, customer in enumerate(ids):
        name = SEGMENT_GRID[r_scores[i]][f_scores[i] - 1]
        scores[customer] = (r_scores[i], f_scores[i], m_scores[i], name)
        members[name].append(i)
    n = len(ids)
    segments = []
    for name in SEGMENTS:
        rows = members.get(name, [])
        k = len(rows)
        segments.append(Segment(
            name=name, customers=k, share=k / n,
            avg_recency_days=sum(recency[i] for i in rows) / k if k else 0.0,
            avg_frequency=sum(frequency[i] for i in rows) / k if k else 0.0,
            avg_monetary=sum(monetary[i] for i in rows) / k if k else 0.0,
        ))
    return RfmResult(as_of=as_of, customers=n, segments=segments, scores=scores)


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return _as_utc(value).date() if timezone.is_aware(value) else value.date()
    return value


def rfm_from_purchases(purchases, *, as_of: dt.date | None = None) -> RfmResult:
    """RFM segments from (customer_id, date, amount) tuples: works on the shop's orders and on CDNOW.

    Recency = days from the customer's last purchase to `as_of` (default: the day after the
    last purchase); frequency = number of purchases; monetary = total spent. Each is scored in
    quintiles (5 best), and the (R, F) pair names the segment (SEGMENT_GRID). Purchases after
    `as_of` are ignored. Pure Python: no database.
    """
    customers: dict = {}
    rows = [(customer, _as_date(day), float(amount)) for customer, day, amount in purchases]
    if as_of is None:
        as_of = max((day for _c, day, _a in rows), default=_utc_today() - dt.timedelta(days=1)) \
            + dt.timedelta(days=1)
    for customer, day, amount in rows:
        if day > as_of:
            continue
        last, count, total = customers.get(customer, (day, 0, 0.0))
        customers[customer] = (max(last, day), count + 1, total + amount)
    return _rfm(customers, as_of)


def rfm_segments(*, as_of: dt.date | None = None, include_simulated: bool = True) -> RfmResult:
    """RFM over the shop's orders (order_placed events up to `as_of`, default today, UTC):
    customer = the user if signed in (key: user id), else the visitor id (key: "visitor:<id>");
    amount = properties.total. Aggregated per customer in SQL (one query)."""
    as_of = as_of or _utc_today()
    orders = Event.objects.filter(event_type=Event.Type.ORDER_PLACED, occurred_at__lt=_midnight(as_of)
                                  + dt.timedelta(days=1))
    if not include_simulated:
        orders = orders.filter(is_simulated=False)
    rows = (orders.order_by().annotate(customer=_shopper_expr()).filter(customer__isnull=False)
            .values("customer").annotate(
                last=Max("occurred_at"), n=Count("pk"),
                total=Sum(Cast(KT("properties__total"), DecimalField(max_digits=14, decimal_places=2))))
            .values_list("customer", "last", "n", "total"))
    customers = {}
    for key, last, n, total in rows:
        customer = int(key[1:]) if key[0] == "u" else f"visitor:{key[1:]}"
        customers[customer] = (_as_utc(last).date(), n, float(total or Decimal("0")))
    return _rfm(customers, as_of)


# --- forecast ------------------------------------------------------------------------------


def _seasonal_naive(fit: list[float], steps: int, season: int = SEASON) -> list[float]:
    """The same point of the last observed season (the last value when there is less than one)."""
    if len(fit) < season:
        return [fit[-1]] * steps
    last_season = fit[-season:]
    return [last_season[i % season] for i in range(steps)]


def _fit_predict(series: list[float], steps: int, season: int = SEASON) -> tuple[list[float], str]:
    """Holt-Winters (additive damped trend + additive seasonality) with >= 2 seasons of data,
    Holt's damped trend with >= 5 points, else simple exponential smoothing; the seasonal-naive
    forecast when statsmodels cannot fit (e.g. a constant series). The trend is damped so that
    a two-week horizon does not run off along a short-lived slope."""
    import numpy as np
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = np.asarray(series, dtype=float)
    period = "weekly" if season == SEASON else f"{season}-period"
    if len(y) >= 2 * season:
        options = {"trend": "add", "damped_trend": True, "seasonal": "add", "seasonal_periods": season}
        if len(y) >= 10 + 2 * (season // 2):
            # Initial level/trend/season from a decomposition: half the fitting time of estimating
            # them with the smoothing parameters (13 parameters for a weekly season), as accurate.
            options["initialization_method"] = "heuristic"
        method = f"Holt-Winters (additive damped trend, additive {period} seasonality)"
    elif len(y) >= 5:
        options = {"trend": "add", "damped_trend": True}
        method = "Holt (additive damped trend; too short for seasonality)"
    else:
        options = {}
        method = "Simple exponential smoothing (too short for a trend)"
    if np.ptp(y) > 0:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # convergence chatter on short series
                options.setdefault("initialization_method", "estimated")
                model = ExponentialSmoothing(y, **options).fit()
                predicted = np.asarray(model.forecast(steps), dtype=float)
            if np.all(np.isfinite(predicted)):
                return [float(v) for v in predicted], method
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
            pass
    return _seasonal_naive(series, steps, season), "Seasonal naive (the series is too flat to fit)"


@dataclass
class Backtest:
    holdout: int
    predicted: list[float]
    baseline: list[float]        # seasonal naive: the same point of the last season before the holdout
    mae: float
    mape: float | None           # over holdout points with a non-zero actual value
    baseline_mae: float
    baseline_mape: float | None
    error_std: float             # of the model's errors on the holdout: the forecast interval's width
    method: str


def _mape(actual: list[float], predicted: list[float]) -> float | None:
    pct = [abs(a - p) / a for a, p in zip(actual, predicted, strict=True) if a > 0]
    return sum(pct) / len(pct) if pct else None


def backtest(values: list[float], *, holdout: int, season: int = SEASON) -> Backtest:
    """Fit on all but the last `holdout` values, forecast them, and score the forecast beside the
    seasonal-naive baseline (both forecast the whole holdout from the same origin). Counts are
    never negative, so forecasts are clipped at 0."""
    if not 1 <= holdout < len(values):
        raise ValueError("holdout must leave at least one value to fit on")
    fit, actual = [float(v) for v in values[:-holdout]], [float(v) for v in values[-holdout:]]
    predicted, method = _fit_predict(fit, holdout, season)
    predicted = [max(0.0, p) for p in predicted]
    baseline = _seasonal_naive(fit, holdout, season)
    errors = [a - p for a, p in zip(actual, predicted, strict=True)]
    mean_error = sum(errors) / holdout
    spread = (sum((e - mean_error) ** 2 for e in errors) / (holdout - 1)) ** 0.5 if holdout > 1 else abs(errors[0])
    return Backtest(
        holdout=holdout, predicted=predicted, baseline=baseline,
        mae=sum(abs(e) for e in errors) / holdout, mape=_mape(actual, predicted),
        baseline_mae=sum(abs(a - b) for a, b in zip(actual, baseline, strict=True)) / holdout,
        baseline_mape=_mape(actual, baseline), error_std=spread, method=method,
    )


def forecast_daily_orders(*, category_id: int | None = None, horizon_days: int = 14, backtest_days: int = 14,
                          history_days: int = 90, today: dt.date | None = None,
                          include_simulated: bool = True) -> Forecast:
    """Orders per day (orders listing a product of the category, if given) over the last
    `history_days` days up to `today` (today itself only once it is over), forecast
    `horizon_days` ahead.

    Back-test: the model is fitted without the last `backtest_days` days (a third of the
    history at most) and scored on them (MAE, MAPE over days with orders), beside the
    seasonal-naive baseline on the same days. The interval is mean +/- 1.96 x the standard
    deviation of the back-test errors. History starts at the first day with an order; raises
    ValueError with fewer than 10 days from there to `today`.
    """
    if horizon_days < 1 or backtest_days < 1 or history_days < MIN_FORECAST_DAYS:
        raise ValueError("horizon_days and backtest_days must be >= 1, history_days >= 10")
    utc_today = _utc_today()
    today = today or utc_today
    last = today if today < utc_today else utc_today - dt.timedelta(days=1)
    first = last - dt.timedelta(days=history_days - 1)
    counts = _type_counts([Event.Type.ORDER_PLACED.value], first, last, "day", _scope(category_id),
                          include_simulated)
    days = [first + dt.timedelta(days=i) for i in range(history_days)]
    values = [float(counts.get((Event.Type.ORDER_PLACED.value, _midnight(day)), 0)) for day in days]
    start = next((i for i, v in enumerate(values) if v > 0), None)
    if start is None:
        raise ValueError(f"no orders in the last {history_days} days")
    days, values = days[start:], values[start:]  # the shop (or category) had no orders before
    if len(values) < MIN_FORECAST_DAYS:
        raise ValueError(f"need at least {MIN_FORECAST_DAYS} days of orders, have {len(values)}")

    test = backtest(values, holdout=min(backtest_days, len(values) // 3))
    future, method = _fit_predict(values, horizon_days)
    forecast = []
    for i, mean in enumerate(future):
        mean = max(0.0, mean)
        forecast.append((last + dt.timedelta(days=i + 1), mean, max(0.0, mean - INTERVAL_Z * test.error_std),
                         mean + INTERVAL_Z * test.error_std))
    return Forecast(category_id=category_id, history=list(zip(days, values, strict=True)), forecast=forecast,
                    backtest_mae=test.mae, backtest_mape=test.mape, baseline_mae=test.baseline_mae, method=method)


# --- retention: rollup ---------------------------------------------------------------------

_AGGREGATE_COLUMNS = "(day, level, event_type, product_id, category_id, events, visitors, is_simulated)"


def _rollup_statements(day: dt.date, mapping: dict[int, int]) -> list[tuple[str, list]]:
    """INSERT ... SELECT ... GROUP BY statements for one day, at the three levels."""
    table = DailyAggregate._meta.db_table
    day_param = connection.ops.adapt_datefield_value(day)
    where = "e.occurred_at >= %s AND e.occurred_at < %s"
    window = [_dt_param(_midnight(day)), _dt_param(_midnight(day + dt.timedelta(days=1)))]
    basket = ", ".join(f"'{t}'" for t in BASKET_TYPES)
    shopper = _shopper_sql("e")
    join, mapped = _mapping_join("b")
    rows = f"({_basket_rows_sql(where)}) b {join}"
    rows_params = [*window, *window, json.dumps({str(k): v for k, v in mapping.items()})]
    insert = f"INSERT INTO {table} {_AGGREGATE_COLUMNS} "
    return [
        # Whole shop: every event once.
        (insert + f"SELECT %s, 'all', e.event_type, NULL, NULL, COUNT(*), COUNT(DISTINCT {shopper}), e.is_simulated "
                  f"FROM behavior_event e WHERE {where} GROUP BY e.event_type, e.is_simulated",
         [day_param, *window]),
        # Products, from the product column (a product's category: the one recorded on its events).
        (insert + f"SELECT %s, 'product', e.event_type, e.product_id, MAX(e.category_id), COUNT(*), "
                  f"COUNT(DISTINCT {shopper}), e.is_simulated FROM behavior_event e WHERE {where} "
                  f"AND e.event_type NOT IN ({basket}) AND e.product_id IS NOT NULL "
                  f"GROUP BY e.event_type, e.product_id, e.is_simulated",
         [day_param, *window]),
        # Categories, from the category column (product left empty).
        (insert + f"SELECT %s, 'category', e.event_type, NULL, e.category_id, COUNT(*), "
                  f"COUNT(DISTINCT {shopper}), e.is_simulated FROM behavior_event e WHERE {where} "
                  f"AND e.event_type NOT IN ({basket}) AND e.category_id IS NOT NULL "
                  f"GROUP BY e.event_type, e.category_id, e.is_simulated",
         [day_param, *window]),
        # Checkouts and orders per listed product known to the shop (an event once per product).
        (insert + f"SELECT %s, 'product', b.event_type, b.product_id, MAX(COALESCE({mapped}, b.col_category)), "
                  f"COUNT(DISTINCT b.id), COUNT(DISTINCT b.shopper), b.is_simulated FROM {rows} "
                  f"WHERE {mapped} IS NOT NULL OR b.src = 1 "
                  f"GROUP BY b.event_type, b.product_id, b.is_simulated",
         [day_param, *rows_params]),
        # ... and per category of those products (an event once per category).
        (insert + f"SELECT %s, 'category', b.event_type, NULL, COALESCE({mapped}, b.col_category), "
                  f"COUNT(DISTINCT b.id), COUNT(DISTINCT b.shopper), b.is_simulated FROM {rows} "
                  f"WHERE COALESCE({mapped}, b.col_category) IS NOT NULL "
                  f"GROUP BY b.event_type, COALESCE({mapped}, b.col_category), b.is_simulated",
         [day_param, *rows_params]),
    ]


def _rollup_day(day: dt.date) -> tuple[int, int] | None:
    """Fold one day in one transaction: (raw events, aggregate rows), or None if done meanwhile."""
    low, high = _midnight(day), _midnight(day + dt.timedelta(days=1))
    with transaction.atomic():
        try:
            with transaction.atomic():
                # Claims the day first: a concurrent run blocks on the unique day, then fails here.
                marker = RolledUpDay.objects.create(day=day, raw_events=0)
        except IntegrityError:
            return None
        events = Event.objects.filter(occurred_at__gte=low, occurred_at__lt=high)
        where = "e.occurred_at >= %s AND e.occurred_at < %s"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT b.product_id FROM ({_basket_rows_sql(where)}) b",
                           [_dt_param(low), _dt_param(high)] * 2)
            mapping = _category_map(pk for (pk,) in cursor.fetchall())
            rows = 0
            for sql, params in _rollup_statements(day, mapping):
                cursor.execute(sql, params)
                rows += max(cursor.rowcount, 0)
        raw_events = events.count()
        # Checkouts and orders stay (the customer ledger, exact basket counts): see the module docstring.
        events.exclude(event_type__in=KEPT_TYPES).delete()
        marker.raw_events = raw_events
        marker.save(update_fields=["raw_events"])
    return raw_events, rows


def rollup_events(*, older_than_days: int = 90, today: dt.date | None = None,
                  progress: Callable[..., Iterable] | None = None) -> RollupResult:
    """Fold raw events of whole days older than the cutoff into DailyAggregate, then delete them.

    For every UTC day before `today - older_than_days` that has events and is not in
    RolledUpDay, in one transaction: insert the day's aggregates at the product, category and
    whole-shop levels (events and distinct shoppers per type and simulated flag, GROUP BY in
    SQL), record the RolledUpDay, delete the day's raw events but checkouts and orders (kept, see the
    module docstring). Idempotent and safe to run concurrently. `progress` is an optional
    tqdm-like wrapper (e.g. from a management command).
    """
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    cutoff = (today or _utc_today()) - dt.timedelta(days=older_than_days)
    days = set(Event.objects.filter(occurred_at__lt=_midnight(cutoff)).order_by()
               .annotate(day=TruncDate("occurred_at", tzinfo=UTC)).values_list("day", flat=True).distinct())
    days -= set(RolledUpDay.objects.filter(day__lt=cutoff).values_list("day", flat=True))
    todo = sorted(days)
    result = RollupResult(days=0, raw_events=0, aggregate_rows=0)
    for day in (progress(todo, desc="Rolling up events", unit="day") if progress else todo):
        done = _rollup_day(day)
        if done is not None:
            result.days += 1
            result.raw_events += done[0]
            result.aggregate_rows += done[1]
    return result
