"""The support app's public facade: views, the API, tasks, the demo loader and other apps import
from here only. The conversation engine lives in assistant.py, retrieval in knowledge.py, order
answers in orders.py; agent functions (queue, assign, reply, hand back) in agents.py."""

from __future__ import annotations

from .agents import (  # noqa: F401
    QUEUE_TABS,
    Suggestion,
    agent_reply,
    assign,
    conversation_context,
    correct_intent,
    hand_back,
    queue,
    queue_counts,
    resolve,
    suggested_replies,
)
from .assistant import (  # noqa: F401
    INTENTS,
    MAX_TEXT_CHARS,
    OPEN_STATUSES,
    adopt_visitor_conversation,
    build_summary,
    clean_text,
    conversation_for,
    get_or_start_conversation,
    hand_off,
    handle_message,
    message_actions,
    messages_after,
    owned_message,
    owns,
    record_feedback,
    record_satisfaction,
    reply_to,
    return_to_assistant,
    start_conversation,
    wait_info,
)
from .knowledge import (  # noqa: F401
    KnowledgeHit,
    article_source,
    article_url,
    refresh_article_vectors,
    search_knowledge,
    seed_knowledge_base,
)
from .orders import find_order_numbers  # noqa: F401

