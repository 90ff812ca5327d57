"""The agents' side of support: queue, assign, reply, hand back, resolve, intent corrections and
suggested replies (support.agents), the console pages under /admin/support/console/ (access,
escaping, query counts, JSON polling), the support admin, and the shopper's help pages."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from support import agents
from support import services as support
from support.models import CannedResponse, Conversation, KnowledgeArticle, Message

from .factories import GOOD_ADDRESS, GOOD_CARD, make_product, make_user

pytestmark = pytest.mark.django_db
QUEUE = "/admin/support/console/"
Status = Conversation.Status


def make_agent(username: str = "sam", **extra):
    fields = {"is_staff": True, "is_superuser": True, "first_name": "Sam", **extra}
    return get_user_model().objects.create_user(username, f"{username}@example.com", "pw-agent-123456", **fields)


@pytest.fixture
def agent():
    return make_agent()


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


def waiting_chat(*, minutes_ago: int = 5, user=None, reason: str = "asked_for_human",
                 text: str = "I need help") -> Conversation:
    """A conversation already in the agents' queue (the engine's hand-off is tested with the engine)."""
    now = timezone.now()
    chat = Conversation.objects.create(user=user, visitor_id="" if user else "visitor-abc", status=Status.WAITING,
                                       handoff_reason=reason, last_intent="talk_to_human", mood=-0.2,
                                       created_at=now - dt.timedelta(minutes=minutes_ago + 1),
                                       handed_off_at=now - dt.timedelta(minutes=minutes_ago), updated_at=now)
    Message.objects.create(conversation=chat, sender=Message.Sender.SHOPPER, text=text, intent="talk_to_human",
                           intent_confidence=0.91, mood=-0.2, mood_label="negative")
    return chat


def shopper_api_chat(client, user) -> tuple[str, Conversation]:
    """A signed-in shopper opens the widget: the conversation exists through the real API."""
    client.force_login(user)
    response = client.post("/api/support/conversations/", {}, content_type="application/json")
    assert response.status_code == 201
    token = response.json()["token"]
    return token, Conversation.objects.get(token=token)


# --- the queue -----------------------------------------------------------------------------------

def test_queue_serves_the_longest_waiting_first_and_counts_every_tab(agent):
    newest = waiting_chat(minutes_ago=1)
    oldest = waiting_chat(minutes_ago=30)
    middle = waiting_chat(minutes_ago=10)
    assigned = waiting_chat(minutes_ago=3)
    agents.assign(assigned, agent)
    Conversation.objects.create(status=Status.BOT)
    Conversation.objects.create(status=Status.BOT)
    resolved = waiting_chat(minutes_ago=60)
    agents.resolve(resolved, agent)

    rows, counts = agents.queue(Status.WAITING)
    assert [c.pk for c in rows] == [oldest.pk, middle.pk, newest.pk]
    assert counts == {"waiting": 3, "assigned": 1, "resolved": 1, "bot": 2}
    assert 29 * 60 <= rows[0].waiting_seconds <= 31 * 60
    assert rows[0].customer_label.startswith("Guest")
    assert [c.pk for c in agents.queue(Status.ASSIGNED)[0]] == [assigned.pk]
    with pytest.raises(ValidationError):
        agents.queue("nonsense")


def test_queue_page_lists_waiting_chats_with_bounded_queries(agent_client, django_assert_max_num_queries):
    for minutes in range(6):
        waiting_chat(minutes_ago=minutes + 1, user=make_user(f"queued{minutes}"))
    with django_assert_max_num_queries(8):  # session, user, the conversations with their users, the counts
        response = agent_client.get(QUEUE)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("queued5@example.com") < body.index("queued0@example.com")  # oldest first
    assert 'data-count="waiting">6<' in body
    counts = agent_client.get(reverse("support_agent:counts")).json()["counts"]
    assert counts["waiting"] == 6 and counts["assigned"] == 0


def test_admin_index_links_the_console(agent_client):
    response = agent_client.get(reverse("admin:index"))
    assert 'id="support-console-link"' in response.content.decode()


# --- assign, reply, hand back, resolve ------------------------------------------------------------

def test_agent_reply_reaches_the_shoppers_polling_and_the_assistant_stays_quiet(client, agent):
    shopper = make_user("nora")
    token, chat = shopper_api_chat(client, shopper)
    support.hand_off(chat, "asked_for_human")
    last_id = chat.messages.order_by("-pk").first().pk

    agents.assign(chat, agent)
    reply = agents.agent_reply(chat, agent, "Hi Nora, Sam here — let me check that order for you.")
    assert reply.sender == Message.Sender.AGENT and reply.author == agent
    assert chat.status == Status.ASSIGNED and chat.assigned_to_id == agent.pk

    polled = client.get(f"/api/support/conversations/{token}/messages/?after={last_id}").json()
    assert polled["status"] == "assigned"
    assert [m["sender"] for m in polled["messages"]] == ["system", "agent"]
    assert polled["messages"][0]["text"].startswith("Sam from the Aisle team has joined")
    assert polled["messages"][1]["text"] == "Hi Nora, Sam here — let me check that order for you."

    # While a person has the chat, the shopper's messages get no assistant reply.
    sent = client.post(f"/api/support/conversations/{token}/messages/", {"text": "Thanks, it is order 123"},
                       content_type="application/json").json()
    assert [m["sender"] for m in sent["messages"]] == ["shopper"]

    with pytest.raises(ValidationError):
        agents.agent_reply(chat, agent, "   ")


def test_reply_to_a_waiting_chat_assigns_it(agent):
    chat = waiting_chat()
    agents.agent_reply(chat, agent, "Hello!")
    chat.refresh_from_db()
    assert chat.status == Status.ASSIGNED and chat.assigned_to == agent


def test_hand_back_lets_the_assistant_answer_again(client, agent):
    from support.knowledge import seed_knowledge_base

    seed_knowledge_base()
    shopper = make_user("olga")
    token, chat = shopper_api_chat(client, shopper)
    support.hand_off(chat, "asked_for_human")
    agents.assign(chat, agent)
    agents.hand_back(chat, agent)
    chat.refresh_from_db()
    assert chat.status == Status.BOT and chat.assigned_to is None
    assert chat.messages.order_by("-pk").first().text.startswith("You're back with the Aisle assistant")

    sent = client.post(f"/api/support/conversations/{token}/messages/",
                       {"text": "How long does shipping take and how much does delivery cost?"},
                       content_type="application/json").json()
    assert sent["status"] == "bot"
    assert "bot" in [m["sender"] for m in sent["messages"]]


def test_resolve_closes_the_chat_and_the_shopper_can_rate_it(client, agent):
    shopper = make_user("pia")
    token, chat = shopper_api_chat(client, shopper)
    support.hand_off(chat, "asked_for_human")
    agents.assign(chat, agent)
    agents.resolve(chat, agent)
    chat.refresh_from_db()
    assert chat.status == Status.RESOLVED and chat.resolved_at is not None
    assert chat.messages.order_by("-pk").first().sender == Message.Sender.SYSTEM
    polled = client.get(f"/api/support/conversations/{token}/messages/").json()
    assert polled["status"] == "resolved"
    rated = client.post(f"/api/support/conversations/{token}/satisfaction/", {"score": 5, "comment": "Quick!"},
                        content_type="application/json")
    assert rated.status_code == 200
    chat.refresh_from_db()
    assert chat.satisfaction == 5
    # Resolving twice is harmless and adds no second notice.
    before = chat.messages.count()
    agents.resolve(chat, agent)
    assert chat.messages.count() == before


def test_console_buttons_change_the_conversation(agent_client, agent):
    chat = waiting_chat()
    url = reverse("support_agent:conversation", args=[chat.pk])
    assert agent_client.post(reverse("support_agent:assign", args=[chat.pk])).url == url
    chat.refresh_from_db()
    assert chat.status == Status.ASSIGNED and chat.assigned_to == agent

    response = agent_client.post(reverse("support_agent:reply", args=[chat.pk]), {"text": "On it!"},
                                 HTTP_X_REQUESTED_WITH="fetch")
    assert response.status_code == 200 and response.json()["message"]["text"] == "On it!"
    empty = agent_client.post(reverse("support_agent:reply", args=[chat.pk]), {"text": ""}, follow=True)
    assert "Write a reply first." in empty.content.decode()

    agent_client.post(reverse("support_agent:hand_back", args=[chat.pk]))
    chat.refresh_from_db()
    assert chat.status == Status.BOT
    agent_client.post(reverse("support_agent:resolve", args=[chat.pk]))
    chat.refresh_from_db()
    assert chat.status == Status.RESOLVED
    assert agent_client.get(reverse("support_agent:assign", args=[chat.pk])).status_code == 405


def test_messages_json_returns_only_newer_messages(agent_client, agent):
    chat = waiting_chat()
    first = chat.messages.get()
    agents.agent_reply(chat, agent, "Hello <b>there</b>")
    data = agent_client.get(reverse("support_agent:messages", args=[chat.pk]) + f"?after={first.pk}").json()
    assert data["status"] == "assigned"
    assert [m["sender"] for m in data["messages"]] == ["system", "agent"]
    assert data["messages"][1]["text"] == "Hello <b>there</b>"  # raw text: the console renders it as text
    assert data["messages"][1]["author"] == "Sam"


# --- intents -------------------------------------------------------------------------------------

def test_correct_intent_is_stored_and_an_unknown_intent_is_refused(agent_client, agent):
    chat = waiting_chat(text="where is my parcel??")
    message = chat.messages.get()
    url = reverse("support_agent:correct_intent", args=[chat.pk, message.pk])

    response = agent_client.post(url, {"intent": "order_status"}, follow=True)
    message.refresh_from_db()
    assert message.corrected_intent == "order_status"
    assert "set to “order_status”" in response.content.decode()

    response = agent_client.post(url, {"intent": "make_coffee"}, follow=True)
    message.refresh_from_db()
    assert message.corrected_intent == "order_status"
    assert "“make_coffee” is not a known intent." in response.content.decode()

    bot = Message.objects.create(conversation=chat, sender=Message.Sender.BOT, text="Hello")
    with pytest.raises(ValidationError):
        agents.correct_intent(bot, "order_status", agent)
    # Choosing what the assistant found clears the correction.
    agents.correct_intent(message, "talk_to_human", agent)
    message.refresh_from_db()
    assert message.corrected_intent == ""


# --- suggestions and context ----------------------------------------------------------------------

def test_suggested_replies_quote_the_matching_help_article(agent_client, settings):
    from ml.grounding import sentences
    from support.knowledge import paragraphs, seed_knowledge_base

    settings.AISLE_SUPPORT_SUGGEST_GENERATE = False  # the generator is exercised by the ML tests
    seed_knowledge_base()
    chat = waiting_chat(text="How do I return an item I bought? What is your return policy?")
    suggestions = agents.suggested_replies(chat)
    policy = KnowledgeArticle.objects.get(slug="return-policy")
    article_suggestions = [s for s in suggestions if s.url == policy.get_absolute_url()]
    assert article_suggestions, [s.source for s in suggestions]
    # Extractive: the article's own sentences that answer the shopper, in the article's order.
    quoted = sentences(article_suggestions[0].text)
    article_sentences = [s for p in paragraphs(policy.body) for s in sentences(p)]
    assert quoted and set(quoted) <= set(article_sentences)
    assert [article_sentences.index(q) for q in quoted] == sorted(article_sentences.index(q) for q in quoted)

    response = agent_client.get(reverse("support_agent:conversation", args=[chat.pk]))
    assert response.status_code == 200
    assert f"Help article: {policy.title}" in response.content.decode()
    generated = agent_client.get(reverse("support_agent:suggestions", args=[chat.pk])).json()
    assert generated == {"suggestions": []}


def _handed_off_chat(user, *texts: str) -> Conversation:
    """A shopper's chat handed off by the real engine (anger, dispute) after the given messages."""
    from support.knowledge import seed_knowledge_base

    seed_knowledge_base()
    chat = support.start_conversation(user=user)
    for text in texts:
        support.handle_message(chat, text, user=user)
    chat.refresh_from_db()
    assert chat.status == Status.WAITING, [m.text for m in chat.messages.all()]
    return chat


def test_an_angry_broken_item_hand_off_gets_the_damaged_items_article(settings):
    settings.AISLE_SUPPORT_GENERATE = False
    settings.AISLE_SUPPORT_SUGGEST_GENERATE = False
    chat = _handed_off_chat(make_user("rita"),
                            "My TV ARRIVED BROKEN, the screen is smashed. This is absolutely unacceptable, I am "
                            "furious!!! Worst shop ever")
    damaged = KnowledgeArticle.objects.get(slug="damaged-or-faulty-items")
    suggestions = agents.suggested_replies(chat)
    assert suggestions and suggestions[0].url == damaged.get_absolute_url(), [s.source for s in suggestions]
    assert suggestions[0].source == "Help article: Damaged or faulty items"
    assert "contact us within 30 days of delivery" in suggestions[0].text


def test_payment_dispute_suggestions_invent_no_charges(settings):
    settings.AISLE_SUPPORT_GENERATE = False
    settings.AISLE_SUPPORT_SUGGEST_GENERATE = False
    chat = _handed_off_chat(make_user("sven"), "I was charged twice for my order, I want this fixed")
    assert chat.handoff_reason == "payment_dispute"
    suggestions = agents.suggested_replies(chat)
    assert any(s.source.startswith("Help article:") for s in suggestions)
    assert all("additional charge" not in s.text for s in suggestions)
    # What the generator wrote for this chat in the demo is refused by the grounding check.
    facts = [s.text for s in suggestions if s.source.startswith("Help article:")]
    invented = ("Thank you for reaching out. Payment issues like this one need a person to look at your account, "
                "and there may be additional charges involved.")
    assert agents.grounded_suggestion(invented, facts, "I was charged twice for my order") == ""


def test_a_generated_suggestion_is_shown_only_if_grounded_and_complete():
    facts = ["If an item arrives damaged or stops working, contact us within 30 days of delivery. We will send a "
             "replacement or refund you, and we pay the return shipping."]
    query = "my headphones arrived broken"
    good = "We will send a replacement or refund you, and we pay the return shipping."
    assert agents.grounded_suggestion(good, facts, query) == good
    assert agents.grounded_suggestion(f"{good} We will also send you a", facts, query, cut_off=True) == good
    assert agents.grounded_suggestion("We will also send you a", facts, query, cut_off=True) == ""
    assert agents.grounded_suggestion("The customer says their headphones arrived broken.", facts, query) == ""


def test_a_suggestion_cut_off_by_the_time_limit_is_not_shown(settings, tmp_path):
    from ml.registry import registry
    from tests.ml_tiny import make_tiny_generator

    registry.configure(paths={"generator": str(make_tiny_generator(tmp_path / "generator"))})
    settings.AISLE_SUPPORT_SUGGEST_GENERATE = True
    facts = ["Refunds reach your card within 5 business days."]
    assert agents.generated_reply("where is my refund", facts, timeout_s=0.0) == ""
    # With time to finish, the tiny model's noise is still not grounded: nothing is shown either.
    assert agents.generated_reply("where is my refund", facts, timeout_s=5.0) == ""


def test_conversation_facts_are_the_shoppers_own_orders():
    from tests.support_factories import make_order

    shopper, other = make_user("tess"), make_user("ugo")
    mine, theirs = make_order(shopper), make_order(other)
    chat = waiting_chat(user=shopper, text=f"Where are orders {mine.number} and {theirs.number}?")
    facts = agents.conversation_facts(chat)
    assert len(facts) == 1 and facts[0].startswith(f"Order {mine.number}: paid; items: ")
    assert theirs.number not in " ".join(facts)
    assert agents.conversation_facts(waiting_chat(text="hi")) == []  # anonymous: no account, no orders


def test_matching_canned_responses_are_suggested():
    CannedResponse.objects.create(title="Refund timing", shortcut="refund-time",
                                  body="Refunds reach your card within 5 business days.")
    CannedResponse.objects.create(title="Closing", shortcut="bye", body="Have a lovely day!")
    chat = waiting_chat(text="When will my refund arrive?")
    texts = [s.text for s in agents.suggested_replies(chat)]
    assert "Refunds reach your card within 5 business days." in texts
    assert "Have a lovely day!" not in texts


def test_conversation_page_shows_orders_mood_feedback_and_escapes_text(agent_client):
    shopper = make_user("quinn")
    from shop import services as shop
    from shop.models import Cart

    cart = Cart.objects.create(user=shopper)
    shop.add_to_cart(cart, make_product(stock=3), 1)
    order = shop.place_order(cart=cart, email=shopper.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=shopper)
    chat = waiting_chat(user=shopper, text="<script>alert('owned')</script> where is my order?")
    Message.objects.create(conversation=chat, sender=Message.Sender.SHOPPER, text="I am furious", mood=-0.8,
                           mood_label="angry", intent="complaint")
    Message.objects.create(conversation=chat, sender=Message.Sender.BOT, kind=Message.Kind.ARTICLE,
                           text="Here is our <i>policy</i>", feedback=-1,
                           sources=[{"type": "article", "title": "Return <policy>", "url": "/support/help/x/"}])
    chat.satisfaction = 2
    chat.save()

    response = agent_client.get(reverse("support_agent:conversation", args=[chat.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert('owned')</script>" not in body
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in body
    assert "Here is our &lt;i&gt;policy&lt;/i&gt;" in body
    assert reverse("admin:shop_order_change", args=[order.pk]) in body and order.number in body
    assert "not helpful 1" in body and "2/5" in body
    data = json.loads(body.split('<script id="sc-data" type="application/json">')[1].split("</script>")[0])
    assert [point["mood"] for point in data["mood"]] == [-0.2, -0.8]
    assert "\\u003Cscript\\u003E" in body  # json_script escapes the text inside the data block

    context = agents.conversation_context(chat)
    assert context["feedback"] == {"up": 0, "down": 1, "none": 0}
    assert [o.number for o in context["orders"]] == [order.number]
    assert [i["intent"] for i in context["intents"]] == ["talk_to_human", "complaint"]


# --- access --------------------------------------------------------------------------------------

def console_urls(chat: Conversation, message: Message) -> list[tuple[str, str]]:
    return [
        ("get", QUEUE),
        ("get", reverse("support_agent:counts")),
        ("get", reverse("support_agent:conversation", args=[chat.pk])),
        ("get", reverse("support_agent:messages", args=[chat.pk])),
        ("get", reverse("support_agent:suggestions", args=[chat.pk])),
        ("post", reverse("support_agent:assign", args=[chat.pk])),
        ("post", reverse("support_agent:reply", args=[chat.pk])),
        ("post", reverse("support_agent:hand_back", args=[chat.pk])),
        ("post", reverse("support_agent:resolve", args=[chat.pk])),
        ("post", reverse("support_agent:correct_intent", args=[chat.pk, message.pk])),
    ]


def test_shoppers_and_visitors_are_sent_to_the_admin_login(client):
    chat = waiting_chat()
    message = chat.messages.get()
    for method, url in console_urls(chat, message):
        response = getattr(client, method)(url, {"text": "hi", "intent": "order_status"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    client.force_login(make_user("mallory"))
    for method, url in console_urls(chat, message):
        response = getattr(client, method)(url, {"text": "hi", "intent": "order_status"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    chat.refresh_from_db()
    assert chat.status == Status.WAITING and chat.messages.count() == 1


def test_staff_without_the_conversation_permission_are_refused(client):
    chat = waiting_chat()
    clerk = make_agent("clerk", is_superuser=False)
    client.force_login(clerk)
    assert client.get(QUEUE).status_code == 403
    assert client.post(reverse("support_agent:reply", args=[chat.pk]), {"text": "hi"}).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="change_conversation"))
    client.force_login(get_user_model().objects.get(pk=clerk.pk))
    assert client.get(QUEUE).status_code == 200


def test_console_posts_need_the_csrf_token(agent):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(agent)
    chat = waiting_chat()
    assert csrf_client.post(reverse("support_agent:assign", args=[chat.pk])).status_code == 403


# --- admin ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["conversation", "knowledgearticle", "cannedresponse"])
def test_support_changelists_render(agent_client, model):
    waiting_chat()
    KnowledgeArticle.objects.create(title="Shipping", slug="shipping", topic="shipping", body="Fast.")
    CannedResponse.objects.create(title="Hello", shortcut="hello", body="Hi!")
    response = agent_client.get(reverse(f"admin:support_{model}_changelist"))
    assert response.status_code == 200


def test_conversation_admin_links_the_console_and_resolves_in_bulk(agent_client):
    chats = [waiting_chat(), waiting_chat()]
    change = agent_client.get(reverse("admin:support_conversation_change", args=[chats[0].pk]))
    assert reverse("support_agent:conversation", args=[chats[0].pk]) in change.content.decode()
    agent_client.post(reverse("admin:support_conversation_changelist"),
                      {"action": "resolve_selected", "_selected_action": [c.pk for c in chats]})
    assert set(Conversation.objects.values_list("status", flat=True)) == {Status.RESOLVED}


# --- shopper pages -------------------------------------------------------------------------------

def test_widget_is_on_storefront_pages_but_not_twice_on_the_chat_page(client):
    home = client.get("/").content.decode()
    assert 'id="chat-widget"' in home and 'id="chat-launcher"' in home and "js/chat.js" in home
    page = client.get(reverse("support:chat")).content.decode()
    assert 'id="chat-page"' in page and 'id="chat-widget"' not in page
    assert page.count('role="log"') == 1


def test_help_centre_shows_published_articles_only(client):
    live = KnowledgeArticle.objects.create(title="Shipping <fast>", slug="shipping", topic="shipping",
                                           body="We ship daily.\n\nTracking comes by e-mail.")
    draft = KnowledgeArticle.objects.create(title="Secret draft", slug="draft", topic="shipping", body="Not yet.",
                                            is_published=False)
    index = client.get(reverse("support:help")).content.decode()
    assert "Shipping &lt;fast&gt;" in index and "Secret draft" not in index
    page = client.get(live.get_absolute_url())
    assert page.status_code == 200
    body = page.content.decode()
    assert "<p>We ship daily.</p>" in body and "<p>Tracking comes by e-mail.</p>" in body
    assert client.get(draft.get_absolute_url()).status_code == 404
    assert client.get("/support/help/no-such-article/").status_code == 404
