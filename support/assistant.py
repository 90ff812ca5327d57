"""The conversation engine: one shopper message in, the assistant's reply (or silence) out.

Per shopper message (`handle_message`):
  1. store it with its mood; if people have the conversation (waiting/assigned), stay silent;
  2. a pending confirmation ("Cancel order X?") and a yes/no -> run or drop the action;
  3. intent (support.intents); "a person, please" / strong anger / a payment dispute -> hand-off;
     below the confidence threshold -> ask to rephrase once, then hand off;
  4. answer: orders from shop.services for the signed-in shopper only (templates, instant), policy
     from the knowledge base (extractive: the article's own sentences, cited), products from the
     catalogue search; small talk; refusal.

The generator (ml.generate) may only rephrase the facts an answer was built from, and only where it is
enabled (AISLE_SUPPORT_GENERATE, "auto": on with a GPU): its output is kept only if it arrives within a
short budget and ml.grounding.check accepts every sentence against those facts; otherwise the extractive
or template answer stands. Order answers never go through it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone
from rapidfuzz.distance import OSA

from behavior.services import record_event
from ml.grounding import check as check_grounding
from ml.grounding import complete_sentences
from search import services as search

from . import intents, knowledge, orders
from .generation import GeneratorSlot, switched_on
from .models import Conversation, Message
from .replies import HUMAN_ACTION, YES_NO, Reply, source

log = logging.getLogger(__name__)

INTENTS: tuple[str, ...] = intents.INTENTS
MAX_TEXT_CHARS = 1000
PRODUCTS_SHOWN = 3
# The search's first few: the product a question names is looked for among them, not only in first place.
PRODUCT_CANDIDATES = 6
Kind = Message.Kind
Status = Conversation.Status
OPEN_STATUSES = (Status.BOT, Status.WAITING, Status.ASSIGNED)

GREETING = ("Hi! I'm Aisle's assistant. I can look up your orders, cancel or return them, answer questions "
            "about shipping, returns, payments and your account, and help you find products.")
REPHRASE = ("Sorry, I didn't quite understand. Could you say it another way? For example: \"Where is my "
            "order?\", \"What is your return policy?\" or \"I'm looking for wireless headphones\".")
OUT_OF_SCOPE = ("I'm the Aisle shop assistant, so I can't help with that. I can help with your orders and "
                "deliveries, returns and refunds, payments, your account, and finding products in our shop.")
# Above this similarity one article answers a message whatever the intent classifier makes of it.
SURE_ARTICLE_MIN_SIMILARITY = 0.5
# A complaint ("arrived with a scratch", "stopped working") is told in feelings more than in an article's
# words: among the articles about returns and products, a weaker match still answers it.
COMPLAINT_TOPICS = ("returns", "products")
COMPLAINT_ARTICLE_MIN_SIMILARITY = 0.35
ASK_FOR_PERSON = "If you would like a person, say so and I'll pass you to our team."
# The contact article must match this well before "when are you open?" is answered instead of handed off.
CONTACT_ARTICLE_MIN_SIMILARITY = 0.5
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
_RETURN = re.compile(r"\b(return(s|ing|ed)?|send(ing)?\s+(it\s+|them\s+)?back)\b", re.IGNORECASE)
_CANCEL = re.compile(r"\bcancel", re.IGNORECASE)
_REFUND = re.compile(r"\brefund", re.IGNORECASE)
# Order verbs as shoppers mistype them ("retrun", "cancle", "refnud"): one swap, insertion or deletion.
_VERB_TYPOS = {"return": "return_refund", "refund": "return_refund", "cancel": "cancel_order"}
# "No, I meant the GoPro" corrects the item of a pending question; "no, keep the AirPods" only declines it.
_CORRECTION = re.compile(r"\b(meant|mean|instead|actually|rather|wrong\s+(one|item|order)|not\s+(that|the)\s+one|"
                         r"i\s+said)\b", re.IGNORECASE)
_DAMAGE = re.compile(r"\b(broken|broke|damaged?|scratch(ed|es)?|crack(ed|s)?|dent(ed)?|shattered|smashed|faulty|"
                     r"defective|dead\s+on\s+arrival|stopped\s+(working|turning\s+on|charging)|won'?t\s+(turn|switch|"
                     r"power)\s+on|doesn'?t\s+work)\b", re.IGNORECASE)
# "When is customer service open?" asks about the team; "get me customer service" asks for it.
_CONTACT_QUESTION = re.compile(r"\b(when|what\s+time|hours|open|close[sd]?|available|phone|number|e-?mail|call|"
                               r"reach|contact)\b", re.IGNORECASE)
_PENDING_INTENTS = {"start_return": "return_refund", "cancel_order": "cancel_order"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_GREETING_WORDS = re.compile(r"\b(hi|hello|hey|good (morning|afternoon|evening)|howdy)\b", re.IGNORECASE)
_THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|appreciate)\b", re.IGNORECASE)
_BYE = re.compile(r"\b(bye|goodbye|see you|that'?s all)\b", re.IGNORECASE)


# --- settings --------------------------------------------------------------------------------


def _setting(name: str, default):
    return getattr(settings, name, default)


# Generation is tried only within this budget (seconds); past it the extractive answer is sent.
DEFAULT_GENERATE_TIMEOUT_S = 3.0


def generation_enabled() -> bool:
    """AISLE_SUPPORT_GENERATE: on, off, or "auto" (the default): on only where the generator has a GPU."""
    return switched_on(_setting("AISLE_SUPPORT_GENERATE", "auto"))


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
                                  text=reply.text[:4000], sources=reply.sources, choices=reply.choices,
                                  cards=reply.cards, latency_ms=latency)


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


def reply_to(conversation: Conversation, text: str, *, user=None,
             client_ref: str = "") -> tuple[Message, list[Message]]:
    """`handle_message` that also returns the stored shopper message (the API echoes it). With a
    `client_ref` already stored in this conversation (a retried send), nothing is stored or answered
    again: the stored message and the replies it got are returned."""
    started = time.perf_counter()
    text = clean_text(text)
    conversation.refresh_from_db()
    if client_ref and (sent := _already_sent(conversation, client_ref)) is not None:
        return sent
    mood = intents.mood_of(text)
    try:
        with transaction.atomic():
            shopper_message = Message.objects.create(conversation=conversation, sender=Message.Sender.SHOPPER,
                                                     kind=Kind.TEXT, text=text, mood=mood.score,
                                                     mood_label=mood.label, client_ref=client_ref)
    except IntegrityError:  # the same send, twice at once: the other request stored and answers it
        return _already_sent(conversation, client_ref)
    _touch(conversation, mood=mood.score)
    return shopper_message, _respond(conversation, shopper_message, mood, user, started)


def _already_sent(conversation: Conversation, client_ref: str) -> tuple[Message, list[Message]] | None:
    shopper_message = conversation.messages.filter(sender=Message.Sender.SHOPPER, client_ref=client_ref).first()
    if shopper_message is None:
        return None
    later = list(conversation.messages.filter(pk__gt=shopper_message.pk).order_by("created_at", "pk"))
    replies = []
    for message in later:
        if message.sender == Message.Sender.SHOPPER:
            break
        replies.append(message)
    return shopper_message, replies


def _respond(conversation: Conversation, shopper_message: Message, mood, user, started: float) -> list[Message]:
    text = shopper_message.text
    if conversation.status == Status.WAITING:
        return [_waiting_ack(conversation, started)]
    if conversation.status in Conversation.HUMAN_STATUSES:
        return []  # an agent is writing with them: the assistant keeps out of it
    if conversation.status == Status.RESOLVED:  # writing again after it was closed reopens it with the bot
        _touch(conversation, status=Status.BOT)
    if _signed_in(user) and conversation.user_id is None:
        user = None  # an anonymous chat never reads an account's orders, even if the caller is signed in

    pending = _take_pending(conversation)
    if pending is not None and pending.get("action") == "choose_order":
        # A button of "which order?" was pressed: answer with the intent asked about, whatever the
        # classifier makes of the button's wording (its order number decides the order).
        options = pending.get("options") or {}
        if " ".join(text.lower().split()) in options:
            return _answer(conversation, pending.get("intent", "order_status"), text, user, started)
        pending = None
    if pending is not None:
        if _YES.match(text):
            return [_bot(conversation, orders.perform(user, pending), started=started)]
        corrected = _PENDING_INTENTS.get(pending.get("action"))
        if corrected and _CORRECTION.search(text) and _signed_in(user) and orders.names_own_item(user, text):
            # "No wait, I meant the GoPro": the same action, on the item they name now.
            return _answer(conversation, corrected, text, user, started)
        if _NO.match(text):
            return [_bot(conversation, Reply("OK, I won't do that. Anything else I can help with?",
                                             Kind.SMALL_TALK), started=started)]
        # Anything else: the shopper moved on; the question lapses and the message is read afresh.

    intent, confidence = _classify(text)
    if (item_intent := _item_intent(text, user, intent)) is not None:
        intent, confidence = item_intent, float(item_intent.confidence)
    shopper_message.intent, shopper_message.intent_confidence = intent.intent, confidence
    shopper_message.save(update_fields=["intent", "intent_confidence"])
    _touch(conversation, last_intent=intent.intent)

    if intents.is_strong_anger(mood):
        return [hand_off(conversation, "angry")]
    # A low-confidence "talk_to_human" is usually gibberish's nearest label: it counts as not understood
    # (a real request for a person is also caught by its words, with full confidence).
    if intent.intent in intents.HANDOFF_INTENTS and intents.is_confident(intent):
        if (intent.source != "keywords" and _CONTACT_QUESTION.search(text)
                and (reply := _contact_hours_reply(text)) is not None):
            return [_bot(conversation, reply, started=started)]
        return [hand_off(conversation, "asked_for_human")]
    if _DISPUTE.search(text):
        return [hand_off(conversation, "payment_dispute")]
    if not intents.is_confident(intent) and (reply := _article_if_sure(text)) is not None:
        # The classifier is unsure of the wording ("what cards do you take"), but one article clearly
        # answers it: the article's own sentences go out, cited.
        if conversation.misunderstood_in_a_row:
            _touch(conversation, misunderstood_in_a_row=0)
        return [_bot(conversation, phrase(reply, text), started=started)]
    if not intents.is_confident(intent) and _names_a_product(text):
        # "sony wh1000xm5, is the noise cancelling any good?": the wording is new to the classifier, the
        # product is not.
        if conversation.misunderstood_in_a_row:
            _touch(conversation, misunderstood_in_a_row=0)
        return _answer(conversation, "product_question", text, user, started)
    if not intents.is_confident(intent):
        misses = conversation.misunderstood_in_a_row + 1
        _touch(conversation, misunderstood_in_a_row=misses)
        if misses >= 2:
            return [hand_off(conversation, "not_understood")]
        return [_bot(conversation, Reply(REPHRASE, Kind.REPHRASE), started=started)]
    if conversation.misunderstood_in_a_row:
        _touch(conversation, misunderstood_in_a_row=0)

    return _answer(conversation, intent.intent, text, user, started)


def _answer(conversation: Conversation, intent: str, text: str, user, started: float) -> list[Message]:
    reply = answer(intent, text, user=user, visitor_id=conversation.visitor_id)
    message = _bot(conversation, reply, started=started)
    if reply.pending:
        pending = {**reply.pending, "message": message.pk,
                   "expires": (timezone.now() + confirm_ttl()).isoformat()}
        _touch(conversation, pending_action=pending)
    return [message]


def _classify(text: str):
    """(IntentResult, confidence). A request for a person is recognised by its words as well."""
    try:
        result = intents.classify_intent(intents.correct_typos(text))
    except Exception:  # noqa: BLE001 - no classifier: treat as not understood; a person will take over
        log.exception("Intent classification failed")
        result = intents.IntentResult("out_of_scope", 0.0, "error")
    if _HUMAN.search(text):  # even when the classifier also said so, unsure ("a live person?")
        result = intents.IntentResult("talk_to_human", 1.0, "keywords")
    elif _DAMAGE.search(text) and (result.intent in ("order_status", "shipping_time")
                                   or not intents.is_confident(result)):
        # "My AirPods arrived with a scratch": a complaint about the item (the damaged-items article), not
        # a delivery question. A return or cancel verb still makes it that action (_item_intent).
        result = intents.IntentResult("complaint", 1.0, f"{result.source}+keywords")
    elif result.intent == "cancel_order" and _RETURN.search(text) and not _CANCEL.search(text):
        # The classifier confuses "return my order" with cancelling it; the verb decides.
        result = intents.IntentResult("return_refund", result.confidence, f"{result.source}+keywords")
    return result, float(result.confidence)


_WHERE = re.compile(r"\b(where|status|track|tracking|arrive[ds]?|deliver(?:ed|y)?|shipped|coming)\b", re.IGNORECASE)


def _item_intent(text: str, user, current) -> intents.IntentResult | None:
    """A signed-in shopper naming an item of theirs with an order verb ("return my AirPods", "where is the
    laptop I ordered?") means that order action, however unsure the classifier is of an unseen product
    name. A request for a person is never overridden."""
    if not _signed_in(user) or current.intent in intents.HANDOFF_INTENTS or _HUMAN.search(text):
        return None
    verb = _order_verb(text)
    if verb is not None and verb == current.intent and intents.is_confident(current):
        return None
    if verb == "order_status" and _DAMAGE.search(text):
        return None  # "my AirPods arrived scratched": a complaint, answered by the damaged-items article
    if verb == "return_refund" and (orders.is_policy_question(intents.correct_typos(text))
                                    if not _REFUND.search(text) or _RETURN.search(text)
                                    else _POLICY_ASKED.search(text)):
        return None  # "how do returns work for headphones?", "when will I get my refund?": the article answers
    mention = orders.find_mention(text)
    named = orders.names_own_item(user, text)
    if verb is None:
        # No order verb, and the classifier is unsure: an item of theirs named after "my/the" ("what did I
        # pay for the switch?") is a question about that order.
        if intents.is_confident(current) or not (mention.phrases and named):
            return None
        verb = "order_status"
    elif not (mention.possessive or named):
        return None
    return intents.IntentResult(verb, 1.0, f"{current.source}+item")


# A refund named with an item is a request to return it, unless it asks how refunds work.
_POLICY_ASKED = re.compile(r"\b(how\s+(long|soon|do|does)|when\s+(will|do|does|would)|policy|what\s+is)\b",
                           re.IGNORECASE)


def _refund_request(text: str, user) -> bool:
    """"Refund the AirPods please": a signed-in shopper asking to send back an item of theirs, not asking how
    refunds work."""
    return (_signed_in(user) and bool(_REFUND.search(text)) and not _POLICY_ASKED.search(text)
            and orders.names_own_item(user, text))


def _order_verb(text: str) -> str | None:
    """The order action a message asks for, read from its verb, typos included."""
    if _CANCEL.search(text):
        return "cancel_order"
    if _RETURN.search(text) or _REFUND.search(text):
        return "return_refund"
    for word in re.findall(r"[a-z]{5,}", text.lower()):
        for verb, intent in _VERB_TYPOS.items():
            if OSA.distance(word[:len(verb) + 1], verb) <= 1 and word[:2] == verb[:2]:
                return intent
    return "order_status" if _WHERE.search(text) else None


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
        if _signed_in(user) and (orders.mentions_own_order(text) or orders.names_own_item(user, text)):
            return orders.order_status_reply(user, text)
        if not _signed_in(user) and orders.find_order_numbers(text):
            return _sign_in_with_policy(text)
        return knowledge_reply(text)
    if intent == "return_refund":
        if orders.is_policy_question(intents.correct_typos(text)) and not _refund_request(text, user):
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


def _article_hit(text: str, min_score: float, topics: tuple[str, ...] = ()):
    try:
        hits = knowledge.search_knowledge(intents.correct_typos(text), min_score=min_score, topics=topics)
    except Exception:  # noqa: BLE001 - no article: the caller's answer stands
        log.exception("Knowledge retrieval failed")
        return None
    return hits[0] if hits else None


def _article_reply(hit) -> Reply:
    template = f"From our help article \"{hit.article.title}\": {hit.answer}"
    return Reply(template, Kind.ARTICLE, sources=[hit.source], facts=[f"Help article: {hit.article.title}",
                                                                     hit.answer])


def _names_a_product(text: str) -> bool:
    try:
        products = list(search.search(product_query(text), limit=PRODUCT_CANDIDATES, source=search.SOURCE_CHAT))
    except Exception:  # noqa: BLE001 - no search: the message stays not understood
        log.exception("Product search failed")
        return False
    return named_product(products, text) is not None


def _article_if_sure(text: str) -> Reply | None:
    hit = _article_hit(text, SURE_ARTICLE_MIN_SIMILARITY)
    return _article_reply(hit) if hit is not None else None


def _contact_hours_reply(text: str) -> Reply | None:
    """"When is your customer service open?" is about people but asks for none: the contact article
    answers it, and a person is one message away. A plain request for a person (its words) never gets here."""
    try:
        hits = knowledge.search_knowledge(intents.correct_typos(text), topics=("contact",),
                                          min_score=CONTACT_ARTICLE_MIN_SIMILARITY)
    except Exception:  # noqa: BLE001 - no article: the hand-off stands
        log.exception("Knowledge retrieval failed")
        return None
    if not hits or hits[0].article.topic != "contact":
        return None
    hit = hits[0]
    return Reply(f"From our help article \"{hit.article.title}\": {hit.answer} {ASK_FOR_PERSON}", Kind.ARTICLE,
                 sources=[hit.source])


def _sign_in_with_policy(text: str) -> Reply:
    """Anonymous order questions: ask to sign in, and answer the policy side from the knowledge base."""
    reply = orders.sign_in_reply()
    try:
        hits = knowledge.search_knowledge(text)
    except Exception:  # noqa: BLE001 - the sign-in answer stands without the article
        log.exception("Knowledge retrieval failed")
        hits = []
    if hits:
        reply.text += f" Meanwhile, from our help article \"{hits[0].article.title}\": {hits[0].answer}"
        reply.sources.append(hits[0].source)
    return reply


def knowledge_reply(text: str) -> Reply:
    """Extractive by default: the sentences of the closest published article that answer the question,
    quoted and cited (title + link); generated phrasing replaces them only if grounded in them (phrase).
    No good match -> offer a person."""
    try:
        hits = knowledge.search_knowledge(intents.correct_typos(text))
    except Exception:  # noqa: BLE001 - ModelUnavailable or a broken vector: a person can still help
        log.exception("Knowledge retrieval failed")
        hits = []
    if not hits:
        return Reply(NO_KB_ANSWER, Kind.ARTICLE)
    return phrase(_article_reply(hits[0]), text)


def _complaint_reply(text: str) -> Reply:
    reply = knowledge_reply(text)
    if not reply.sources and (hit := _article_hit(text, COMPLAINT_ARTICLE_MIN_SIMILARITY,
                                                  topics=COMPLAINT_TOPICS)) is not None:
        reply = phrase(_article_reply(hit), text)
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


def _model_codes(text: str) -> set[str]:
    """Model codes typed ("CU7000D", "UR8000", "WH1000XM5"): letters with two digits or more. Sizes and
    resolutions ("65", "4k") are not codes."""
    return {t for t in _tokens(text) if sum(c.isdigit() for c in t) >= 2 and any(c.isalpha() for c in t)}


def named_product(products: list, text: str):
    """The product the question is about, among the search's candidates, or None.

    It must be named (`_names`); a model code typed must be in its title ("the Samsung CU7000D" is not
    the Samsung QN85C); of several brands named, the question is about the first one ("Does the Apple
    TV 4K support Dolby Vision? ... with the LG 65" asks about the Apple TV)."""
    said = (text or "").lower()
    codes = _model_codes(text)
    candidates = [p for p in products if _names(p, text) and (not codes or codes & _tokens(p.title))
                  and _same_model(p, text)]
    if not candidates:
        return None
    brands = {(p.brand or "").lower() for p in products if p.brand} - {""}
    positions = [said.find(b) for b in brands if re.search(rf"\b{re.escape(b)}\b", said)]
    first = min(positions) if positions else -1

    def rank(product) -> tuple[int, int]:
        brand = (product.brand or "").lower()
        at = said.find(brand) if brand else -1
        return (0 if at == first or first < 0 else 1, products.index(product))

    best = min(candidates, key=rank)
    return best if rank(best)[0] == 0 else None


_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)")


def _same_model(product, text: str) -> bool:
    """The word after the brand names the line ("Sonos Beam" is not the Sonos Sub, "LG 65" not the LG 75")
    and a generation typed must be the title's ("AirPods 3rd generation" is not the 2nd)."""
    title = _tokens(product.title)
    words = [w for w in _TOKEN.findall((text or "").lower()) if w not in _FILLER]
    brand = (product.brand or "").lower()
    if brand in words:
        after = words.index(brand) + 1
        if after < len(words) and words[after] not in title:
            return False
    typed = {w for w in words if _ORDINAL.fullmatch(w)}
    listed = {w for w in title if _ORDINAL.fullmatch(w)}
    return not (typed and listed and not typed & listed)


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
    """The answer beside the product's card: the card shows the title, price and link once, so the text
    holds only what the card does not (availability, rating, the features asked about)."""
    text = f"{_availability(product)[:1].upper()}{_availability(product)[1:]}."
    values = {}
    for fact in facts:
        key, _, value = fact.partition(": ")
        values.setdefault(key, []).append(value)
    if "Rating" in values:
        text += f" Rated {values['Rating'][0]}."
    if "Feature" in values:
        text += " Features: " + "; ".join(values["Feature"]) + "."
    return text


def product_card(product) -> dict:
    """What the widget draws for a product: title, price, availability, rating and the product page."""
    rating = product.display_rating
    return {"title": product.title[:200], "price": _money(product.price), "url": product.get_absolute_url(),
            "availability": _availability(product),
            "rating": float(rating) if rating is not None else None,
            "reviews": int(product.display_review_count or 0) if rating is not None else 0}


def product_reply(text: str, *, intent: str, user=None, visitor_id: str = "") -> Reply:
    query = product_query(text)
    # A chat question is not a storefront search: the search analytics must not count it.
    results = list(search.search(query, user=user if _signed_in(user) else None, visitor_id=visitor_id,
                                 limit=PRODUCT_CANDIDATES, source=search.SOURCE_CHAT))
    search_url = f"{reverse('search:results')}?{_urlencode(q=query)}"
    if not results:
        return Reply("I couldn't find products matching that in our catalogue. Try other words, or browse our "
                     "search page.", Kind.DATA, sources=[source("link", "Search the shop", search_url)])
    named = named_product(results, text)
    if named is None and (sure := _article_if_sure(text)) is not None:
        return phrase(sure, text)  # "how long is the warranty on electronics?": a policy, not a product
    if intent == "product_question" and named is not None:
        top = named
        facts = product_facts(top, text)
        reply = Reply(product_template(top, facts), Kind.DATA, sources=[_product_source(top)], facts=facts,
                      cards=[product_card(top)])
        return phrase(reply, text)
    shown = results[:PRODUCTS_SHOWN]
    # Cards, not prose: a generated paragraph would only repeat the titles the cards already show.
    template = ("Here is a product that matches:" if len(shown) == 1 else
                f"Here are {len(shown)} products that match:")
    return Reply(template, Kind.DATA, sources=[_product_source(p) for p in shown] + [
        source("link", "See all results", search_url)], cards=[product_card(p) for p in shown])


def _product_source(product) -> dict:
    return source("product", f"{product.title} ({_money(product.price)})", product.get_absolute_url())


def _urlencode(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# --- generation ---------------------------------------------------------------------------------

# A second shopper asking while the model is busy gets the extractive answer at once.
_GENERATOR = GeneratorSlot("support-generate")


def grounded(generated: str, facts: list[str], question: str | None = None) -> bool:
    """Whether generated text may replace the extractive/template answer: ml.grounding's one check
    (every sentence supported by the facts, no invented numbers, links or product claims, no "the user",
    no asking back, no echo of the shopper's own instructions)."""
    result = check_grounding(generated, facts, shopper_message=question)
    if not result.ok:
        log.info("Generated answer not sent (%s): %s", ", ".join(result.reasons), "; ".join(result.details)[:500])
    return result.ok


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
    """Let the generator rephrase a retrieved-facts answer, if enabled, within its short budget, and only
    if ml.grounding accepts every sentence against the facts; otherwise the extractive answer stands."""
    if not reply.facts or not generation_enabled():
        return reply
    timeout_s = float(_setting("AISLE_SUPPORT_GENERATE_TIMEOUT_S", DEFAULT_GENERATE_TIMEOUT_S))
    max_new_tokens = int(_setting("AISLE_SUPPORT_GENERATE_MAX_TOKENS", 80))
    started = time.perf_counter()
    messages = _prompt().messages(facts=reply.facts, customer_text=question)
    generation = _GENERATOR.generate(messages, max_new_tokens=max_new_tokens, timeout_s=timeout_s)
    if generation is None or generation.stopped_by_timeout:
        return reply  # busy, failed or late
    adopted = adopt_generated(reply, generation.text, question, cut_off=generation.new_tokens >= max_new_tokens)
    if adopted.kind == Kind.GENERATED:
        adopted.latency_ms = int((time.perf_counter() - started) * 1000)
    return adopted


def adopt_generated(reply: Reply, generated: str, question: str, *, cut_off: bool = False) -> Reply:
    """The reply with the generated text in place of its extractive/template text, if ml.grounding accepts
    it against the reply's facts; unchanged otherwise. A text cut off by the token cap loses its unfinished
    last sentence first (a half sentence is never sent)."""
    text = (generated or "").strip()
    if cut_off:
        text = complete_sentences(text)
    if not text or not grounded(text, reply.facts, question):
        return reply
    reply.text = text
    reply.kind = Kind.GENERATED
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


# --- waiting for a person --------------------------------------------------------------------------

WAIT_SAMPLE_DAYS = 14
WAIT_SAMPLE_SIZE = 50


def recent_response_minutes() -> float | None:
    """The median minutes from hand-off to an agent's first reply, over the last chats agents answered
    (None when there are none yet: then only the place in the queue is shown)."""
    first_reply = (Message.objects.filter(conversation=OuterRef("pk"), sender=Message.Sender.AGENT)
                   .order_by("created_at").values("created_at")[:1])
    since = timezone.now() - dt.timedelta(days=WAIT_SAMPLE_DAYS)
    rows = (Conversation.objects.filter(handed_off_at__gte=since).annotate(first_reply=Subquery(first_reply))
            .filter(first_reply__isnull=False).order_by("-handed_off_at").values_list("handed_off_at", "first_reply")
            [:WAIT_SAMPLE_SIZE])
    minutes = sorted(max(0.0, (reply - handed).total_seconds() / 60) for handed, reply in rows if reply >= handed)
    if not minutes:
        return None
    middle = len(minutes) // 2
    return minutes[middle] if len(minutes) % 2 else (minutes[middle - 1] + minutes[middle]) / 2


def wait_info(conversation: Conversation) -> dict | None:
    """For a chat waiting for an agent: its place in the queue (served oldest hand-off first, as the
    console lists them), how many are waiting, and the recent typical wait. None in other states."""
    if conversation.status != Status.WAITING:
        return None
    waiting = Conversation.objects.filter(status=Status.WAITING)
    if conversation.handed_off_at is None:
        place = waiting.count()
    else:
        place = waiting.filter(Q(handed_off_at__lt=conversation.handed_off_at)
                               | Q(handed_off_at=conversation.handed_off_at, pk__lte=conversation.pk)).count()
    place = max(place, 1)
    typical = recent_response_minutes()
    estimate = None if typical is None else max(1, round(typical))
    text = ("You're next in the queue for a person." if place == 1 else
            f"You're number {place} in the queue for a person.")
    if estimate is not None:
        text += f" Recently our team has answered in about {estimate} minute{'s' if estimate != 1 else ''}."
    return {"place": place, "waiting": max(waiting.count(), place), "estimate_minutes": estimate, "text": text}


def _waiting_ack(conversation: Conversation, started: float) -> Message:
    """A message sent while the chat waits for a person: kept for the agent, and the shopper is told
    so, with the wait, rather than hearing nothing."""
    info = wait_info(conversation) or {"text": ""}
    text = (f"Thanks, I've added that to your conversation for our team. {info['text']} If you'd rather carry "
            "on with me, choose “Back to the assistant”.")
    return _bot(conversation, Reply(text, Kind.HANDOFF), started=started)


def return_to_assistant(conversation: Conversation) -> Conversation:
    """The shopper leaves the agents' queue: the assistant answers their next message again. Only from
    "waiting": once an agent has joined, the agent hands the chat back (support.agents.hand_back)."""
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.status == Status.WAITING:
            now = timezone.now()
            Conversation.objects.filter(pk=locked.pk).update(status=Status.BOT, assigned_to=None, pending_action=None,
                                                             misunderstood_in_a_row=0, updated_at=now)
            _bot(locked, Reply("You're back with the Aisle assistant. Ask me anything, or ask for a person again "
                               "any time.", Kind.SMALL_TALK))
        elif locked.status != Status.BOT:
            raise ValidationError({"status": "A member of our team has already joined this chat; they can hand "
                                             "you back to the assistant."} if locked.status == Status.ASSIGNED else
                                  {"status": "This chat is closed. Write again to start a new one."})
    conversation.refresh_from_db()
    return conversation


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
    """Quick-reply buttons under a bot message: Yes/No while its confirmation is pending; the orders to
    choose from while "which one?" is open; "Talk to a person" where the assistant could not answer.
    None once people have the conversation."""
    if message.sender != Message.Sender.BOT or conversation.status in Conversation.HUMAN_STATUSES:
        return []
    pending = conversation.pending_action or {}
    if message.choices:
        live = pending.get("message") == message.pk and not _expired(pending)
        return [{"label": c["label"], "reply": c["reply"]} for c in message.choices] if live else []
    if message.kind == Kind.CONFIRM:
        if pending.get("message") == message.pk and not _expired(pending):
            return [dict(a) for a in YES_NO.get(pending.get("action"), [])]
        return []
    if message.kind == Kind.REPHRASE or (message.kind == Kind.ARTICLE and (not message.sources
                                                                           or message.text.endswith(ASK_FOR_PERSON))):
        return [dict(HUMAN_ACTION)]
    return []
