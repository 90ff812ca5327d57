"""Text -> sentiment and aspects, with no Django import (the bench runs it in a plain shell).

- `Engine`: the fine-tuned classifier from the ml registry (task "sentiment"), or VADER when no
  checkpoint exists (ml.ModelUnavailable) or the model fails; every result carries the version
  that produced it.
- `AspectVocabulary`: aspect name -> the words that mention it; finds the aspects of a clause.
- `discover_aspects`: the aspects of one category's reviews: words and word pairs over-represented
  there relative to all reviews, noun-like, not opinion words, merged with light normalisation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger(__name__)

NEGATIVE, NEUTRAL, POSITIVE = "negative", "neutral", "positive"
LABELS = (NEGATIVE, NEUTRAL, POSITIVE)
VADER_THRESHOLD = 0.05  # the compound-score thresholds VADER's authors recommend

try:
    VADER_VERSION = f"vader-{version('vaderSentiment')}"
except PackageNotFoundError:  # pragma: no cover - it is a runtime requirement
    VADER_VERSION = "vader"


# --- text units --------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A contrast splits a sentence into clauses that may carry opposite sentiments:
# "Great sound, but the battery dies fast."
_CONTRAST = re.compile(r"[;]|\s*,?\s*\b(?:but|however|although|though|whereas|except that|yet)\b\s*", re.I)
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")


def review_text(title: str, text: str) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    if not title:
        return text
    return f"{title}{'' if title[-1] in '.!?' else '.'} {text}".strip()


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text or "") if part and part.strip()]


def clauses(sentence: str) -> list[str]:
    parts = [part.strip(" ,;") for part in _CONTRAST.split(sentence)]
    return [part for part in parts if len(part) > 2]


# A clause is classified with its review as context, as one text "clause [SEP] review": BERT
# tokenizers read "[SEP]" as their separator token, so the fine-tuned encoder sees a sentence pair
# (the clause first: truncation cuts the context, never the clause). The review-level rows and
# these clause rows train one model (see clause_training_rows).
PAIR_SEPARATOR = " [SEP] "
CONTEXT_CHARS = 400  # about 100 tokens of the review: enough context, and a clause stays cheap to score


def clause_input(clause: str, context: str) -> str:
    return f"{clause}{PAIR_SEPARATOR}{context[:CONTEXT_CHARS]}"


def clause_of(unit: str) -> str:
    """The clause of a clause_input (the whole text otherwise): VADER scores the clause alone."""
    return unit.split(PAIR_SEPARATOR, 1)[0]


_IRREGULAR = {"menus": "menu", "buses": "bus", "accessories": "accessory"}
_KEEP_S = {"lens", "bass", "gas", "series", "news", "glass", "less", "plus", "bus", "always", "its", "this", "was",
           "has", "is", "us", "as", "yes", "does", "status", "canvas", "chassis", "wireless", "cordless"}


def normalise(word: str) -> str:
    """Light normalisation: lower case, no possessive, plural -> singular ("batteries" -> "battery")."""
    word = word.lower().strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _KEEP_S or len(word) < 4:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    return [normalise(word) for word in _WORD.findall((text or "").lower())]


# --- aspect vocabularies -----------------------------------------------------------------------

# Shop-wide aspects, found in any category where shoppers talk about them enough.
GENERAL_ASPECTS: dict[str, list[str]] = {
    "price/value": ["price", "value", "cost", "money", "overpriced", "expensive", "value for money", "deal"],
    "delivery": ["delivery", "shipping", "shipped", "arrived", "arrival", "package", "packaging", "packaged",
                 "courier", "tracking", "box arrived"],
    "customer service": ["customer service", "customer support", "support", "service", "warranty", "refund",
                         "return", "returned", "replacement"],
    "quality": ["quality", "build", "build quality", "sturdy", "flimsy", "durability", "durable", "well made",
                "cheaply made"],
    "setup": ["setup", "set up", "install", "installation", "instructions", "setting it up"],
}
# Light merging of discovered terms: synonyms and word pairs that name the same aspect.
SYNONYMS: dict[str, str] = {
    "display": "screen", "screen": "screen", "audio": "sound", "sound": "sound", "sound quality": "sound",
    "battery": "battery", "battery life": "battery", "charge": "battery", "charging": "battery",
    "size": "size/fit", "fit": "size/fit", "sizing": "size/fit",
    "picture": "picture", "picture quality": "picture", "image quality": "picture",
    "customer service": "customer service", "build quality": "quality", "value for money": "price/value",
    "set up": "setup",
}

STOPWORDS = frozenset("""
a about above after again against all almost along already also although always am among an and another any
anyone anything are around as at away back be because been before being below between both but by can cannot
could did do does doing done down during each either else enough etc even ever every everything few for from
further get gets getting got gotten had has have having he her here hers herself him himself his how however i
if in into is it its itself just keep kept least less let like likely made make makes making many may me might
mine more most much must my myself need needs neither never next no nor not nothing now of off often on once one
only onto or other others our ours out over own per perhaps put quite rather really same says see seem seemed seems
seen several shall she should since so some someone something sometimes still such than that the their theirs them
themselves then there these they thing things this those though through thus till to too toward under until up upon
us use used using very via want wanted was way we well went were what whatever when where whether which while who
whole whom whose why will with within without would yet you your yours yourself yourselves
buy bought purchase purchased product item order ordered review reviews star stars recommend recommended time times
day days week weeks month months year years lot bit first second last new old overall definitely highly pretty
really work works worked working go goes going come comes came say said tell told try tried take took give gave
look looks looked feel feels felt find found think thought know knew sure far x two three four five hour hours
minute minutes everyday every daily aisle costco amazon anyone everyone people person wife husband son daughter kid
kids family friend friends home house room gift christmas birthday again yes ok okay thank thanks pair set
expected expectation expectations exceeded plus side job decent average heartbeat
""".split())


@cache
def _opinion_words() -> frozenset[str]:
    """VADER's lexicon: words that carry an opinion are not aspects ("great", "love", "terrible")."""
    analyzer = _vader()
    return frozenset(normalise(word) for word in analyzer.lexicon if word.isalpha())


def _term_tokens(term: str) -> tuple[str, ...]:
    return tuple(tokens(term))


@dataclass
class AspectVocabulary:
    """Aspect name -> terms. Finds the aspects a clause mentions (longest term wins)."""

    aspects: dict[str, list[str]]
    _index: dict[tuple[str, ...], str] = field(init=False, repr=False)
    _signature: str | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._index = {}
        for name, terms in self.aspects.items():
            for term in [name, *terms] if "/" not in name else terms:  # "price/value" is a label, not words
                key = _term_tokens(term)
                if key and key not in self._index:
                    self._index[key] = name

    @classmethod
    def default(cls) -> AspectVocabulary:
        return cls({name: list(terms) for name, terms in GENERAL_ASPECTS.items()})

    def signature(self) -> str:
        """Identifies the vocabulary: scores made with another one get their aspects re-extracted."""
        if self._signature is None:
            payload = repr(sorted((name, sorted(terms)) for name, terms in self.aspects.items()))
            self._signature = hashlib.sha1(payload.encode()).hexdigest()[:16]
        return self._signature

    def find(self, text: str) -> list[tuple[str, str]]:
        """(aspect, matched words) for each aspect the text mentions, once each, in order."""
        words = tokens(text)
        found: dict[str, str] = {}
        i = 0
        while i < len(words):
            for size in (3, 2, 1):
                key = tuple(words[i:i + size])
                if len(key) == size and key in self._index:
                    found.setdefault(self._index[key], " ".join(key))
                    i += size
                    break
            else:
                i += 1
        return list(found.items())


# --- discovery ---------------------------------------------------------------------------------

_NOUN_BEFORE = {"the", "a", "an", "its", "this", "that", "my", "their", "your", "our", "his", "her", "these",
                "those", "great", "good", "poor", "bad", "no"}
_NOUN_AFTER = {"is", "are", "was", "were", "has", "have", "had", "feel", "feels", "look", "looks", "work",
               "works", "worked", "seems", "stopped", "broke", "died", "dies", "drains", "lasts"}


@dataclass
class DiscoveredAspect:
    name: str
    terms: list[str]
    support: int  # documents of the category mentioning it
    lift: float
    kind: str  # "discovered" or "general"


def _candidates(text: str, opinion: frozenset[str], exclude: frozenset[str]) -> tuple[set[str], Counter, Counter]:
    """The content words and word pairs of one review, and how often each appeared in a noun-like slot."""
    terms: set[str] = set()
    nounish: Counter = Counter()
    seen: Counter = Counter()
    for sentence in sentences(text):
        raw = _WORD.findall(sentence.lower())
        words = [normalise(word) for word in raw]
        for i, word in enumerate(words):
            if (word in STOPWORDS or word in opinion or word in exclude or len(word) < 3 or "'" in word
                    or word.endswith("ly")):  # adverbs are never aspects
                continue
            before = raw[i - 1] if i else ""
            after = raw[i + 1] if i + 1 < len(raw) else ""
            # "the battery drains" / "battery is": noun-like; "a full workday": the next word is the noun.
            next_is_content = i + 1 < len(words) and words[i + 1] not in STOPWORDS and words[i + 1] not in opinion
            noun_slot = (before in _NOUN_BEFORE and not next_is_content) or after in _NOUN_AFTER
            terms.add(word)
            seen[word] += 1
            nounish[word] += noun_slot
            if i + 1 < len(words):
                nxt = words[i + 1]
                if nxt not in STOPWORDS and nxt not in opinion and nxt not in exclude and len(nxt) >= 3:
                    pair = f"{word} {nxt}"
                    after2 = raw[i + 2] if i + 2 < len(raw) else ""
                    terms.add(pair)
                    seen[pair] += 1
                    nounish[pair] += before in _NOUN_BEFORE or after2 in _NOUN_AFTER
    return terms, nounish, seen


def document_frequencies(texts: Iterable[str]) -> tuple[Counter, int]:
    """How many texts mention each word and word pair, and how many texts there were."""
    frequencies: Counter = Counter()
    n = 0
    for text in texts:
        frequencies.update(set(tokens_and_pairs(text)))
        n += 1
    return frequencies, n


def discover_aspects(category_texts: Sequence[str], background: tuple[Counter, int], *,
                     exclude: Iterable[str] = (), max_aspects: int = 10, min_support: int = 3,
                     min_share: float = 0.03, min_lift: float = 1.5, min_nounish: float = 0.25
                     ) -> list[DiscoveredAspect]:
    """Aspects of a category from its reviews against all reviews (`background`, from
    document_frequencies over all reviews, the category's included).

    A term qualifies when enough of the category's reviews mention it (min_support and min_share),
    it is over-represented there (smoothed document-frequency ratio >= min_lift against the
    reviews outside the category), and it mostly stands where nouns stand ("the battery", "battery
    is"). Shop-wide aspects (price, delivery, service, quality, setup) qualify on support alone.
    Word pairs merge into a qualifying word they contain ("battery life" -> battery), synonyms
    into one name ("display" -> screen).
    """
    opinion = _opinion_words()
    exclude_set = frozenset(normalise(word) for word in exclude)
    n_cat = len(category_texts)
    if n_cat == 0:
        return []
    cat_df: Counter = Counter()
    nounish: Counter = Counter()
    seen: Counter = Counter()
    for text in category_texts:
        terms, noun_counts, seen_counts = _candidates(text, opinion, exclude_set)
        cat_df.update(terms)
        nounish.update(noun_counts)
        seen.update(seen_counts)
    all_df, n_all = background
    n_rest = max(n_all - n_cat, 0)
    threshold = max(min_support, math.ceil(min_share * n_cat))

    general = AspectVocabulary.default()
    general_hits: dict[str, tuple[int, set[str]]] = {}
    scored: list[tuple[float, str, int, float]] = []
    for term, df in cat_df.items():
        if df < threshold:
            continue
        general_name = general._index.get(tuple(term.split()))
        if general_name:
            count, terms = general_hits.get(general_name, (0, set()))
            general_hits[general_name] = (max(count, df), terms | {term})
            continue
        rest_df = max(all_df.get(term, 0) - df, 0)
        # Add-one smoothed ratio of document frequencies; with no other category there is nothing to
        # be over-represented against, and frequency alone decides.
        lift = ((df + 1) / (n_cat + 2)) / ((rest_df + 1) / (n_rest + 2)) if n_rest else min_lift
        if lift < min_lift or nounish[term] / max(seen[term], 1) < min_nounish:
            continue
        scored.append((df * math.log(1 + lift), term, df, lift))
    scored.sort(reverse=True)

    # Merge: synonyms to one name; pairs into a selected word they contain; a word that mostly
    # occurs inside a selected pair ("life" in "battery life") is that pair's, not an aspect itself.
    chosen_pairs = [term for _, term, _, _ in scored if " " in term]
    chosen_words = {term for _, term, _, _ in scored if " " not in term}
    merged: dict[str, DiscoveredAspect] = {}
    for _, term, df, lift in scored:
        if " " not in term and any(term in pair.split() and seen[pair] >= 0.7 * seen[term] for pair in chosen_pairs):
            continue
        name = SYNONYMS.get(term)
        if name is None and " " in term:
            first, second = term.split(" ", 1)
            name = SYNONYMS.get(first) or (first if first in chosen_words else None) or \
                (second if second in chosen_words else None)
            if name is None and (first in cat_df and cat_df[first] >= df * 0.9):
                continue  # the pair is just its first word in context; the word itself decides
        name = name or term
        if name in merged:
            aspect = merged[name]
            aspect.terms.append(term)
            aspect.support = max(aspect.support, df)
            aspect.lift = max(aspect.lift, lift)
        else:
            merged[name] = DiscoveredAspect(name=name, terms=[term], support=df, lift=lift, kind="discovered")
    discovered = sorted(merged.values(), key=lambda a: -a.support * math.log(1 + a.lift))[:max_aspects]
    for aspect in discovered:
        if aspect.name not in aspect.terms and " " not in aspect.name and "/" not in aspect.name:
            aspect.terms.insert(0, aspect.name)
    for name, (df, _) in sorted(general_hits.items(), key=lambda item: -item[1][0]):
        if name not in merged:
            discovered.append(DiscoveredAspect(name=name, terms=list(GENERAL_ASPECTS[name]), support=df, lift=1.0,
                                               kind="general"))
    return discovered


def tokens_and_pairs(text: str) -> list[str]:
    out: list[str] = []
    for sentence in sentences(text):
        words = tokens(sentence)
        out.extend(words)
        out.extend(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return out


# --- scoring -----------------------------------------------------------------------------------


@cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_polarity(texts: Sequence[str]) -> list[tuple[str, float]]:
    analyzer = _vader()
    out = []
    for text in texts:
        compound = float(analyzer.polarity_scores(clause_of(text))["compound"])
        label = POSITIVE if compound >= VADER_THRESHOLD else NEGATIVE if compound <= -VADER_THRESHOLD else NEUTRAL
        out.append((label, max(-1.0, min(1.0, compound))))
    return out


def canonical_label(label: str) -> str | None:
    """Map a checkpoint's label names onto negative / neutral / positive ("LABEL_2", "1 star"... too)."""
    name = str(label).strip().lower()
    if name.startswith("neg"):
        return NEGATIVE
    if name.startswith("neu"):
        return NEUTRAL
    if name.startswith("pos"):
        return POSITIVE
    digits = re.match(r"(\d)\s*star", name)
    if digits:
        stars = int(digits.group(1))
        return NEGATIVE if stars <= 2 else NEUTRAL if stars == 3 else POSITIVE
    return None


def polarity_from_probabilities(probabilities: dict[str, float]) -> tuple[str, float]:
    """Label = the most likely of the three classes; score = P(positive) - P(negative), in [-1, 1]."""
    merged = dict.fromkeys(LABELS, 0.0)
    for name, p in probabilities.items():
        label = canonical_label(name)
        if label is None:
            raise ValueError(f"unknown sentiment label {name!r} in the checkpoint")
        merged[label] += p
    label = max(LABELS, key=lambda name: merged[name])
    return label, max(-1.0, min(1.0, merged[POSITIVE] - merged[NEGATIVE]))


@dataclass
class AspectHit:
    aspect: str
    term: str
    sentence: str
    label: str
    score: float


@dataclass
class Scored:
    label: str
    score: float
    model_version: str
    aspects: list[AspectHit]


Classifier = Callable[[list[str]], list[tuple[str, float]]]


class Engine:
    """Scores review texts and their aspect clauses with one model version (VADER on failure)."""

    def __init__(self, classifier: Classifier | None = None, version: str = VADER_VERSION, *,
                 batch_size: int = 32, max_length: int = 256) -> None:
        self.classifier = classifier
        self.version = version if classifier else VADER_VERSION
        self.batch_size = batch_size
        self.max_length = max_length
        self.fallbacks = 0  # texts scored by VADER after a model failure

    @classmethod
    def vader(cls) -> Engine:
        return cls(None)

    @classmethod
    def from_registry(cls, version_of: Callable[[object], str] | None = None, *, task: str = "sentiment",
                      **options) -> Engine:
        """The task's serving checkpoint, or VADER when there is none yet or it cannot load."""
        from ml.registry import ModelUnavailable, registry

        try:
            loaded = registry.get(task)
        except ModelUnavailable as exc:
            _log_once("unavailable", logging.INFO, "No %s model (%s); scoring with %s", task, exc, VADER_VERSION)
            return cls.vader()
        except Exception:  # noqa: BLE001 - any model failure falls back to VADER, never to an error page
            log.exception("Loading the %s model failed; scoring with %s", task, VADER_VERSION)
            return cls.vader()
        tag = (version_of or default_version_of)(loaded)
        # No batch size by default: ml.classify sizes batches by tokens for the device.
        batch_size, max_length = options.get("batch_size"), options.get("max_length", 256)

        def classify(texts: list[str]) -> list[tuple[str, float]]:
            from ml.inference import classify as ml_classify  # imports torch: only once a model is there

            predictions = ml_classify(task, texts, batch_size=batch_size, max_length=max_length)
            return [polarity_from_probabilities(p.probabilities) for p in predictions]

        return cls(classify, tag, batch_size=batch_size, max_length=max_length)

    def polarity(self, texts: list[str]) -> tuple[list[tuple[str, float]], str]:
        """(label, score) per text and the version that produced them."""
        if not texts:
            return [], self.version
        if self.classifier is not None:
            try:
                results = self.classifier(texts)
                if len(results) != len(texts):
                    raise RuntimeError(f"the classifier returned {len(results)} results for {len(texts)} texts")
                return results, self.version
            except Exception:  # noqa: BLE001 - the batch still gets scored, by the baseline
                log.exception("Sentiment model %s failed on %d texts; falling back to %s", self.version,
                              len(texts), VADER_VERSION)
                self.fallbacks += len(texts)
        return vader_polarity(texts), VADER_VERSION

    def score_many(self, items: Sequence[str | tuple[str, AspectVocabulary | None]]) -> list[Scored]:
        """Score each text and each clause that mentions an aspect, in one classifier pass."""
        units: list[str] = []
        plans: list[tuple[int, list[tuple[int, str, str, str]]]] = []
        for item in items:
            text, vocabulary = (item, None) if isinstance(item, str) else item
            vocabulary = vocabulary or _default_vocabulary()
            review_index = len(units)
            units.append(text)
            hits: list[tuple[int, str, str, str]] = []
            for sentence in sentences(text):
                for clause in clauses(sentence):
                    found = vocabulary.find(clause)
                    if found:
                        clause_index = len(units)
                        units.append(clause_input(clause, text))
                        hits.extend((clause_index, aspect, term, sentence) for aspect, term in found)
            plans.append((review_index, hits))
        results: list[tuple[str, float]] = []
        versions: list[str] = []
        for start in range(0, len(units), 256):  # bounded memory for long batches
            chunk, used = self.polarity(units[start:start + 256])
            results.extend(chunk)
            versions.extend([used] * len(chunk))
        out = []
        for review_index, hits in plans:
            label, score = results[review_index]
            aspects = [AspectHit(aspect=aspect, term=term, sentence=sentence[:600], label=results[i][0],
                                 score=results[i][1]) for i, aspect, term, sentence in hits]
            out.append(Scored(label=label, score=score, model_version=versions[review_index], aspects=aspects))
        return out


@cache
def _default_vocabulary() -> AspectVocabulary:
    return AspectVocabulary.default()


def default_version_of(loaded) -> str:
    path = getattr(loaded, "path", None)
    return f"ml:sentiment:{path.name if path is not None else 'unknown'}"


_logged: set[str] = set()


def _log_once(key: str, level: int, message: str, *args) -> None:
    if key not in _logged:
        _logged.add(key)
        log.log(level, message, *args)


def star_label(rating: int) -> str:
    """Stars as free labels: 1-2 negative, 3 neutral, 4-5 positive."""
    return NEGATIVE if rating <= 2 else NEUTRAL if rating == 3 else POSITIVE


def group_counts(hits: Iterable[tuple[str, str]]) -> dict[str, list[int]]:
    """aspect -> [positive, neutral, negative] counts."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for aspect, label in hits:
        counts[aspect][{POSITIVE: 0, NEUTRAL: 1, NEGATIVE: 2}[label]] += 1
    return dict(counts)


# --- training rows -------------------------------------------------------------------------------

# Weak clause labels from stars (stated in the README): a clause of a 1-2 star review whose own
# words are negative is negative, a clause of a 4-5 star review whose own words are positive is
# positive; a clause whose words clearly go against its review's stars (a complaint inside a
# happy review, a concession inside an angry one) takes its words' side; 3-star reviews (mixed
# by nature), clauses without opinion words and one-word clauses are dropped. "Its own
# words" = VADER's lexicon on the clause alone (negation and intensifiers included).
CLAUSE_CUE = 0.05          # words lean the stars' way
CLAUSE_AGAINST_CUE = 0.3   # words clearly go against the stars
CLAUSE_MIN_WORDS = 2
CLAUSES_PER_REVIEW = 3


def clause_training_rows(text: str, stars: int) -> list[tuple[str, str]]:
    """(clause_input(clause, review), label) rows of one review, by the weak-label rules above."""
    if stars == 3:
        return []
    analyzer = _vader()
    happy = stars >= 4
    rows: list[tuple[str, str]] = []
    for sentence in sentences(text):
        for clause in clauses(sentence):
            if len(_WORD.findall(clause.lower())) < CLAUSE_MIN_WORDS:
                continue
            cue = float(analyzer.polarity_scores(clause)["compound"])
            if happy:
                label = POSITIVE if cue >= CLAUSE_CUE else NEGATIVE if cue <= -CLAUSE_AGAINST_CUE else None
            else:
                label = NEGATIVE if cue <= -CLAUSE_CUE else POSITIVE if cue >= CLAUSE_AGAINST_CUE else None
            if label is not None:
                rows.append((clause_input(clause, text), label))
    # Against-the-stars clauses first: they are the rarer lesson (the clause, not the context, decides).
    agree = POSITIVE if happy else NEGATIVE
    rows.sort(key=lambda row: row[1] == agree)
    return rows[:CLAUSES_PER_REVIEW]


# Other languages are skipped in training: the shop is English-only, and a handful of foreign reviews
# would only teach noise. A full language identifier is overkill for "is this English": count common
# function words of English against those of the languages shoppers most often write in instead.
_ENGLISH_WORDS = frozenset("""the a an and or but is are was were be been it its this that these those i you he she
we they my your our their me him her us them not no to of in on at for with from by as so very too just
have has had do does did will would can could should there here what when which who how all more most
than then also only about after before because if while great good bad""".split())
_FOREIGN_WORDS = frozenset("""el la los las un una unos es muy y pero con por para que del al lo se su sus mi
est et le les des du une au aux avec pour pas mais ce cette sont très tres je il elle nous vous
der die das den dem ein eine einer und ist nicht mit sehr auch ich sie wir für fur auf zu von war
il lo gli della che non sono molto per con anche ho mio
o os um uma não nao com muito são sao eu ele
de het een en niet ook zeer met voor ik""".split())


def looks_english(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    if sum(not ch.isascii() for ch in letters) / len(letters) > 0.2:  # Cyrillic, CJK, Greek, Arabic...
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    english = sum(word in _ENGLISH_WORDS for word in words)
    foreign = sum(word in _FOREIGN_WORDS and word not in _ENGLISH_WORDS for word in words)
    return not (foreign >= 2 and foreign > english)


SKIP_REASONS = ("empty_text", "bad_stars", "other_language")


@dataclass
class TrainingRows:
    """Texts and labels to fine-tune on: one row per usable review (stars as its label), plus weakly
    labelled clause rows; the reviews that could not be used, counted by reason."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    reviews: int = 0
    clause_rows: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        return {"reviews": self.reviews, "clause_rows": self.clause_rows,
                "skipped": {reason: self.skipped.get(reason, 0) for reason in SKIP_REASONS},
                "skipped_total": sum(self.skipped.values())}


def training_rows(reviews: Iterable[tuple[str | None, str | None, object]], *, clauses_too: bool = True
                  ) -> TrainingRows:
    """(title, text, stars) per review -> training rows. Bad rows are skipped and counted, never raised:
    empty text, stars missing or outside 1-5 (or not a whole number), text not in English."""
    out = TrainingRows()
    for title, text, stars in reviews:
        body = review_text(str(title or ""), str(text or ""))
        try:
            whole = int(stars) if stars is not None and float(stars) == int(float(stars)) else None
        except (TypeError, ValueError):
            whole = None
        if not body.strip() or not any(ch.isalnum() for ch in body):
            out.skipped["empty_text"] += 1
        elif whole is None or not 1 <= whole <= 5:
            out.skipped["bad_stars"] += 1
        elif not looks_english(body):
            out.skipped["other_language"] += 1
        else:
            out.texts.append(body)
            out.labels.append(star_label(whole))
            out.reviews += 1
            if clauses_too:
                for unit, label in clause_training_rows(body, whole):
                    out.texts.append(unit)
                    out.labels.append(label)
                    out.clause_rows += 1
    return out
