"""The fact check of product copy: the copy rules (numbers with their units, prices, model numbers, claims,
brands, names, complained-about aspects), which point at the exact words to fix, and then the one
grounding check of ml/ (ml.grounding.check, the one the support assistant uses), which needs every
sentence to be supported by one fact. A draft passes only if both find nothing.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ml import grounding
from shop import services as shop

from .facts import CopyFacts

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
        brands = shop.catalogue_brands()
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


def spec_flags(text: str, facts: CopyFacts, *, brands: Iterable[str] | None = None) -> list[dict[str, str]]:
    """The copy rules: every number, price, spec, claim or brand a draft states that the facts do not.

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


# Words copy may use around the facts without a source: openers of the template and of taglines
# ("Meet the ...", "Say hello to the ...") and the names of what the facts are. Politeness words are
# already allowed by ml.grounding.
COPY_CONNECTIVES = ("meet", "discover", "introducing", "say", "hello", "highlights", "features", "from",
                    "shoppers", "love", "loves", "rated", "reviews", "stars", "price", "save", "was", "now")


def grounding_flags(text: str, facts: CopyFacts, *, embed=grounding.default_embed) -> list[dict[str, str]]:
    """One flag per sentence that ml.grounding finds unsupported by the facts (the whole draft when the
    check fails for the text as a whole: empty, too long, markup)."""
    result = grounding.check(text, facts.grounding_sources(), embed=embed, allowed_words=COPY_CONNECTIVES)
    if result.ok:
        return []
    reasons = ", ".join(r.replace("_", " ") for r in result.reasons)
    sentences = result.unsupported_sentences or (text,)
    return [Flag(sentence, f"not supported by the facts ({reasons})", "grounding").as_dict()
            for sentence in sentences]


def fact_check(text: str, facts: CopyFacts, *, brands: Iterable[str] | None = None,
               embed=grounding.default_embed) -> list[dict[str, str]]:
    """Findings about a draft: the copy rules' flags (exact words), then ml.grounding's (sentences).
    An empty list means the draft passed."""
    flags = spec_flags(text, facts, brands=brands)
    flagged = {flag["text"].lower() for flag in flags}
    return flags + [flag for flag in grounding_flags(text, facts, embed=embed) if flag["text"].lower() not in flagged]
