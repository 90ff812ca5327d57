"""Product attributes read once from titles and bullets and stored (search.models.ProductAttributes), so that a
chip filters exactly what it says ("Resolution: 4k" lists only 4K products, "27″" only 27-inch screens) with an
indexed lookup instead of matching text at query time.

- resolution: from the title (4K/UHD, 8K, QHD/WQHD, FHD/Full HD, 720p) or a bullet's "3840 x 2160"-style pixels;
  never from "4K upscaling"-style bullets, which a 1080p set also claims.
- size_inches: the first screen size in the title ('65" Class', "27-inch", "15.6”"), not a mount's "for 42"-90"
  TVs" range.
- refresh_hz, storage_gb, memory_gb: from title or bullets ("120Hz Refresh Rate", "512GB SSD", "16GB RAM").
- tags: "|value|value|" of the query vocabulary's features and colours found as whole phrases in the title or
  bullets (the same values the parser's chips carry), so `tags__contains="|wireless|"` is an exact filter.

Kept fresh by the product's post_save receiver (search/receivers.py) and filled for bulk-imported products by
`ensure_attributes` (the embedding command and the catalogue snapshot call it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from .query import COLOURS, FEATURES

_RESOLUTION_TITLE = (
    ("8k", re.compile(r"\b8k\b|\b4320p\b", re.I)),
    ("4k", re.compile(r"\b4k\b|\buhd\b|ultra\s*hd|\b2160p\b", re.I)),
    ("1440p", re.compile(r"\b(?:u?w?qhd|quad\s*hd|1440p)\b", re.I)),
    ("1080p", re.compile(r"\bfhd\b|full\s*hd|\b1080[pi]\b", re.I)),
    ("720p", re.compile(r"\b720p\b|\bhd\s+ready\b", re.I)),
)
_PIXELS = re.compile(r"\b(\d{3,4})\s*[x×]\s*(\d{3,4})\b", re.I)
_PIXEL_HEIGHTS = {4320: "8k", 2160: "4k", 1440: "1440p", 1600: "1440p", 1200: "1080p", 1080: "1080p", 720: "720p",
                  768: "720p", 800: "720p"}
_SIZE = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,2})?)\s?(?:\"|”|''|″|-?\s?inch(?:es)?\b|-in\b)", re.I)
_NOT_OWN_SIZE = re.compile(r"(?:for|up\s+to|fits?|to|-|–)\s*$", re.I)
_REFRESH = re.compile(r"\b(\d{2,3})\s?hz\b", re.I)
_STORAGE = re.compile(r"\b(\d{1,4}(?:\.\d)?)\s?(gb|tb)\b(?!\s*(?:of\s+)?(?:ram|memory|ddr\d?|lpddr\d?x?|unified))",
                      re.I)
_MEMORY = re.compile(r"\b(\d{1,3})\s?gb\s*(?:of\s+)?(?:ram|memory|ddr\d?|lpddr\d?x?|unified)\b", re.I)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(word) for word in phrase.split()]
    return re.compile(r"(?<![\w])" + r"[\s\-]*".join(words) + r"s?(?![\w])", re.I)


_TAG_PATTERNS = [(value, _phrase_pattern(phrase)) for phrase, (facet, value) in FEATURES.items()
                 if facet == "feature"] + [(value, _phrase_pattern(phrase)) for phrase, value in COLOURS.items()]


def resolution_of(title: str, bullets: Iterable[str]) -> str:
    for value, pattern in _RESOLUTION_TITLE:
        if pattern.search(title):
            return value
    for text in [title, *bullets]:
        for width, height in _PIXELS.findall(text):
            value = _PIXEL_HEIGHTS.get(min(int(width), int(height)))
            if value:
                return value
    return ""


def size_of(title: str) -> Decimal | None:
    for match in _SIZE.finditer(title):
        if _NOT_OWN_SIZE.search(title[max(0, match.start() - 8):match.start()]):
            continue  # "Mount for 42"-90" TVs": the sizes it fits, not its own
        value = Decimal(match.group(1))
        if 3 <= value <= 150:
            return value
    return None


def parse_attributes(title: str, bullets: Iterable[str] | None) -> dict:
    """The stored attributes of a product with this title and these feature bullets."""
    bullets = [str(b) for b in (bullets or [])]
    text = "\n".join([title, *bullets])
    refresh = [int(n) for n in _REFRESH.findall(text) if 30 <= int(n) <= 600]
    storage = [Decimal(n) * (1024 if unit.lower() == "tb" else 1) for n, unit in _STORAGE.findall(title)]
    memory = [int(n) for n in _MEMORY.findall(text)]
    tags = sorted({value for value, pattern in _TAG_PATTERNS if pattern.search(text)})
    return {
        "resolution": resolution_of(title, bullets),
        "size_inches": size_of(title),
        "refresh_hz": max(refresh) if refresh else None,
        "storage_gb": int(max(storage)) if storage else None,
        "memory_gb": max(memory) if memory else None,
        "tags": "|" + "|".join(tags) + "|" if tags else "",
    }


def refresh(products: Iterable) -> int:
    """Parse and store the attributes of these products (objects with pk, title, features); returns how many."""
    from .models import ProductAttributes

    rows = [ProductAttributes(product_id=p.pk, **parse_attributes(p.title, p.features)) for p in products]
    if rows:
        ProductAttributes.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["product"],
            update_fields=["resolution", "size_inches", "refresh_hz", "storage_gb", "memory_gb", "tags"],
            batch_size=1000)
    return len(rows)


def ensure_attributes() -> int:
    """Store attributes for every product that has none yet (bulk imports send no post_save)."""
    from shop import services as shop

    from .models import ProductAttributes

    missing = shop.products_for_indexing().exclude(
        pk__in=ProductAttributes.objects.values("product_id")).select_related(None).only("pk", "title", "features")
    done = 0
    batch = []
    for product in missing.iterator(chunk_size=2000):
        batch.append(product)
        if len(batch) >= 2000:
            done += refresh(batch)
            batch = []
    return done + refresh(batch)
