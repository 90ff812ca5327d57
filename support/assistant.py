"""The conversation engine: one shopper message in, the assistant's reply (or silence) out.

Per shopper message (`handle_message`):
  1. store it with its mood; if people have the conversation (waiting/assigned), stay silent;
  2. a pending confirmation ("Cancel order X?") and a yes/no -> run or drop the action;
  3. intent (support.intents); "a person, please" / strong anger / a payment dispute -> hand-off;
     below the confidence threshold -> ask to rephrase once, then hand off;
  4. answer: orders from shop.services for the signed-in shopper only (templates, instant), policy
     from the knowledge base (cited), products from the catalogue search; small talk; refusal.

The generator (ml.generate) may only rephrase the facts an answer was built from: its output is kept
only if every number, code and email in it appears in those facts, and only if it arrives in time;
otherwise the template answer stands. Order answers never go through it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from behavior.services import record_event
from shop import services as shop

from . import intents, knowledge, orders
from .generation import GeneratorSlot
from .models import Conversation, Message
from .replies import HUMAN_ACTION, YES_NO, Reply, source

log = logging.getLogger(__name__)

INTENTS: tuple[str, ...] = intents.INTENTS
MAX_TEXT_CHARS = 1000
PRODUCTS_SHOWN = 3
Kind = Message.Kind
Status = Conversation.Status
OPEN_STATUSES = (Status.BOT, Status.WAITING, Status.ASSIGNED)

GREETING = ("Hi! I'm Aisle's assistant. I can look up your orders, cancel or return them, answer questions "
            "about shipping, returns, payments and your account, and help you find products.")
REPHRASE = ("Sorry, I didn't quite understand. Could you say it another way? For example: \"Where is my "
            "order?\", \"What is your return policy?\" or \"I'm looking for wireless headphones\".")
OUT_OF_SCOPE = ("I'm the Aisle shop assistant, so I can't help with that. I can help with your orders and "
                "deliveries, returns and refunds, payments, your account, and finding products in our shop.")
NO_KB_ANSWER = ("I couldn't find an answer to that in our help articles. Would you like me to pass you to a "
                "member of our team?")
HANDOFF_TEXT = {
    "asked_for_human": "Of course. I've passed our conversation to our customer service team",
    "angry": "I'm really sorry, I can see this has been frustrating. I've passed our conversation to our "
             "customer service team",
    "payment_dispute": "Payment issues like this one need a person to look at your account, so I've passed our "
                       "conversation to our customer service team",
    "not_understood": "I'm sorry I couldn't understand. I've passed our conversation to our customer service "
                      "team",
}
HANDOFF_TAIL = (" together with a summary, so you won't need to repeat yourself. A person will reply here as "
                "soon as they can.")
HANDOFF_REASONS = {
    "asked_for_human": "asked for a person",
    "angry": "the shopper is very upset",
    "payment_dispute": "payment dispute",
    "not_understood": "the assistant did not understand twice in a row",
}

# A request for a person must always work, even when the classifier is unsure of the phrasing.
_HUMAN = re.compile(r"\b(human|real\s+person|live\s+(agent|chat|person)|(customer\s+service\s+)?representative|"
                    r"(talk|speak|chat)\s+(to|with)\s+(someone|somebody|a\s+(real\s+)?(person|human|man|woman)|"
                    r"an?\s+(agent|human|representative)|(a\s+)?(customer\s+)?(service|support)(\s+agent)?|staff|"
                    r"your\s+team))\b", re.IGNORECASE)
_DISPUTE = re.compile(r"\b(disputes?|disputing|chargebacks?|charge\s*backs?|double[-\s]*charged?|charged\s+(me\s+)?"
                      r"(twice|two\s+times|double)|billed\s+(me\s+)?twice|two\s+charges|unauthori[sz]ed\s+(charge|"
                      r"payment|transaction)|fraud(ulent)?\s+(charge|payment|transaction)|refunds?\s+(was\s+|has\s+)?"
                      r"(not|never)\s+(been\s+)?(received|arrived|came|come|showed?\s+up)|(haven'?t|have\s+not|"
                      r"didn'?t|did\s+not|never)\s+(got(ten)?|received?|get)\s+(my|the|a|any)\s+refunds?|still\s+"
                      r"(no|waiting\s+for\s+(my|the))\s+refunds?|where\s+is\s+my\s+refund)\b", re.IGNORECASE)
# A "yes" runs an action, so only a plain yes counts ("yes, but first ..." is read afresh); a "no" only
# drops the question, so it may be followed by anything.
_YES = re.compile(r"^\s*(y|yes|yeah|yep|yup|sure|ok|okay|confirm|confirmed|do it|go ahead|please do)"
                  r"([\s,.!]+(please|yes|do it|go ahead|cancel it|cancel the order|start the return|start it|thanks|"
                  r"thank you|confirm|that's right|correct))*[\s,.!]*$", re.IGNORECASE)
_NO = re.compile(r"^\s*(n|no|nope|nah|don'?t|do not|never\s*mind|keep it|stop|not now)\b[\s\w,.!'-]*$",
                 re.IGNORECASE)
_RETURN = re.compile(r"\b(return|send\s+(it\s+|them\s+)?back)\b", re.IGNORECASE)
_CANCEL = re.compile(r"\bcancel", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_GREETING_WORDS = re.compile(r"\b(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b", re.IGNORECASE)
_THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|appreciate)\b", re.IGNORECASE)
_BYE = re.compile(r"\b(bye|goodbye|see you|that'?s all)\b", re.IGNORECASE)


# --- settings --------------------------------------------------------------------------------


def _setting(name: str, default):
    return getattr(settings, name, default)


def generation_enabled() -> bool:
    return bool(_setting("AISLE_SUPPORT_GENERATE", True))


def confirm_ttl() -> dt.timedelta:
    return dt.timedelta(minutes=float(_setting("AISLE_SUPPORT_CONFIRM_MINUTES", 10)))


# --- input ------------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """The shopper's text as stored: plain text, no control characters (PostgreSQL rejects NUL)."""
    text = _CONTROL.sub(" ", str(text or "")).strip()
    if not text:
        raise ValidationError({"text": "Please type a message."}, code="empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError({"text": f"Messages can be at most {MAX_TEXT_CHARS} characters."}, code="too_long")
    return text


# --- ownership --------------------------------------------------------------------------------


def _signed_in(user) -> bool:
    return user is not None and user.is_authenticated


def owns(conversation: Conversation, *, user=None, visitor_id: str = "") -> bool:
    """A signed-in shopper owns their conversations; an anonymous one those of their visitor id
    that belong to no account (so signing out never exposes an account's chats to the browser)."""
    if _signed_in(user):
        return conversation.user_id == user.pk
    return bool(visitor_id) and conversation.user_id is None and conversation.visitor_id == visitor_id


def _owned(*, user=None, visitor_id: str = ""):
    if _signed_in(user):
        return Conversation.objects.filter(user=user)
    if not visitor_id:
        return Conversation.objects.none()
    return Conversation.objects.filter(user__isnull=True, visitor_id=visitor_id)


def conversation_for(*, user=None, visitor_id: str = "", token=None) -> Conversation | None:
    """The caller's conversation with this token, or (no token) their latest open one; None otherwise."""
    if token is not None:
        try:
            conversation = Conversation.objects.get(token=str(token))
        except (Conversation.DoesNotExist, ValidationError, ValueError):
            return None
        return conversation if owns(conversation, user=user, visitor_id=visitor_id) else None
    return _owned(user=user, visitor_id=visitor_id).filter(status__in=OPEN_STATUSES).order_by(
        "-updated_at", "-pk").first()


def adopt_visitor_conversation(*, user, visitor_id: str) -> Conversation | None:
    """After signing in, the open chat the same browser started anonymously becomes the account's."""
    if not _signed_in(user) or not visitor_id:
        return None
    conversation = _owned(visitor_id=visitor_id).filter(status__in=OPEN_STATUSES).order_by("-updated_at").first()
    if conversation is not None:
        Conversation.objects.filter(pk=conversation.pk, user__isnull=True).update(user=user)
        conversation.refresh_from_db()
    return conversation


# --- conversations ----------------------------------------------------------------------------


def start_conversation(*, user=None, visitor_id: str = "") -> Conversation:
    """A new conversation with the assistant's greeting; records the behaviour event "chat_started"."""
    now = timezone.now()
    conversation = Conversation.objects.create(user=user if _signed_in(user) else None, visitor_id=visitor_id or "",
                                               created_at=now, updated_at=now)
    _bot(conversation, Reply(GREETING, Kind.SMALL_TALK))
    record_event("chat_started", user=user if _signed_in(user) else None, visitor_id=visitor_id or "",
                 properties={"conversation": str(conversation.token)})
    return conversation


def get_or_start_conversation(*, user=None, visitor_id: str = "") -> tuple[Conversation, bool]:
    """The caller's open conversation, or a new one. Returns (conversation, created)."""
    conversation = conversation_for(user=user, visitor_id=visitor_id)
    if conversation is None and _signed_in(user):
        conversation = adopt_visitor_conversation(user=user, visitor_id=visitor_id)
    if conversation is not None:
        return conversation, False
    return start_conversation(user=user, visitor_id=visitor_id), True


def messages_after(conversation: Conversation, after: int = 0) -> list[Message]:
    # The author: the console names the agent who wrote each message.
    return list(conversation.messages.filter(pk__gt=after).select_related("author").order_by("created_at", "pk"))


def owned_message(message_id: int, *, user=None, visitor_id: str = "") -> Message | None:
    """A message of one of the caller's conversations, or None (also for anyone else's)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None or not owns(message.conversation, user=user, visitor_id=visitor_id):
        return None
    return message


def _bot(conversation: Conversation, reply: Reply, *, started: float | None = None) -> Message:
    latency = reply.latency_ms
    if latency is None and started is not None:
        latency = int((time.perf_counter() - started) * 1000)
    return Message.objects.create(conversation=conversation, sender=Message.Sender.BOT, kind=reply.kind,
                                  text=reply.text[:4000], sources=reply.sources, latency_ms=latency)


def _touch(conversation: Conversation, **fields) -> None:
    """Write only the fields the assistant owns, so that an agent's concurrent changes (status,
    assignment) are never overwritten by a stale copy."""
    fields["updated_at"] = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    for name, value in fields.items():
        setattr(conversation, name, value)


# --- the pipeline -------------------------------------------------------------------------------


def handle_message(conversation: Conversation, text: str, *, user=None) -> list[Message]:
    """Store the shopper's message and return the assistant's reply messages ([] while people have it)."""
    return reply_to(conversation, text, user=user)[1]


def reply_to(conversation: Conversation, text: str, *, user=None) -> tuple[Message, list[Message]]:
    """`handle_message` that also returns the stored shopper message (the API echoes it)."""
    started = time.perf_counter()
    text = clean_text(text)
    conversation.refresh_from_db()
    mood = intents.mood_of(text)
    shopper_message = Message.objects.create(conversation=conversation, sender=Message.Sender.SHOPPER,
                                             kind=Kind.TEXT, text=text, mood=mood.score, mood_label=mood.label)
    _touch(conversation, mood=mood.score)
    return shopper_message, _respond(conversation, shopper_message, mood, user, started)


def _respond(conversation: Conversation, shopper_message: Message, mood, user, started: float) -> list[Message]:
    text = shopper_message.text
    if conversation.status in Conversation.HUMAN_STATUSES:
        return []
    if conversation.status == Status.RESOLVED:  # writing again after it was closed reopens it with the bot
        _touch(conversation, status=Status.BOT)
    if _signed_in(user) and conversation.user_id is None:
        user = None  # an anonymous chat never reads an account's orders, even if the caller is signed in

    pending = _take_pending(conversation)
    if pending is not None:
        if _YES.match(text):
            return [_bot(conversation, orders.perform(user, pending), started=started)]
        if _NO.match(text):
            return [_bot(conversation, Reply("OK, I won't do that. Anything else I can help with?",
                                             Kind.SMALL_TALK), started=started)]
        # Anything else: the shopper moved on; the question lapses and the message is read afresh.

    intent, confidence = _classify(text)
    shopper_message.intent, shopper_message.intent_confidence = intent.intent, confidence
    shopper_message.save(update_fields=["intent", "intent_confidence"])
    _touch(conversation, last_intent=intent.intent)

    if intents.is_strong_anger(mood):
        return [hand_off(conversation, "angry")]
    # A low-confidence "talk_to_human" is usually gibberish's nearest label: it counts as not understood
    # (a real request for a person is also caught by its words, with full confidence).
    if intent.intent in intents.HANDOFF_INTENTS and intents.is_confident(intent):
        return [hand_off(conversation, "asked_for_human")]
    if _DISPUTE.search(text):
        return [hand_off(conversation, "payment_dispute")]
    if not intents.is_confident(intent):
        misses = conversation.misunderstood_in_a_row + 1
        _touch(conversation, misunderstood_in_a_row=misses)
        if misses >= 2:
            return [hand_off(conversation, "not_understood")]
        return [_bot(conversation, Reply(REPHRASE, Kind.REPHRASE), started=started)]
    if conversation.misunderstood_in_a_row:
        _touch(conversation, misunderstood_in_a_row=0)

    reply = answer(intent.intent, text, user=user, visitor_id=conversation.visitor_id)
    message = _bot(conversation, reply, started=started)
    if reply.pending:
        pending = {**reply.pending, "message": message.pk,
                   "expires": (timezone.now() + confirm_ttl()).isoformat()}
        _touch(conversation, pending_action=pending)
    return [message]


def _classify(text: str):
    """(IntentResult, confidence). A request for a person is recognised by its words as well."""
    try:
        result = intents.classify_intent(text)
    except Exception:  # noqa: BLE001 - no classifier: treat as not understood; a person will take over
        log.exception("Intent classification failed")
        result = intents.IntentResult("out_of_scope", 0.0, "error")
    if _HUMAN.search(text) and result.intent != "talk_to_human":
        result = intents.IntentResult("talk_to_human", 1.0, "keywords")
    elif result.intent == "cancel_order" and _RETURN.search(text) and not _CANCEL.search(text):
        # The classifier confuses "return my order" with cancelling it; the verb decides.
        result = intents.IntentResult("return_refund", result.confidence, f"{result.source}+keywords")
    return result, float(result.confidence)


def _take_pending(conversation: Conversation) -> dict | None:
    """Pop the pending action atomically: two "yes" sent at once must not run it twice."""
    if not conversation.pending_action:
        return None
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        pending = locked.pending_action
        if pending:
            Conversation.objects.filter(pk=conversation.pk).update(pending_action=None)
    conversation.pending_action = None
    if not pending or _expired(pending):
        return None
    return pending


def _expired(pending: dict) -> bool:
    try:
        return dt.datetime.fromisoformat(pending["expires"]) < timezone.now()
    except (KeyError, TypeError, ValueError):
        return True


# --- answers ------------------------------------------------------------------------------------


def answer(intent: str, text: str, *, user=None, visitor_id: str = "") -> Reply:
    """The reply to a message whose intent is known (confidently)."""
    if intent in ("order_status", "cancel_order"):
        if not _signed_in(user):
            return _sign_in_with_policy(text)
        return orders.order_status_reply(user, text) if intent == "order_status" else orders.cancel_reply(user, text)
    if intent == "shipping_time":
        if _signed_in(user) and orders.mentions_own_order(text):
            return orders.order_status_reply(user, text)
        if not _signed_in(user) and orders.find_order_numbers(text):
            return _sign_in_with_policy(text)
        return knowledge_reply(text)
    if intent == "return_refund":
        if orders.is_policy_question(text):
            return knowledge_reply(text)
        if not _signed_in(user):
            return _sign_in_with_policy(text)
        return orders.return_reply(user, text)
    if intent in ("payment_problem", "account"):
        return knowledge_reply(text)
    if intent == "complaint":
        return _complaint_reply(text)
    if intent in ("product_question", "product_recommendation"):
        return product_reply(text, intent=intent, user=user, visitor_id=visitor_id)
    if intent == "small_talk":
        return small_talk_reply(text)
    return Reply(OUT_OF_SCOPE, Kind.REFUSAL)


def _sign_in_with_policy(text: str) -> Reply:
    """Anonymous order questions: ask to sign in, and answer the policy side from the knowledge base."""
    reply = orders.sign_in_reply()
    try:
        hits = knowledge.search_knowledge(text)
    except Exception:  # noqa: BLE001 - the sign-in answer stands without the article
        log.exception("Knowledge retrieval failed")
        hits = []
    if hits:
        reply.text += f" Meanwhile, from our help article \"{hits[0].article.title}\": {hits[0].passage}"
        reply.sources.append(hits[0].source)
    return reply


def knowledge_reply(text: str) -> Reply:
    """The best passage of the closest published article, cited; no good match -> offer a person."""
    try:
        hits = knowledge.search_knowledge(text)
    except Exception:  # noqa: BLE001 - ModelUnavailable or a broken vector: a person can still help
        log.exception("Knowledge retrieval failed")
        hits = []
    if not hits:
        return Reply(NO_KB_ANSWER, Kind.ARTICLE)
    hit = hits[0]
    template = f"From our help article \"{hit.article.title}\": {hit.passage}"
    reply = Reply(template, Kind.ARTICLE, sources=[hit.source], facts=[f"Help article: {hit.article.title}",
                                                                     hit.passage])
    return phrase(reply, text)


def _complaint_reply(text: str) -> Reply:
    reply = knowledge_reply(text)
    if reply.sources:
        reply.text = "I'm sorry to hear that. " + reply.text
        return reply
    return Reply("I'm sorry to hear that. I can look up your order, cancel it or start a return, or pass you to a "
                 "member of our team. Would you like to talk to a person?", Kind.ARTICLE)


def small_talk_reply(text: str) -> Reply:
    if _THANKS.search(text):
        reply = "You're welcome! Is there anything else I can help you with?"
    elif _BYE.search(text):
        reply = "Thanks for chatting with Aisle. Have a lovely day!"
    elif _GREETING_WORDS.search(text):
        reply = "Hello! How can I help you today? I can look up orders, explain shipping and returns, or find products."
    else:
        reply = "I'm doing well, thanks for asking! How can I help you with your shopping today?"
    return Reply(reply, Kind.SMALL_TALK)


# --- products -----------------------------------------------------------------------------------

# Chat words that are not what the shopper is looking for ("can you recommend ..."); the search's own
# parser keeps price and brand words ("under $200").
_FILLER = frozenset("""
can could would will you please recommend recommendation recommendations suggest suggestion suggestions i i'm im am
looking look for a an the some me need want do does did have has any what which is are it this that there tell
about show find get buy got help with of my good best nice great really something anything should think
""".split())
_WORD = re.compile(r"[\w$.'-]+")
_TOKEN = re.compile(r"[a-z0-9]+")


def product_query(text: str) -> str:
    words = [w for w in _WORD.findall(text) if w.lower().strip(".'") not in _FILLER]
    query = " ".join(w.strip(".?!,") for w in words).strip()
    return query or text


def _tokens(text: str) -> set[str]:
    return {t for t in _TOKEN.findall((text or "").lower()) if len(t) >= 2}


def _names(product, text: str) -> bool:
    """Whether the text names this product (brand or a model code, plus another title word)."""
    title = _tokens(product.title) - _FILLER
    said = _tokens(text)
    shared = title & said
    strong = (product.brand or "").lower() in said or any(any(c.isdigit() for c in t) for t in shared)
    return len(shared) >= 2 and strong


def _money(amount) -> str:
    return f"${amount:,.2f}" if amount is not None else "not sold online"


def _availability(product) -> str:
    if not product.is_purchasable:
        return "out of stock" if product.price is not None and product.is_active else "not available online"
    return f"in stock (only {product.stock} left)" if product.stock <= 5 else "in stock"


def product_facts(product, question: str = "") -> list[str]:
    """What may be said about a product: its stored title, price, stock, rating and feature bullets."""
    facts = [f"Product: {product.title}", f"Price: {_money(product.price)}", f"Availability: {_availability(product)}"]
    rating = product.display_rating
    if rating is not None:
        facts.append(f"Rating: {rating} out of 5 from {product.display_review_count} reviews")
    bullets = [str(b) for b in (product.features or []) if str(b).strip()]
    wanted = _tokens(question) - _FILLER
    ranked = sorted(bullets, key=lambda b: -len(_tokens(b) & wanted)) if wanted else bullets
    facts.extend(f"Feature: {b}" for b in ranked[:3])
    return facts


def product_template(product, facts: list[str]) -> str:
    text = f"{product.title}: {_money(product.price)}, {_availability(product)}."
    values = {}
    for fact in facts:
        key, _, value = fact.partition(": ")
        values.setdefault(key, []).append(value)
    if "Rating" in values:
        text += f" Rated {values['Rating'][0]}."
    if "Feature" in values:
        text += " Features: " + "; ".join(values["Feature"]) + "."
    return text


def product_reply(text: str, *, intent: str, user=None, visitor_id: str = "") -> Reply:
    query = product_query(text)
    results = list(shop.search_products(query, user=user if _signed_in(user) else None, visitor_id=visitor_id,
                                        limit=PRODUCTS_SHOWN))
    search_url = f"{reverse('shop:search')}?{_urlencode(q=query)}"
    if not results:
        return Reply("I couldn't find products matching that in our catalogue. Try other words, or browse our "
                     "search page.", Kind.DATA, sources=[source("link", "Search the shop", search_url)])
    top = results[0]
    if intent == "product_question" and _names(top, text):
        facts = product_facts(top, text)
        reply = Reply(product_template(top, facts), Kind.DATA, sources=[_product_source(top)], facts=facts)
        return phrase(reply, text)
    lines = [f"{p.title} ({_money(p.price)})" for p in results[:PRODUCTS_SHOWN]]
    template = "Here are some products that match: " + "; ".join(lines) + "."
    facts = [f"Product: {p.title}, price {_money(p.price)}, {_availability(p)}" for p in results[:PRODUCTS_SHOWN]]
    reply = Reply(template, Kind.DATA, sources=[_product_source(p) for p in results[:PRODUCTS_SHOWN]], facts=facts)
    return phrase(reply, text)


def _product_source(product) -> dict:
    return source("product", f"{product.title} ({_money(product.price)})", product.get_absolute_url())


def _urlencode(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# --- generation ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE = re.compile(r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9-]{4,}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_LEAK = re.compile(r"customer_text|</?facts|DATA_RULE|system prompt|<\|", re.IGNORECASE)
# A small model, unsure, asks the shopper to clarify instead of passing on the article it was given:
# the template answer is better than that.
_NON_ANSWER = re.compile(
    r"\b(?:sorry for (?:any|the) confusion|(?:could|can) you (?:please )?(?:provide|clarify|specify)|"
    r"i(?:'d| would) like to clarify|i (?:don't|do not) have (?:access|any information|information)|as an ai)\b",
    re.IGNORECASE)
# A second shopper asking while the model is busy gets the template at once.
_GENERATOR = GeneratorSlot("support-generate")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text or "")}


def grounded(generated: str, facts: list[str]) -> bool:
    """Every number, price, code (order/tracking/model number) and email in the generated text must
    appear in the facts; nothing of the prompt's scaffolding may leak; it must not ask back instead of
    answering."""
    generated = (generated or "").strip()
    if not generated or len(generated) > 1200 or _LEAK.search(generated) or _NON_ANSWER.search(generated):
        return False
    joined = "\n".join(facts)
    lowered = joined.lower()
    if not _numbers(generated) <= _numbers(joined):
        return False
    if any(code.lower() not in lowered for code in _CODE.findall(generated)):
        return False
    return all(email.lower() in lowered for email in _EMAIL.findall(generated))


PROMPT = None


def _prompt():
    global PROMPT
    if PROMPT is None:
        from ml.prompts import PromptTemplate

        PROMPT = PromptTemplate(
            system="You are the customer-service assistant of Aisle, an online electronics shop. Answer in at "
                   "most three short, friendly sentences.",
            user="$facts\n\nThe customer asked:\n$customer_text\n\nAnswer the customer using only the facts above.",
        )
    return PROMPT


def phrase(reply: Reply, question: str) -> Reply:
    """Let the generator rephrase a retrieved-facts answer, if enabled, in time and grounded."""
    if not reply.facts or not generation_enabled():
        return reply
    timeout_s = float(_setting("AISLE_SUPPORT_GENERATE_TIMEOUT_S", 8.0))
    max_new_tokens = int(_setting("AISLE_SUPPORT_GENERATE_MAX_TOKENS", 80))
    started = time.perf_counter()
    messages = _prompt().messages(facts=reply.facts, customer_text=question)
    generation = _GENERATOR.generate(messages, max_new_tokens=max_new_tokens, timeout_s=timeout_s)
    if generation is None or generation.stopped_by_timeout or not grounded(generation.text, reply.facts):
        return reply
    reply.text = generation.text
    reply.kind = Kind.GENERATED
    reply.latency_ms = int((time.perf_counter() - started) * 1000)
    return reply


# --- hand-off -------------------------------------------------------------------------------------


def hand_off(conversation: Conversation, reason: str) -> Message:
    """Move the conversation to the agents' queue with a summary and tell the shopper."""
    now = timezone.now()
    summary = build_summary(conversation, reason)
    moved = Conversation.objects.filter(pk=conversation.pk, status__in=(Status.BOT, Status.RESOLVED)).update(
        status=Status.WAITING, handed_off_at=now, handoff_reason=reason[:40], summary=summary, pending_action=None,
        misunderstood_in_a_row=0, updated_at=now)
    if not moved:  # people already have it: keep their state, refresh the summary only
        Conversation.objects.filter(pk=conversation.pk).update(summary=summary, updated_at=now)
    conversation.refresh_from_db()
    text = HANDOFF_TEXT.get(reason, "I've passed our conversation to our customer service team") + HANDOFF_TAIL
    return _bot(conversation, Reply(text, Kind.HANDOFF))


def build_summary(conversation: Conversation, reason: str) -> str:
    """A few lines for the agent: why, who, what they wanted, how they feel, which orders, last words."""
    shopper = list(conversation.messages.filter(sender=Message.Sender.SHOPPER).order_by("created_at", "pk"))
    lines = [f"Handed off: {HANDOFF_REASONS.get(reason, reason)}."]
    lines.append("Shopper: signed in." if conversation.user_id else "Shopper: anonymous visitor (not signed in).")
    seen_intents = [m.intent for m in shopper if m.intent]
    if seen_intents:
        earlier = [i for i in dict.fromkeys(reversed(seen_intents[:-1])) if i != seen_intents[-1]]
        lines.append(f"Intent: {seen_intents[-1]}" + (f" (earlier: {', '.join(earlier[:3])})." if earlier else "."))
    moods = [m for m in shopper if m.mood is not None]
    if moods:
        first, last = moods[0].mood, moods[-1].mood
        trend = "worsening" if last < first - 0.2 else "improving" if last > first + 0.2 else "steady"
        lines.append(f"Mood: {moods[-1].mood_label or 'unknown'}, {trend} ({first:+.2f} -> {last:+.2f}).")
    typed = list(dict.fromkeys(n for m in shopper for n in orders.find_order_numbers(m.text)))
    if typed:
        own = [n for n in typed if conversation.user and orders.own_order(conversation.user, n)]
        other = [n for n in typed if n not in own]
        parts = []
        if own:
            parts.append(f"{', '.join(own)} (on this account)")
        if other:
            parts.append(f"other numbers typed: {', '.join(other)}")
        lines.append(f"Orders referenced: {'; '.join(parts)}.")
    if shopper:
        lines.append("Last messages:")
        lines.extend(f"- {m.text[:200]}" for m in shopper[-3:])
    return "\n".join(lines)


# --- feedback ---------------------------------------------------------------------------------------


def record_feedback(message: Message, value: int, *, user=None, visitor_id: str = "") -> Message:
    """Thumbs up (+1) or down (-1) on one of the assistant's answers in the caller's own conversation.
    One value per message: changing one's mind replaces it, so nothing is counted twice."""
    if isinstance(value, bool) or value not in (1, -1):
        raise ValidationError({"value": "Feedback is 1 (helpful) or -1 (not helpful)."})
    if not owns(message.conversation, user=user, visitor_id=visitor_id):
        raise PermissionDenied("Not your conversation.")
    if message.sender != Message.Sender.BOT:
        raise ValidationError({"message": "Only the assistant's answers can be rated."})
    message.feedback, message.feedback_at = value, timezone.now()
    message.save(update_fields=["feedback", "feedback_at"])
    return message


def record_satisfaction(conversation: Conversation, score: int, comment: str = "") -> Conversation:
    """The end-of-chat satisfaction score (1-5) and an optional comment; asking again replaces them."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ValidationError({"score": "Choose a score from 1 to 5."})
    comment = _CONTROL.sub(" ", comment or "").strip()
    if len(comment) > 500:
        raise ValidationError({"comment": "Comments can be at most 500 characters."})
    Conversation.objects.filter(pk=conversation.pk).update(satisfaction=score, satisfaction_comment=comment)
    conversation.satisfaction, conversation.satisfaction_comment = score, comment
    return conversation


# --- quick replies ----------------------------------------------------------------------------------


def message_actions(message: Message, conversation: Conversation) -> list[dict]:
    """Quick-reply buttons under a bot message: Yes/No while its confirmation is pending; "Talk to a
    person" where the assistant could not answer. None once people have the conversation."""
    if message.sender != Message.Sender.BOT or conversation.status in Conversation.HUMAN_STATUSES:
        return []
    pending = conversation.pending_action or {}
    if message.kind == Kind.CONFIRM:
        if pending.get("message") == message.pk and not _expired(pending):
            return [dict(a) for a in YES_NO.get(pending.get("action"), [])]
        return []
    if message.kind == Kind.REPHRASE or (message.kind == Kind.ARTICLE and not message.sources):
        return [dict(HUMAN_ACTION)]
    return []
