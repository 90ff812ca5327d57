"""The merchandisers' behaviour dashboard: staff only, in the admin area (see behavior/urls.py).

Every section is computed by one function of `behavior.analytics`; a section whose function
raises (too little data for a forecast, say) or returns nothing shows "not enough data yet"
instead of failing the page. Chart data reaches the browser through `json_script` only, and
every chart has a table beside it, so the page still reads without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from shop import services as shop_services

from . import analytics
from .models import Event

log = logging.getLogger(__name__)

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 400
HOURLY_MAX_DAYS = 3          # ranges this short are bucketed by hour
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)
TOP_CATEGORIES = 8           # the category chart shows the busiest ones, the rest as "Other"
TRENDING_LIMIT = 10
NOT_ENOUGH = "Not enough data yet"
EVENT_LABELS = dict(Event.Type.choices)


# --- filters ------------------------------------------------------------------------------


def walk(tree: list):
    """(category, depth) for every category of the tree, parents before their children."""
    stack = [(category, 0) for category in reversed(tree)]
    while stack:
        category, depth = stack.pop()
        yield category, depth
        stack.extend((child, depth + 1) for child in reversed(getattr(category, "subcategories", [])))


def category_choices(tree: list) -> list[tuple[str, str]]:
    indent = "\u2014 "
    return [("", "All categories")] + [(str(c.pk), f"{indent * depth}{c.name}") for c, depth in walk(tree)]


def subtree_names(tree: list, category_id: int) -> set[str]:
    """Names of a category and all its descendants (trends by category are keyed by name)."""
    for category, _depth in walk(tree):
        if category.pk == category_id:
            return {node.name for node, _d in walk([category])}
    return set()


class DashboardFilterForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    category = forms.ChoiceField(label="Category", required=False)
    simulated = forms.BooleanField(label="Include simulated data", required=False)
    # Tells a submitted form (checkbox unticked) from a first visit (checkbox on by default).
    applied = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data, *, tree: list):
        if "applied" not in data:
            data = data.copy()
            data["simulated"] = "on"
            data["applied"] = "1"
        super().__init__(data)
        self.tree = tree
        self.fields["category"].choices = category_choices(tree)

    def clean(self) -> dict:
        data = super().clean()
        if self.errors.keys() & {"start", "end"}:
            return data
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if not (EARLIEST <= start <= LATEST and EARLIEST <= end <= LATEST):
            raise forms.ValidationError(f"Choose dates between {EARLIEST:%Y} and {LATEST:%Y}.", code="out_of_range")
        if start > end:
            raise forms.ValidationError("The “from” date must be on or before the “to” date.", code="reversed")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose a range of at most {MAX_RANGE_DAYS} days.", code="too_long")
        data["start"], data["end"] = start, end
        data["category_id"] = int(data["category"]) if data.get("category") else None
        return data


@dataclass
class Filters:
    start: dt.date
    end: dt.date
    category_id: int | None
    category_name: str
    include_simulated: bool
    tree: list = field(repr=False, default_factory=list)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def interval(self) -> str:
        return "hour" if self.days <= HOURLY_MAX_DAYS else "day"

    @property
    def as_of(self) -> dt.date:
        """The last day with data: the range's end, or today if the range runs into the future."""
        return min(self.end, timezone.localdate())


# --- sections -----------------------------------------------------------------------------


class NotEnoughData(Exception):
    """A section's analytics returned nothing worth drawing."""


@dataclass
class Section:
    key: str
    title: str
    ok: bool = False
    data: Any = None        # what the template's tables read
    chart: Any = None       # what the chart reads, through json_script
    note: str = ""


def _build(key: str, title: str, compute: Callable[[Filters], tuple[Any, Any]], filters: Filters) -> Section:
    section = Section(key=key, title=title)
    try:
        # A savepoint: a failed query in one section must not poison the others' transaction.
        with transaction.atomic():
            section.data, section.chart = compute(filters)
        section.ok = True
    except NotEnoughData:
        pass
    except (NotImplementedError, ValueError, ZeroDivisionError, ArithmeticError) as exc:
        log.info("Behaviour dashboard: %s has not enough data (%s)", key, exc)
    except Exception:
        log.exception("Behaviour dashboard: %s failed", key)
    return section


def _bucket_label(moment: dt.datetime | dt.date, interval: str) -> str:
    if isinstance(moment, dt.datetime):
        if timezone.is_aware(moment):
            moment = timezone.localtime(moment)
        return moment.strftime("%b %d %H:%M") if interval == "hour" else moment.strftime("%b %d")
    return moment.strftime("%b %d")


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _funnel(f: Filters):
    steps = analytics.funnel(f.start, f.end, category_id=f.category_id, include_simulated=f.include_simulated)
    if not steps or not any(step.shoppers for step in steps):
        raise NotEnoughData
    chart = {
        "labels": [step.label for step in steps],
        "shoppers": [step.shoppers for step in steps],
        "fromPrevious": [_pct(step.conversion_from_previous) for step in steps],
        "fromStart": [_pct(step.conversion_from_start) for step in steps],
    }
    rows = [{"label": step.label, "event_type": step.event_type, "shoppers": step.shoppers,
             "from_previous": chart["fromPrevious"][i], "from_start": chart["fromStart"][i]}
            for i, step in enumerate(steps)]
    return rows, chart


def _series_table(series: list[analytics.TrendSeries], interval: str, labels: dict[str, str] | None = None):
    """(chart data, table rows) for series sharing the same buckets."""
    labels = labels or {}
    buckets = [moment for moment, _count in series[0].points]
    chart = {
        "labels": [_bucket_label(moment, interval) for moment in buckets],
        "series": [{"key": s.key, "label": labels.get(s.key, s.key), "values": [count for _m, count in s.points]}
                   for s in series],
    }
    rows = [(label, [s["values"][i] if i < len(s["values"]) else 0 for s in chart["series"]])
            for i, label in enumerate(chart["labels"])]
    return chart, rows


def _trends(f: Filters):
    series = analytics.trends(f.start, f.end, interval=f.interval, category_id=f.category_id,
                              include_simulated=f.include_simulated)
    series = [s for s in series if any(count for _moment, count in s.points)]
    if not series:
        raise NotEnoughData
    chart, rows = _series_table(series, f.interval, EVENT_LABELS)
    chart["interval"] = f.interval
    return {"columns": [s["label"] for s in chart["series"]], "rows": rows, "interval": f.interval}, chart


def _category_trends(f: Filters):
    series = analytics.trends_by_category(f.start, f.end, event_type=Event.Type.PRODUCT_VIEWED,
                                          include_simulated=f.include_simulated, interval=f.interval)
    if f.category_id is not None:
        names = subtree_names(f.tree, f.category_id)
        series = [s for s in series if s.key in names]
    series = [s for s in series if any(count for _moment, count in s.points)]
    if not series:
        raise NotEnoughData
    series.sort(key=lambda s: (-sum(count for _m, count in s.points), s.key))
    if len(series) > TOP_CATEGORIES:
        rest = series[TOP_CATEGORIES - 1:]
        other = [(moment, sum(s.points[i][1] for s in rest if i < len(s.points)))
                 for i, (moment, _count) in enumerate(rest[0].points)]
        series = [*series[:TOP_CATEGORIES - 1], analytics.TrendSeries(key=f"Other ({len(rest)} categories)",
                                                                       points=other)]
    chart, rows = _series_table(series, f.interval)
    return {"columns": [s["label"] for s in chart["series"]], "rows": rows, "interval": f.interval}, chart


@dataclass
class TrendingRow:
    item: analytics.TrendingProduct
    url: str


def _trending(f: Filters):
    end_of_range = timezone.make_aware(dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time.min))
    now = min(timezone.now(), end_of_range)
    items = analytics.trending_products(now=now, category_id=f.category_id, limit=TRENDING_LIMIT)
    if not items:
        raise NotEnoughData
    urls = {p.pk: p.get_absolute_url() for p in shop_services.get_products([i.product_id for i in items])}
    rows = [TrendingRow(item=item, url=urls.get(item.product_id, "")) for item in items]
    chart = {
        "labels": [item.title if len(item.title) <= 48 else item.title[:47] + "\u2026" for item in items],
        "score": [round(item.score, 2) for item in items],
        "lift": [round(item.lift, 2) for item in items],
    }
    return {"rows": rows, "now": now}, chart


def _rfm(f: Filters):
    result = analytics.rfm_segments(as_of=f.as_of, include_simulated=f.include_simulated)
    segments = [s for s in result.segments if s.customers]
    if not result.customers or not segments:
        raise NotEnoughData
    chart = {"labels": [s.name for s in segments], "customers": [s.customers for s in segments]}
    rows = [{"segment": s, "share_pct": _pct(s.share)} for s in segments]
    return {"result": result, "rows": rows}, chart


def _forecast(f: Filters):
    fc = analytics.forecast_daily_orders(category_id=f.category_id, today=f.as_of,
                                         include_simulated=f.include_simulated)
    if not fc.history or not fc.forecast:
        raise NotEnoughData
    days = [day for day, _value in fc.history] + [day for day, *_rest in fc.forecast]
    gap = [None] * len(fc.history)
    # The forecast line starts at the last observed day so that the two lines join.
    last_day, last_value = fc.history[-1]
    chart = {
        "labels": [day.strftime("%b %d") for day in days],
        "history": [round(value, 2) for _day, value in fc.history] + [None] * len(fc.forecast),
        "mean": gap[:-1] + [round(last_value, 2)] + [round(mean, 2) for _d, mean, _lo, _hi in fc.forecast],
        "lower": gap + [round(max(lower, 0.0), 2) for _d, _m, lower, _hi in fc.forecast],
        "upper": gap + [round(upper, 2) for _d, _m, _lo, upper in fc.forecast],
    }
    beats = fc.backtest_mae < fc.baseline_mae
    return {"forecast": fc, "first_day": fc.history[0][0], "last_day": last_day, "beats_baseline": beats,
            "mape_pct": _pct(fc.backtest_mape)}, chart


SECTIONS: list[tuple[str, str, Callable[[Filters], tuple[Any, Any]]]] = [
    ("funnel", "Conversion funnel", _funnel),
    ("trends", "Events over time", _trends),
    ("category-trends", "Product views by category", _category_trends),
    ("trending", "Trending products", _trending),
    ("rfm", "Customer segments (RFM)", _rfm),
    ("forecast", "Daily orders forecast", _forecast),
]


# admin_view lets every staff member in; the dashboard shows what shoppers did, so it needs this permission.
DASHBOARD_PERMISSION = "behavior.view_event"


@require_GET
@permission_required(DASHBOARD_PERMISSION, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    tree = shop_services.category_tree()
    form = DashboardFilterForm(request.GET, tree=tree)
    context = {
        **admin.site.each_context(request),
        "title": "Shopper behaviour dashboard",
        "subtitle": None,
        "app_name": apps.get_app_config("behavior").verbose_name,
        "form": form,
        "not_enough": NOT_ENOUGH,
    }
    if not form.is_valid():
        return render(request, "behavior/dashboard.html", context, status=400)
    data = form.cleaned_data
    form.data = form.data.copy()  # show the dates actually used (the defaults, when left blank)
    form.data["start"], form.data["end"] = data["start"].isoformat(), data["end"].isoformat()
    names = {category.pk: category.name for category, _depth in walk(tree)}
    filters = Filters(
        start=data["start"], end=data["end"], category_id=data["category_id"],
        category_name=names.get(data["category_id"], ""),
        include_simulated=data["simulated"], tree=tree,
    )
    sections = {key.replace("-", "_"): _build(key, title, compute, filters) for key, title, compute in SECTIONS}
    return render(request, "behavior/dashboard.html", {**context, "filters": filters, "sections": sections})
