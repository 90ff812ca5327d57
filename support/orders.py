"""Order answers and actions for the signed-in shopper, built only from shop.services.

Every read goes through `orders_for_user(user)` / `get_order_for_user(user, number)`, which filter on
the shopper's own account: whatever the chat text says, no code path here can load anyone else's
order. A number that is not the shopper's gets the same reply whether it exists elsewhere or not,
so the assistant cannot be used to probe which order numbers exist."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.urls import reverse

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
                              r"(?:an?|any)\b|when\s+will\s+i\s+(?:get|receive|see)|how\s+soon)", re.IGNORECASE)

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


def _pick(user, text: str, prefer=None) -> tuple[object | None, Reply | None, list]:
    """The order the shopper means: the number they typed (their own only), else the most recent one
    (the most recent one `prefer` accepts, when there is one). Returns (order, reply-if-none, recent)."""
    numbers = find_order_numbers(text)
    if numbers:
        order = own_order(user, numbers[0])
        return (order, None, []) if order else (None, Reply(NOT_FOUND, Message.Kind.DATA), [])
    recent = recent_orders(user, limit=10 if prefer else 3)
    if not recent:
        return None, Reply(NO_ORDERS, Message.Kind.DATA, sources=[source("link", "Your account",
                                                                         reverse("shop:account"))]), []
    preferred = [o for o in recent if prefer(o)] if prefer else []
    return (preferred or recent)[0], None, recent[:3]


# --- answers ------------------------------------------------------------------------------


def order_status_reply(user, text: str) -> Reply:
    order, reply, recent = _pick(user, text)
    if reply:
        return reply
    lines = [describe_order(order)]
    others = [o for o in recent if o.pk != order.pk]
    if others:
        listed = "; ".join(f"{o.number} ({o.get_status_display().lower()})" for o in others)
        lines.append(f"Your other recent orders: {listed}. Ask me about one by its number.")
    return Reply(" ".join(lines), Message.Kind.DATA, sources=[order_source(order)])


def cancel_reply(user, text: str) -> Reply:
    order, reply, _ = _pick(user, text, prefer=shop.can_cancel)
    if reply:
        return reply
    if not shop.can_cancel(order):
        eligibility = shop.return_eligibility(order)
        why = (f"Order {order.number} {STATUS_PHRASES.get(order.status, order.status)}, so it can't be cancelled "
               "any more.")
        return Reply(f"{why} {eligibility.reason}", Message.Kind.DATA, sources=[order_source(order)])
    question = (f"Do you want me to cancel order {order.number} ({items_text(order)}, total {money(order.total)})? "
                "This can't be undone.")
    return Reply(question, Message.Kind.CONFIRM, sources=[order_source(order)],
                 pending={"action": "cancel_order", "order": order.number})


def return_reply(user, text: str) -> Reply:
    order, reply, _ = _pick(user, text, prefer=lambda o: shop.return_eligibility(o).eligible)
    if reply:
        return reply
    eligibility = shop.return_eligibility(order)
    if not eligibility.eligible:
        return Reply(f"Order {order.number}: {eligibility.reason}", Message.Kind.DATA, sources=[order_source(order)])
    question = (f"Order {order.number} ({items_text(order)}) can be returned: {eligibility.reason} "
                "Shall I start the return?")
    return Reply(question, Message.Kind.CONFIRM, sources=[order_source(order)],
                 pending={"action": "start_return", "order": order.number})


def perform(user, pending: dict) -> Reply:
    """Run a confirmed action on the shopper's own order (the shop re-checks ownership and state)."""
    number = str(pending.get("order", ""))
    try:
        if pending.get("action") == "cancel_order":
            order = shop.cancel_order_for_user(user, number, note="Cancelled by the shopper via the assistant.")
            return Reply(f"Done: order {order.number} is cancelled.", Message.Kind.ACTION,
                         sources=[order_source(order)])
        if pending.get("action") == "start_return":
            request = shop.start_return_for_user(user, number, reason="Started in the chat assistant.",
                                                 channel="assistant")
            return Reply(f"Done: I've started a return for order {number} (return request {request.pk}). We'll "
                         "email you a prepaid return label.", Message.Kind.ACTION,
                         sources=[order_source(request.order)])
    except ObjectDoesNotExist:  # Order.DoesNotExist: not theirs, or no such order
        return Reply(NOT_FOUND, Message.Kind.DATA)
    except ValidationError as exc:
        return Reply(f"I couldn't do that for order {number}: {' '.join(exc.messages)}", Message.Kind.DATA)
    return Reply("Sorry, I no longer know what you wanted me to do. Could you ask again?", Message.Kind.DATA)
