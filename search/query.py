"""Query understanding for shop search: turn what a shopper types into slots and free text.

"quiet headphones for the office under $200" becomes category=headphones, price_max=200 and the
terms ["quiet", "office"], so the search service can filter on the structured slots and rank on
the rest (keywords and embeddings), and the page can show removable filter chips.

Plain Python on purpose (no Django): the search service builds a `Vocabulary` from the catalogue
once (category tree and brand names) and calls `parse_query` per request; tests build a vocabulary
from literals. Parsing is deterministic, never raises on arbitrary input, and caps the processed
text at `MAX_QUERY_CHARS`.

Pipeline, in this order, each step masking the characters it consumed from the next ones:
1. prices ("under $200", "between 1 and 2k", "$100-$300", "around 500", ...): a number only becomes a
   price next to a price cue or a currency marker, and never when a unit follows ("65 inch", "16gb");
2. numeric attributes: screen sizes, storage/memory, refresh rate, resolution, Wi-Fi generation;
3. words, with typo correction for unknown words (a small edit distance, never under 4 letters),
   then the longest phrase first over the vocabulary: categories, brands, product lines ("ipad",
   "airpods": brand and category), colours and features;
4. slots are resolved (one category, one brand) and everything not consumed is the free text.

Known limits: negation ("not bluetooth", "without ...") is left in the free text; one category and
one brand are kept (the others stay as terms); "4k"/"5k"/"8k" without "$" or "dollars" are always
resolutions, never prices.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Literal

from .typos import Corrector

MAX_QUERY_CHARS = 200
_RAW_CAP = 4 * MAX_QUERY_CHARS  # read at most this much before normalising (NFKC may expand)
AROUND_SPREAD = Decimal("0.2")  # "around $500" -> $400-$600
_CENTS = Decimal("0.01")
_UNSET = object()
_MASK = "\x00"  # consumed characters; never present in a normalised query

Intent = Literal["browse", "search", "product"]

# --- built-in vocabulary (search/data/vocabulary.json) -----------------------------------------------------------

_DATA = json.loads((Path(__file__).resolve().parent / "data" / "vocabulary.json").read_text(encoding="utf-8"))

# Category name (as in shop/demo/catalogue.py GROUPS) -> (strong phrases, weak phrases). A weak phrase only decides
# the category when nothing stronger is in the query ("512gb ssd laptop" is a laptop, "ssd" alone is storage).
# Group (top-level) categories are always weak: a leaf named in the same query wins.
CATEGORY_SYNONYMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (tuple(entry["strong"]), tuple(entry["weak"])) for name, entry in _DATA["category_synonyms"].items()}
# Product lines: phrase -> (brand, category name). Either side may be None; a side is used only when the vocabulary
# has that brand / category.
PRODUCT_LINES: dict[str, tuple[str | None, str | None]] = {
    phrase: (entry["brand"], entry["category"]) for phrase, entry in _DATA["product_lines"].items()}
# (category, attribute, narrower category): "laptop for gaming" is a gaming laptop when the shop has that category.
REFINEMENTS: tuple[tuple[str, str, str], ...] = tuple(
    (entry["category"], entry["attribute"], entry["becomes"]) for entry in _DATA["refinements"])
# Other spellings of catalogue brands (used only when the canonical brand is in the vocabulary).
BRAND_ALIASES: dict[str, str] = dict(_DATA["brand_aliases"])
# Brands that are also ordinary words: matched only in a brand-like position (see _brand_is_plausible).
AMBIGUOUS_BRANDS = frozenset(_DATA["ambiguous_brands"])
COLOURS: dict[str, str] = {phrase: value for value, phrases in _DATA["colours"].items() for phrase in phrases}
# phrase -> (facet, normalised value)
FEATURES: dict[str, tuple[str, str]] = {
    phrase: (facet, value) for facet, values in _DATA["features"].items() for value, phrases in values.items()
    for phrase in phrases}
_FACET_LABELS: dict[str, str] = dict(_DATA["facet_labels"])
# Words dropped from the free-text terms (kept in `remainder`). Negations are kept on purpose.
STOPWORDS = frozenset(_DATA["stopwords"])
# Connector words trimmed from the ends of a chip's remaining query ("laptop for" -> "laptop").
_EDGE_WORDS = frozenset(_DATA["edge_words"])
# A category or brand right after these is what the thing is *for*, not what it is ("case for iphone").
_QUALIFIERS = frozenset(_DATA["qualifiers"])
# Ordinary words that must never be "corrected" into vocabulary words.
NEVER_CORRECTED = frozenset(_DATA["never_corrected"])
# The query's head noun phrase ends at these words: what follows says what the thing is for or has ("laptop | with
# long battery life", "headphones | for the office"), so a category named there does not say what is wanted.
HEAD_BOUNDARIES = frozenset(_DATA["head_boundaries"])
# Words after a head noun that do not replace it ("macbook pro", "tv deals", "iphone 15 pro max").
NOT_HEAD_WORDS = frozenset(_DATA["not_head_words"])
# "a pair of headphones": the thing counted is the head, not the count.
QUANTITY_WORDS = frozenset(_DATA["quantity_words"])
# Words after a product word in a title that hold it rather than replace it ("Laptop Bundle", "Camera System").
_TITLE_CONTAINERS = QUANTITY_WORDS | frozenset(_DATA["title_container_words"])
_VOWELS = frozenset("aeiouy")

# --- small helpers -------------------------------------------------------------------------------------------------


def _stem(word: str) -> str:
    """Cheap plural folding so "headphones"/"headphone" and "batteries"/"battery" meet; used on both sides."""
    w = word.lower()
    if len(w) < 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "sses")):
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


_WORD = re.compile(r"[^\W_]+")


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(_stem(token) for token in _WORD.findall(phrase.lower()))


def _money(amount: Decimal) -> str:
    if amount == amount.to_integral_value():
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"


def _tidy(amount: Decimal) -> Decimal:
    """Whole dollars without decimals, cents with two: Decimal("400"), Decimal("266.40")."""
    amount = amount.quantize(_CENTS)
    return amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount


def _plain_number(raw: str) -> str:
    """"65.0" -> "65", "13.30" -> "13.3"."""
    if "." in raw:
        raw = raw.rstrip("0").rstrip(".")
    return raw or "0"


_TRANSLATE = str.maketrans({"“": '"', "”": '"', "″": '"', "‘": "'", "’": "'", "′": "'", "–": "-", "—": "-",
                            "‐": "-", "‑": "-", "−": "-"})


def normalise_query(text: str | None) -> str:
    """NFKC, one space between words, no control characters, at most MAX_QUERY_CHARS characters.

    Every span the parser reports (and every chip's remaining text) refers to this string.
    """
    if not isinstance(text, str) or not text:
        return ""
    text = unicodedata.normalize("NFKC", text[:_RAW_CAP]).translate(_TRANSLATE)
    text = "".join(char if char.isprintable() else " " for char in text)
    text = " ".join(text.split())
    if len(text) > MAX_QUERY_CHARS:
        cut = text[:MAX_QUERY_CHARS]
        space = cut.rfind(" ")
        text = (cut[:space] if space > MAX_QUERY_CHARS // 2 else cut).rstrip()
    return text


# --- public data types ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    slug: str
    name: str
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class Chip:
    """A removable filter: `remaining` is the query text without the words that produced it."""

    kind: Literal["category", "brand", "price", "attribute"]
    label: str
    value: str
    remaining: str
    facet: str = ""


@dataclass
class ParsedQuery:
    text: str  # the normalised (capped) query every span and chip refers to
    terms: list[str] = field(default_factory=list)  # free-text words for keyword/vector search (no stopwords)
    remainder: str = ""  # the free text as typed, minus the slots (stopwords kept)
    intent: Intent = "browse"
    category: str | None = None  # a hard filter: the category is the head of the query ("batteries", "4k tv")
    # Categories named as modifiers ("battery life", "watch movies", "tv stand", "case for iphone"): not filters;
    # the search decides with the query's vector whether one is really meant (search/engine.py).
    soft_categories: list[str] = field(default_factory=list)
    soft_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict, repr=False)  # slug -> its words
    brand: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    attributes: list[str] = field(default_factory=list)
    chips: list[Chip] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)  # typed word -> what it was read as

    @property
    def keywords(self) -> str:
        return " ".join(self.terms)

    @property
    def has_filters(self) -> bool:
        return bool(self.category or self.brand or self.price_min is not None or self.price_max is not None)


@dataclass(frozen=True, slots=True)
class _Meaning:
    kind: Literal["category", "brand", "attribute"]
    value: str
    facet: str = ""  # attribute facet
    weak: bool = False  # category: only when nothing stronger; brand: implied by a product line
    ambiguous: bool = False  # brand that is also an ordinary word


@dataclass(eq=False)
class Vocabulary:
    """What the shop sells, indexed for `parse_query`; build once and reuse (it caches typo lookups).

    categories: (slug, name, parent slug or None); brands: canonical names. `synonyms`/`weak_synonyms`
    map a category slug to extra phrases; `product_lines` maps a phrase to (brand, category slug).
    Use `from_catalogue` to get the built-in synonym tables; the plain constructor uses only what it is given
    (plus each category's own name and its "&"/","-separated parts).
    """

    categories: Sequence[tuple[str, str, str | None] | CategoryInfo]
    brands: Sequence[str]
    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    weak_synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    product_lines: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    brand_aliases: Mapping[str, str] = field(default_factory=dict)
    refinements: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (slug, attribute) -> slug

    def __post_init__(self) -> None:
        infos = [c if isinstance(c, CategoryInfo) else CategoryInfo(*c) for c in self.categories]
        self.by_slug: dict[str, CategoryInfo] = {c.slug: c for c in infos}
        self.brand_names: dict[str, str] = {}  # lower -> canonical
        for brand in self.brands:
            brand = (brand or "").strip()
            if brand and brand.lower() != "unbranded":
                self.brand_names.setdefault(brand.lower(), brand)
        self._phrases: dict[tuple[str, ...], list[_Meaning]] = {}
        self._display: dict[str, str] = {}  # stem -> how to show it ("headphone", "Samsung")
        self._build()
        self._max_len = max((len(key) for key in self._phrases), default=1)
        words = {word for key in self._phrases for word in key}
        self._known_words = frozenset(words)
        # Ordinary-word brands are never a correction's target ("rings" is not a typo of the brand Ring).
        self.corrector = Corrector(words, protected=STOPWORDS | NEVER_CORRECTED,
                                   not_targets=STOPWORDS | AMBIGUOUS_BRANDS)

    @classmethod
    def from_catalogue(cls, categories: Iterable[tuple[str, str, str | None]], brands: Iterable[str]) -> Vocabulary:
        """The catalogue's categories and brands plus the built-in synonyms, product lines and refinements."""
        categories = list(categories)
        slug_of = {}
        for slug, name, _parent in categories:
            slug_of.setdefault(name.casefold(), slug)
            slug_of.setdefault(slug.casefold(), slug)
        strong: dict[str, list[str]] = {}
        weak: dict[str, list[str]] = {}
        for name, (strong_phrases, weak_phrases) in CATEGORY_SYNONYMS.items():
            slug = slug_of.get(name.casefold())
            if slug:
                strong.setdefault(slug, []).extend(strong_phrases)
                weak.setdefault(slug, []).extend(weak_phrases)
        lines = {phrase: (brand, slug_of.get(category.casefold()) if category else None)
                 for phrase, (brand, category) in PRODUCT_LINES.items()}
        refinements = {}
        for base, attribute, target in REFINEMENTS:
            if base.casefold() in slug_of and target.casefold() in slug_of:
                refinements[(slug_of[base.casefold()], attribute)] = slug_of[target.casefold()]
        return cls(categories=categories, brands=list(brands), synonyms=strong, weak_synonyms=weak,
                   product_lines=lines, brand_aliases=BRAND_ALIASES, refinements=refinements)

    # -- building --

    def _add(self, phrase: str | tuple[str, ...], meaning: _Meaning) -> None:
        key = phrase if isinstance(phrase, tuple) else _key(phrase)
        if not key:
            return
        if meaning.kind == "brand" and len(key) == 1 and not meaning.weak:
            self._display.setdefault(key[0], meaning.value)
        if isinstance(phrase, str):
            words = phrase.lower().split()
            if len(words) == len(key):
                for word, stem in zip(words, key, strict=True):
                    self._display.setdefault(stem, word)
        meanings = self._phrases.setdefault(key, [])
        if any(m.kind == meaning.kind for m in meanings):
            return  # the first registration of a kind wins (explicit synonyms before derived names)
        meanings.append(meaning)

    def _category(self, slug: str, weak: bool) -> _Meaning:
        is_group = self.by_slug[slug].parent is None
        return _Meaning("category", slug, weak=weak or is_group)

    def _build(self) -> None:
        for slug, phrases in self.synonyms.items():
            if slug in self.by_slug:
                for phrase in phrases:
                    self._add(phrase, self._category(slug, weak=False))
        for phrase, (brand, slug) in self.product_lines.items():
            canonical = self.brand_names.get((brand or "").lower())
            if canonical:
                self._add(phrase, _Meaning("brand", canonical, weak=True))
            if slug in self.by_slug:
                self._add(phrase, self._category(slug, weak=False))
        leaves = [info for info in self.by_slug.values() if info.parent is not None]
        groups = [info for info in self.by_slug.values() if info.parent is None]
        for info in leaves:
            self._add(info.name, self._category(info.slug, weak=False))
            self._add(info.slug, self._category(info.slug, weak=False))
        for lower, canonical in self.brand_names.items():
            ambiguous = lower in AMBIGUOUS_BRANDS
            key = _key(lower)
            self._add(lower, _Meaning("brand", canonical, ambiguous=ambiguous))
            if "&" in lower:  # "bowers and wilkins"
                self._add(lower.replace("&", " and "), _Meaning("brand", canonical, ambiguous=ambiguous))
            if len(key) > 1 and len("".join(key)) >= 4:
                self._add(("".join(_WORD.findall(lower)),), _Meaning("brand", canonical, ambiguous=ambiguous))
        for alias, canonical in self.brand_aliases.items():
            if canonical.lower() in self.brand_names:
                self._add(alias, _Meaning("brand", self.brand_names[canonical.lower()]))
        for slug, phrases in self.weak_synonyms.items():
            if slug in self.by_slug:
                for phrase in phrases:
                    self._add(phrase, self._category(slug, weak=True))
        for info in groups:  # weak, after the explicit weak words ("camera" is the leaf, not the group)
            self._add(info.name, self._category(info.slug, weak=True))
            self._add(info.slug, self._category(info.slug, weak=True))
        # Parts of category names ("Headphones & Earbuds" -> "headphones", "earbuds"), when only one category has them.
        parts: dict[tuple[str, ...], set[str]] = {}
        for info in self.by_slug.values():
            for part in re.split(r"\s*[&,/]\s*|\s+and\s+", info.name):
                key = _key(part)
                if key:
                    parts.setdefault(key, set()).add(info.slug)
        for key, slugs in parts.items():
            if len(slugs) == 1:
                self._add(key, self._category(next(iter(slugs)), weak=True))
        for phrase, colour in COLOURS.items():
            self._add(phrase, _Meaning("attribute", colour, facet="colour"))
        for phrase, (facet, value) in FEATURES.items():
            self._add(phrase, _Meaning("attribute", value, facet=facet))

    # -- lookups --

    def display(self, stem: str, typed: str = "") -> str:
        """How to show a corrected word: the brand's own spelling, else the vocabulary word (plural kept)."""
        word = self._display.get(stem, stem)
        if word.lower() == word and typed and _stem(typed) != typed.lower() and typed.lower().startswith(_stem(typed)):
            word += typed.lower()[len(_stem(typed)):]
        return word

    def category(self, slug: str | None) -> CategoryInfo | None:
        return self.by_slug.get(slug) if slug else None

    def correct(self, word: str) -> str | None:
        """The vocabulary word (stemmed) an unknown word is a likely typo of, or None (search/typos.py's rules;
        exact words, stopwords and protected ordinary words are never corrected)."""
        stem = _stem(word)
        if stem in self._known_words:
            return None
        return self.corrector.correct(stem, also_protected=(word.lower(),))


# --- prices --------------------------------------------------------------------------------------------------------

_UNITS = (r"inch(?:es)?|in\.|cm|mm|ft|feet|foot|meters?|metres?|miles?|gb|tb|mb|kb|ghz|mhz|hz|mp|megapixels?|mah|"
          r"wh|w|watts?|v|volts?|fps|ms|lbs?|pounds?|oz|ounces?|kg|hours?|hrs?|minutes?|days?|weeks?|months?|"
          r"years?|yrs?|%|percent|x|stars?|reviews?|ratings?|pack|pk|count|pcs|pieces?|channels?|ch|bit|cores?|"
          r"rpm|nits|lumens?|db|degrees?|people|persons?|users?|devices?|cameras?|ports?|players?|rooms?|sq|"
          r"square|series|gen|generation|p")
_NUM = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?|[0-9]+(?:\.[0-9]+)?"


def _amount(name: str, lead_guard: bool) -> str:
    lead = rf"(?:(?P<{name}_cur>\$|(?<![\w])(?:usd|us\$))\s?" + (r"|(?<![\w.,$-]))" if lead_guard else r")?")
    return (lead + rf"(?P<{name}>{_NUM})(?:\s?(?P<{name}_k>k|thousand|grand)\b)?"
            rf"(?P<{name}_suf>\s?(?:dollars?|bucks|usd)\b|\s?\$)?"
            rf"(?![\w\"'])(?!\s*-?\s*(?:{_UNITS})(?![\w]))")


_CUES = {
    "under": "max", "below": "max", "beneath": "max", "less than": "max", "cheaper than": "max",
    "lower than": "max", "no more than": "max", "not more than": "max", "not over": "max", "no higher than": "max",
    "max": "max", "maximum": "max", "at most": "max", "up to": "max", "upto": "max", "within": "max",
    "budget": "max", "budget of": "max", "budget is": "max", "spend": "max", "tops": "max",
    "over": "min", "above": "min", "more than": "min", "greater than": "min", "higher than": "min",
    "at least": "min", "from": "min", "starting at": "min", "starting from": "min", "min": "min", "minimum": "min",
    "no less than": "min", "not less than": "min", "not under": "min", "upwards of": "min", "in excess of": "min",
    "around": "around", "about": "around", "approximately": "around", "approx": "around", "roughly": "around",
    "circa": "around", "close to": "around", "near": "around", "in the range of": "around",
    "somewhere around": "around",
}
_SYMBOLS = {"<": "max", "<=": "max", "=<": "max", "≤": "max", ">": "min", ">=": "min", "=>": "min", "≥": "min",
            "~": "around", "≈": "around"}
_POSTS = {"or less": "max", "or under": "max", "or below": "max", "or cheaper": "max", "or lower": "max",
          "and under": "max", "and below": "max", "and less": "max", "max": "max", "maximum": "max", "tops": "max",
          "or more": "min", "or over": "min", "or above": "min", "or higher": "min", "and up": "min",
          "and over": "min", "and above": "min", "and more": "min", "+": "min", "plus": "min", "min": "min",
          "minimum": "min"}


def _alternation(phrases: Iterable[str]) -> str:
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len, reverse=True))


_FLAGS = re.IGNORECASE
_RANGE_PATTERNS = (
    ("between", re.compile(r"(?<![\w])between\s+" + _amount("a", False) + r"\s*(?:and|&|-|to)\s*"
                           + _amount("b", False), _FLAGS)),
    ("from", re.compile(r"(?<![\w])from\s+" + _amount("a", False) + r"\s*(?:to|-|till|until|through)\s*"
                        + _amount("b", False), _FLAGS)),
    ("bare", re.compile(_amount("a", True) + r"\s*(?:-|to|through)\s*" + _amount("b", False), _FLAGS)),
)
_BOUND = re.compile(r"(?:(?<![\w])(?P<cue>" + _alternation(_CUES) + r")(?![\w])|(?P<sym>"
                    + _alternation(_SYMBOLS) + r"))\s*:?\s*" + _amount("a", False), _FLAGS)
_POST = re.compile(_amount("a", True) + r"\s*(?P<post>" + _alternation(_POSTS) + r")(?![\w])"
                   r"(?!\s*-?\s*(?:" + _UNITS + r")(?![\w]))", _FLAGS)
_BARE = re.compile(_amount("a", True), _FLAGS)
_RESOLUTION_K = frozenset({"4", "5", "8"})
_MODEL_SUFFIX = re.compile(r"(?:pro|ultra|plus|\+)\s*$", _FLAGS)


@dataclass(frozen=True, slots=True)
class _Amount:
    value: Decimal
    raw: Decimal
    currency: bool
    thousands: bool


def _read_amount(match: re.Match[str], name: str) -> _Amount | None:
    raw = match.group(name)
    if raw is None:
        return None
    digits = raw.replace(",", "")
    if len(digits.replace(".", "")) > 10:
        return None  # not a price: a serial number or garbage
    number = Decimal(digits)
    thousands = match.group(f"{name}_k") is not None
    currency = bool(match.group(f"{name}_cur") or match.group(f"{name}_suf"))
    return _Amount(_tidy(number * 1000 if thousands else number), number, currency, thousands)


_MIN_BARE_PRICE = Decimal(10)  # "at least 2 hdmi ports": a count, not $2 (write "$2" for a price)


def _is_count(amount: _Amount) -> bool:
    return not amount.currency and not amount.thousands and amount.value < _MIN_BARE_PRICE


def _looks_like_resolution(amount: _Amount, match: re.Match[str], name: str) -> bool:
    """"4k", "5k", "8k" written without "$"/"dollars" are screen resolutions."""
    return amount.thousands and not amount.currency and match.group(name) in _RESOLUTION_K and \
        match.group(f"{name}_k").lower() == "k"


@dataclass(frozen=True, slots=True)
class _PriceHit:
    start: int
    end: int
    low: Decimal | None
    high: Decimal | None
    around: Decimal | None = None


def _trimmed_span(text: str, match: re.Match[str]) -> tuple[int, int]:
    start, end = match.span()
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _mask(masked: str, start: int, end: int) -> str:
    return masked[:start] + _MASK * (end - start) + masked[end:]


def _around(value: Decimal) -> tuple[Decimal, Decimal]:
    return _tidy(value * (1 - AROUND_SPREAD)), _tidy(value * (1 + AROUND_SPREAD))


def _extract_prices(masked: str) -> tuple[list[_PriceHit], str]:
    hits: list[_PriceHit] = []
    for kind, pattern in _RANGE_PATTERNS:
        for match in list(pattern.finditer(masked)):
            low, high = _read_amount(match, "a"), _read_amount(match, "b")
            if low is None or high is None:
                continue
            if kind == "bare" and not (low.currency or high.currency or low.thousands or high.thousands) and (
                    high.value < 100 or (1900 <= low.value <= 2100 and 1900 <= high.value <= 2100)):
                continue  # "55-65" and "2019-2021" are not prices; "200-300" is
            low_value, high_value = low.value, high.value
            if high.thousands and not low.thousands and low.raw <= high.raw:
                low_value = _tidy(low.raw * 1000)  # "between 1 and 2k" -> $1,000-$2,000
            elif low.thousands and not high.thousands and high.raw <= 100 and high.raw * 1000 >= low.value:
                high_value = _tidy(high.raw * 1000)  # "1.5k to 2" -> $1,500-$2,000
            if low_value > high_value:
                low_value, high_value = high_value, low_value
            start, end = _trimmed_span(masked, match)
            hits.append(_PriceHit(start, end, low_value, high_value))
            masked = _mask(masked, start, end)
    for match in list(_BOUND.finditer(masked)):
        amount = _read_amount(match, "a")
        if amount is None or _looks_like_resolution(amount, match, "a") or _is_count(amount):
            continue
        cue = " ".join((match.group("cue") or "").lower().split())
        direction = _CUES[cue] if cue else _SYMBOLS[match.group("sym")]
        if cue == "from" and not (amount.currency or amount.thousands):
            continue  # "from 2020" is a year; "from $100" is a price
        if cue == "max" and not amount.currency and _MODEL_SUFFIX.search(masked, 0, match.start()):
            continue  # "iphone 15 pro max 256" names a model
        start, end = _trimmed_span(masked, match)
        if direction == "around":
            low, high = _around(amount.value)
            hits.append(_PriceHit(start, end, low, high, around=amount.value))
        elif direction == "max":
            hits.append(_PriceHit(start, end, None, amount.value))
        else:
            hits.append(_PriceHit(start, end, amount.value, None))
        masked = _mask(masked, start, end)
    for match in list(_POST.finditer(masked)):
        amount = _read_amount(match, "a")
        if amount is None or _looks_like_resolution(amount, match, "a") or _is_count(amount):
            continue
        if not (amount.currency or amount.thousands) and amount.value < 50:
            continue  # "2 or more hdmi ports", "16 or more"
        direction = _POSTS[" ".join(match.group("post").lower().split())]
        start, end = _trimmed_span(masked, match)
        hits.append(_PriceHit(start, end, None, amount.value) if direction == "max"
                    else _PriceHit(start, end, amount.value, None))
        masked = _mask(masked, start, end)
    for match in list(_BARE.finditer(masked)):
        amount = _read_amount(match, "a")
        if amount is None or not amount.currency:
            continue  # a bare number is never a price; "$500" / "500 dollars" is "around $500"
        start, end = _trimmed_span(masked, match)
        low, high = _around(amount.value)
        hits.append(_PriceHit(start, end, low, high, around=amount.value))
        masked = _mask(masked, start, end)
    hits.sort(key=lambda hit: hit.start)
    return hits, masked


# --- numeric attributes --------------------------------------------------------------------------------------------

_SIZE = re.compile(r"(?<![\w.])(?:(?P<lo>[0-9]{1,3}(?:\.[0-9]{1,2})?)\s?(?:-|to)\s?)?(?P<n>[0-9]{1,3}(?:\.[0-9]{1,2})?)"
                   r"(?:\s?-?\s?(?:inch(?:es)?|in\.)(?![\w])|\s?(?:\"|'')|in(?![\w]))", _FLAGS)
_STORAGE = re.compile(r"(?<![\w.])(?P<n>[0-9]{1,4}(?:\.[0-9]{1,2})?)\s?(?P<unit>gb|tb|mb)(?![\w])"
                      r"(?:\s*(?:of\s+)?(?P<ram>ram|memory|ddr[345]?)(?![\w]))?", _FLAGS)
_REFRESH = re.compile(r"(?<![\w.])(?P<n>[0-9]{2,3})\s?hz(?![\w])", _FLAGS)
_RESOLUTION = re.compile(r"(?<![\w.])(?:(?P<k>[458])k|(?P<p>480|720|1080|1440|2160|4320)[pi])(?![\w])", _FLAGS)
_WIFI = re.compile(r"(?<![\w])wi-?\s?fi\s?-?(?P<v>6e|[4-7])(?![\w])", _FLAGS)
_P_NAMES = {"2160": "4k", "4320": "8k"}


@dataclass(frozen=True, slots=True)
class _AttributeHit:
    start: int
    end: int
    facet: str
    value: str


def _extract_numeric_attributes(masked: str) -> tuple[list[_AttributeHit], str]:
    hits: list[_AttributeHit] = []

    def take(pattern: re.Pattern[str], read) -> None:
        nonlocal masked
        for match in list(pattern.finditer(masked)):
            facet, value = read(match)
            start, end = _trimmed_span(masked, match)
            hits.append(_AttributeHit(start, end, facet, value))
            masked = _mask(masked, start, end)

    def size(match: re.Match[str]) -> tuple[str, str]:
        high = _plain_number(match.group("n"))
        if match.group("lo"):
            low = _plain_number(match.group("lo"))
            if Decimal(low) > Decimal(high):
                low, high = high, low
            return "size", f'{low}-{high}"'
        return "size", f'{high}"'

    def storage(match: re.Match[str]) -> tuple[str, str]:
        value = f"{_plain_number(match.group('n'))}{match.group('unit').lower()}"
        return ("memory", f"{value} ram") if match.group("ram") else ("storage", value)

    def resolution(match: re.Match[str]) -> tuple[str, str]:
        if match.group("k"):
            return "resolution", f"{match.group('k')}k"
        return "resolution", _P_NAMES.get(match.group("p"), f"{match.group('p')}p")

    take(_WIFI, lambda m: ("feature", f"wifi {m.group('v').lower()}"))
    take(_STORAGE, storage)
    take(_SIZE, size)
    take(_REFRESH, lambda m: ("refresh", f"{m.group('n')}hz"))
    take(_RESOLUTION, resolution)
    return hits, masked


# --- words and phrases ---------------------------------------------------------------------------------------------

_JOINERS = frozenset(" -&/'.+")


@dataclass(slots=True)
class _Token:
    start: int
    end: int
    lower: str
    stem: str
    original: str
    corrected: str | None = None


@dataclass(slots=True)
class _Match:
    first: int  # token indexes [first, last)
    last: int
    start: int  # character span
    end: int
    meanings: list[_Meaning]
    qualified: bool


def _tokens(masked: str, vocabulary: Vocabulary) -> list[_Token]:
    tokens = []
    for match in _WORD.finditer(masked):
        word = match.group()
        token = _Token(match.start(), match.end(), word.lower(), _stem(word), word)
        corrected = vocabulary.correct(word)
        if corrected is not None:
            token.corrected = corrected
            token.stem = corrected
        tokens.append(token)
    return tokens


def _match_phrases(tokens: list[_Token], masked: str, vocabulary: Vocabulary) -> list[_Match]:
    joinable = [all(char in _JOINERS for char in masked[a.end:b.start]) for a, b in pairwise(tokens)]
    matches = []
    i = 0
    while i < len(tokens):
        for length in range(min(vocabulary._max_len, len(tokens) - i), 0, -1):
            if length > 1 and not all(joinable[i:i + length - 1]):
                continue
            meanings = vocabulary._phrases.get(tuple(token.stem for token in tokens[i:i + length]))
            if meanings:
                qualified = i > 0 and tokens[i - 1].lower in _QUALIFIERS
                matches.append(_Match(i, i + length, tokens[i].start, tokens[i + length - 1].end, meanings,
                                      qualified))
                i += length
                break
        else:
            i += 1
    return matches


def _head_token(tokens: list[_Token], matches: list[_Match]) -> int:
    """Index of the query's head noun: the last naming word of the first noun phrase (from the first content word
    to the first boundary word such as "for"/"with"/"on"), skipping brands, attributes and model words; -1 if none.

    "quiet laptop with long battery life" -> laptop; "battery life" -> life; "something to watch movies on a big
    screen" -> movies; "tv stand" -> stand; "sony headphones under $200" -> headphones (prices are masked)."""
    kinds: dict[int, set[str]] = {}
    for match in matches:
        for position in range(match.first, match.last):
            kinds.setdefault(position, set()).update(m.kind for m in match.meanings)
    start = next((i for i, t in enumerate(tokens) if t.lower not in STOPWORDS and t.lower not in HEAD_BOUNDARIES),
                 None)
    if start is None:
        return -1
    head = -1
    for position in range(start, len(tokens)):
        token = tokens[position]
        if token.lower == "of" and position > start and tokens[position - 1].lower in QUANTITY_WORDS:
            continue  # "a pair of headphones": the phrase goes on
        if token.lower in HEAD_BOUNDARIES:
            break
        meaning = kinds.get(position, set())
        if "category" in meaning:
            head = position
        elif meaning and meaning <= {"brand", "attribute"}:
            continue  # "headphones sony", "laptop black": the head stays
        elif (token.lower in STOPWORDS or token.lower in NOT_HEAD_WORDS or token.lower in QUANTITY_WORDS
              or not token.lower.isalpha()
              or not _VOWELS & set(token.lower)):
            continue  # "iphone 15 pro", "tv deals", "batteries 24 pack", "headphones xqzvw"
        else:
            head = position  # a plain word after a category word is the real head: "tv stand", "battery life"
    return head


def _brand_is_plausible(match: _Match, index: int, matches: list[_Match], tokens: list[_Token]) -> bool:
    """An ordinary-word brand ("ring", "blink") counts only before a product word ("ring doorbell"), alone, or
    capitalised mid-query; "brilliant sound" is not the brand Brilliant."""
    following = matches[index + 1] if index + 1 < len(matches) else None
    if following is not None and following.first == match.last and any(
            m.kind == "category" and not m.weak for m in following.meanings):
        return True
    words = [t for t in tokens if t.lower not in STOPWORDS]
    if len(words) == match.last - match.first:
        return True
    token = tokens[match.first]
    return match.first > 0 and token.original[:1].isupper() and token.corrected is None


# --- spans and text ------------------------------------------------------------------------------------------------


def _cut(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """The text without the spans, cleaned of stray punctuation and of connector words left at either end."""
    parts, position = [], 0
    for start, end in sorted(spans):
        if start > position:
            parts.append(text[position:start])
        position = max(position, end)
    parts.append(text[position:])
    words = [word for word in " ".join(parts).split() if any(char.isalnum() for char in word)]
    while words and words[0].lower().strip(",.;:!?") in _EDGE_WORDS:
        words.pop(0)
    while words and words[-1].lower().strip(",.;:!?") in _EDGE_WORDS:
        words.pop()
    return " ".join(words)


_TERM = re.compile(r"[^\W_]+(?:[-.'/&+][^\W_]+)*")
_MODEL_CODE = re.compile(r"(?=\S*[0-9])(?=\S*[^\W\d_])[^\W_]+(?:-[^\W_]+)*")
_NOT_A_MODEL = re.compile(r"[0-9]+(?:st|nd|rd|th|pk|pack|ft|m|mm|cm|x|w|v|mah|gen|g|s)", _FLAGS)


def _is_model_code(term: str) -> bool:
    """"wh-1000xm5", "qn90c", "rtx4070", "s24": letters and digits mixed, 3+ characters, not "2pack"/"3rd"."""
    return len(term) >= 3 and bool(_MODEL_CODE.fullmatch(term)) and not _NOT_A_MODEL.fullmatch(term)


# --- the parser ----------------------------------------------------------------------------------------------------


def parse_query(text: str, vocabulary: Vocabulary) -> ParsedQuery:
    """Split a shopper's query into category, brand, price range, attributes and the free text left over.

    intent: "product" when the free text holds a model code ("sony wh-1000xm5": letters and digits mixed);
    "browse" when nothing but slots is left (category, brand, price: a filtered listing; also the empty query);
    "search" otherwise (free words or attributes to rank on).
    """
    query = normalise_query(text)
    result = ParsedQuery(text=query)
    if not query:
        return result

    price_hits, masked = _extract_prices(query)
    numeric_hits, masked = _extract_numeric_attributes(masked)
    tokens = _tokens(masked, vocabulary)
    matches = _match_phrases(tokens, masked, vocabulary)
    consumed: set[int] = set()  # indexes into matches

    # Category: only a match at the head of the query is a filter; the others are soft (what the thing is for,
    # has or goes with). Among head matches, the strongest tier first; several in one tier share their parent,
    # or the last wins.
    head = _head_token(tokens, matches)
    tiers: dict[int, list[tuple[int, str]]] = {}
    for index, match in enumerate(matches):
        for meaning in match.meanings:
            if meaning.kind == "category" and not (match.first <= head < match.last):
                if meaning.value not in result.soft_categories:
                    result.soft_categories.append(meaning.value)
                result.soft_spans.setdefault(meaning.value, []).append((match.start, match.end))
            elif meaning.kind == "category":
                tier = 2 if match.qualified else (1 if meaning.weak else 0)
                tiers.setdefault(tier, []).append((index, meaning.value))
    category_matches: list[int] = []
    if tiers:
        candidates = tiers[min(tiers)]
        slugs = list(dict.fromkeys(slug for _, slug in candidates))
        parents = {vocabulary.by_slug[slug].parent for slug in slugs}
        if len(slugs) == 1:
            chosen = slugs[0]
        elif len(parents) == 1 and (parent := next(iter(parents))) in vocabulary.by_slug:
            chosen = parent
        else:
            chosen = slugs[-1]
        category_matches = [index for index, slug in candidates if slug == chosen or chosen not in slugs]
        result.category = chosen
        consumed.update(category_matches)
    result.soft_categories = [slug for slug in result.soft_categories if slug != result.category]

    # Brand: explicit before implied by a product line, unqualified before "for ..."; the first one wins.
    brand_tiers: dict[int, list[tuple[int, str]]] = {}
    for index, match in enumerate(matches):
        for meaning in match.meanings:
            if meaning.kind != "brand":
                continue
            if meaning.ambiguous and not meaning.weak and not _brand_is_plausible(match, index, matches, tokens):
                continue
            if meaning.weak and index not in consumed and any(m.kind == "category" for m in match.meanings):
                continue  # a product line whose category lost ("airpods" in "speaker for airpods")
            tier = (2 if match.qualified else 0) + (1 if meaning.weak else 0)
            brand_tiers.setdefault(tier, []).append((index, meaning.value))
    brand_matches: list[int] = []
    if brand_tiers:
        candidates = brand_tiers[min(brand_tiers)]
        result.brand = candidates[0][1]
        brand_matches = [index for index, brand in candidates if brand == result.brand]
        consumed.update(brand_matches)

    # Attributes: everything else the vocabulary knows, plus the numeric ones, in query order.
    attribute_hits: list[_AttributeHit] = list(numeric_hits)
    for index, match in enumerate(matches):
        if index in consumed:
            continue
        for meaning in match.meanings:
            if meaning.kind == "attribute":
                attribute_hits.append(_AttributeHit(match.start, match.end, meaning.facet, meaning.value))
                consumed.add(index)
                break
    attribute_hits.sort(key=lambda hit: hit.start)

    category_spans = [(matches[i].start, matches[i].end) for i in category_matches]
    if result.category:
        for hit in attribute_hits:
            target = vocabulary.refinements.get((result.category, hit.value))
            if target:  # "laptop ... gaming" -> Gaming Laptops
                result.category = target
                category_spans.append((hit.start, hit.end))
                attribute_hits = [h for h in attribute_hits if h.value != hit.value]
                break

    # Price: later mentions override earlier ones; min > max is swapped.
    for hit in price_hits:
        if hit.low is not None:
            result.price_min = hit.low
        if hit.high is not None:
            result.price_max = hit.high
    if result.price_min is not None and result.price_max is not None and result.price_min > result.price_max:
        result.price_min, result.price_max = result.price_max, result.price_min

    result.attributes = list(dict.fromkeys(hit.value for hit in attribute_hits))

    # Free text.
    all_spans = [(hit.start, hit.end) for hit in price_hits] + [(h.start, h.end) for h in attribute_hits]
    all_spans += category_spans + [(matches[i].start, matches[i].end) for i in consumed]
    result.remainder = _cut(query, all_spans)
    consumed_tokens = {t for i in consumed for t in range(matches[i].first, matches[i].last)}
    for position, token in enumerate(tokens):
        if token.corrected is not None and position in consumed_tokens:
            result.corrections[token.lower] = vocabulary.display(token.corrected, token.lower)
    result.terms = [word for word in (w.lower() for w in _TERM.findall(result.remainder)) if word not in STOPWORDS]

    # Chips.
    if result.category:
        name = vocabulary.by_slug[result.category].name
        result.chips.append(Chip("category", f"Category: {name}", result.category, _cut(query, category_spans)))
    if result.brand:
        spans = [(matches[i].start, matches[i].end) for i in brand_matches]
        result.chips.append(Chip("brand", f"Brand: {result.brand}", result.brand, _cut(query, spans)))
    if price_hits:
        result.chips.append(Chip("price", _price_label(result, price_hits), _price_value(result),
                                 _cut(query, [(hit.start, hit.end) for hit in price_hits])))
    for value in result.attributes:
        hits = [hit for hit in attribute_hits if hit.value == value]
        facet = hits[0].facet
        label = "Budget" if facet == "budget" else f"{_FACET_LABELS.get(facet, 'Feature')}: {_attribute_label(value)}"
        result.chips.append(Chip("attribute", label, value, _cut(query, [(h.start, h.end) for h in hits]), facet))

    if any(_is_model_code(term) for term in result.terms):
        result.intent = "product"
    elif result.terms or result.attributes:
        result.intent = "search"
    else:
        result.intent = "browse"
    return result


def soft_words(parsed: ParsedQuery, slug: str) -> set[str]:
    """The lower-case words of the query that named a soft category."""
    return {word.lower() for start, end in parsed.soft_spans.get(slug, ()) for word in _TERM.findall(
        parsed.text[start:end])}


def promote_category(parsed: ParsedQuery, slug: str, vocabulary: Vocabulary) -> None:
    """Make a soft category the filter (the query's vector agrees that it is what is wanted): its words leave the
    free text and a removable chip is added, as if the parser had read it as the head."""
    spans = parsed.soft_spans.get(slug, [])
    words = soft_words(parsed, slug)
    parsed.category = slug
    parsed.soft_categories = [other for other in parsed.soft_categories if other != slug]
    parsed.terms = [term for term in parsed.terms if term not in words]
    info = vocabulary.by_slug.get(slug)
    if info is not None:
        parsed.chips.insert(0, Chip("category", f"Category: {info.name}", slug, _cut(parsed.text, spans)))


_TITLE_BREAKS = re.compile(r"\s[-\u2013\u2014|/]\s|[(),;:+\[\]]")


def named_only_as_modifier(title: str, words: Iterable[str]) -> bool:
    """The title names one of the words, but only to say what its product is for or goes with: "tv" in "TV
    Mounting Service" or "Full-Motion TV Mount", "game" in "Infinity Game Table". False when one of them heads its
    phrase ("... 4K UHD LED LCD TV", "Series X Console with Controller", "Gaming Laptop Bundle") or none is named;
    a word right after "for"/"with" ("Kit for Switch") is what the product goes with.
    The same reading as the query's head noun (_head_token), applied to the title's phrases."""
    wanted = {_stem(word) for word in words}
    named = False
    for segment in _TITLE_BREAKS.split(title):
        typed = _WORD.findall(segment)
        tokens = [token.lower() for token in typed]
        for index, token in enumerate(tokens):
            if _stem(token) not in wanted:
                continue
            named = True
            if index and tokens[index - 1] in HEAD_BOUNDARIES:
                continue  # "Kit for Switch": what the product is for
            # Skipped after it: model and spec words ("Switch OLED", "Pro 2", "TV 4K"), containers ("Bundle").
            following = next((t for t, raw in zip(tokens[index + 1:], typed[index + 1:], strict=True)
                              if t.isalpha() and _VOWELS & set(t) and not (raw.isupper() and len(raw) > 1)
                              and t not in NOT_HEAD_WORDS and t not in _TITLE_CONTAINERS and _stem(t) not in wanted),
                             None)
            if following is None or following in HEAD_BOUNDARIES or following in STOPWORDS:
                return False
    return named


def demote_category(parsed: ParsedQuery) -> None:
    """Undo the head category ("keyboard" in "ipad keyboard", which the query's vector reads as a tablet accessory,
    not a piano): no filter, no chip, and the words that named it rank as free text again."""
    chip = next((c for c in parsed.chips if c.kind == "category"), None)
    parsed.category = None
    if chip is None:
        return
    parsed.chips = [c for c in parsed.chips if c is not chip]
    left = {word.lower() for word in _TERM.findall(chip.remaining)}
    named = [word.lower() for word in _TERM.findall(parsed.text) if word.lower() not in left]
    parsed.terms = list(dict.fromkeys([*parsed.terms, *(w for w in named if w not in STOPWORDS)]))


_CAPACITY = re.compile(r"[0-9.]+(?:gb|tb|mb)(?: ram)?")


def _attribute_label(value: str) -> str:
    """"512gb" -> "512GB", "16gb ram" -> "16GB RAM"; other values as they are."""
    return value.upper() if _CAPACITY.fullmatch(value) else value


def _price_label(parsed: ParsedQuery, hits: list[_PriceHit]) -> str:
    if len(hits) == 1 and hits[0].around is not None:
        return f"Around {_money(hits[0].around)}"
    if parsed.price_min is not None and parsed.price_max is not None:
        return f"{_money(parsed.price_min)} – {_money(parsed.price_max)}"
    if parsed.price_max is not None:
        return f"Under {_money(parsed.price_max)}"
    return f"Over {_money(parsed.price_min)}" if parsed.price_min is not None else "Price"


def _price_value(parsed: ParsedQuery) -> str:
    low = "" if parsed.price_min is None else str(parsed.price_min)
    high = "" if parsed.price_max is None else str(parsed.price_max)
    return f"{low}-{high}"
