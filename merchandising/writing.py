"""Writing product copy: the prompt (facts, kind, tone, length), the generator call (ml), the cleaning of
its output, and the template baseline that writes from the facts alone."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.conf import settings

from .factcheck import words_to_avoid
from .facts import MAX_FEATURE_CHARS, MAX_FEATURES_IN_PROMPT, CopyFacts
from .models import ProductCopyDraft

Kind, Tone, LengthChoice, Engine = (ProductCopyDraft.Kind, ProductCopyDraft.Tone, ProductCopyDraft.Length,
                                    ProductCopyDraft.Engine)
DEFAULT_TIMEOUT_S = 120.0


def timeout_s() -> float:
    return float(getattr(settings, "AISLE_COPY_TIMEOUT_S", DEFAULT_TIMEOUT_S))


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
    and a draft a merchandiser can ask for when no model is available. Each bullet is its own sentence,
    so every sentence is grounded in one fact (ml.grounding checks sentence by sentence)."""
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
    sentences.extend(f"{feature[:1].upper()}{feature[1:]}." for feature in features[:count])
    if facts.loved_aspects:
        sentences.append(f"Shoppers love its {', '.join(facts.loved_aspects[:3])}.")
    if kind == Kind.EMAIL_BLURB and facts.price is not None:
        sentences.append(f"Now ${facts.price:,.2f}.")
    return cut_at_sentence(" ".join(sentences), spec.max_words)


def _generator_name() -> str:
    from ml.registry import registry

    loaded = registry.get("generator")  # already loaded by the generation: no cost
    return f"{loaded.source}: {loaded.path.name}"


def write_copy(facts: CopyFacts, kind: str, tone: str, length: str, *, engine: str = Engine.MODEL,
               timeout: float | None = None, loaded=None, temperature: float = 0.0,
               seed: int | None = 0) -> WrittenCopy:
    """Write one piece of copy (not saved). Raises CopyGenerationError when the model cannot.

    loaded: a generator from ml's registry.load_path (a candidate version the fine-tuning gate measures)
    instead of the served one; temperature/seed: sampled drafts (the grounded training examples)."""
    if engine == Engine.TEMPLATE:
        started = time.perf_counter()
        text = template_copy(facts, kind, tone, length)
        return WrittenCopy(text, "template", time.perf_counter() - started, None)
    import ml

    spec = LENGTHS[kind][length]
    timeout = timeout_s() if timeout is None else timeout
    # Only what differs from serving is passed on, so the served call stays exactly what it was.
    options: dict = {"loaded": loaded} if loaded is not None else {}
    if temperature > 0:
        options.update(temperature=temperature, seed=seed)
    try:
        generation = ml.generate_detailed(build_messages(facts, kind, tone, length),
                                          max_new_tokens=spec.max_new_tokens, timeout_s=timeout,
                                          avoid_words=words_to_avoid(facts), **options)
    except Exception as exc:  # noqa: BLE001 - ModelUnavailable, a broken checkpoint, out of memory...
        raise CopyGenerationError(f"The generator is unavailable: {exc}") from exc
    if generation.stopped_by_timeout:
        raise CopyGenerationError(f"The generator timed out after {generation.seconds:.0f} s "
                                  f"({generation.new_tokens} tokens).")
    text = clean_output(generation.text, spec.max_words)
    if len(text.split()) < 3:
        raise CopyGenerationError(f"The generator wrote nothing usable: {generation.text[:200]!r}")
    return WrittenCopy(text, generation.engine or (loaded and loaded.path.name) or _generator_name(),
                       generation.seconds, generation.new_tokens)

