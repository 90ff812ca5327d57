"""Order answers and actions for the signed-in shopper, built only from shop.services.

Every read goes through `orders_for_user(user)` / `get_order_for_user(user, number)`, which filter on
the shopper's own account: whatever the chat text says, no code path here can load anyone else's
order. A number that is not the shopper's gets the same reply whether it exists elsewhere or not,
so the assistant cannot be used to probe which order numbers exist."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.urls import reverse
from django.utils import timezone
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from shop import services as shop

from .models import Message
from .replies import Reply, source

# The shop's numbers look like AS7K2M9QXR; shoppers also type "order 1234" or "#1234".
_SHOP_NUMBER = re.compile(r"\b(AS[0-9A-Z]{8})\b", re.IGNORECASE)
_NUMBER_AFTER_WORD = re.compile(r"(?:\border\b|\bnumber\b|\bno\.|#)\s*(?:number\s*|no\.?\s*|#\s*)?:?\s*"
                                r"([A-Z0-9][A-Z0-9-]{2,19})\b", re.IGNORECASE)
_OWN_ORDER_WORDS = re.compile(r"\bmy\s+(?:last\s+|latest\s+|recent\s+)?(?:orders?|package|parcel|delivery|purchase|"
                              r"stuff|items?|shipment)\b|\bwhere\s+is\s+it\b|\bhas\s+it\s+shipped\b",
                              re.IGNORECASE)
_POLICY_QUESTION = re.compile(r"\b(policy|policies|how\s+long|how\s+many\s+days|how\s+do\s+(?:i|returns|refunds)|"
                              r"what\s+is|what's|do\s+you\s+(?:accept|offer)|rules?|window|can\s+i\s+return\s+"
                              r"(?:an?|any)\b|when\s+will\s+i\s+(?:get|receive|see)|how\s+soon|warrant(?:y|ies)|guarantee|covered)",
                              re.IGNORECASE)

NOT_FOUND = ("I can't find an order with that number on your account. Please check the number in your order "
             "confirmation email, or ask again without a number and I'll look at your latest orders.")
NO_ORDERS = "I can't see any orders on your account yet."
SIGN_IN = ("To look at your orders I need you to sign in first; order details are only shown to the account "
           "that placed the order.")

# Keyed by shop.models.Order.Status values (support may not import shop's models: ARCHITECTURE.md).
STATUS_PHRASES = {
    "placed": "has been placed and is waiting for payment confirmation",
    "paid": "is paid and being prepared; it has not shipped yet",
    "shipped": "has shipped and is on its way",
    "delivered": "was delivered",
    "cancelled": "was cancelled",
    "refunded": "was refunded",
}
SHIPPED_STATUSES = ("shipped", "delivered")
CLOSED_STATUSES = ("cancelled", "refunded")


def find_order_numbers(text: str) -> list[str]:
    """Order numbers typed in the text (upper-cased, in order, no repeats). Only tokens with a digit
    count after words like "order", so "my order status" does not read "status" as a number."""
    found = [m.upper() for m in _SHOP_NUMBER.findall(text or "")]
    for match in _NUMBER_AFTER_WORD.findall(text or ""):
        if any(ch.isdigit() for ch in match):
            found.append(match.upper().strip("-"))
    return list(dict.fromkeys(found))


def mentions_own_order(text: str) -> bool:
    """Whether the shopper is asking about an order of theirs rather than about policy in general."""
    return bool(find_order_numbers(text) or _OWN_ORDER_WORDS.search(text or ""))


_REFUND_ONLY = re.compile(r"\brefund", re.IGNORECASE)
_RETURN_WORDS = re.compile(r"\b(return|send\s+(it\s+|them\s+)?back)", re.IGNORECASE)


def is_policy_question(text: str) -> bool:
    """A question about how returns/refunds work, not a request to act on an order. "When will I get my
    refund?" is one too: nothing to start, the refunds article answers it."""
    if find_order_numbers(text):
        return False
    return bool(_POLICY_QUESTION.search(text or "")) or bool(_REFUND_ONLY.search(text or "")
                                                             and not _RETURN_WORDS.search(text or ""))


def login_url(next_url: str = "") -> str:
    url = reverse("shop:login")
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def sign_in_reply() -> Reply:
    return Reply(SIGN_IN, Message.Kind.DATA, sources=[source("link", "Sign in", login_url())])


# --- reading ------------------------------------------------------------------------------


def own_order(user, number: str) -> object | None:
    try:
        return shop.get_order_for_user(user, number)
    except ObjectDoesNotExist:  # Order.DoesNotExist: not theirs, or no such order
        return None


def recent_orders(user, limit: int = 3) -> list:
    return list(shop.orders_for_user(user).prefetch_related("history")[:limit])


def money(amount) -> str:
    return f"${amount:,.2f}"


def items_text(order) -> str:
    return ", ".join(f"{item.quantity} × {item.title}" for item in order.items.all())


def order_source(order) -> dict:
    return source("order", f"Order {order.number}", order.get_absolute_url())


def describe_order(order) -> str:
    """Status, tracking, items, total and return eligibility of one order, from the database only."""
    placed = order.created_at.strftime("%d %b %Y")
    status = STATUS_PHRASES.get(order.status, order.get_status_display().lower())
    if order.status == "delivered" and (when := shop.delivered_at(order)):
        status += f" on {when:%d %b %Y}"
    parts = [f"Order {order.number} (placed {placed}) {status}."]
    if order.tracking_number and order.status in SHIPPED_STATUSES:
        parts.append(f"Tracking number: {order.tracking_number}.")
    items = items_text(order)
    if items:
        parts.append(f"Items: {items}.")
    parts.append(f"Total: {money(order.total)}.")
    if order.status not in CLOSED_STATUSES:
        eligibility = shop.return_eligibility(order)
        parts.append(f"Returns: {eligibility.reason}")
    return " ".join(parts)


# --- the item the shopper names ---------------------------------------------------------------
#
# "Return my AirPods", "where are the headphones?", "the TV I bought last month": the words after
# "my/the/these/..." name an item, and the shopper's own order lines (title, brand, category) say which
# order holds it. Fuzzy (rapidfuzz) so that "airpod", "aipods" and "headphone" still match; a small table
# of everyday names ("tv", "earbuds", "laptop") maps onto the catalogue's words.

_TOKENS = re.compile(r"[a-z0-9][a-z0-9'+]*|[.,;:!?()]")
_MARKUP = re.compile(r"<[^<>]{0,100}>")  # tags typed into the chat are not words of an item name
_DETERMINERS = frozenset("my the these those this our both his her their".split())
# A reason clause ("... because my dog chewed it") names no item of the order.
_CLAUSE_BREAK = re.compile(r"\b(because|since|cause|cuz|coz|as\s+(?:it|they|the)|but|which|that\s+i|so\s+i)\b",
                           re.IGNORECASE)
# Words that end an item phrase: verbs, pronouns, prepositions, time words.
_STOP = frozenset("""
a an and or of on in at to for from with without by about into onto over under via per off up down out
i i'm im me we you he she it it's its they them their there here is are was were be been being am do does
did done have has had having can could would will shall should may might must not no yes please pls plz
bought buy ordered order orders ordering purchased purchase got get gotten received receive arrived arrive
came come delivered deliver sent send return returning returned refund refunded cancel cancelled canceled
cancelling canceling track tracking where when what which who why how is status ship shipped shipping
last this next past previous recent recently ago yesterday today tonight week weeks month months day days
year years morning evening night monday tuesday wednesday thursday friday saturday sunday january february
march april may june july august september october november december just still already yet again now
want wanted need needed like would'd i'd i'll hi hello hey thanks thank ok okay help back also too very
really so then than if else just only one ones broke breaks stopped stop died dies work works working
doesn't don't isn't won't didn't can't cannot keep keeps fit fits hurt hurts smell smells look looks sound
sounds feel feels arrive isnt wont doesnt dont didnt cant
""".split())
# Said of an item but not part of its name: skipped inside a phrase.
_DESCRIPTIVE = frozenset("""
new old broken faulty damaged defective cracked dead wrong little big small large cheap expensive whole
entire other first second third same brand-new used lovely nice stupid bloody damn useless
""".split())
# A phrase made of these is about the order itself, not an item in it.
_GENERIC = frozenset("""
order orders package packages parcel parcels delivery deliveries purchase purchases stuff item items thing
things product products shipment shipments money refund box boxes goods gear gift gifts present presents
status window policy label address number tracking price total cost costs account payment card rest
reason way time date one ones lot everything something anything
""".split())
# Everyday names -> the catalogue's words (both directions are listed where they differ).
_ALIASES = {
    "tv": {"tv", "tvs", "television"}, "tvs": {"tv", "tvs"}, "telly": {"tv", "tvs"},
    "television": {"tv", "tvs", "television"}, "televisions": {"tv", "tvs", "television"},
    "headphones": {"headphones", "earbuds", "headset"}, "headphone": {"headphones", "earbuds"},
    "earbuds": {"earbuds", "headphones", "earphones"}, "earphones": {"earbuds", "headphones"},
    "buds": {"earbuds", "buds"}, "headset": {"headset", "headphones"}, "pods": {"airpods"},
    "laptop": {"laptop", "laptops", "notebook"}, "laptops": {"laptop", "laptops", "notebook"},
    "notebook": {"notebook", "laptop"}, "computer": {"computer", "computers", "laptop", "desktop"},
    "phone": {"phone", "phones", "smartphone", "cell"}, "mobile": {"phone", "smartphone", "cell"},
    "cellphone": {"phone", "smartphone", "cell"}, "smartphone": {"smartphone", "phone"},
    "speaker": {"speaker", "speakers"}, "watch": {"watch", "smartwatch"}, "smartwatch": {"smartwatch", "watch"},
    "doorbell": {"doorbell"}, "camera": {"camera", "cameras", "cam"}, "cam": {"camera", "cam"},
    "charger": {"charger", "charging"}, "batteries": {"batteries", "battery"}, "battery": {"battery", "batteries"},
    "tablet": {"tablet", "tablets", "ipad"}, "monitor": {"monitor", "monitors", "display"},
}
MATCH_SCORE = 85  # rapidfuzz ratio (0-100) for one word to count as the same as a title word
LOOSE_SCORE = 92  # a word outside an "my/the ..." phrase must match this closely to name an item
AMBIGUOUS_WITHIN = 0.15  # lines scoring within this of the best one are equally good answers
MAX_ORDERS_READ = 50
MAX_CHOICES = 4


@dataclass
class Mention:
    """What the shopper named: the phrases after "my/the/...", and any other words worth matching."""

    phrases: list[list[str]]
    loose: list[str]
    possessive: bool = False  # a phrase came after "my"/"our": the shopper speaks of something they own

    @property
    def text(self) -> str:
        return " ".join(self.phrases[0]) if self.phrases else " ".join(self.loose)

    def __bool__(self) -> bool:
        return bool(self.phrases or self.loose)


@dataclass
class LineMatch:
    order: object
    item: object
    score: float


@dataclass
class Resolution:
    """Which order the shopper means. `reply` is set when the answer is already known (not found,
    no orders, which-one question); otherwise `order` is the order, `items` its lines they named."""

    order: object | None = None
    items: list = field(default_factory=list)
    reply: Reply | None = None
    named: str = ""
    explicit: bool = False
    missing: str = ""  # an order number typed with an item that order does not hold: the item, as typed


def _words(text: str) -> list[str]:
    return _TOKENS.findall((text or "").lower())


def _stem(word: str) -> str:
    word = word.strip("'")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _first_clause(text: str) -> str:
    """The text up to the first reason clause. A break word with nothing before it ("So I ordered a GoPro
    ...", "Since my order came ...") opens the message rather than ending what it names."""
    while (match := _CLAUSE_BREAK.search(text)) is not None:
        if any(word[0].isalnum() for word in _words(text[:match.start()])):
            return text[:match.start()]
        text = text[match.end():]
    return text


def find_mention(text: str) -> Mention:
    """The item words of a message: the phrases after a determiner ("my AirPods", "the Sony TV") up to
    the next verb, pronoun or time word, and (looser) every other word that is not a function word."""
    text = _first_clause(_MARKUP.sub(" ", text or ""))
    numbers = {n.lower() for n in find_order_numbers(text)}
    tokens = [t for t in _words(text) if t not in numbers]
    phrases, used, possessive = [], set(), False
    for index, token in enumerate(tokens):
        if token not in _DETERMINERS:
            continue
        phrase = []
        for position in range(index + 1, min(index + 6, len(tokens))):
            word = tokens[position]
            if word in _STOP or word in _DETERMINERS or not word[0].isalnum():
                break  # punctuation too: "cancel the watch, found it cheaper" names a watch
            if word in _DESCRIPTIVE or len(word) < 2:
                continue
            phrase.append(word)
            used.add(position)
        if phrase and not any(word in _GENERIC for word in phrase):
            phrases.append(phrase)
            possessive = possessive or token in ("my", "our")
    loose = [t for i, t in enumerate(tokens) if i not in used and t[0].isalnum() and len(t) >= 2
             and t not in _STOP and t not in _GENERIC and t not in _DESCRIPTIVE and t not in _DETERMINERS]
    return Mention(phrases, loose, possessive)


def _line_words(item) -> set[str]:
    product = getattr(item, "product", None)
    parts = [item.title]
    if product is not None:
        parts.append(product.brand or "")
        category = product.category
        while category is not None:
            parts.append(category.name)
            category = category.parent
    return {_stem(w) for w in _words(" ".join(parts)) if w[0].isalnum()}


def _word_score(word: str, vocabulary: set[str]) -> float:
    """0-100: how well one word of the shopper's matches the best word of a line."""
    candidates = {_stem(a) for a in _ALIASES.get(word, set())} | {_stem(word)}
    best = 0.0
    for candidate in candidates:
        if candidate in vocabulary:
            return 100.0
        if len(candidate) <= 3:  # "tv", "usb": only exactly
            continue
        hit = process.extractOne(candidate, vocabulary, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
        if hit:
            best = max(best, hit[1])
        elif _swapped_letters(candidate, vocabulary):
            best = max(best, float(MATCH_SCORE))
    return best


def _swapped_letters(word: str, vocabulary: set[str]) -> bool:
    """Whether the word is a vocabulary word with two neighbouring letters swapped ("ipda", "headphoens"):
    the commonest typo, which a plain edit ratio scores as two edits (75 for a four-letter word)."""
    return any(len(known) == len(word) and OSA.distance(word, known) == 1 and sorted(word) == sorted(known)
               for known in vocabulary)


def _phrase_score(phrase: list[str], vocabulary: set[str]) -> float:
    """0-1 for a line. The phrase's last word is its head noun ("phone case" is a case): it must match;
    the words before it add to the score when they match (a brand, a model)."""
    scores = [_word_score(word, vocabulary) for word in phrase]
    if not scores[-1]:
        return 0.0
    return sum(score / 100 for score in scores) / len(scores)


def _match_lines(mention: Mention, orders: list) -> list[LineMatch]:
    matches = []
    for order in orders:
        for item in order.items.all():
            vocabulary = _line_words(item)
            score = max((_phrase_score(phrase, vocabulary) for phrase in mention.phrases), default=0.0)
            if not score:
                loose = [_word_score(word, vocabulary) for word in mention.loose]
                score = max((s / 100 for s in loose if s >= LOOSE_SCORE), default=0.0) * 0.9
            if score:
                matches.append(LineMatch(order, item, score))
    return matches


def names_own_item(user, text: str) -> bool:
    """Whether the message names an item of one of the shopper's orders ("when will my AirPods come?")."""
    mention = find_mention(text)
    return bool(mention) and bool(_match_lines(mention, _orders(user)))


# --- when ------------------------------------------------------------------------------------

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "couple": 2,
                 "few": 3, "several": 4}
_AGO = re.compile(r"\b(\d+|an?|one|two|three|four|five|six|couple(?:\s+of)?|few|several)\s+(day|week|month)s?\s+ago\b",
                  re.IGNORECASE)
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30}


def days_ago_range(text: str, *, today: dt.date | None = None) -> tuple[float, float] | None:
    """The age of the order the shopper means, in days (lenient bounds), from words like "yesterday",
    "last week", "3 days ago" or "last month"; None when the message says nothing of when."""
    lowered = (text or "").lower()
    today = today or timezone.localdate()
    if match := _AGO.search(lowered):
        amount = match.group(1).split()[0]
        n = int(amount) if amount.isdigit() else _NUMBER_WORDS.get(amount, 1)
        days = n * _UNIT_DAYS[match.group(2)]
        return (days * 0.5 - 1, days * 1.6 + 2)
    if re.search(r"\btoday\b|\bthis morning\b|\bearlier today\b", lowered):
        return (0, 1.2)
    if re.search(r"\byesterday\b|\blast night\b", lowered):
        return (0.3, 2.5)
    if re.search(r"\bthis week\b", lowered):
        return (0, today.weekday() + 1.5)
    if re.search(r"\blast week\b|\bthe week before\b", lowered):
        return (3, 16)
    if re.search(r"\bthis month\b", lowered):
        return (0, today.day + 1)
    if re.search(r"\blast month\b", lowered):
        return (today.day - 1, today.day + 33)
    if re.search(r"\blast year\b", lowered):
        return (today.timetuple().tm_yday - 1, today.timetuple().tm_yday + 367)
    return None


def _age_days(order) -> float:
    return (timezone.now() - order.created_at).total_seconds() / 86400


def _when_filter(orders: list, span: tuple[float, float] | None) -> list:
    """The orders placed within the span; all of them when none is (the shopper may misremember)."""
    if span is None:
        return orders
    inside = [o for o in orders if span[0] <= _age_days(o) <= span[1]]
    return inside or orders


# --- naming items ------------------------------------------------------------------------------

_NAME_CUT = re.compile(r"\s+(?:with|-|–|—|\|)\s+|,\s+")


def short_title(title: str, limit: int = 60) -> str:
    """A title short enough for a sentence or a button: "Apple AirPods (3rd Generation) with MagSafe
    Charging Case" -> "Apple AirPods (3rd Generation)"."""
    head = _NAME_CUT.split(title or "", maxsplit=1)[0].strip() or (title or "").strip()
    if len(head) <= limit:
        return head
    return head[:limit].rsplit(" ", 1)[0].rstrip(" ,-(") + "…"


def item_names(order, items: list | None = None) -> str:
    """The named items of an order ("Apple AirPods (3rd Generation)"), or its first line and how many more."""
    lines = items or list(order.items.all())[:1]
    names = list(dict.fromkeys(short_title(item.title) for item in lines))
    text = " and ".join(names[:2])
    others = order.items.count() - len(lines) if not items else 0
    return text + (f" and {others} more item{'s' if others != 1 else ''}" if others > 0 else "")


def _other_lines(order, items: list) -> list:
    named = {item.pk for item in items}
    return [item for item in order.items.all() if item.pk not in named]


def _as_typed(text: str, words: list[str]) -> str:
    """The shopper's own spelling of words found in their message ("AirPods", not "airpods")."""
    found = re.search(r"\W+".join(re.escape(w) for w in words), text or "", re.IGNORECASE)
    return found.group(0) if found else " ".join(words)


def _quote(text: str, limit: int = 60) -> str:
    """The shopper's words, quoted back (as plain text: the widget never renders it as HTML)."""
    text = " ".join(text.split())
    return f"“{text[:limit]}{'…' if len(text) > limit else ''}”"


# --- which order --------------------------------------------------------------------------------

def _orders(user) -> list:
    return list(shop.orders_for_user(user).prefetch_related("history", "items__product__category__parent")
                [:MAX_ORDERS_READ])


_VERB = {"return": "Return", "cancel": "Cancel", None: "Where is"}


def _choice(order, items: list, action: str | None) -> dict:
    name = item_names(order, items)
    status = order.get_status_display().lower()
    label = f"{name} · order {order.number} · {status} {order.created_at:%d %b}"
    if action is None:
        reply = f"Where is the {name} from order {order.number}?"
    else:
        reply = f"{_VERB[action]} the {name} from order {order.number}"
    return {"label": label[:120], "reply": reply[:300], "order": order.number}


def _which_one(candidates: list[tuple[object, list]], named: str, action: str | None, intent: str) -> Reply:
    choices = [_choice(order, items, action) for order, items in candidates[:MAX_CHOICES]]
    text = (f"I found {_quote(named)} in {len(candidates)} of your orders. Which one do you mean?" if named else
            f"You have {len(candidates)} orders that fit. Which one do you mean?")
    return Reply(text, Message.Kind.DATA, choices=[{"label": c["label"], "reply": c["reply"]} for c in choices],
                 pending={"action": "choose_order", "intent": intent,
                          "options": {c["reply"].lower(): c["order"] for c in choices}})


def _nothing_named_found(said: str) -> Reply:
    return Reply(f"I couldn't find {_quote(said)} in any of your orders, so I haven't picked one. Could you "
                 "check the name, or give me the order number from your confirmation email?", Message.Kind.DATA,
                 sources=[source("link", "Your orders", reverse("shop:account"))])


def resolve(user, text: str, *, action: str | None = None, intent: str = "order_status") -> Resolution:
    """The shopper's own order that the message is about.

    An order number typed wins (their own only). Otherwise the item named decides ("my AirPods": the
    orders holding AirPods), narrowed by when ("last month") and by what can be done (`action`:
    "return" wants a delivered order, "cancel" one not yet shipped). Several equally good orders -> a
    question with buttons; an item named that none of their orders holds -> said so, no order picked."""
    mention = find_mention(text)
    numbers = find_order_numbers(text)
    if numbers:
        order = own_order(user, numbers[0])
        if order is None:
            return Resolution(reply=Reply(NOT_FOUND, Message.Kind.DATA))
        matches = _match_lines(mention, [order]) if mention else []
        missing = _as_typed(text, mention.phrases[0]) if mention.phrases and not matches else ""
        return Resolution(order, [m.item for m in matches], named=mention.text, explicit=True, missing=missing)
    orders = _orders(user)
    if not orders:
        return Resolution(reply=Reply(NO_ORDERS, Message.Kind.DATA,
                                      sources=[source("link", "Your account", reverse("shop:account"))]))
    span = days_ago_range(text)
    suitable = {"return": lambda o: shop.return_eligibility(o).eligible, "cancel": shop.can_cancel,
                None: lambda o: o.status not in CLOSED_STATUSES and o.status != "delivered"}[action]
    matches = _match_lines(mention, orders) if mention else []
    if not matches:
        if mention.phrases:  # they named something, and none of their orders holds it
            return Resolution(reply=_nothing_named_found(_as_typed(text, mention.phrases[0])), named=mention.text)
        pool = _when_filter(orders, span)
        preferred = [o for o in pool if suitable(o)] if action else []
        return Resolution((preferred or pool)[0])
    best = max(m.score for m in matches)
    by_order: dict[int, tuple[object, list]] = {}
    for match in sorted(matches, key=lambda m: -m.score):
        if match.score >= best - AMBIGUOUS_WITHIN:
            by_order.setdefault(match.order.pk, (match.order, []))[1].append(match.item)
    ranked = sorted(by_order.values(), key=lambda pair: pair[0].created_at, reverse=True)
    when = set(id(o) for o in _when_filter([o for o, _ in ranked], span))
    ranked = [pair for pair in ranked if id(pair[0]) in when]
    fitting = [pair for pair in ranked if suitable(pair[0])]
    named = mention.text
    # Several orders fit -> ask. A status question about delivered items ("where are my headphones?",
    # two delivered orders hold some) asks too; an action none of them allows is explained on the newest.
    choose = fitting if len(fitting) > 1 else ranked if not fitting and action is None and len(ranked) > 1 else []
    if choose:
        said = _as_typed(text, mention.phrases[0] if mention.phrases else named.split()[:1])
        return Resolution(reply=_which_one(choose, said, action, intent), named=named)
    order, items = (fitting or ranked)[0]
    return Resolution(order, items, named=named)


# --- answers ------------------------------------------------------------------------------


def _missing_note(resolution: Resolution) -> str:
    """An order number given with an item the order does not hold: the number wins, and we say so."""
    return f" I can't see {_quote(resolution.missing)} in that order." if resolution.missing else ""


def order_status_reply(user, text: str) -> Reply:
    resolution = resolve(user, text)
    if resolution.reply:
        return resolution.reply
    order = resolution.order
    lines = []
    if resolution.items:
        lines.append(f"Your {item_names(order, resolution.items)}:")
    lines.append(describe_order(order) + _missing_note(resolution))
    if not resolution.items and not resolution.explicit:
        others = [o for o in recent_orders(user) if o.pk != order.pk]
        if others:
            listed = "; ".join(f"{o.number} ({o.get_status_display().lower()})" for o in others)
            lines.append(f"Your other recent orders: {listed}. Ask me about one by its number or item.")
    return Reply(" ".join(lines), Message.Kind.DATA, sources=[order_source(order)])


def _whole_order_note(order, items: list) -> str:
    others = _other_lines(order, items) if items else []
    if not others:
        return ""
    names = ", ".join(short_title(item.title) for item in others[:2])
    return f" This covers the whole order, which also holds {names}."


def cancel_reply(user, text: str) -> Reply:
    resolution = resolve(user, text, action="cancel", intent="cancel_order")
    if resolution.reply:
        return resolution.reply
    order, items = resolution.order, resolution.items
    name = item_names(order, items)
    if not shop.can_cancel(order):
        eligibility = shop.return_eligibility(order)
        why = (f"Order {order.number} ({name}) {STATUS_PHRASES.get(order.status, order.status)}, so it can't be "
               "cancelled any more.")
        return Reply(f"{why} {eligibility.reason}{_missing_note(resolution)}", Message.Kind.DATA,
                     sources=[order_source(order)])
    question = (f"Cancel the {name} from order {order.number} (total {money(order.total)})?"
                f"{_whole_order_note(order, items)} This can't be undone.{_missing_note(resolution)}")
    return Reply(question, Message.Kind.CONFIRM, sources=[order_source(order)],
                 pending={"action": "cancel_order", "order": order.number, "item": name})


def return_reply(user, text: str) -> Reply:
    resolution = resolve(user, text, action="return", intent="return_refund")
    if resolution.reply:
        return resolution.reply
    order, items = resolution.order, resolution.items
    name = item_names(order, items)
    eligibility = shop.return_eligibility(order)
    if not eligibility.eligible:
        return Reply(f"Order {order.number} ({name}): {eligibility.reason}{_missing_note(resolution)}",
                     Message.Kind.DATA, sources=[order_source(order)])
    question = (f"Return the {name} from order {order.number}? {eligibility.reason}"
                f"{_whole_order_note(order, items)}{_missing_note(resolution)}")
    return Reply(question, Message.Kind.CONFIRM, sources=[order_source(order)],
                 pending={"action": "start_return", "order": order.number, "item": name})


def perform(user, pending: dict) -> Reply:
    """Run a confirmed action on the shopper's own order (the shop re-checks ownership and state)."""
    number = str(pending.get("order", ""))
    item = str(pending.get("item", ""))[:120]
    what = f"the {item} from order {number}" if item else f"order {number}"
    try:
        if pending.get("action") == "cancel_order":
            order = shop.cancel_order_for_user(user, number, note="Cancelled by the shopper via the assistant.")
            named = f" ({item})" if item else ""
            return Reply(f"Done: order {order.number}{named} is cancelled.", Message.Kind.ACTION,
                         sources=[order_source(order)])
        if pending.get("action") == "start_return":
            request = shop.start_return_for_user(user, number, reason="Started in the chat assistant.",
                                                 channel="assistant")
            return Reply(f"Done: I've started a return for {what} (return request {request.pk}). We'll "
                         "email you a prepaid return label.", Message.Kind.ACTION,
                         sources=[order_source(request.order)])
    except ObjectDoesNotExist:  # Order.DoesNotExist: not theirs, or no such order
        return Reply(NOT_FOUND, Message.Kind.DATA)
    except ValidationError as exc:
        return Reply(f"I couldn't do that for order {number}: {' '.join(exc.messages)}", Message.Kind.DATA)
    return Reply("Sorry, I no longer know what you wanted me to do. Could you ask again?", Message.Kind.DATA)
