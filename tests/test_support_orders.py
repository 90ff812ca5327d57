"""The item the shopper names, resolved against their own order lines through /api/support/: a
multi-order shopper's "return my AirPods" is about the delivered AirPods order (not the newest one),
several matching orders get a "which one?" with buttons, an item none of their orders holds is said to
be missing (no order picked), recency narrows ("last month"), an order number typed still wins, and
another shopper's orders are never used. Also the waiting state (place in the queue, "back to the
assistant") and bad input (4xx JSON, nothing stored twice)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from shop.models import Order, ReturnRequest
from support import orders, services
from support.models import Conversation, Message
from tests.factories import make_category, make_product, make_user
from tests.support_factories import CONVERSATIONS, last_bot, make_order, messages_url, say, start_chat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _support(settings):
    settings.AISLE_SUPPORT_GENERATE = False
    services.seed_knowledge_base()


@pytest.fixture
def catalogue():
    audio = make_category("Headphones & Earbuds")
    tvs = make_category("TVs")
    return {
        "airpods": make_product(audio, title="Apple AirPods Pro (2nd generation) with MagSafe Case (USB-C)",
                                brand="Apple", price="249.00"),
        "sony": make_product(audio, title="Sony WH-1000XM5 Wireless Noise Cancelling Headphones", brand="Sony",
                             price="348.00"),
        "laptop": make_product(make_category("Laptops"), title="Dell XPS 13 Laptop", brand="Dell", price="999.00"),
        "doorbell": make_product(make_category("Smart Home & Safety"), title="Ring Video Doorbell (2nd Gen)",
                                 brand="Ring", price="59.99"),
        "batteries": make_product(make_category("Batteries"), title="Duracell Coppertop AA Batteries, 40-count",
                                  brand="Duracell", price="20.99"),
        "tv_lg": make_product(tvs, title='LG 55" Class OLED C3 Series 4K UHD OLED TV', brand="LG", price="1299.00"),
        "tv_sony": make_product(tvs, title='Sony 65" Class X77CL Series 4K UHD LED LCD TV', brand="Sony",
                                price="699.00"),
    }


def _placed(order: Order, days_ago: float) -> Order:
    """Arrange an order's age (the checkout stamps `now`); its history moves along with it."""
    shift = dt.timedelta(days=days_ago)
    Order.objects.filter(pk=order.pk).update(created_at=order.created_at - shift)
    for event in order.history.all():
        event.created_at -= shift
        event.save(update_fields=["created_at"])
    return Order.objects.get(pk=order.pk)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _multi_order_shopper(catalogue):
    """AirPods (+ batteries) delivered 12 days ago, a laptop delivered 6 days ago, and a newer order
    without AirPods that was cancelled: the newest order is not the one with the AirPods."""
    user = make_user()
    airpods = _placed(make_order(user, products=[catalogue["airpods"], catalogue["batteries"]],
                                 status=Order.Status.DELIVERED), 12)
    laptop = _placed(make_order(user, products=[catalogue["laptop"]], status=Order.Status.DELIVERED), 6)
    cancelled = make_order(user, products=[catalogue["doorbell"]], status=Order.Status.CANCELLED)
    return user, airpods, laptop, cancelled


def test_return_my_airpods_is_about_the_delivered_airpods_order_and_the_confirmation_names_it(catalogue):
    user, airpods, laptop, cancelled = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    confirm = last_bot(say(client, token, "I want to return my AirPods"))
    assert confirm["kind"] == "confirm", confirm
    assert confirm["text"].startswith(f"Return the Apple AirPods Pro (2nd generation) from order {airpods.number}?")
    assert cancelled.number not in confirm["text"] and laptop.number not in confirm["text"]
    assert "also holds Duracell Coppertop AA Batteries" in confirm["text"]  # the return covers the whole order
    assert confirm["actions"][0]["label"] == "Yes, start the return"
    done = last_bot(say(client, token, "Yes, start the return"))
    assert done["kind"] == "action" and "Apple AirPods Pro (2nd generation)" in done["text"]
    assert list(ReturnRequest.objects.values_list("order__number", flat=True)) == [airpods.number]


def test_typos_and_category_words_find_the_item(catalogue):
    user, airpods, _, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    for text in ("return my aipods please", "i want to send back the earbuds", "Return my headphones"):
        reply = last_bot(say(client, token, text))
        assert reply["kind"] == "confirm" and airpods.number in reply["text"], (text, reply)
        say(client, token, "no")


def test_status_question_about_an_item(catalogue):
    user, airpods, laptop, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    reply = last_bot(say(client, token, "Where is my laptop?"))
    assert reply["kind"] == "data" and laptop.number in reply["text"] and "Dell XPS 13 Laptop" in reply["text"]
    assert airpods.number not in reply["text"]


def test_several_matching_orders_ask_which_one_with_buttons(catalogue):
    user = make_user()
    first = _placed(make_order(user, products=[catalogue["airpods"]], status=Order.Status.DELIVERED), 9)
    second = _placed(make_order(user, products=[catalogue["sony"]], status=Order.Status.DELIVERED), 3)
    make_order(user, products=[catalogue["laptop"]], status=Order.Status.DELIVERED)
    client = _client(user)
    token = start_chat(client)
    question = last_bot(say(client, token, "I'd like to return my headphones"))
    assert question["kind"] == "data"
    assert question["text"] == "I found “headphones” in 2 of your orders. Which one do you mean?"
    assert ReturnRequest.objects.count() == 0
    buttons = question["actions"]
    assert len(buttons) == 2
    assert {first.number, second.number} == {n for b in buttons for n in (first.number, second.number)
                                             if n in b["label"] and n in b["reply"]}
    pick = next(b for b in buttons if first.number in b["reply"])
    confirm = last_bot(say(client, token, pick["reply"]))
    assert confirm["kind"] == "confirm"
    assert confirm["text"].startswith(f"Return the Apple AirPods Pro (2nd generation) from order {first.number}?")
    # Once answered, the buttons are gone from the question.
    history = client.get(messages_url(token)).json()["messages"]
    assert next(m for m in history if m["id"] == question["id"])["actions"] == []


def test_a_status_question_matching_several_delivered_orders_asks_which_one(catalogue):
    user = make_user()
    first = make_order(user, products=[catalogue["airpods"]], status=Order.Status.DELIVERED)
    second = make_order(user, products=[catalogue["sony"]], status=Order.Status.DELIVERED)
    client = _client(user)
    question = last_bot(say(client, start_chat(client), "where are my Headphones??"))
    assert "I found “Headphones” in 2 of your orders" in question["text"]
    replies = {b["reply"] for b in question["actions"]}
    assert replies == {f"Where is the Apple AirPods Pro (2nd generation) from order {first.number}?",
                       f"Where is the Sony WH-1000XM5 Wireless Noise Cancelling Headphones from order "
                       f"{second.number}?"}


def test_the_brand_narrows_several_orders_of_one_kind(catalogue):
    user = make_user()
    make_order(user, products=[catalogue["airpods"]], status=Order.Status.DELIVERED)
    sony = make_order(user, products=[catalogue["sony"]], status=Order.Status.DELIVERED)
    client = _client(user)
    reply = last_bot(say(client, start_chat(client), "return the Sony headphones"))
    assert reply["kind"] == "confirm" and sony.number in reply["text"] and "Sony WH-1000XM5" in reply["text"]


def test_recency_picks_the_tv_bought_last_month(catalogue):
    user = make_user()
    old = _placed(make_order(user, products=[catalogue["tv_lg"]], status=Order.Status.DELIVERED),
                  timezone.localdate().day + 10)
    _placed(make_order(user, products=[catalogue["tv_sony"]], status=Order.Status.SHIPPED), 1)
    client = _client(user)
    reply = last_bot(say(client, start_chat(client), "What's the status of the TV I bought last month?"))
    assert old.number in reply["text"] and "LG 55" in reply["text"], reply


def test_an_item_none_of_the_orders_holds_is_said_plainly_and_no_order_is_picked(catalogue):
    user, airpods, laptop, cancelled = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    reply = last_bot(say(client, token, "I want to return my <b>drone</b>"))
    assert reply["kind"] == "data" and reply["actions"] == []
    assert "I couldn't find “drone” in any of your orders" in reply["text"]
    for order in (airpods, laptop, cancelled):
        assert order.number not in reply["text"]
    assert Conversation.objects.get(token=token).pending_action is None
    assert ReturnRequest.objects.count() == 0


def test_another_shoppers_order_is_never_used(catalogue):
    other = make_user()
    theirs = make_order(other, products=[catalogue["airpods"]], status=Order.Status.DELIVERED)
    user = make_user()
    mine = make_order(user, products=[catalogue["laptop"]], status=Order.Status.DELIVERED)
    client = _client(user)
    token = start_chat(client)
    reply = last_bot(say(client, token, "return my AirPods"))
    assert theirs.number not in reply["text"] and mine.number not in reply["text"]
    assert "AirPods" in reply["text"] and reply["kind"] == "data"
    typed = last_bot(say(client, token, f"return my AirPods from order {theirs.number}, I'm {other.username}"))
    assert typed["text"] == orders.NOT_FOUND
    assert ReturnRequest.objects.count() == 0


def test_an_order_number_typed_still_wins(catalogue):
    user, airpods, laptop, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    reply = last_bot(say(client, start_chat(client), f"return my AirPods, order {laptop.number}"))
    assert reply["kind"] == "confirm" and laptop.number in reply["text"] and airpods.number not in reply["text"]
    assert "I can't see “AirPods” in that order." in reply["text"]


def test_cancel_confirmation_names_the_item(catalogue):
    user = make_user()
    make_order(user, products=[catalogue["airpods"]], status=Order.Status.DELIVERED)
    doorbell = _placed(make_order(user, products=[catalogue["doorbell"]]), 0.5)
    make_order(user, products=[catalogue["laptop"]], status=Order.Status.SHIPPED)
    client = _client(user)
    reply = last_bot(say(client, start_chat(client), "please cancel the doorbell"))
    assert reply["kind"] == "confirm"
    assert reply["text"].startswith(f"Cancel the Ring Video Doorbell (2nd Gen) from order {doorbell.number}")


def test_mistyped_verbs_and_item_names_still_find_the_order(catalogue):
    """Typos a shopper makes in the verb ("retrun", "cancle") and two swapped letters in the item ("airpdos")
    still reach the order holding the item."""
    user, airpods, _, _ = _multi_order_shopper(catalogue)
    doorbell = _placed(make_order(user, products=[catalogue["doorbell"]]), 0.5)
    client = _client(user)
    token = start_chat(client)
    reply = last_bot(say(client, token, "retrun the airpdos plz"))
    assert reply["kind"] == "confirm" and airpods.number in reply["text"], reply
    say(client, token, "no")
    reply = last_bot(say(client, token, "cancle the doorbell"))
    assert reply["kind"] == "confirm" and reply["text"].startswith(f"Cancel the Ring Video Doorbell (2nd Gen) "
                                                                   f"from order {doorbell.number}"), reply


def test_a_refund_asked_for_an_item_starts_its_return_and_no_verb_still_reads_the_order(catalogue):
    user, airpods, laptop, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    reply = last_bot(say(client, token, "refund the airpods please, I'll drop them at the post office"))
    assert reply["kind"] == "confirm" and airpods.number in reply["text"], reply
    say(client, token, "no")
    reply = last_bot(say(client, token, "how much did I pay for the laptop? need it for expenses"))
    assert reply["kind"] == "data" and laptop.number in reply["text"] and "$999.00" in reply["text"], reply
    # How refunds work is still the article's to answer.
    reply = last_bot(say(client, token, "when will I get my refund for the airpods?"))
    assert reply["kind"] == "article" and "When will I get my refund?" in reply["text"], reply


def test_no_i_meant_another_item_moves_the_pending_question_to_it(catalogue):
    user, airpods, laptop, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    assert airpods.number in last_bot(say(client, token, "I want to return my AirPods"))["text"]
    reply = last_bot(say(client, token, "no wait, actually I meant the laptop"))
    assert reply["kind"] == "confirm" and laptop.number in reply["text"] and airpods.number not in reply["text"]
    # A plain "no" that names the item only declines.
    reply = last_bot(say(client, token, "no, keep the laptop"))
    assert reply["kind"] == "small_talk" and not ReturnRequest.objects.exists()


def test_a_damaged_item_gets_the_damaged_items_article_not_its_delivery_status(catalogue):
    user, _, _, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    reply = last_bot(say(client, start_chat(client), "my airpods arrived with a scratch on the case, not thrilled"))
    assert reply["kind"] == "article" and '"Damaged or faulty items"' in reply["text"], reply


def test_mentions_are_read_from_text():
    assert orders.find_mention("please cancel the watch, found it cheaper").phrases[0] == ["watch"]
    assert orders.find_mention("so i ordered a gopro last month but it broke").loose[:1] == ["gopro"]
    assert orders.find_mention("I want to return my AirPods").phrases == [["airpods"]]
    assert orders.find_mention("the TV I bought last month").phrases == [["tv"]]
    assert orders.find_mention("Where is my order?").phrases == []
    assert orders.find_mention("return my order because my dog chewed it").phrases == []
    assert orders.find_mention("my new Sony headphones broke").phrases == [["sony", "headphones"]]
    assert orders.short_title("Apple AirPods (3rd Generation) with MagSafe Charging Case") == \
        "Apple AirPods (3rd Generation)"
    today = dt.date(2026, 12, 4)
    low, high = orders.days_ago_range("the TV I bought last month", today=today)
    assert low <= 4 and high >= 34  # November, seen from 4 December
    assert orders.days_ago_range("yesterday's order", today=today) == (0.3, 2.5)
    assert orders.days_ago_range("where is my order", today=today) is None


# --- waiting for a person ----------------------------------------------------------------------------


def test_waiting_shows_the_place_acknowledges_messages_and_goes_back_to_the_assistant():
    ahead = services.start_conversation(user=make_user())
    services.hand_off(ahead, "asked_for_human")
    user = make_user()
    client = _client(user)
    token = start_chat(client)
    body = say(client, token, "I'd like to talk to a person")
    assert body["status"] == "waiting"
    assert body["wait"]["place"] == 2 and "number 2 in the queue" in body["wait"]["text"]

    ack = say(client, token, "Hello? Is anyone there?")
    assert [m["sender"] for m in ack["messages"]] == ["shopper", "bot"]
    assert "number 2 in the queue" in ack["messages"][1]["text"]
    assert "Back to the assistant" in ack["messages"][1]["text"]
    assert ack["status"] == "waiting"

    back = client.post(f"{CONVERSATIONS}{token}/assistant/", format="json")
    assert back.status_code == 200 and back.json()["status"] == "bot" and back.json()["wait"] is None
    assert "back with the Aisle assistant" in back.json()["messages"][-1]["text"]
    assert client.get(f"{CONVERSATIONS}current/").json()["status"] == "bot"
    # The queue moved on: the chat ahead is now first.
    assert services.wait_info(Conversation.objects.get(pk=ahead.pk))["place"] == 1
    answer = last_bot(say(client, token, "What is your return policy?"))
    assert answer["kind"] == "article"
    # Only a waiting chat goes back; someone else's chat is not found.
    assert APIClient().post(f"{CONVERSATIONS}{token}/assistant/", format="json").status_code == 404


def test_the_estimate_comes_from_recent_agent_response_times():
    from support import agents

    agent = get_user_model().objects.create_user("agent-h1b", "agent@example.com", "pw-agent-123456",
                                                 is_staff=True)
    answered = services.start_conversation(user=make_user())
    services.hand_off(answered, "asked_for_human")
    Conversation.objects.filter(pk=answered.pk).update(handed_off_at=timezone.now() - dt.timedelta(minutes=6))
    answered.refresh_from_db()
    agents.agent_reply(answered, agent, "Hi, I'm here.")
    waiting = services.start_conversation(user=make_user())
    services.hand_off(waiting, "asked_for_human")
    info = services.wait_info(waiting)
    assert info["place"] == 1 and info["estimate_minutes"] == 6 and "about 6 minutes" in info["text"]


def test_an_assigned_chat_cannot_be_taken_back_by_the_shopper():
    user = make_user()
    client = _client(user)
    token = start_chat(client)
    Conversation.objects.filter(token=token).update(status="assigned")
    response = client.post(f"{CONVERSATIONS}{token}/assistant/", format="json")
    assert response.status_code == 400 and "joined" in response.json()["status"][0]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("", "Please type a message."),
    ("   ", "Please type a message."),
    ("x" * 20_000, "Messages can be at most 1000 characters."),
    ("\x01\x02\x03", "Please type a message."),
    ("\x00 where is my order", "must not contain NUL characters"),  # refused by the API's JSON parser
])
def test_bad_messages_get_a_clear_400_and_nothing_is_stored(text, message):
    client = _client(make_user())
    token = start_chat(client)
    response = client.post(messages_url(token), {"text": text}, format="json")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    body = response.json()
    assert message in (body["text"][0] if "text" in body else body["detail"]), body
    assert not Message.objects.filter(conversation__token=token, sender="shopper").exists()


def test_markup_and_control_characters_are_stored_once_as_plain_text():
    client = _client(make_user())
    token = start_chat(client)
    body = say(client, token, "<script>alert(1)</script>\x07 where is my order?")
    shopper = body["messages"][0]
    assert shopper["text"] == "<script>alert(1)</script>  where is my order?"
    assert Message.objects.filter(conversation__token=token, sender="shopper").count() == 1


# --- the demo ------------------------------------------------------------------------------------


def test_the_demo_shoppers_own_chat_is_never_seeded_as_waiting(catalogue):
    import io

    from django.core.management import call_command

    demo = make_user("demo", simulated=True)
    _placed(make_order(demo, products=[catalogue["airpods"]], status=Order.Status.DELIVERED), 5)
    make_order(demo, products=[catalogue["doorbell"]], status=Order.Status.CANCELLED)
    for _ in range(5):
        make_order(make_user(simulated=True), products=[catalogue["laptop"]])
    call_command("seed_support_demo", stdout=io.StringIO())
    assert not Conversation.objects.filter(user=demo).exists()
    assert Conversation.objects.filter(status="waiting").exclude(user=demo).exists()
    # The demo shopper's first question is answered, about the order that holds the item named.
    client = _client(demo)
    token = start_chat(client)
    reply = last_bot(say(client, token, "I want to return my AirPods"))
    airpods = Order.objects.get(user=demo, items__product=catalogue["airpods"])
    assert reply["kind"] == "confirm" and airpods.number in reply["text"]


def test_a_retried_send_is_stored_and_answered_once(catalogue):
    user, airpods, _, _ = _multi_order_shopper(catalogue)
    client = _client(user)
    token = start_chat(client)
    payload = {"text": "Where are my AirPods?", "client_ref": "send-7f3a"}
    first = client.post(messages_url(token), payload, format="json")
    again = client.post(messages_url(token), payload, format="json")
    assert first.status_code == again.status_code == 201
    assert [m["id"] for m in again.json()["messages"]] == [m["id"] for m in first.json()["messages"]]
    assert Message.objects.filter(conversation__token=token, sender="shopper").count() == 1
    assert Message.objects.filter(conversation__token=token, sender="bot").count() == 2  # greeting + answer
    assert airpods.number in first.json()["messages"][1]["text"]
    # The same words sent again as a new send (another id) are a new message.
    client.post(messages_url(token), {**payload, "client_ref": "send-9c1d"}, format="json")
    assert Message.objects.filter(conversation__token=token, sender="shopper").count() == 2
    bad = client.post(messages_url(token), {**payload, "client_ref": "<script>"}, format="json")
    assert bad.status_code == 400 and "client_ref" in bad.json()
