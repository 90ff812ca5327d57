"""Product copy for merchandisers: descriptions, marketing lines and e-mail blurbs drafted from a
product's own facts, fact-checked, then edited, accepted (published) or rejected by a person.

The flow: `request_drafts` creates ProductCopyDraft rows ("queued") and enqueues one Celery task per
draft; the task calls `generate_draft`, which gathers the facts, asks the generator (ml) for text,
cleans it, and runs `fact_check`. A draft with no findings is "ready"; any finding (a number, price,
spec, claim or brand that is not in the facts) makes it "needs_review". The published text on
Product changes only in `accept_draft`. Every step is an event row, so the history shows who did
what and when.

shop imports no other app: facts from elsewhere (review aspects from sentiment) arrive through
the functions named in settings.AISLE_COPY_FACT_SOURCES, each `(product_id) -> dict`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Length, Replace, Trim
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import Product, ProductCopyDraft, ProductCopyDraftEvent

log = logging.getLogger(__name__)

Draft = ProductCopyDraft
Kind, Tone, LengthChoice, Status, Engine = (Draft.Kind, Draft.Tone, Draft.Length, Draft.Status, Draft.Engine)
Action = ProductCopyDraftEvent.Action

DEFAULT_FACT_SOURCES = ["sentiment.services.copy_facts"]
DEFAULT_TIMEOUT_S = 120.0
NEEDS_COPY_MIN_WORDS = 25
MAX_FEATURES_IN_PROMPT = 5
MAX_FEATURE_CHARS = 140

# The field each kind is published to when accepted.
PUBLISH_FIELDS = {Kind.DESCRIPTION: "description", Kind.MARKETING_LINE: "marketing_line",
                  Kind.EMAIL_BLURB: "email_blurb"}


def timeout_s() -> float:
    return float(getattr(settings, "AISLE_COPY_TIMEOUT_S", DEFAULT_TIMEOUT_S))


# --- facts ------------------------------------------------------------------------------------------


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


def _fact_source_paths() -> list[str]:
    return list(getattr(settings, "AISLE_COPY_FACT_SOURCES", DEFAULT_FACT_SOURCES))


def external_facts(product_id: int) -> dict:
    """Merge what each configured fact source knows of the product; a failing source is logged and
    skipped (a draft without review aspects is still a good draft)."""
    merged: dict = {}
    for path in _fact_source_paths():
        try:
            found = import_string(path)(product_id) or {}
        except Exception:  # noqa: BLE001 - another app's failure must not stop the draft
            log.exception("Copy fact source %s failed for product %s; skipped", path, product_id)
            continue
        for key, value in found.items():
            if isinstance(value, list | tuple) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + [v for v in value if v not in merged[key]]
            else:
                merged[key] = list(value) if isinstance(value, tuple) else value
    return merged


def gather_facts(product: Product) -> CopyFacts:
    """The product's own facts (title, brand, price, bullets, rating) plus those of the fact sources."""
    found = external_facts(product.pk)
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


# --- prompts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthSpec:
    words: int  # the target
    sentences: str  # how the prompt says it

    @property
    def max_words(self) -> int:
        # The hard cut, a little above the target: the model rarely lands on the number.
        return int(self.words * 1.3) + 2

    @property
    def max_new_tokens(self) -> int:
        return int(self.words * 1.8) + 16


LENGTHS: dict[str, dict[str, LengthSpec]] = {
    Kind.DESCRIPTION: {LengthChoice.SHORT: LengthSpec(40, "two sentences"),
                       LengthChoice.MEDIUM: LengthSpec(75, "three or four sentences"),
                       LengthChoice.LONG: LengthSpec(120, "five or six sentences")},
    Kind.MARKETING_LINE: {LengthChoice.SHORT: LengthSpec(10, "one sentence"),
                          LengthChoice.MEDIUM: LengthSpec(16, "one sentence"),
                          LengthChoice.LONG: LengthSpec(24, "one or two sentences")},
    Kind.EMAIL_BLURB: {LengthChoice.SHORT: LengthSpec(35, "two sentences"),
                       LengthChoice.MEDIUM: LengthSpec(60, "three sentences"),
                       LengthChoice.LONG: LengthSpec(95, "four or five sentences")},
}

KIND_TASKS = {
    Kind.DESCRIPTION: "a product description for the product page",
    Kind.MARKETING_LINE: "one short marketing line (a tagline) for a banner",
    Kind.EMAIL_BLURB: "a short e-mail blurb that invites the reader to take a look at the product",
}

TONES = {
    Tone.NEUTRAL: "clear, factual and calm",
    Tone.FRIENDLY: "warm and conversational, talking to the shopper as 'you'",
    Tone.PREMIUM: "refined, understated and confident",
    Tone.PLAYFUL: "light, upbeat and a little playful",
    Tone.TECHNICAL: "precise, for a shopper who cares about specifications",
}

SYSTEM_PROMPT = (
    "You write product copy for an online electronics shop. Write only from the facts between <facts> and "
    "</facts>. Do not add any number, size, specification, price, award, warranty, guarantee, shipping offer "
    "or comparison that is not in the facts. Do not name any other brand. Do not say best, number one or "
    "waterproof unless the facts say it. Write plain text only: no title, no headings, no lists, no markdown, "
    "no emojis, no quotation marks."
)


def prompt_facts(facts: CopyFacts, kind: str) -> dict[str, str]:
    """The facts as the prompt lists them. Fewer, shorter lines ground a small model better."""
    lines: dict[str, str] = {"Product": facts.title, "Brand": facts.brand}
    if facts.category:
        lines["Category"] = facts.category
    features = [feature[:MAX_FEATURE_CHARS] for feature in facts.features[:MAX_FEATURES_IN_PROMPT]]
    if features:
        lines["Features"] = "; ".join(features)
    if facts.loved_aspects:
        lines["Shoppers love"] = ", ".join(facts.loved_aspects)
    # Prices go stale: evergreen copy (descriptions, taglines) leaves them out; an e-mail is dated.
    if kind == Kind.EMAIL_BLURB and facts.price is not None:
        lines["Price"] = f"${facts.price:,.2f}"
        if facts.discount_label:
            lines["Offer"] = facts.discount_label
    lines.update(facts.extra)
    return lines


def build_messages(facts: CopyFacts, kind: str, tone: str, length: str) -> list[dict]:
    from ml.prompts import format_facts  # neutralises tags and chat markers in imported titles

    spec = LENGTHS[kind][length]
    user = (f"{format_facts(prompt_facts(facts, kind))}\n\n"
            f"Write {KIND_TASKS[kind]} of the {facts.brand} product above, in {spec.sentences} "
            f"(about {spec.words} words). Tone: {TONES[tone]}. Use only the facts.")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --- cleaning the model's output ---------------------------------------------------------------------

_PREAMBLE = re.compile(r"^(sure|certainly|of course|here('s| is| are)|okay|ok)\b[^.!?\n]*[:!.]\s*", re.IGNORECASE)
_LABEL = re.compile(r"^(product |marketing |e-?mail )?(description|marketing line|tagline|line|blurb|e-?mail|"
                    r"subject( line)?|copy)\s*:\s*", re.IGNORECASE)
_MARKDOWN = re.compile(r"(\*\*|__|`|~~|^#+\s*|^\s*[-*•]\s+|^\s*\d+[.)]\s+)", re.MULTILINE)
_QUOTES = "\"'“”‘’«»"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)])\s+")
# Quotation marks (not the inch mark after a number).
_QUOTE_MARKS = re.compile(r"(?<!\d)[\"“”«»]")


def clean_output(text: str, max_words: int) -> str:
    """Plain text, no preamble, labels, markdown or wrapping quotes, cut at a sentence end within
    max_words (a sentence cut off by the token cap is dropped)."""
    lines = [line.strip() for line in (text or "").replace("\r", "").split("\n")]
    # Lines that only announce what follows ("Premium marketing line:") carry no copy.
    lines = [line for line in lines if line and not line.rstrip("*").endswith(":")]
    text = " ".join(_MARKDOWN.sub("", line) for line in lines)
    text = re.sub(r"\s+", " ", text).strip()
    for pattern in (_PREAMBLE, _LABEL):
        text = pattern.sub("", text, count=1).strip()
    text = _QUOTE_MARKS.sub("", text).strip(_QUOTES).strip()
    return cut_at_sentence(text, max_words)


def cut_at_sentence(text: str, max_words: int) -> str:
    if not text:
        return ""
    sentences = [s.strip(_QUOTES + " ") for s in _SENTENCE_END.split(text) if s.strip()]
    kept: list[str] = []
    words = 0
    for sentence in sentences:
        n = len(sentence.split())
        if words + n > max_words:
            break
        kept.append(sentence)
        words += n
    if kept and not kept[-1].endswith((".", "!", "?")) and len(kept) > 1:
        kept.pop()  # the generation stopped mid-sentence
    if not kept:  # even the first sentence is too long: cut it at a word and close it
        kept = [" ".join(sentences[0].split()[:max_words])]
    result = " ".join(kept).rstrip(" ,;:-–—")
    return result if result.endswith((".", "!", "?")) else f"{result}."


# --- generation ---------------------------------------------------------------------------------------


class CopyGenerationError(RuntimeError):
    """The generator was unavailable, timed out or wrote nothing usable."""


@dataclass(frozen=True)
class WrittenCopy:
    text: str
    generator: str
    seconds: float
    new_tokens: int | None


def template_copy(facts: CopyFacts, kind: str, tone: str, length: str) -> str:
    """Deterministic copy from the facts alone (no model): the baseline the model is measured against,
    and a draft a merchandiser can ask for when no model is available."""
    spec = LENGTHS[kind][length]
    openers = {Tone.NEUTRAL: "The", Tone.FRIENDLY: "Meet the", Tone.PREMIUM: "Discover the",
               Tone.PLAYFUL: "Say hello to the", Tone.TECHNICAL: "The"}
    features = [feature.strip().rstrip(".;,") for feature in facts.features if feature.strip()]
    title = facts.title.strip().rstrip(".")
    if kind == Kind.MARKETING_LINE:
        line = f"{openers[tone]} {title}" + (f": {features[0]}." if features else f", from {facts.brand}.")
        return cut_at_sentence(line, spec.max_words)
    sentences = [f"{openers[tone]} {title}, from {facts.brand}."]
    count = {LengthChoice.SHORT: 2, LengthChoice.MEDIUM: 3, LengthChoice.LONG: 5}[length]
    if features:
        sentences.append(f"Highlights: {'; '.join(features[:count])}.")
    if facts.loved_aspects:
        sentences.append(f"Shoppers love its {', '.join(facts.loved_aspects[:3])}.")
    if kind == Kind.EMAIL_BLURB and facts.price is not None:
        sentences.append(f"Now ${facts.price:,.2f}.")
    if facts.category and kind == Kind.DESCRIPTION:
        sentences.append(f"Part of our {facts.category} range.")
    return cut_at_sentence(" ".join(sentences), spec.max_words)


def _generator_name() -> str:
    from ml.registry import registry

    loaded = registry.get("generator")  # already loaded by the generation: no cost
    return f"{loaded.source}: {loaded.path.name}"


def write_copy(facts: CopyFacts, kind: str, tone: str, length: str, *, engine: str = Engine.MODEL,
               timeout: float | None = None) -> WrittenCopy:
    """Write one piece of copy (not saved). Raises CopyGenerationError when the model cannot."""
    if engine == Engine.TEMPLATE:
        started = time.perf_counter()
        text = template_copy(facts, kind, tone, length)
        return WrittenCopy(text, "template", time.perf_counter() - started, None)
    import ml

    spec = LENGTHS[kind][length]
    timeout = timeout_s() if timeout is None else timeout
    try:
        generation = ml.generate_detailed(build_messages(facts, kind, tone, length),
                                          max_new_tokens=spec.max_new_tokens, timeout_s=timeout,
                                          avoid_words=words_to_avoid(facts))
    except Exception as exc:  # noqa: BLE001 - ModelUnavailable, a broken checkpoint, out of memory...
        raise CopyGenerationError(f"The generator is unavailable: {exc}") from exc
    if generation.stopped_by_timeout:
        raise CopyGenerationError(f"The generator timed out after {generation.seconds:.0f} s "
                                  f"({generation.new_tokens} tokens).")
    text = clean_output(generation.text, spec.max_words)
    if len(text.split()) < 3:
        raise CopyGenerationError(f"The generator wrote nothing usable: {generation.text[:200]!r}")
    return WrittenCopy(text, _generator_name(), generation.seconds, generation.new_tokens)


# --- the fact check ----------------------------------------------------------------------------------

_UNITS: list[tuple[str, str]] = [
    # (pattern, canonical unit); longer spellings first so "hours" is not read as "h".
    (r'inch(?:es)?|in\.|"|\'\'', "in"), (r"ft|feet|foot", "ft"), (r"mm", "mm"), (r"cm", "cm"),
    (r"ghz", "ghz"), (r"mhz", "mhz"), (r"khz", "khz"), (r"hz|hertz", "hz"),
    (r"tb|terabytes?", "tb"), (r"gb|gigabytes?", "gb"), (r"mb|megabytes?", "mb"),
    (r"gbps", "gbps"), (r"mbps", "mbps"),
    (r"mp|megapixels?", "mp"), (r"mah", "mah"), (r"wh", "wh"), (r"w|watts?", "w"), (r"v|volts?", "v"),
    (r"nits?", "nit"), (r"db|decibels?", "db"), (r"fps", "fps"), (r"ms", "ms"),
    (r"k", "k"), (r"p", "p"),
    (r"years?|yrs?|yr", "year"), (r"months?|mos?", "month"), (r"weeks?|wks?", "week"), (r"days?", "day"),
    (r"hours?|hrs?|h", "hour"), (r"minutes?|mins?", "minute"), (r"seconds?|secs?", "second"),
    (r"%|percent|per cent", "%"), (r"x", "x"),
    (r"lbs?|pounds?", "lb"), (r"kg|kilograms?", "kg"), (r"oz|ounces?", "oz"), (r"g|grams?", "g"),
    (r"cores?", "core"), (r"threads?", "thread"), (r"channels?|ch", "channel"), (r"stars?", "star"),
    (r"reviews?", "review"), (r"count|ct|pack|pk|pcs|pieces?", "count"), (r"cameras?|cams?", "camera"),
    (r"ports?", "port"), (r"speakers?", "speaker"),
]
_UNIT_ALTERNATIVES = "|".join(f"(?P<u{i}>{pattern})" for i, (pattern, _) in enumerate(_UNITS))
_ANY_UNIT = "|".join(f"(?:{pattern})" for pattern, _ in _UNITS)
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dual": 2, "single": 1}
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# A number that is not part of a code ("i9-13980HX"), a price or "#1"; ordinals count as the number;
# a unit may follow after a space or a hyphen ("65-inch", "16 GB", '65"').
_QUANTITY = re.compile(
    rf"(?<![\w.,/#$-])(?P<num>{_NUMBER}|(?:{'|'.join(_WORD_NUMBERS)})(?=\s?-?\s?(?:{_ANY_UNIT})(?![a-z])))"
    rf"(?:st|nd|rd|th)?(?:\s?-?\s?(?:{_UNIT_ALTERNATIVES})(?![a-z\d]))?(?![\w])",
    re.IGNORECASE,
)
_PRICE = re.compile(rf"(?<![\w])(?:\$\s?(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s?(?:dollars|usd)\b)(?!\d)",
                    re.IGNORECASE)
# Letters and digits in one token: model numbers and specs ("QN90D", "RTX 4060", "Wi-Fi 6E", "M2").
_CODE = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[a-z])[a-z\d]+(?:-[a-z\d]+)*(?![\w-])", re.IGNORECASE)

# Superlative, absolute and regulated claims: allowed only when the facts make them.
CLAIM_PATTERNS: list[tuple[str, str]] = [
    (r"\bbest(?: selling| seller)?\b|\bbestsell\w*", "superlative"),
    (r"#\s?1\b|\bno\.? ?1\b|\bnumber one\b|\btop rated\b", "ranking claim"),
    (r"\b(?:water|splash|dust|shock|weather|drop) ?(?:proof|resistant)\b", "durability claim"),
    (r"\baward winning\b|\bawards?\b", "award claim"),
    (r"\bguarantee[ds]?\b|\brisk free\b|\bmoney back\b", "guarantee"),
    (r"\bfree (?:shipping|delivery|returns?|installation|gift)\b", "offer"),
    (r"\blifetime\b|\bwarrant(?:y|ies)\b", "warranty claim"),
    (r"\bclinically\b|\bproven\b|\bcertified\b|\bfda\b|\bdoctor recommended\b|\bexpert recommended\b",
     "regulated claim"),
    (r"\bun(?:beatable|paralleled|matched|rivall?ed|surpassed)\b", "superlative"),
    (r"\b(?:cheapest|lowest price|fastest|brightest|thinnest|lightest|quietest|smallest|strongest|sharpest|"
     r"loudest|longest lasting)\b", "superlative"),
    (r"\b(?:world|industry|market)'?s? (?:first|leading|best|only)\b|\bindustry leading\b|\bmilitary grade\b",
     "superlative"),
    (r"\bmost (?:advanced|innovative|powerful|reliable|popular|trusted|durable|comfortable|affordable)\b",
     "superlative"),
    (r"\b100 ?%|\b100 percent\b", "absolute claim"),
    (r"\b(?:eco|environmentally) friendly\b|\bsustainabl[ey]\b", "environmental claim"),
    (r"\b(?:better|faster|brighter|cheaper) than\b|\bthan (?:any|all) other\b", "comparison"),
    (r"\blimited time\b|\bwhile (?:stocks|supplies) last\b", "offer"),
]
_CLAIMS = [(re.compile(pattern), reason) for pattern, reason in CLAIM_PATTERNS]
# Claim words the generator may not write unless the facts use them (constrained decoding, so the draft
# is not thrown away afterwards): the small default model calls two products in three "unparalleled".
AVOIDED_CLAIM_WORDS = (
    "unparalleled", "unbeatable", "unmatched", "unrivaled", "unrivalled", "unsurpassed", "best", "bestselling",
    "best-selling", "cheapest", "fastest", "guaranteed", "waterproof", "award-winning", "top-rated", "lifetime",
)

# Well-known brands beside the catalogue's own (a draft naming one that is not the product's is flagged).
COMMON_BRANDS = {
    "Apple", "Samsung", "Sony", "LG", "Bose", "JBL", "Dell", "HP", "Lenovo", "ASUS", "Acer", "MSI", "Microsoft",
    "Google", "Amazon", "Philips", "Panasonic", "Sharp", "Toshiba", "Vizio", "TCL", "Hisense", "Canon", "Nikon",
    "GoPro", "DJI", "Garmin", "Fitbit", "Beats", "Sennheiser", "Logitech", "Razer", "Corsair", "Nintendo",
    "PlayStation", "Xbox", "Netflix", "Roku", "Sonos", "Anker", "Belkin", "Netgear", "NETGEAR", "Huawei",
    "Xiaomi", "OnePlus", "Motorola", "Nokia", "Intel", "AMD", "NVIDIA", "Qualcomm", "Dolby", "Alexa",
}
# Words a mid-sentence capital may legitimately have without being in the facts.
# Headline-style copy capitalises plain words ("The Ultimate Gaming Solution"): these are not names.
_COMMON_CAPITALS = frozenset("""
    i tv tvs pc ok you your the a an and or of for to in on at by with from off be is are it its this that
    our we us my me all more get meet discover introducing experience enjoy upgrade shop buy now today
    tonight tonight's new here why how what your perfect premium ultimate unique innovative comprehensive
    powerful smart essential everyday home office gaming family style quality performance design value power
    product products review reviews solution solutions guide buying price deal deals sale gift gifts
    sound picture camera cameras phone phones computer computers laptop laptops tablet tablets speaker
    speakers headphones audio video music entertainment technology tech device devices accessory
    accessories bundle kit pack set
""".split())
_BRAND_CACHE: dict[str, object] = {"at": 0.0, "brands": frozenset()}
BRAND_CACHE_SECONDS = 300


def catalogue_brands() -> frozenset[str]:
    """Every brand in the catalogue plus well-known ones (cached a few minutes)."""
    if time.monotonic() - float(_BRAND_CACHE["at"]) > BRAND_CACHE_SECONDS:
        brands = set(Product.objects.exclude(brand="").values_list("brand", flat=True).distinct())
        _BRAND_CACHE.update(at=time.monotonic(), brands=frozenset(brands | COMMON_BRANDS))
    return _BRAND_CACHE["brands"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Flag:
    text: str
    reason: str
    kind: str  # number, price, spec, claim, brand, name, aspect

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "reason": self.reason, "kind": self.kind}


def normalise(text: str) -> str:
    """One spelling for quotes, dashes, symbols and spaces, so "65”" reads like '65"'."""
    text = unicodedata.normalize("NFKC", text or "")
    text = (text.replace("“", '"').replace("”", '"').replace("″", '"').replace("’", "'").replace("‘", "'")
            .replace("–", "-").replace("—", "-").replace("‐", "-").replace("‑", "-"))
    text = re.sub(r"[™®©]", "", text)
    return re.sub(r"\s+", " ", text).strip()


def words_to_avoid(facts: CopyFacts) -> list[str]:
    """The claim words the facts do not use: the generator is kept from writing them."""
    claim_text = _Allowed.of(facts).claim_text
    return [word for word in AVOIDED_CLAIM_WORDS
            if not re.search(rf"(?<!\w){re.escape(_claim_form(word))}(?!\w)", claim_text)]


def _claim_form(text: str) -> str:
    """Lower case with hyphens as spaces: "Award-winning" and "award winning" compare equal."""
    return re.sub(r"\s+", " ", normalise(text).lower().replace("-", " "))


def _compact(text: str) -> str:
    return re.sub(r"[\s-]", "", normalise(text).lower())


def _unit_of(match: re.Match) -> str | None:
    for i, (_, canonical) in enumerate(_UNITS):
        if match.group(f"u{i}") is not None:
            return canonical
    return None


def _number(raw: str) -> Decimal:
    word = _WORD_NUMBERS.get(raw.lower())
    return Decimal(word) if word is not None else Decimal(raw.replace(",", ""))


def quantities(text: str) -> list[tuple[str, Decimal, str | None, tuple[int, int]]]:
    """(matched text, value, canonical unit or None, span) for each number in the text, prices excluded."""
    found = []
    for match in _QUANTITY.finditer(text):
        try:
            value = _number(match.group("num"))
        except InvalidOperation:
            continue
        found.append((match.group(0).strip(), value, _unit_of(match), match.span()))
    return found


def prices(text: str) -> list[tuple[str, Decimal, tuple[int, int]]]:
    found = []
    for match in _PRICE.finditer(text):
        try:
            found.append((match.group(0), _number(match.group("a") or match.group("b")), match.span()))
        except InvalidOperation:
            continue
    return found


@dataclass(frozen=True)
class _Allowed:
    """What the facts allow, precomputed once per check."""

    quantities: frozenset[tuple[Decimal, str | None]]
    numbers: frozenset[Decimal]
    prices: frozenset[Decimal]
    claim_text: str
    compact_text: str
    words: frozenset[str]

    @classmethod
    def of(cls, facts: CopyFacts) -> _Allowed:
        texts = [normalise(t) for t in facts.sources()]
        joined = " \n ".join(texts)
        allowed_prices = {value for text in texts for _, value, _ in prices(text)}
        allowed_prices |= {p for p in (facts.price, facts.compare_at_price, facts.discount_amount) if p is not None}
        found = [(value, unit) for text in texts for _, value, unit, _ in quantities(_without_prices(text))]
        if facts.rating is not None:
            found += [(facts.rating, None), (facts.rating, "star"), (Decimal(5), None), (Decimal(5), "star"),
                      (Decimal(facts.review_count), None), (Decimal(facts.review_count), "review")]
        if facts.discount_amount is not None and facts.compare_at_price:
            share = (facts.discount_amount / facts.compare_at_price * 100).quantize(Decimal("1"))
            found.append((share, "%"))
        words = {w.lower().strip("'") for w in re.findall(r"[\w']+", joined)}
        words |= {w[:-2] for w in words if w.endswith("'s")}
        return cls(quantities=frozenset(found), numbers=frozenset(value for value, _ in found),
                   prices=frozenset(allowed_prices), claim_text=_claim_form(joined), compact_text=_compact(joined),
                   words=frozenset(words))


def _without_prices(text: str) -> str:
    return _PRICE.sub(lambda m: " " * len(m.group(0)), text)


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    starts.update(m.end() for m in re.finditer(r"[.!?:;]\s+|\n\s*|\s-\s", text))
    return starts


def fact_check(text: str, facts: CopyFacts, *, brands: Iterable[str] | None = None) -> list[dict[str, str]]:
    """Findings about a draft: every number, price, spec, claim or brand it states that the facts do not.

    Numbers compare by value and unit ("65-inch" = '65"', "16 GB" = "16GB", "$499.99" = 499.99); a bare
    number passes if the facts have it with any unit. Superlatives and absolute claims ("best", "#1",
    "waterproof", "guaranteed", "free shipping", "lifetime warranty", "clinically") pass only if the
    facts say them. Another brand than the product's, a name the facts do not contain, and praise of an
    aspect shoppers complain about are flagged too. An empty list means the draft passed.
    """
    allowed = _Allowed.of(facts)
    draft = normalise(text)
    flags: list[Flag] = []

    price_hits = prices(draft)
    for raw, value, _ in price_hits:
        if value not in allowed.prices:
            flags.append(Flag(raw, "price not in the facts", "price"))
    rest = _mask(draft, [span for *_, span in price_hits])

    number_spans = []
    for raw, value, unit, span in quantities(rest):
        number_spans.append(span)
        ok = (value, unit) in allowed.quantities if unit is not None else value in allowed.numbers
        if not ok:
            reason = "number not in the facts" if unit is None else f"{unit} value not in the facts"
            flags.append(Flag(raw, reason, "number"))
    rest = _mask(rest, number_spans)

    for match in _CODE.finditer(rest):
        if _compact(match.group(0)) not in allowed.compact_text:
            flags.append(Flag(match.group(0), "model number or spec not in the facts", "spec"))

    claim_form = _claim_form(draft)
    for pattern, reason in _CLAIMS:
        for match in pattern.finditer(claim_form):
            if match.group(0) not in allowed.claim_text:
                flags.append(Flag(match.group(0), f"{reason} not in the facts", "claim"))

    own = normalise(facts.brand).lower()
    named_brands = set()
    for brand in catalogue_brands() if brands is None else brands:
        brand_form = normalise(brand)
        if not brand_form or brand_form.lower() == own or _claim_form(brand_form) in allowed.claim_text:
            continue
        # Case-sensitive: "Ring" the brand, not "ring" the word; a one-word Title-case brand that opens a
        # sentence ("Brilliant picture.") is most likely the word.
        for match in re.finditer(rf"(?<![\w&-]){re.escape(brand_form)}(?![\w&-])", draft):
            title_word = brand_form.istitle() and " " not in brand_form
            if title_word and match.start() in _sentence_starts(draft):
                continue
            flags.append(Flag(match.group(0), "another brand than the product's", "brand"))
            named_brands.add(brand_form.lower())
            break

    starts = _sentence_starts(draft)
    # A capital word is not a name when the facts, plain English or a flag already raised account for it
    # ("Best" is flagged once, as a claim).
    known = allowed.words | _COMMON_CAPITALS | named_brands | {
        word for flag in flags if flag.kind == "claim" for word in re.findall(r"[\w']+", flag.text)}
    # On the text without its numbers and prices, so the "GB" of "16 GB" is not read as a name.
    for match in re.finditer(r"(?<![\w'-])[A-Z][\w'-]*", rest):
        word = match.group(0).rstrip("'-")
        base = word[:-2] if word.endswith("'s") else word
        lowered = base.lower()
        if (match.start() in starts or any(ch.isdigit() for ch in base)
                or all(part in known for part in lowered.split("-"))):
            continue
        flags.append(Flag(word, "name not in the facts", "name"))

    claim_words = set(re.findall(r"[\w']+", claim_form))
    for aspect in facts.complained_aspects:
        parts = [p.strip() for p in re.split(r"[/,]", aspect.lower()) if p.strip()]
        mentioned = [p for p in parts if (" " in p and p in claim_form) or p in claim_words]
        if mentioned:
            flags.append(Flag(mentioned[0], f"shoppers complain about {aspect}: check this claim", "aspect"))

    unique: dict[tuple[str, str], Flag] = {}
    for flag in flags:
        unique.setdefault((flag.text.lower(), flag.kind), flag)
    return [flag.as_dict() for flag in unique.values()]


def status_for(flags: list) -> str:
    return Status.NEEDS_REVIEW if flags else Status.READY


# --- the draft life cycle -------------------------------------------------------------------------------


def _validate_choices(kind: str, tone: str, length: str, engine: str) -> None:
    for value, choices, name in ((kind, Kind, "kind"), (tone, Tone, "tone"), (length, LengthChoice, "length"),
                                 (engine, Engine, "engine")):
        if value not in choices.values:
            raise ValidationError(f"Unknown {name} {value!r}; choose one of {', '.join(choices.values)}.")


def _event(draft: Draft, action: str, actor=None, **details) -> ProductCopyDraftEvent:
    return ProductCopyDraftEvent.objects.create(draft=draft, action=action, actor=actor, status=draft.status,
                                                text=draft.text, details=details)


def request_drafts(product_ids: Iterable[int], kind: str, tone: str = Tone.NEUTRAL,
                   length: str = LengthChoice.MEDIUM, requested_by=None, *,
                   engine: str = Engine.MODEL) -> list[Draft]:
    """Queue one draft per product and one generation task each (sent once the rows are committed).

    A product that already has a draft of this kind waiting or being written gets no second one, so a
    double-clicked action does not queue the same work twice."""
    _validate_choices(kind, tone, length, engine)
    ids = list(dict.fromkeys(int(pk) for pk in product_ids))
    busy = set(Draft.objects.filter(product_id__in=ids, kind=kind, status__in=[Status.QUEUED, Status.GENERATING])
               .values_list("product_id", flat=True))
    drafts: list[Draft] = []
    with transaction.atomic():
        for product_id in Product.objects.filter(pk__in=ids).exclude(pk__in=busy).values_list("pk", flat=True):
            draft = Draft.objects.create(product_id=product_id, kind=kind, tone=tone, length=length, engine=engine,
                                         requested_by=requested_by)
            _event(draft, Action.REQUESTED, requested_by, tone=tone, length=length, engine=engine)
            drafts.append(draft)
        if drafts:
            transaction.on_commit(lambda: _enqueue([draft.pk for draft in drafts]))
    return drafts


def _enqueue(draft_ids: list[int]) -> None:
    from .tasks import generate_copy_draft  # tasks import this module

    for draft_id in draft_ids:
        generate_copy_draft.delay(draft_id)


def _claim(draft_id: int) -> dt.datetime | None:
    """Mark a queued draft as being generated; None if another delivery has it or it is done.

    With late acknowledgement a task may be delivered twice (a worker died, a broker redelivered):
    only a queued draft, or one whose claim is older than any generation can take, is claimed."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=timeout_s() + 120)
    claimed = Draft.objects.filter(pk=draft_id).filter(
        Q(status=Status.QUEUED) | Q(status=Status.GENERATING, claimed_at__lt=stale)
    ).update(status=Status.GENERATING, claimed_at=now)
    return now if claimed else None


def generate_draft(draft_id: int, *, timeout: float | None = None) -> str:
    """Write, clean and fact-check one queued draft; returns its status. Never raises for a model failure:
    the draft is marked failed with the error, so the admin shows it instead of an error page."""
    claimed_at = _claim(draft_id)
    if claimed_at is None:
        status = Draft.objects.filter(pk=draft_id).values_list("status", flat=True).first()
        log.info("Copy draft %s not generated again (status %s)", draft_id, status)
        return status or "missing"
    draft = Draft.objects.select_related("product__category").get(pk=draft_id)
    facts = gather_facts(draft.product)
    written, flags, error = None, [], ""
    try:
        written = write_copy(facts, draft.kind, draft.tone, draft.length, engine=draft.engine, timeout=timeout)
        flags = fact_check(written.text, facts)
    except CopyGenerationError as exc:
        written, error = None, str(exc)
        log.warning("Copy draft %s failed: %s", draft_id, error)
    except Exception as exc:  # noqa: BLE001 - a bug here must not leave the draft "generating" for ever
        log.exception("Copy draft %s failed unexpectedly", draft_id)
        written, error = None, f"Unexpected error: {exc.__class__.__name__}: {exc}"

    with transaction.atomic():
        draft = Draft.objects.select_for_update().get(pk=draft_id)
        if draft.status != Status.GENERATING or draft.claimed_at != claimed_at:
            return draft.status  # a reject or a newer claim came first: theirs stands
        draft.facts, draft.generated_at = facts.as_dict(), timezone.now()
        if written is None:
            draft.status, draft.error = Status.FAILED, error
            draft.save(update_fields=["facts", "generated_at", "status", "error"])
            _event(draft, Action.FAILED, error=error)
            return draft.status
        draft.text = draft.generated_text = written.text
        draft.flags, draft.status, draft.error = flags, status_for(flags), ""
        draft.generator, draft.generation_seconds = written.generator, round(written.seconds, 3)
        draft.new_tokens = written.new_tokens
        draft.save(update_fields=["facts", "generated_at", "text", "generated_text", "flags", "status", "error",
                                  "generator", "generation_seconds", "new_tokens"])
        _event(draft, Action.GENERATED, flags=flags, generator=written.generator)
    return draft.status


def _locked(draft: Draft | int) -> Draft:
    return Draft.objects.select_for_update().get(pk=draft.pk if isinstance(draft, Draft) else draft)


def edit_draft(draft: Draft | int, text: str, user=None) -> Draft:
    """Replace a draft's text and check it again against the facts it was written from."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("A draft cannot be empty.")
    with transaction.atomic():
        draft = _locked(draft)
        if not draft.is_open:
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be edited.")
        if text == draft.text:
            return draft
        facts = CopyFacts.from_dict(draft.facts) if draft.facts else gather_facts(draft.product)
        draft.text, draft.flags = text, fact_check(text, facts)
        draft.status, draft.error = status_for(draft.flags), ""
        if not draft.facts:
            draft.facts = facts.as_dict()
        draft.save(update_fields=["text", "flags", "status", "error", "facts"])
        _event(draft, Action.EDITED, user, flags=draft.flags)
    return draft


def accept_draft(draft: Draft | int, user=None) -> Draft:
    """Publish the draft's text on the product (description, marketing line or e-mail blurb)."""
    with transaction.atomic():
        draft = _locked(draft)
        if draft.status not in (Status.READY, Status.NEEDS_REVIEW) or not draft.text.strip():
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be accepted.")
        product = Product.objects.select_for_update().get(pk=draft.product_id)
        field_name = PUBLISH_FIELDS[draft.kind]
        previous = getattr(product, field_name)
        setattr(product, field_name, draft.text)
        product.save(update_fields=[field_name, "updated_at"])
        draft.status, draft.decided_at, draft.decided_by = Status.ACCEPTED, timezone.now(), user
        draft.save(update_fields=["status", "decided_at", "decided_by"])
        # Unresolved flags are kept in the history: accepting them was a person's decision.
        _event(draft, Action.ACCEPTED, user, field=field_name, previous=previous, flags=draft.flags)
    return draft


def reject_draft(draft: Draft | int, user=None, note: str = "") -> Draft:
    """Reject a draft; the product keeps its text. A queued draft rejected before its task runs is
    never generated (the task only claims queued drafts)."""
    with transaction.atomic():
        draft = _locked(draft)
        if not (draft.is_open or draft.status == Status.QUEUED):
            raise ValidationError(f"A {draft.get_status_display().lower()} draft cannot be rejected.")
        draft.status, draft.decided_at, draft.decided_by = Status.REJECTED, timezone.now(), user
        draft.save(update_fields=["status", "decided_at", "decided_by"])
        _event(draft, Action.REJECTED, user, note=note[:500])
    return draft


def history(draft: Draft | int) -> QuerySet[ProductCopyDraftEvent]:
    draft_id = draft.pk if isinstance(draft, Draft) else draft
    return ProductCopyDraftEvent.objects.filter(draft_id=draft_id).select_related("actor")


# --- products that need copy ---------------------------------------------------------------------------


def with_copy_words(queryset: QuerySet[Product]) -> QuerySet[Product]:
    """Annotate copy_words: the words of the description (counted by its spaces, in the database)."""
    text = Trim("description")
    return queryset.annotate(copy_words=Case(
        When(description__regex=r"^\s*$", then=Value(0)),
        default=Length(text) - Length(Replace(text, Value(" "), Value(""))) + 1,
        output_field=IntegerField(),
    ))


def needs_copy_products(min_words: int = NEEDS_COPY_MIN_WORDS) -> QuerySet[Product]:
    """Active products with thin copy: no description, or fewer than min_words words; thinnest first."""
    return (with_copy_words(Product.objects.filter(is_active=True)).filter(copy_words__lt=min_words)
            .select_related("category").order_by("copy_words", "title"))
