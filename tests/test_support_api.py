"""The support assistant end to end through /api/support/: every intent path, hand-offs, feedback,
satisfaction, validation, ownership and throttling. Real PostgreSQL, Redis, MiniLM (intents and the
knowledge base); the generator is switched off here (see test_support_assistant.py for it)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from behavior.models import Event
from shop.models import Order, ReturnRequest
from support import services
from support.models import Conversation, Message
from tests.factories import make_product, make_user
from tests.support_factories import (
    CONVERSATIONS,
    bot_replies,
    last_bot,
    make_order,
    messages_url,
    say,
    start_chat,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _support(settings):
    settings.AISLE_SUPPORT_GENERATE = False
    services.seed_knowledge_base()


@pytest.fixture
def shopper():
    return make_user()


@pytest.fixture
def client(shopper) -> APIClient:
    client = APIClient()
    client.force_login(shopper)
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


# --- conversations ---------------------------------------------------------------------------


def test_start_returns_greeting_and_the_open_conversation_is_reused(client, shopper):
    first = client.post(CONVERSATIONS, format="json")
    assert first.status_code == 201
    body = first.json()
    assert body["status"] == "bot" and body["token"]
    greeting = body["messages"][0]
    assert set(greeting) == {"id", "sender", "kind", "text", "sources", "cards", "created_at", "feedback", "actions"}
    assert greeting["sender"] == "bot" and greeting["actions"] == []
    again = client.post(CONVERSATIONS, format="json")
    assert again.status_code == 200 and again.json()["token"] == body["token"]
    assert client.get(f"{CONVERSATIONS}current/").json()["token"] == body["token"]
    assert Event.objects.filter(event_type="chat_started", user=shopper).count() == 1


def test_anonymous_conversation_persists_for_the_browser_only(anonymous):
    token = start_chat(anonymous)
    say(anonymous, token, "Hello!")
    current = anonymous.get(f"{CONVERSATIONS}current/")
    assert current.status_code == 200 and current.json()["token"] == token
    assert [m["sender"] for m in current.json()["messages"]] == ["bot", "shopper", "bot"]
    conversation = Conversation.objects.get(token=token)
    assert conversation.user is None and conversation.visitor_id
    stranger = APIClient()
    assert stranger.get(f"{CONVERSATIONS}current/").status_code == 404
    assert stranger.get(messages_url(token)).status_code == 404


def test_someone_elses_token_is_404(client, anonymous):
    token = start_chat(client)
    other = APIClient()
    other.force_login(make_user())
    for intruder in (other, anonymous):
        assert intruder.get(messages_url(token)).status_code == 404
        assert intruder.post(messages_url(token), {"text": "hi"}, format="json").status_code == 404
        assert intruder.post(f"{CONVERSATIONS}{token}/satisfaction/", {"score": 1}, format="json").status_code == 404
    assert client.get(f"{CONVERSATIONS}00000000-0000-0000-0000-000000000000/messages/").status_code == 404
    assert Message.objects.filter(conversation__token=token, sender="shopper").count() == 0


def test_polling_returns_messages_after_an_id(client):
    token = start_chat(client)
    body = say(client, token, "Hello!")
    shopper_id = body["messages"][0]["id"]
    polled = client.get(messages_url(token), {"after": shopper_id}).json()
    assert polled["status"] == "bot"
    assert [m["id"] for m in polled["messages"]] == [m["id"] for m in bot_replies(body)]
    assert client.get(messages_url(token), {"after": "x"}).status_code == 400


@pytest.mark.parametrize("text, message", [
    ("", "Please type a message."),
    ("   ", "Please type a message."),
    ("x" * 1001, "Messages can be at most 1000 characters."),
])
def test_empty_or_too_long_text_is_400_with_a_message(client, text, message):
    token = start_chat(client)
    response = client.post(messages_url(token), {"text": text}, format="json")
    assert response.status_code == 400
    assert response.json() == {"text": [message]}
    assert client.post(messages_url(token), {}, format="json").status_code == 400


def test_chat_writes_are_throttled_polling_is_not(client, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"support_chat": "2/min"})
    token = start_chat(client)
    say(client, token, "Hello!")
    response = client.post(messages_url(token), {"text": "Hello again"}, format="json")
    assert response.status_code == 429 and "Retry-After" in response.headers
    for _ in range(3):
        assert client.get(messages_url(token)).status_code == 200


# --- orders ------------------------------------------------------------------------------------


def test_order_status_of_own_order(client, shopper):
    order = make_order(shopper, products=[make_product(title="Bose QuietComfort Earbuds")], status=Order.Status.SHIPPED)
    token = start_chat(client)
    reply = last_bot(say(client, token, f"What's the status of order {order.number}?"))
    assert reply["kind"] == "data"
    assert order.number in reply["text"] and order.tracking_number in reply["text"]
    assert "shipped" in reply["text"] and "Bose QuietComfort Earbuds" in reply["text"]
    assert f"${order.total}" in reply["text"]
    assert reply["sources"] == [{"type": "order", "title": f"Order {order.number}", "url": order.get_absolute_url()}]
    latest = last_bot(say(client, token, "Where is my order?"))
    assert order.number in latest["text"]


def test_someone_elses_order_number_gets_the_same_reply_as_a_made_up_one(client):
    victim = make_user()
    theirs = make_order(victim, products=[make_product(title="Victim Only Turntable")])
    token = start_chat(client)
    other = last_bot(say(client, token, f"Where is order {theirs.number}?"))
    made_up = last_bot(say(client, token, "Where is order AS23456789?"))
    assert other["text"] == made_up["text"] and other["sources"] == made_up["sources"] == []
    assert "can't find an order with that number on your account" in other["text"]
    assert "Victim Only Turntable" not in str(other)


def test_cancel_needs_a_yes(client, shopper):
    order = make_order(shopper)
    token = start_chat(client)
    confirm = last_bot(say(client, token, "Please cancel my order"))
    assert confirm["kind"] == "confirm" and order.number in confirm["text"]
    assert [a["label"] for a in confirm["actions"]] == ["Yes, cancel it", "No"]
    done = last_bot(say(client, token, confirm["actions"][0]["reply"]))
    assert done["kind"] == "action" and order.number in done["text"]
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    # The buttons go once answered.
    history = client.get(messages_url(token)).json()["messages"]
    assert next(m for m in history if m["id"] == confirm["id"])["actions"] == []


def test_cancel_answered_no_keeps_the_order(client, shopper):
    order = make_order(shopper)
    token = start_chat(client)
    assert last_bot(say(client, token, f"Cancel order {order.number}"))["kind"] == "confirm"
    reply = last_bot(say(client, token, "No"))
    assert reply["kind"] == "small_talk"
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert Conversation.objects.get(token=token).pending_action is None
    # A later "yes" does not revive the dropped question.
    say(client, token, "yes")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_a_shipped_order_cannot_be_cancelled(client, shopper):
    order = make_order(shopper, status=Order.Status.SHIPPED)
    token = start_chat(client)
    reply = last_bot(say(client, token, f"Please cancel order {order.number}"))
    assert reply["kind"] == "data" and "can't be cancelled" in reply["text"] and reply["actions"] == []


def test_return_for_a_delivered_order(client, shopper):
    # The order must hold the item named: "the headphones" never resolves to an order without any (#13).
    order = make_order(shopper, products=[make_product(title="Sony WH-1000XM5 Headphones")],
                       status=Order.Status.DELIVERED)
    token = start_chat(client)
    confirm = last_bot(say(client, token, "I want to return my order, the headphones"))
    assert confirm["kind"] == "confirm" and order.number in confirm["text"]
    assert confirm["actions"][0]["label"] == "Yes, start the return"
    done = last_bot(say(client, token, "Yes, start the return"))
    assert done["kind"] == "action"
    request = ReturnRequest.objects.get(order=order)
    assert request.channel == "assistant"


def test_refund_timing_is_a_policy_question_not_a_return(client, shopper):
    make_order(shopper, status=Order.Status.DELIVERED)
    token = start_chat(client)
    reply = last_bot(say(client, token, "When will I get my refund?"))
    assert reply["kind"] == "article" and reply["sources"][0]["title"] == "When will I get my refund?"
    assert not ReturnRequest.objects.exists()


def test_anonymous_order_question_asks_to_sign_in(anonymous):
    token = start_chat(anonymous)
    reply = last_bot(say(anonymous, token, "Where is my order?"))
    assert "sign in" in reply["text"]
    assert {"type": "link", "title": "Sign in", "url": "/account/login/"} in reply["sources"]


# --- knowledge base, products, small talk ------------------------------------------------------


def test_policy_answer_cites_the_article(client):
    token = start_chat(client)
    reply = last_bot(say(client, token, "What is your return policy?"))
    assert reply["kind"] == "article"
    assert "30 days" in reply["text"]
    assert reply["sources"] == [{"type": "article", "title": "Return policy", "url": "/support/help/return-policy/"}]


def test_payment_problem_is_answered_from_the_knowledge_base(client):
    token = start_chat(client)
    reply = last_bot(say(client, token, "My card was declined"))
    assert reply["kind"] == "article" and reply["sources"][0]["title"] == "My payment was declined"


def test_product_recommendation_lists_products(client):
    headphones = [make_product(title=f"Wireless Headphones Model {n}", price="99.00") for n in range(4)]
    make_product(title="Espresso Machine")
    token = start_chat(client)
    reply = last_bot(say(client, token, "I'm looking for wireless headphones"))
    assert reply["kind"] == "data"
    products = [s for s in reply["sources"] if s["type"] == "product"]
    assert len(products) == 3
    urls = {p.get_absolute_url() for p in headphones}
    assert {s["url"] for s in products} <= urls
    # Short cards (title once, price, link), not a paragraph repeating the titles (issue #13).
    assert [card["url"] for card in reply["cards"]] == [s["url"] for s in products]
    assert {card["price"] for card in reply["cards"]} == {"$99.00"}
    assert "Headphones" not in reply["text"]


def test_question_about_a_named_product_uses_its_stored_facts(client):
    product = make_product(title="Sony WH-1000XM5 Wireless Headphones", brand="Sony", price="329.99", stock=3,
                           features=["Industry-leading noise cancelling", "30-hour battery life"])
    token = start_chat(client)
    reply = last_bot(say(client, token, "Does the Sony WH-1000XM5 have noise cancelling?"))
    assert reply["kind"] == "data"
    assert "noise cancelling" in reply["text"] and "only 3 left" in reply["text"]
    assert product.title not in reply["text"]  # the card shows the title and price once
    assert reply["cards"] == [{"title": product.title, "price": "$329.99", "url": product.get_absolute_url(),
                               "availability": "in stock (only 3 left)", "rating": None, "reviews": 0}]
    assert reply["sources"] == [{"type": "product", "title": f"{product.title} ($329.99)",
                                 "url": product.get_absolute_url()}]


def test_small_talk_and_out_of_scope(client):
    token = start_chat(client)
    hello = last_bot(say(client, token, "Hello!"))
    assert hello["kind"] == "small_talk"
    refusal = last_bot(say(client, token, "What's the capital of France?"))
    assert refusal["kind"] == "refusal" and "orders" in refusal["text"]


# --- hand-off ------------------------------------------------------------------------------------


def test_rephrase_once_then_hand_off(client):
    token = start_chat(client)
    first = last_bot(say(client, token, "asdf qwerty zxcv"))
    assert first["kind"] == "rephrase"
    assert first["actions"] == [{"label": "Talk to a person", "reply": "I would like to talk to a person"}]
    second = last_bot(say(client, token, "blorp flib zanf"))
    assert second["kind"] == "handoff"
    conversation = Conversation.objects.get(token=token)
    assert conversation.status == "waiting" and conversation.handoff_reason == "not_understood"


def test_human_please_hands_off_and_the_bot_acknowledges_with_the_wait(client, shopper):
    order = make_order(shopper)
    token = start_chat(client)
    say(client, token, f"Where is order {order.number}?")
    body = say(client, token, "human please")
    assert last_bot(body)["kind"] == "handoff" and body["status"] == "waiting"
    conversation = Conversation.objects.get(token=token)
    assert conversation.handoff_reason == "asked_for_human" and conversation.handed_off_at is not None
    assert order.number in conversation.summary and "talk_to_human" in conversation.summary
    # Waiting for a person: no order answer from the bot, but no silence either (issue #13).
    after = say(client, token, "Where is my order?")
    assert [m["sender"] for m in after["messages"]] == ["shopper", "bot"] and after["status"] == "waiting"
    ack = after["messages"][1]
    assert ack["kind"] == "handoff" and "next in the queue" in ack["text"] and order.number not in ack["text"]
    assert after["wait"]["place"] == 1
    assert client.get(messages_url(token), {"after": ack["id"]}).json()["messages"] == []


def test_strong_anger_hands_off_with_empathy(client):
    token = start_chat(client)
    body = say(client, token, "THIS IS RIDICULOUS!!! WORST SHOP EVER, YOU SCAMMERS!!!")
    reply = last_bot(body)
    assert reply["kind"] == "handoff" and "sorry" in reply["text"].lower()
    conversation = Conversation.objects.get(token=token)
    assert conversation.handoff_reason == "angry"
    shopper_message = conversation.messages.get(sender="shopper")
    assert shopper_message.mood_label == "angry" and shopper_message.mood < 0


def test_payment_dispute_hands_off(client):
    token = start_chat(client)
    reply = last_bot(say(client, token, "I was charged twice for my order"))
    assert reply["kind"] == "handoff"
    assert Conversation.objects.get(token=token).handoff_reason == "payment_dispute"


# --- feedback and satisfaction ----------------------------------------------------------------------


def test_feedback_is_stored_and_changeable_without_double_count(client):
    token = start_chat(client)
    reply = last_bot(say(client, token, "What is your return policy?"))
    url = f"/api/support/messages/{reply['id']}/feedback/"
    assert client.post(url, {"value": 1}, format="json").json() == {"id": reply["id"], "feedback": 1}
    assert client.post(url, {"value": 1}, format="json").status_code == 200
    assert Message.objects.get(pk=reply["id"]).feedback == 1
    assert client.post(url, {"value": -1}, format="json").json()["feedback"] == -1
    assert Message.objects.filter(conversation__token=token, feedback__isnull=False).count() == 1
    history = client.get(messages_url(token)).json()["messages"]
    assert next(m for m in history if m["id"] == reply["id"])["feedback"] == -1
    assert client.post(url, {"value": 5}, format="json").status_code == 400
    shopper_message = Message.objects.get(conversation__token=token, sender="shopper")
    assert client.post(f"/api/support/messages/{shopper_message.pk}/feedback/", {"value": 1},
                       format="json").status_code == 400
    stranger = APIClient()
    assert stranger.post(url, {"value": 1}, format="json").status_code == 404
    assert Message.objects.get(pk=reply["id"]).feedback == -1


def test_satisfaction_is_stored(client):
    token = start_chat(client)
    url = f"{CONVERSATIONS}{token}/satisfaction/"
    response = client.post(url, {"score": 4, "comment": "Quick and <b>helpful</b>"}, format="json")
    assert response.status_code == 200 and response.json()["satisfaction"] == 4
    conversation = Conversation.objects.get(token=token)
    assert conversation.satisfaction == 4 and conversation.satisfaction_comment == "Quick and <b>helpful</b>"
    assert client.post(url, {"score": 6}, format="json").status_code == 400
    assert client.post(url, {"score": 5}, format="json").status_code == 200
    assert Conversation.objects.get(token=token).satisfaction == 5


def test_schema_lists_the_support_api(anonymous):
    paths = anonymous.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert "/api/support/conversations/{token}/messages/" in paths
    assert "/api/support/messages/{message_id}/feedback/" in paths
