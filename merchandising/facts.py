"""What a draft may say about a product: its own facts (from shop) and what shoppers say (from sentiment).

Bad input never reaches the generator: `skip_reason` names what is wrong (no facts, a title too long to
be a title, markup in the bullets), and the draft is marked failed with that reason instead of being
written from invented specs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sentiment import services as sentiment
from shop import services as shop

log = logging.getLogger(__name__)

MAX_FEATURES_IN_PROMPT = 5
MAX_FEATURE_CHARS = 140
# Catalogue titles run to ~200 characters; one far longer is a pasted description or a broken import.
MAX_TITLE_CHARS = 300
_MARKUP = re.compile(r"<\s*/?\s*[a-z!][^>]*>|\bjavascript:|\bon[a-z]+\s*=|\]\(|\[/?[a-z]+\]", re.IGNORECASE)


@dataclass(frozen=True)
class CopyFacts:
    """Everything a draft may say about a product. Stored on the draft, so a later edit is checked
    against the same facts the draft was written from."""

    title: str
    brand: str
    category: str = ""
    price: Decimal | None = None
    compare_at_price: Decimal | None = None
    discount_label: str = ""
    features: tuple[str, ...] = ()
    rating: Decimal | None = None
    review_count: int = 0
    loved_aspects: tuple[str, ...] = ()
    complained_aspects: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "title": self.title, "brand": self.brand, "category": self.category,
            "price": str(self.price) if self.price is not None else None,
            "compare_at_price": str(self.compare_at_price) if self.compare_at_price is not None else None,
            "discount_label": self.discount_label, "features": list(self.features),
            "rating": str(self.rating) if self.rating is not None else None, "review_count": self.review_count,
            "loved_aspects": list(self.loved_aspects), "complained_aspects": list(self.complained_aspects),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict) -> CopyFacts:
        def money(value) -> Decimal | None:
            try:
                return Decimal(str(value)) if value not in (None, "") else None
            except InvalidOperation:
                return None

        return cls(
            title=data.get("title", ""), brand=data.get("brand", ""), category=data.get("category", ""),
            price=money(data.get("price")), compare_at_price=money(data.get("compare_at_price")),
            discount_label=data.get("discount_label", ""), features=tuple(data.get("features") or ()),
            rating=money(data.get("rating")), review_count=int(data.get("review_count") or 0),
            loved_aspects=tuple(data.get("loved_aspects") or ()),
            complained_aspects=tuple(data.get("complained_aspects") or ()),
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
        )

    @property
    def discount_amount(self) -> Decimal | None:
        if self.price is not None and self.compare_at_price is not None and self.compare_at_price > self.price:
            return self.compare_at_price - self.price
        return None

    def sources(self) -> list[str]:
        """The texts a draft may quote from (the numbers, names and claims in them are allowed)."""
        texts = [self.title, self.brand, self.category, self.discount_label, *self.features,
                 *self.loved_aspects, *self.extra.values()]
        if self.rating is not None:
            texts.append(f"{self.rating} out of 5 stars from {self.review_count} reviews")
        return [text for text in texts if text]

    def grounding_sources(self) -> list[str]:
        """The facts as ml.grounding reads them: the product first (its subject), then one entry per fact,
        so that a sentence may join the product with any one fact ("The Acme TV has a 144Hz panel")."""
        entries = [self.title, f"Brand: {self.brand}" if self.brand else "",
                   f"Category: {self.category}" if self.category else "", *self.features]
        if self.loved_aspects:
            entries.append(f"Shoppers love its {', '.join(self.loved_aspects)}.")
        if self.rating is not None:
            entries.append(f"Rated {self.rating} out of 5 stars from {self.review_count} reviews.")
        if self.price is not None:
            entries.append(f"Price: ${self.price:,.2f}; {self.price}")
        if self.compare_at_price is not None:
            entries.append(f"Was ${self.compare_at_price:,.2f}; {self.compare_at_price}")
        if self.discount_amount is not None:
            entries.append(f"Save ${self.discount_amount:,.2f}; {self.discount_amount}")
        if self.discount_label:
            entries.append(self.discount_label)
        entries.extend(f"{key}: {value}" for key, value in self.extra.items())
        return [entry for entry in entries if entry]


def skip_reason(facts: CopyFacts) -> str:
    """Why no copy should be written from these facts ("" when it may): nothing to ground it in, a title
    too long to be one, or markup in the facts (a broken import: the copy would quote it)."""
    if not facts.title.strip():
        return "Skipped: the product has no title."
    if len(facts.title) > MAX_TITLE_CHARS:
        return (f"Skipped: the title is {len(facts.title):,} characters long (at most {MAX_TITLE_CHARS}); "
                "shorten it first.")
    marked = [text for text in (facts.title, *facts.features) if _MARKUP.search(text)]
    if marked:
        return f"Skipped: markup in the product's facts ({marked[0][:80]!r}); clean the bullets first."
    if not facts.features:
        # A small model given only a title invents the specs; a person writes this one.
        return "Skipped: the product has no facts beyond its title and category (no bullets)."
    return ""


def review_facts(product_id: int) -> dict:
    """What shoppers love and complain about (sentiment's facade); a failure there is logged and skipped:
    a draft without review aspects is still a good draft."""
    try:
        return sentiment.copy_facts(product_id) or {}
    except Exception:  # noqa: BLE001 - another app's failure must not stop the draft
        log.exception("Review aspects failed for product %s; skipped", product_id)
        return {}


def gather_facts(product) -> CopyFacts:
    """The product's own facts (title, brand, price, bullets, rating) plus its review aspects."""
    found = dict(review_facts(product.pk))
    loved = tuple(str(a) for a in found.pop("loved_aspects", []) or [])
    complained = tuple(str(a) for a in found.pop("complained_aspects", []) or [])
    extra = {str(k): ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
             for k, v in found.items() if v not in (None, "", [], ())}
    return CopyFacts(
        title=product.title, brand=product.brand, category=product.category.name if product.category_id else "",
        price=product.price, compare_at_price=product.compare_at_price, discount_label=product.discount_label,
        features=tuple(str(f).strip() for f in (product.features or []) if str(f).strip()),
        rating=product.display_rating, review_count=product.display_review_count,
        loved_aspects=loved, complained_aspects=complained, extra=extra,
    )


def product_for_copy(product_id: int):
    """The product (shop's row, active or not) with its category, or None."""
    return shop.products_for_copy([product_id]).first()


def product_facts(product_id: int) -> CopyFacts | None:
    product = product_for_copy(product_id)
    return gather_facts(product) if product is not None else None
