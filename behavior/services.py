"""Recording and reading shopper events: the behaviour app's public facade.

Capture lives here (server receivers, the browser beacon, identity links); the analytics
read functions (funnel, trends, trending products, interests, RFM, forecast) live in
`behavior/analytics.py` and are re-exported below so other apps import only this module.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from shop import services as shop_services

from .models import Event, IdentityLink

MAX_BATCH_EVENTS = 100
MAX_PROPERTIES_BYTES = 2048
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_EVENT_AGE = dt.timedelta(days=7)
MAX_DWELL_MS = 6 * 3600 * 1000
# What a browser may report; everything else is recorded by the server itself.
CLIENT_EVENT_TYPES = {Event.Type.REC_SHOWN, Event.Type.REC_CLICKED, Event.Type.DWELL}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_PAGE_VIEWS = {Event.Type.PRODUCT_VIEWED, Event.Type.LISTING_VIEWED}


def record_event(event_type: str, *, user=None, visitor_id: str = "", product=None, category_id: int | None = None,
                 properties: dict | None = None, occurred_at: dt.datetime | None = None, simulated: bool = False,
                 source: str = Event.Source.SERVER) -> Event:
    """Insert one event row (server side)."""
    if product is not None and category_id is None:
        category_id = product.category_id
    if event_type in _PAGE_VIEWS and connection.vendor == "postgresql" and not connection.in_atomic_block:
        # A page view is written on every storefront request. Its commit need not wait for the WAL flush
        # (~2 ms of a 2-core server's request): a database crash can lose the last fraction of a second of
        # page views, never an order or a cart. Inside a caller's transaction the caller's commit decides.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            return _insert_event(event_type, user, visitor_id, product, category_id, properties, occurred_at,
                                 simulated, source)
    return _insert_event(event_type, user, visitor_id, product, category_id, properties, occurred_at, simulated,
                         source)


def _insert_event(event_type, user, visitor_id, product, category_id, properties, occurred_at, simulated,
                  source) -> Event:
    return Event.objects.create(
        event_type=event_type,
        source=source,
        user=user if user is not None and user.is_authenticated else None,
        visitor_id=visitor_id or "",
        product=product,
        category_id=category_id,
        properties=properties or {},
        occurred_at=occurred_at or timezone.now(),
        is_simulated=simulated,
    )


# --- the browser beacon ------------------------------------------------------------------


class BatchTooLarge(ValueError):
    pass


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"stored": self.stored, "duplicates": self.duplicates, "errors": self.errors}


def _validate_client_event(raw: object, now: dt.datetime, products: dict[int, int | None]) -> tuple[dict, dict]:
    """(cleaned fields, errors by field) for one beacon event; `products` maps known product ids to categories."""
    if not isinstance(raw, dict):
        return {}, {"event": "Each event must be a JSON object."}
    errors: dict[str, str] = {}
    client_id = raw.get("id")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        errors["id"] = "A client event id of 8-64 letters, digits, '-' or '_' is required."
    event_type = raw.get("type")
    if event_type not in CLIENT_EVENT_TYPES:
        errors["type"] = f"Type must be one of: {', '.join(sorted(CLIENT_EVENT_TYPES))}."
    try:  # well formed but impossible ("2026-02-30T10:00:00Z") is a ValueError, not None
        occurred_at = parse_datetime(raw["occurred_at"]) if isinstance(raw.get("occurred_at"), str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None or occurred_at.tzinfo is None:
        errors["occurred_at"] = "An ISO 8601 timestamp with a time zone is required."
    elif occurred_at > now + MAX_CLOCK_SKEW:
        errors["occurred_at"] = "The event is in the future."
    elif occurred_at < now - MAX_EVENT_AGE:
        errors["occurred_at"] = "The event is more than 7 days old."
    product_id = None
    if raw.get("product") is not None:
        product_id = raw["product"]
        if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id not in products:
            errors["product"] = "Unknown product."
    elif event_type in (Event.Type.REC_SHOWN, Event.Type.REC_CLICKED, Event.Type.DWELL):
        errors["product"] = "This event type needs a product."
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        errors["properties"] = "Properties must be a JSON object."
    elif len(json.dumps(properties)) > MAX_PROPERTIES_BYTES:
        errors["properties"] = f"Properties may hold at most {MAX_PROPERTIES_BYTES} bytes of JSON."
    elif event_type == Event.Type.DWELL:
        ms = properties.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_DWELL_MS:
            errors["properties"] = "A dwell event needs properties.ms, whole milliseconds up to 6 hours."
    if errors:
        return {}, errors
    return {"client_event_id": client_id, "event_type": event_type, "occurred_at": occurred_at,
            "product_id": product_id, "category_id": products.get(product_id), "properties": properties}, {}


def ingest_client_batch(events: object, *, user=None, visitor_id: str = "",
                        now: dt.datetime | None = None) -> BatchResult:
    """Validate a beacon batch; store every valid event exactly once, report the others per index.

    The batch is one statement: a multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING the client ids
    it stored, so a retried batch (same client ids) stores nothing twice, even when two retries race
    (the unique index settles it), and `stored` is what the database says it stored.
    """
    if not isinstance(events, list):
        raise ValueError("`events` must be a list.")
    if len(events) > MAX_BATCH_EVENTS:
        raise BatchTooLarge(f"A batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}.")
    now = now or timezone.now()
    product_ids = {e.get("product") for e in events if isinstance(e, dict) and type(e.get("product")) is int}
    # Only the category of each product is stored with an event: no product rows are loaded.
    products = shop_services.product_categories(product_ids) if product_ids else {}
    result = BatchResult()
    cleaned: dict[str, dict] = {}
    for index, raw in enumerate(events):
        fields, errors = _validate_client_event(raw, now, products)
        if errors:
            result.errors.append({"index": index, "id": raw.get("id") if isinstance(raw, dict) else None,
                                  "errors": errors})
        elif fields["client_event_id"] in cleaned:
            result.duplicates += 1  # the same event twice in one batch
        else:
            cleaned[fields["client_event_id"]] = fields
    if not cleaned:
        return result
    stored = _insert_client_events(list(cleaned.values()), user, visitor_id, now)
    result.stored = stored
    result.duplicates += len(cleaned) - stored
    return result


_CLIENT_COLUMNS = ("event_type", "source", "user_id", "visitor_id", "product_id", "category_id", "properties",
                   "occurred_at", "received_at", "client_event_id", "is_simulated")
# PostgreSQL: the batch as columns (one array per field) through unnest. The statement's text is the same
# for every batch, so the driver parses it once, not 1,100 placeholders per batch of 100.
_PG_INSERT = f"""
INSERT INTO behavior_event ({", ".join(_CLIENT_COLUMNS)})
SELECT t.event_type, %s, %s, %s, t.product_id, t.category_id, t.properties, t.occurred_at, %s, t.client_event_id, false
FROM unnest(%s::varchar[], %s::bigint[], %s::integer[], %s::jsonb[], %s::timestamptz[], %s::varchar[])
     AS t(event_type, product_id, category_id, properties, occurred_at, client_event_id)
ON CONFLICT DO NOTHING RETURNING client_event_id
"""


def _insert_client_events(rows: list[dict], user, visitor_id: str, now: dt.datetime) -> int:
    """One INSERT for the batch; the number of rows the database stored (the others were stored before)."""
    user_id = user.pk if user is not None and user.is_authenticated else None
    columns = {name: [row[name] for row in rows]
               for name in ("event_type", "product_id", "category_id", "occurred_at", "client_event_id")}
    properties = [json.dumps(row["properties"]) for row in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_INSERT, [Event.Source.CLIENT, user_id, visitor_id or "", now, columns["event_type"],
                                        columns["product_id"], columns["category_id"], properties,
                                        columns["occurred_at"], columns["client_event_id"]])
        else:  # SQLite (development): the same statement as multi-row VALUES
            adapt = connection.ops.adapt_datetimefield_value
            row_sql = "(" + ", ".join(["%s"] * len(_CLIENT_COLUMNS)) + ")"
            params = [value for i, row in enumerate(rows) for value in (
                row["event_type"], Event.Source.CLIENT, user_id, visitor_id or "", row["product_id"],
                row["category_id"], properties[i], adapt(row["occurred_at"]), adapt(now), row["client_event_id"],
                False)]
            cursor.execute(f"INSERT INTO behavior_event ({', '.join(_CLIENT_COLUMNS)}) VALUES "
                           f"{', '.join([row_sql] * len(rows))} ON CONFLICT DO NOTHING RETURNING client_event_id",
                           params)
        return len(cursor.fetchall())


# --- identities --------------------------------------------------------------------------


def link_visitor(visitor_id: str, user) -> None:
    """Remember that this browser belongs to this user (called at login)."""
    if visitor_id and user is not None and user.is_authenticated:
        IdentityLink.objects.get_or_create(visitor_id=visitor_id, user=user)


def events_of_shopper(*, user=None, visitor_id: str = "") -> QuerySet[Event]:
    """A shopper's events: signed-in ones, plus those of every browser linked to the account."""
    condition = Q(pk__in=[])
    if user is not None and user.is_authenticated:
        linked = IdentityLink.objects.filter(user=user).values_list("visitor_id", flat=True)
        condition |= Q(user=user) | Q(visitor_id__in=linked)
    if visitor_id:
        condition |= Q(visitor_id=visitor_id)
    return Event.objects.filter(condition)


def events_between(start: dt.datetime, end: dt.datetime) -> QuerySet[Event]:
    return Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end)


# The analytics read side, re-exported so other apps import only this facade. At the bottom:
# analytics itself uses the capture functions above.
from .analytics import (  # noqa: E402
    forecast_daily_orders,
    funnel,
    recent_interests,
    rfm_from_purchases,
    rfm_segments,
    rollup_events,
    trending_products,
    trends,
    trends_by_category,
)

__all__ = [
    "events_between", "events_of_shopper", "forecast_daily_orders", "funnel", "ingest_client_batch", "link_visitor",
    "recent_interests", "record_event", "rfm_from_purchases", "rfm_segments", "rollup_events", "trending_products",
    "trends", "trends_by_category",
]
