"""Today's beacon ingestion before issue 21, kept only as the baseline bench/events.py measures beside
the new path in the same process: whole product rows loaded, a SELECT for ids already stored, then the
ORM's bulk_create in a transaction (one by one after a conflict)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from behavior.models import Event
from behavior.services import _validate_client_event
from shop import services as shop_services


def ingest_client_batch_orm(events: list, *, visitor_id: str = "") -> tuple[int, int]:
    """(stored, duplicates) for a batch, the way it was stored before."""
    now = timezone.now()
    product_ids = {e.get("product") for e in events if isinstance(e, dict) and type(e.get("product")) is int}
    products = {p.pk: p for p in shop_services.get_products(product_ids)}
    categories = {pk: product.category_id for pk, product in products.items()}
    cleaned: dict[str, dict] = {}
    for raw in events:
        fields, errors = _validate_client_event(raw, now, categories)
        if not errors:
            cleaned.setdefault(fields["client_event_id"], fields)
    seen = set(Event.objects.filter(client_event_id__in=list(cleaned)).values_list("client_event_id", flat=True))
    rows = [Event(source=Event.Source.CLIENT, visitor_id=visitor_id, **fields)
            for client_id, fields in cleaned.items() if client_id not in seen]
    stored = 0
    try:
        with transaction.atomic():
            Event.objects.bulk_create(rows)
        stored = len(rows)
    except IntegrityError:
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                stored += 1
            except IntegrityError:
                pass
    return stored, len(cleaned) - stored
