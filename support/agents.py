"""The agents' side of support: the queue, taking and answering conversations, handing them back,
resolving them, correcting the assistant's intents, and what the console shows next to a chat
(suggested replies, the shopper's orders, mood over time, feedback).

Views stay thin: every state change of a conversation made by an agent goes through here, inside a
transaction with the conversation row locked, so two agents clicking at once cannot both win.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from ml.grounding import check as check_grounding
from ml.grounding import complete_sentences
from shop import services as shop

from .generation import GeneratorSlot, switched_on
from .intents import INTENTS
from .knowledge import KnowledgeHit, search_knowledge
from .models import CannedResponse, Conversation, Message

log = logging.getLogger(__name__)

Status = Conversation.Status

# The console's tabs, in display order, with their labels.
QUEUE_TABS: dict[str, str] = {
    Status.WAITING: "Waiting",
    Status.ASSIGNED: "Assigned",
    Status.RESOLVED: "Resolved",
    Status.BOT: "With assistant",
}
QUEUE_LIMIT = 100
MAX_REPLY_CHARS = 4000

# --- the queue -----------------------------------------------------------------------------------

def queue_counts() -> dict[str, int]:
    """How many conversations each tab holds (one aggregate query)."""
    totals = Conversation.objects.aggregate(**{
        status: Count("pk", filter=Q(status=status)) for status in QUEUE_TABS
    })
    return {status: totals[status] or 0 for status in QUEUE_TABS}


def queue(status: str, *, limit: int = QUEUE_LIMIT) -> tuple[list[Conversation], dict[str, int]]:
    """The conversations of one tab and the counts of all tabs.

    Waiting chats come oldest hand-off first (the one waiting longest is served first); assigned ones
    in the order they were handed off; resolved ones newest first; the assistant's by last activity.
    """
    if status not in QUEUE_TABS:
        raise ValidationError(f"Unknown queue {status!r}.")
    conversations: QuerySet[Conversation] = (
        Conversation.objects.filter(status=status).select_related("user", "assigned_to")
    )
    if status in (Status.WAITING, Status.ASSIGNED):
        conversations = conversations.order_by(F("handed_off_at").asc(nulls_last=True), "created_at", "pk")
    elif status == Status.RESOLVED:
        conversations = conversations.order_by(F("resolved_at").desc(nulls_last=True), "-pk")
    else:
        conversations = conversations.order_by("-updated_at", "-pk")
    now = timezone.now()
    rows = list(conversations[:limit])
    for conversation in rows:
        # Shown as "waiting 4 min": since the hand-off for the agents' tabs, since the start otherwise.
        since = conversation.handed_off_at or conversation.created_at
        conversation.waiting_seconds = max(0, int((now - since).total_seconds()))
        conversation.customer_label = customer_label(conversation)
    return rows, queue_counts()


def customer_label(conversation: Conversation) -> str:
    """Who the agent is talking to: the account's name and e-mail, or an anonymous visitor."""
    user = conversation.user
    if user is None:
        return f"Guest {conversation.visitor_id[:8]}" if conversation.visitor_id else "Guest"
    name = user.get_full_name() or user.get_username()
    return f"{name} <{user.email}>" if user.email else name


# --- state changes -------------------------------------------------------------------------------

def _locked(conversation: Conversation) -> Conversation:
    """Re-read the conversation under a row lock; the caller's copy may be stale."""
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _agent_name(agent) -> str:
    return agent.get_short_name() or agent.get_username()


def _system(conversation: Conversation, text: str, now: datetime) -> Message:
    return Message.objects.create(conversation=conversation, sender=Message.Sender.SYSTEM,
                                  kind=Message.Kind.TEXT, text=text, created_at=now)


def _sync(target: Conversation, source: Conversation) -> None:
    """Copy the saved state back onto the caller's instance so it does not keep stale values."""
    for name in ("status", "assigned_to_id", "handed_off_at", "resolved_at", "updated_at", "misunderstood_in_a_row",
                 "pending_action"):
        setattr(target, name, getattr(source, name))


@transaction.atomic
def assign(conversation: Conversation, agent) -> Conversation:
    """The agent takes the conversation (also from a colleague); the shopper is told a person joined."""
    locked = _locked(conversation)
    if locked.status == Status.ASSIGNED and locked.assigned_to_id == agent.pk:
        return locked
    now = timezone.now()
    locked.status = Status.ASSIGNED
    locked.assigned_to = agent
    locked.handed_off_at = locked.handed_off_at or now
    locked.resolved_at = None
    locked.updated_at = now
    locked.save(update_fields=["status", "assigned_to", "handed_off_at", "resolved_at", "updated_at"])
    _system(locked, f"{_agent_name(agent)} from the Aisle team has joined the chat.", now)
    _sync(conversation, locked)
    return locked


@transaction.atomic
def agent_reply(conversation: Conversation, agent, text: str) -> Message:
    """Post an agent's message. Replying takes the conversation: the assistant stays quiet from now on."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("Write a reply first.")
    if len(text) > MAX_REPLY_CHARS:
        raise ValidationError(f"Replies are limited to {MAX_REPLY_CHARS} characters.")
    if conversation.status != Status.ASSIGNED or conversation.assigned_to_id != agent.pk:
        assign(conversation, agent)
    locked = _locked(conversation)
    now = timezone.now()
    message = Message.objects.create(conversation=locked, sender=Message.Sender.AGENT, kind=Message.Kind.TEXT,
                                     text=text, author=agent, created_at=now)
    locked.updated_at = now
    locked.save(update_fields=["updated_at"])
    _sync(conversation, locked)
    return message


@transaction.atomic
def hand_back(conversation: Conversation, agent) -> Conversation:
    """Give the conversation back to the assistant, which answers the shopper's next message again."""
    locked = _locked(conversation)
    if locked.status == Status.BOT:
        return locked
    now = timezone.now()
    locked.status = Status.BOT
    locked.assigned_to = None
    # A fresh start for the assistant: it must not hand straight back because of old misunderstandings.
    locked.misunderstood_in_a_row = 0
    locked.pending_action = None
    locked.updated_at = now
    locked.save(update_fields=["status", "assigned_to", "misunderstood_in_a_row", "pending_action", "updated_at"])
    _system(locked, "You're back with the Aisle assistant. Ask me anything — or ask for a person again any time.",
            now)
    log.info("Conversation %s handed back to the assistant by %s", locked.pk, agent.get_username())
    _sync(conversation, locked)
    return locked


@transaction.atomic
def resolve(conversation: Conversation, agent) -> Conversation:
    """Close the conversation; the shopper's widget then asks how it went (1-5)."""
    locked = _locked(conversation)
    if locked.status == Status.RESOLVED:
        return locked
    now = timezone.now()
    locked.status = Status.RESOLVED
    locked.resolved_at = now
    locked.updated_at = now
    locked.pending_action = None
    locked.save(update_fields=["status", "resolved_at", "updated_at", "pending_action"])
    _system(locked, f"{_agent_name(agent)} marked this chat as resolved. Thanks for shopping with Aisle!", now)
    _sync(conversation, locked)
    return locked


def valid_intents() -> tuple[str, ...]:
    """The intents an agent may choose: exactly the classifier's labels (a correction feeds its fine-tune)."""
    return INTENTS


def correct_intent(message: Message, intent: str, agent) -> Message:
    """Record what the shopper really meant; these corrections feed the next intent fine-tune."""
    if message.sender != Message.Sender.SHOPPER:
        raise ValidationError("Only the shopper's messages have an intent to correct.")
    intent = (intent or "").strip()
    if intent not in valid_intents():
        raise ValidationError(f"“{intent}” is not a known intent.")
    # Choosing the intent the assistant already found clears a previous correction.
    message.corrected_intent = "" if intent == message.intent else intent
    message.save(update_fields=["corrected_intent"])
    log.info("Message %s intent corrected to %r by %s", message.pk, intent, agent.get_username())
    return message


# --- what the console shows ----------------------------------------------------------------------

def message_data(message: Message) -> dict:
    """A message as the console's JavaScript renders it (text as data, never HTML)."""
    return {
        "id": message.pk,
        "sender": message.sender,
        "sender_label": message.get_sender_display(),
        "author": _agent_name(message.author) if message.author_id else "",
        "kind": message.kind,
        "text": message.text,
        "intent": message.intent,
        "corrected_intent": message.corrected_intent,
        "intent_confidence": message.intent_confidence,
        "mood": message.mood,
        "mood_label": message.mood_label,
        "sources": message.sources or [],
        "feedback": message.feedback,
        "created_at": message.created_at.isoformat(),
    }


def conversation_context(conversation: Conversation) -> dict:
    """Everything the console shows beside the log: the shopper's orders, mood and intents over time,
    the thumbs on the assistant's answers and the satisfaction score."""
    messages = list(conversation.messages.select_related("author").order_by("created_at", "pk"))
    shopper = [m for m in messages if m.sender == Message.Sender.SHOPPER]
    bot = [m for m in messages if m.sender == Message.Sender.BOT]
    orders = list(shop.orders_for_user(conversation.user)[:10]) if conversation.user_id else []
    return {
        "messages": messages,
        "orders": orders,
        "mood_series": [
            {"t": m.created_at.isoformat(), "mood": round(m.mood, 3), "label": m.mood_label, "text": m.text[:80]}
            for m in shopper if m.mood is not None
        ],
        "intents": [
            {"message": m.pk, "intent": m.intent, "corrected": m.corrected_intent, "confidence": m.intent_confidence}
            for m in shopper
        ],
        "feedback": {
            "up": sum(1 for m in bot if m.feedback == 1),
            "down": sum(1 for m in bot if m.feedback == -1),
            "none": sum(1 for m in bot if m.feedback is None),
        },
        "satisfaction": conversation.satisfaction,
        "satisfaction_comment": conversation.satisfaction_comment,
        "customer": customer_label(conversation),
    }


@dataclass
class Suggestion:
    text: str
    source: str  # "Help article: <title>", "Canned: /shortcut", "Phrased by the assistant ..."
    url: str = ""
    extra: dict = field(default_factory=dict)


_WORD = re.compile(r"[a-z0-9']{3,}")
_STOP = frozenset("the and you your for with that this have what when where how can are was not but from "
                  "please thanks thank hello there about would could will just get".split())
# An agent reads a suggestion before sending it, so articles somewhat further from the shopper's words
# are still offered: an angry "it arrived smashed, unacceptable" scores ~0.35 against "Damaged or faulty
# items", below the assistant's own threshold (0.45) for answering shoppers directly.
SUGGEST_MIN_SIMILARITY = 0.3
# ... and given a little more of the article (sentences within 75% of the best, not 88%), to trim.
SUGGEST_EXCERPT_RELATIVE = 0.75
SUGGESTED_ARTICLES = 2
SUGGEST_MAX_TOKENS = 120


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _shopper_texts(conversation: Conversation, count: int = 3) -> list[str]:
    texts = list(conversation.messages.filter(sender=Message.Sender.SHOPPER)
                 .order_by("-created_at", "-pk").values_list("text", flat=True)[:count])
    return list(reversed(texts))


def _recent_shopper_text(conversation: Conversation, count: int = 3) -> str:
    return " ".join(_shopper_texts(conversation, count))


def _knowledge_hits(queries: list[str], limit: int = SUGGESTED_ARTICLES) -> list[KnowledgeHit]:
    """The articles that best match any of the shopper's last messages or all of them together (one
    angry sentence can hide the question of the one before), best first, one hit per article."""
    best: dict[int, KnowledgeHit] = {}
    try:
        for query in dict.fromkeys(q for q in queries if q.strip()):
            for hit in search_knowledge(query, limit=limit, min_score=SUGGEST_MIN_SIMILARITY,
                                        excerpt_relative=SUGGEST_EXCERPT_RELATIVE):
                if hit.article.pk not in best or hit.score > best[hit.article.pk].score:
                    best[hit.article.pk] = hit
    except Exception:  # no embedder (ml.ModelUnavailable) or a broken one: canned replies still serve
        log.warning("Knowledge suggestions unavailable", exc_info=True)
        return []
    return sorted(best.values(), key=lambda hit: -hit.score)[:limit]


def conversation_facts(conversation: Conversation) -> list[str]:
    """What the conversation establishes that a reply may state: the shopper's own orders they wrote about
    (or their latest one), with status and items. Read through shop's facade, for this shopper only."""
    if not conversation.user_id:
        return []
    from .orders import find_order_numbers

    typed = {n.upper() for text in _shopper_texts(conversation, 10) for n in find_order_numbers(text)}
    own = list(shop.orders_for_user(conversation.user).order_by("-created_at")[:20])
    named = [o for o in own if o.number.upper() in typed] or own[:1]
    return [f"Order {o.number}: {o.get_status_display().lower()}; items: "
            f"{', '.join(item.title for item in o.items.all())}" for o in named]


def matching_canned(query: str, intent: str = "", limit: int = 2) -> list[CannedResponse]:
    """Canned responses whose title, shortcut or body share words with what the shopper asked."""
    wanted = _words(query) | ({intent.replace("_", " ")} if intent else set())
    if not wanted:
        return []
    scored = []
    for canned in CannedResponse.objects.all()[:200]:
        overlap = len(wanted & (_words(f"{canned.title} {canned.shortcut.replace('-', ' ')}") | _words(canned.body)))
        if overlap:
            scored.append((overlap, canned.title, canned))
    scored.sort(key=lambda row: (-row[0], row[1]))
    return [canned for _, _, canned in scored[:limit]]


def suggested_replies(conversation: Conversation, *, generate: bool = False) -> list[Suggestion]:
    """Replies the agent can start from: the sentences of the matching help articles that answer the
    shopper (extractive, so always true to the article; a hand-off with a matching article always gets
    one), optionally one phrased by the generator from those sentences and the conversation's facts
    (shown only if ml.grounding accepts it), then canned responses."""
    texts = _shopper_texts(conversation)
    query = " ".join(texts)
    hits = _knowledge_hits([*texts[-1:], query, *texts[:-1]])
    suggestions = [
        Suggestion(text=hit.answer, source=f"Help article: {hit.article.title}", url=hit.article.get_absolute_url())
        for hit in hits
    ]
    if generate and hits:
        facts = [hit.answer for hit in hits] + conversation_facts(conversation)
        phrased = generated_reply(query, facts)
        if phrased:
            suggestions.insert(0, Suggestion(text=phrased, source="Phrased by the assistant from the articles"))
    for canned in matching_canned(query, conversation.last_intent):
        suggestions.append(Suggestion(text=canned.body, source=f"Canned: /{canned.shortcut}"))
    seen: set[str] = set()
    unique = []
    for suggestion in suggestions:
        if suggestion.text and suggestion.text not in seen:
            seen.add(suggestion.text)
            unique.append(suggestion)
    return unique


# A second agent asking while the model is busy gets no generated suggestion.
_GENERATOR = GeneratorSlot("support-suggest")


def generator_enabled() -> bool:
    """AISLE_SUPPORT_SUGGEST_GENERATE: on, off or "auto" (on only where the generator has a GPU)."""
    return switched_on(getattr(settings, "AISLE_SUPPORT_SUGGEST_GENERATE", "auto"))


def generated_reply(query: str, facts: list[str], *, timeout_s: float | None = None) -> str:
    """A reply phrased by ml.generate from the retrieved facts only, or "" when there are no facts, the
    generator is off, busy or unavailable, it ran out of time (a reply cut off by the time limit is never
    shown), or ml.grounding does not accept it against those facts. A reply cut by the token cap keeps
    only its complete sentences."""
    facts = [f for f in facts if f]
    if not query or not facts or not generator_enabled():
        return ""
    if timeout_s is None:
        timeout_s = float(getattr(settings, "AISLE_SUPPORT_SUGGEST_TIMEOUT_S", 8.0))
    from ml.prompts import PromptTemplate

    prompt = PromptTemplate(
        system="You draft short, friendly replies for a shop's customer-support agent, speaking to the customer "
               "as \"you\".",
        user="$facts\n\nThe customer wrote:\n$customer_text\n\nDraft a reply of at most three sentences.",
    ).messages(facts=facts, customer_text=query)
    generation = _GENERATOR.generate(prompt, max_new_tokens=SUGGEST_MAX_TOKENS, timeout_s=timeout_s)
    if generation is None or generation.stopped_by_timeout:
        return ""
    return grounded_suggestion(generation.text, facts, query, cut_off=generation.new_tokens >= SUGGEST_MAX_TOKENS)


def grounded_suggestion(text: str, facts: list[str], query: str, *, cut_off: bool = False) -> str:
    """The generated suggestion if ml.grounding accepts it against the facts, else ""."""
    text = (text or "").strip()
    if cut_off:
        text = complete_sentences(text)
    if not text:
        return ""
    result = check_grounding(text, facts, shopper_message=query)
    if not result.ok:
        log.info("Generated suggestion not shown (%s): %s", ", ".join(result.reasons),
                 "; ".join(result.details)[:500])
        return ""
    return text


def canned_responses() -> list[CannedResponse]:
    return list(CannedResponse.objects.all())


def intent_choices() -> list[tuple[str, str]]:
    return [(intent, intent.replace("_", " ").capitalize()) for intent in valid_intents()]
