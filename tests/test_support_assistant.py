"""The conversation engine and its parts, called as services: ownership, hand-off and summary,
confirmations, feedback, the knowledge base (seeding, re-embedding, retrieval) and the generator's
grounding guard (a tiny generator here; the real SmolLM2 in the one `slow` test)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from behavior.models import Event
from shop.models import Order
from support import assistant, knowledge, services
from support.models import CannedResponse, Conversation, KnowledgeArticle, Message
from support.orders import find_order_numbers
from tests.factories import make_user
from tests.ml_tiny import make_tiny_generator
from tests.support_factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _support(settings):
    settings.AISLE_SUPPORT_GENERATE = False
    services.seed_knowledge_base()


@pytest.fixture
def tiny_generator(tmp_path_factory):
    from ml.registry import registry

    folder = make_tiny_generator(tmp_path_factory.mktemp("support-gen") / "generator")
    registry.configure(paths={"generator": str(folder)})
    return folder


def bot_texts(conversation: Conversation) -> list[str]:
    return list(conversation.messages.filter(sender="bot").values_list("text", flat=True))


# --- conversations and ownership ------------------------------------------------------------


def test_start_conversation_greets_and_records_the_event():
    user = make_user()
    conversation = services.start_conversation(user=user, visitor_id="a" * 32)
    assert conversation.status == "bot" and conversation.user == user
    assert conversation.messages.get().sender == "bot"
    event = Event.objects.get(event_type="chat_started")
    assert event.user == user and event.visitor_id == "a" * 32
    assert event.properties == {"conversation": str(conversation.token)}


def test_ownership_rules():
    alice, bob = make_user(), make_user()
    mine = services.start_conversation(user=alice, visitor_id="v1")
    anon = services.start_conversation(visitor_id="v2")
    assert services.conversation_for(user=alice, token=mine.token) == mine
    assert services.conversation_for(user=bob, token=mine.token) is None
    assert services.conversation_for(visitor_id="v1", token=mine.token) is None  # signed out: not the account's
    assert services.conversation_for(visitor_id="v2", token=anon.token) == anon
    assert services.conversation_for(visitor_id="v3", token=anon.token) is None
    assert services.conversation_for(token=anon.token) is None
    assert services.conversation_for(user=alice, token="not-a-uuid") is None
    assert services.conversation_for(user=alice) == mine
    assert services.conversation_for(visitor_id="v2") == anon


def test_signing_in_adopts_the_browsers_open_anonymous_chat():
    user = make_user()
    anon = services.start_conversation(visitor_id="v9")
    conversation, created = services.get_or_start_conversation(user=user, visitor_id="v9")
    assert not created and conversation.pk == anon.pk and conversation.user == user
    assert services.conversation_for(visitor_id="v9") is None


def test_resolved_conversations_are_not_open_and_reopen_on_a_new_message():
    user = make_user()
    conversation = services.start_conversation(user=user)
    Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
    assert services.conversation_for(user=user) is None
    replies = services.handle_message(conversation, "Hello!", user=user)
    assert replies and conversation.status == "bot"


# --- the pipeline -------------------------------------------------------------------------------


def test_shopper_message_stores_intent_and_mood():
    user = make_user()
    conversation = services.start_conversation(user=user)
    services.handle_message(conversation, "How long does shipping take?", user=user)
    message = conversation.messages.get(sender="shopper")
    assert message.intent == "shipping_time" and message.intent_confidence > 0.5
    assert message.mood is not None and message.mood_label in {"angry", "negative", "neutral", "positive"}
    assert conversation.last_intent == "shipping_time"


@pytest.mark.parametrize("status", ["waiting", "assigned"])
def test_the_bot_is_silent_while_people_have_the_conversation(status):
    user = make_user()
    conversation = services.start_conversation(user=user)
    Conversation.objects.filter(pk=conversation.pk).update(status=status)
    assert services.handle_message(conversation, "Hello!", user=user) == []
    assert conversation.messages.filter(sender="shopper").count() == 1
    assert conversation.messages.filter(sender="bot").count() == 1  # the greeting only


def test_hand_off_summary_has_intent_mood_orders_and_last_messages():
    user = make_user()
    order = make_order(user)
    conversation = services.start_conversation(user=user)
    services.handle_message(conversation, f"Where is order {order.number}?", user=user)
    services.handle_message(conversation, "Where is order AS99999999?", user=user)
    notice = services.hand_off(conversation, "asked_for_human")
    assert notice.kind == "handoff" and "customer service team" in notice.text
    conversation.refresh_from_db()
    assert conversation.status == "waiting" and conversation.handed_off_at and conversation.pending_action is None
    summary = conversation.summary
    assert "asked for a person" in summary and "order_status" in summary and "Mood:" in summary
    assert f"{order.number} (on this account)" in summary and "other numbers typed: AS99999999" in summary
    assert "- Where is order AS99999999?" in summary


def test_an_expired_confirmation_does_nothing():
    user = make_user()
    order = make_order(user)
    conversation = services.start_conversation(user=user)
    [confirm] = services.handle_message(conversation, f"Please cancel order {order.number}", user=user)
    assert confirm.kind == "confirm"
    assert services.message_actions(confirm, conversation)[0]["label"] == "Yes, cancel it"
    past = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    Conversation.objects.filter(pk=conversation.pk).update(pending_action={**conversation.pending_action,
                                                                           "expires": past})
    conversation.refresh_from_db()
    assert services.message_actions(confirm, conversation) == []
    services.handle_message(conversation, "yes", user=user)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_an_anonymous_chat_never_reads_orders_even_for_a_signed_in_caller():
    user = make_user()
    order = make_order(user)
    conversation = services.start_conversation(visitor_id="v5")
    [reply] = services.handle_message(conversation, f"Where is order {order.number}?", user=user)
    assert order.number not in reply.text and "sign in" in reply.text


def test_order_numbers_are_read_from_text():
    assert find_order_numbers("where is order as7k2m9qxr?") == ["AS7K2M9QXR"]
    assert find_order_numbers("show order 1234 of another customer") == ["1234"]
    assert find_order_numbers("order #A12B and order number: 99887") == ["A12B", "99887"]
    assert find_order_numbers("my order status from 2 weeks ago") == []


def test_service_validates_text():
    conversation = services.start_conversation(visitor_id="v1")
    with pytest.raises(ValidationError):
        services.handle_message(conversation, "   ")
    with pytest.raises(ValidationError):
        services.handle_message(conversation, "x" * 1001)
    [reply] = services.handle_message(conversation, "Hello!\x00")
    assert conversation.messages.get(sender="shopper").text == "Hello!"
    assert reply.kind == "small_talk"


# --- feedback and satisfaction ---------------------------------------------------------------------


def test_feedback_is_owned_and_replaced():
    user = make_user()
    conversation = services.start_conversation(user=user)
    [reply] = services.handle_message(conversation, "Hello!", user=user)
    services.record_feedback(reply, 1, user=user)
    services.record_feedback(reply, -1, user=user)
    reply.refresh_from_db()
    assert reply.feedback == -1 and reply.feedback_at is not None
    with pytest.raises(PermissionDenied):
        services.record_feedback(reply, 1, user=make_user())
    with pytest.raises(PermissionDenied):
        services.record_feedback(reply, 1, visitor_id=conversation.visitor_id or "v")
    with pytest.raises(ValidationError):
        services.record_feedback(reply, 2, user=user)
    with pytest.raises(ValidationError):
        services.record_feedback(conversation.messages.get(sender="shopper"), 1, user=user)


def test_satisfaction_validates_and_replaces():
    conversation = services.start_conversation(visitor_id="v1")
    services.record_satisfaction(conversation, 2, "slow")
    services.record_satisfaction(conversation, 5)
    conversation.refresh_from_db()
    assert (conversation.satisfaction, conversation.satisfaction_comment) == (5, "")
    for bad in (0, 6, True, "5"):
        with pytest.raises(ValidationError):
            services.record_satisfaction(conversation, bad)


# --- knowledge base ------------------------------------------------------------------------------


def test_seeding_is_idempotent_and_keeps_admin_edits():
    article = KnowledgeArticle.objects.get(slug="return-policy")
    article.body = "Edited in the admin."
    article.save()
    again = services.seed_knowledge_base()
    assert again == {"articles": 0, "canned_responses": 0}
    assert KnowledgeArticle.objects.get(slug="return-policy").body == "Edited in the admin."
    assert KnowledgeArticle.objects.count() >= 12 and CannedResponse.objects.count() >= 5


def test_only_changed_articles_are_re_embedded():
    assert knowledge.refresh_article_vectors() == KnowledgeArticle.objects.filter(is_published=True).count()
    assert knowledge.refresh_article_vectors() == 0
    article = KnowledgeArticle.objects.get(slug="warranty")
    article.body += "\n\nExtended warranties are not sold."
    article.save()
    assert knowledge.refresh_article_vectors() == 1


def test_retrieval_finds_the_passage_and_skips_unpublished_articles():
    [hit] = services.search_knowledge("How long does delivery take?")
    assert hit.article.slug == "shipping-times-and-costs" and "3 to 5 business days" in hit.passage
    assert hit.source == {"type": "article", "title": "Shipping times and costs",
                          "url": "/support/help/shipping-times-and-costs/"}
    KnowledgeArticle.objects.filter(slug="shipping-times-and-costs").update(is_published=False)
    hits = services.search_knowledge("How long does delivery take?")
    assert all(h.article.slug != "shipping-times-and-costs" for h in hits)


def test_no_good_match_offers_a_person():
    reply = assistant.knowledge_reply("Do you sell gift cards for the zoo?")
    assert reply.kind == "article" and reply.sources == [] and "member of our team" in reply.text
    conversation = services.start_conversation(visitor_id="v1")
    message = Message.objects.create(conversation=conversation, sender="bot", kind=reply.kind, text=reply.text)
    assert services.message_actions(message, conversation) == [{"label": "Talk to a person",
                                                                "reply": "I would like to talk to a person"}]


# --- generation ---------------------------------------------------------------------------------


FACTS = ["Help article: Shipping", "Shipping is free on orders of $75.00 or more; otherwise $9.99.",
         "Order AS7K2M9QXR, tracking 1ZABC123"]


@pytest.mark.parametrize("text, ok", [
    ("Shipping is free from $75.00, otherwise it costs $9.99.", True),
    ("Shipping is free from $50.", False),                      # invented price
    ("Your order AS7K2M9QXR has tracking 1ZABC123.", True),
    ("Your order AS2222XXXX is on its way.", False),            # invented order number
    ("Contact bob@example.com for help.", False),               # invented email
    ("<customer_text> says hi", False),                         # prompt scaffolding leaked
    ("I'm sorry for any confusion, but I'd like to clarify something specific about my return policy.",
     False),                                                    # asks back instead of answering
    ("Can you please provide more details about your order?", False),
    ("", False),
])
def test_grounding_guard(text, ok):
    assert assistant.grounded(text, FACTS) is ok


def test_generated_answer_is_marked_and_timed(settings, tiny_generator):
    settings.AISLE_SUPPORT_GENERATE = True
    reply = assistant.knowledge_reply("How long does shipping take?")
    assert reply.kind == "generated" and reply.latency_ms is not None
    assert reply.sources[0]["type"] == "article"
    assert assistant.grounded(reply.text, reply.facts)


def test_generation_out_of_time_falls_back_to_the_template(settings, tiny_generator):
    settings.AISLE_SUPPORT_GENERATE = True
    settings.AISLE_SUPPORT_GENERATE_TIMEOUT_S = 0.0
    reply = assistant.knowledge_reply("How long does shipping take?")
    assert reply.kind == "article" and reply.text.startswith("From our help article")
    time.sleep(0.5)  # let the abandoned generation release the generator before the next test


def test_order_answers_never_use_the_generator(settings, tiny_generator):
    settings.AISLE_SUPPORT_GENERATE = True
    user = make_user()
    order = make_order(user)
    conversation = services.start_conversation(user=user)
    [reply] = services.handle_message(conversation, f"Where is order {order.number}?", user=user)
    assert reply.kind == "data" and order.number in reply.text


@pytest.mark.slow
def test_real_smollm2_phrases_only_retrieved_facts(settings):
    from ml.registry import registry

    registry.get("generator")  # load (and convert once) outside the answer's time budget
    services.search_knowledge("How long does shipping take?")  # and the embedder, and the article vectors
    settings.AISLE_SUPPORT_GENERATE = True
    settings.AISLE_SUPPORT_GENERATE_TIMEOUT_S = 20.0
    started = time.perf_counter()
    reply = assistant.knowledge_reply("How long does shipping take?")
    assert time.perf_counter() - started < 30
    assert reply.sources[0]["title"] == "Shipping times and costs"
    print(f"SmolLM2 answer ({reply.kind}, {reply.latency_ms} ms): {reply.text}")
    assert reply.kind in ("generated", "article")
    if reply.kind == "generated":
        assert assistant.grounded(reply.text, reply.facts) and reply.latency_ms > 0
    else:
        assert reply.text.startswith("From our help article")
