"""Read side of the dashboards: aggregates over scores and aspect mentions, a fixed number of
queries whatever the number of products (each function below is one or two queries)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Avg, Count, ExpressionWrapper, F, FloatField, Q, QuerySet, Value, Window
from django.db.models.functions import Abs, RowNumber, Trunc

from .models import AspectMention, Label, ProductSentiment, ReviewSentiment, SentimentAlert

GROUPS = {
    "product": ("product_id", "product__title", "product__slug"),
    "brand": ("product__brand",),
    "category": ("product__category_id", "product__category__name"),
}
POS, NEU, NEG = Q(label=Label.POSITIVE), Q(label=Label.NEUTRAL), Q(label=Label.NEGATIVE)


@dataclass
class DashboardFilters:
    start: dt.date
    end: dt.date
    category_ids: list[int] | None = None
    brand: str = ""
    query: str = ""
    group: str = "product"
    bucket: str = "week"
    min_reviews: int = 3

    @property
    def start_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time.min, tzinfo=dt.UTC)

    @property
    def end_at(self) -> dt.datetime:  # exclusive
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)

    @property
    def previous_start_at(self) -> dt.datetime:
        return self.start_at - (self.end_at - self.start_at)


def scoped(queryset: QuerySet, filters: DashboardFilters) -> QuerySet:
    """Category (with sub-categories), brand and product-title filters; works for scores and mentions."""
    if filters.category_ids is not None:
        queryset = queryset.filter(product__category_id__in=filters.category_ids)
    if filters.brand:
        queryset = queryset.filter(product__brand__iexact=filters.brand)
    for word in filters.query.split()[:6]:
        queryset = queryset.filter(product__title__icontains=word)
    return queryset


def in_range(queryset: QuerySet, filters: DashboardFilters) -> QuerySet:
    return scoped(queryset, filters).filter(reviewed_at__gte=filters.start_at, reviewed_at__lt=filters.end_at)


def _shares(row: dict) -> dict:
    n = row["n"] or 1
    row["positive_share"] = round(row["pos"] / n, 3)
    row["negative_share"] = round(row["neg"] / n, 3)
    row["avg"] = round(row["avg"] or 0.0, 3)
    return row


def totals(filters: DashboardFilters) -> dict:
    row = in_range(ReviewSentiment.objects, filters).aggregate(
        n=Count("pk"), pos=Count("pk", filter=POS), neg=Count("pk", filter=NEG), avg=Avg("score"))
    return _shares(row)


def timeseries(filters: DashboardFilters) -> list[dict]:
    rows = (in_range(ReviewSentiment.objects, filters)
            .annotate(bucket=Trunc("reviewed_at", filters.bucket, tzinfo=dt.UTC)).values("bucket")
            .annotate(n=Count("pk"), pos=Count("pk", filter=POS), neu=Count("pk", filter=NEU),
                      neg=Count("pk", filter=NEG), avg=Avg("score"))
            .order_by("bucket"))
    return [_shares(row) for row in rows]


def breakdown(filters: DashboardFilters, limit: int = 12) -> list[dict]:
    keys = GROUPS[filters.group]
    rows = (in_range(ReviewSentiment.objects, filters).values(*keys)
            .annotate(n=Count("pk"), pos=Count("pk", filter=POS), neg=Count("pk", filter=NEG), avg=Avg("score"))
            .order_by("-n", keys[0])[:limit])
    return [_shares(row) for row in rows]


def group_series(filters: DashboardFilters, groups: list[dict], top: int = 5) -> dict[str, list[dict]]:
    """Average score per bucket for the biggest few groups of the breakdown (one query)."""
    key = GROUPS[filters.group][0]
    chosen = [row[key] for row in groups[:top]]
    if not chosen:
        return {}
    rows = (in_range(ReviewSentiment.objects, filters).filter(**{f"{key}__in": chosen})
            .annotate(bucket=Trunc("reviewed_at", filters.bucket, tzinfo=dt.UTC)).values(key, "bucket")
            .annotate(n=Count("pk"), avg=Avg("score")).order_by(key, "bucket"))
    names = {row[key]: _group_name(filters.group, row) for row in groups[:top]}
    series: dict[str, list[dict]] = {names[value]: [] for value in chosen}
    for row in rows:
        series[names[row[key]]].append({"bucket": row["bucket"].date().isoformat(), "avg": round(row["avg"], 3),
                                        "n": row["n"]})
    return series


def _group_name(group: str, row: dict) -> str:
    if group == "product":
        return row["product__title"]
    if group == "brand":
        return row["product__brand"] or "(no brand)"
    return row["product__category__name"]


def aspects(filters: DashboardFilters, limit: int = 12) -> list[dict]:
    rows = (in_range(AspectMention.objects, filters).values("aspect")
            .annotate(n=Count("pk"), pos=Count("pk", filter=POS), neu=Count("pk", filter=NEU),
                      neg=Count("pk", filter=NEG), avg=Avg("score"))
            .order_by("-n", "aspect")[:limit])
    return [_shares(row) for row in rows]


def aspect_examples(filters: DashboardFilters, names: list[str]) -> dict[str, dict[str, dict]]:
    """The most clearly positive and most clearly negative sentence of each aspect (one query)."""
    if not names:
        return {}
    rows = (in_range(AspectMention.objects, filters)
            .filter(aspect__in=names, label__in=[Label.POSITIVE, Label.NEGATIVE])
            .annotate(rank=Window(RowNumber(), partition_by=[F("aspect"), F("label")],
                                  order_by=[Abs(F("score")).desc(), F("pk").desc()]))
            .filter(rank=1)
            .values("aspect", "label", "sentence", "score", "product__title", "product__slug", "sentiment__review_id"))
    examples: dict[str, dict[str, dict]] = {}
    for row in rows:
        examples.setdefault(row["aspect"], {})[row["label"]] = row
    return examples


def movers(filters: DashboardFilters, limit: int = 8) -> tuple[list[dict], list[dict]]:
    """Products whose average score changed most between the previous window and this one
    (the previous window is as long as the chosen range and ends where it starts)."""
    current = Q(reviewed_at__gte=filters.start_at)
    rows = (scoped(ReviewSentiment.objects, filters)
            .filter(reviewed_at__gte=filters.previous_start_at, reviewed_at__lt=filters.end_at)
            .values("product_id", "product__title", "product__slug")
            .annotate(cur_n=Count("pk", filter=current), prev_n=Count("pk", filter=~current),
                      cur_avg=Avg("score", filter=current), prev_avg=Avg("score", filter=~current),
                      cur_neg=Count("pk", filter=current & NEG), prev_neg=Count("pk", filter=~current & NEG))
            .filter(cur_n__gte=filters.min_reviews, prev_n__gte=filters.min_reviews)
            .annotate(delta=ExpressionWrapper(F("cur_avg") - F("prev_avg"), output_field=FloatField())))
    improved = list(rows.filter(delta__gt=0).order_by("-delta", "product_id")[:limit])
    worsened = list(rows.filter(delta__lt=0).order_by("delta", "product_id")[:limit])
    for row in improved + worsened:
        row["cur_neg_share"] = round(row["cur_neg"] / row["cur_n"], 3)
        row["prev_neg_share"] = round(row["prev_neg"] / row["prev_n"], 3)
    return improved, worsened


def disagreements(filters: DashboardFilters, limit: int = 10, min_gap: float = 1.0) -> list[ReviewSentiment]:
    """Reviews whose text most disagrees with their stars (5 stars, very negative text; or the reverse).
    Stars map onto the same scale as the text score: 1 -> -1, 3 -> 0, 5 -> +1."""
    star_score = ExpressionWrapper((F("rating") - Value(3.0)) / Value(2.0), output_field=FloatField())
    return list(in_range(ReviewSentiment.objects, filters)
                .annotate(gap=Abs(ExpressionWrapper(star_score - F("score"), output_field=FloatField())))
                .filter(gap__gte=min_gap).select_related("product", "review").order_by("-gap", "-pk")[:limit])


def scorers(filters: DashboardFilters) -> dict:
    """Which model versions scored the reviews in range (most first), each named as the pages name it,
    and whether the shop's own model is serving or still training."""
    from .services import describe_scorer, scorer_status

    status = scorer_status()
    rows = (in_range(ReviewSentiment.objects, filters).values("model_version").annotate(n=Count("pk"))
            .order_by("-n", "model_version"))
    versions = [{**row, **describe_scorer(row["model_version"], status)} for row in rows]
    return {"serving": status["serving"], "training": status["training"], "versions": versions,
            "note": versions[0]["note"] if versions else describe_scorer(status["serving"], status)["note"]}


def brands() -> list[str]:
    """Brands of the products that have scores (for the brand filter's suggestions)."""
    return sorted(b for b in ProductSentiment.objects.values_list("product__brand", flat=True).distinct() if b)


def open_alerts(limit: int = 10) -> list[SentimentAlert]:
    return list(SentimentAlert.objects.exclude(status=SentimentAlert.Status.RESOLVED)
                .select_related("product").order_by("-opened_at")[:limit])


@dataclass
class Dashboard:
    filters: DashboardFilters
    totals: dict
    timeseries: list[dict]
    breakdown: list[dict]
    group_series: dict[str, list[dict]]
    aspects: list[dict]
    examples: dict[str, dict[str, dict]]
    improved: list[dict]
    worsened: list[dict]
    disagreements: list[ReviewSentiment]
    alerts: list[SentimentAlert]
    scorers: dict = field(default_factory=dict)
    charts: dict = field(default_factory=dict)


def dashboard(filters: DashboardFilters) -> Dashboard:
    groups = breakdown(filters)
    aspect_rows = aspects(filters)
    examples = aspect_examples(filters, [row["aspect"] for row in aspect_rows])
    for row in aspect_rows:
        row["examples"] = examples.get(row["aspect"], {})
    series = timeseries(filters)
    by_group = group_series(filters, groups)
    improved, worsened = movers(filters)
    board = Dashboard(filters=filters, totals=totals(filters), timeseries=series, breakdown=groups,
                      group_series=by_group, aspects=aspect_rows, examples=examples, improved=improved,
                      worsened=worsened, disagreements=disagreements(filters), alerts=open_alerts(),
                      scorers=scorers(filters))
    # Chart data only (rendered with json_script; Chart.js draws text on a canvas, never as HTML).
    board.charts = {
        "timeseries": [{"bucket": row["bucket"].date().isoformat(), "n": row["n"], "avg": row["avg"],
                        "positive": row["pos"], "neutral": row["neu"], "negative": row["neg"]} for row in series],
        "groups": by_group,
        "aspects": [{"aspect": row["aspect"], "positive": row["pos"], "neutral": row["neu"], "negative": row["neg"]}
                    for row in aspect_rows],
    }
    return board
