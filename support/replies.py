"""What the assistant's answer builders return before the conversation engine stores it.

Kept apart from assistant.py so that orders.py and knowledge.py can build replies without importing
the engine (which imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Message


@dataclass
class Reply:
    text: str
    kind: str = Message.Kind.DATA
    # [{"type": "article"|"product"|"order"|"link", "title": .., "url": ..}]
    sources: list[dict] = field(default_factory=list)
    # Facts the generator may rephrase (KB passages, product facts). Empty: the template text is final.
    facts: list[str] = field(default_factory=list)
    # Set when the reply asks for a "yes": stored in Conversation.pending_action by the engine.
    pending: dict | None = None
    latency_ms: int | None = None
    # Buttons that answer a question of the assistant ("which order?"): [{"label": .., "reply": ..}].
    choices: list[dict] = field(default_factory=list)
    # Product cards the widget draws instead of prose: [{"title", "price", "url", "availability", ...}].
    cards: list[dict] = field(default_factory=list)


def source(kind: str, title: str, url: str) -> dict:
    return {"type": kind, "title": title[:200], "url": url}


# Quick replies the widget shows under a message. They are derived from the message when it is
# serialised (see assistant.message_actions) so that a confirmation's buttons vanish once answered.
HUMAN_ACTION = {"label": "Talk to a person", "reply": "I would like to talk to a person"}
YES_NO = {
    "cancel_order": [{"label": "Yes, cancel it", "reply": "Yes, cancel it"}, {"label": "No", "reply": "No"}],
    "start_return": [{"label": "Yes, start the return", "reply": "Yes, start the return"},
                     {"label": "No", "reply": "No"}],
}
