"""Demo support data: the knowledge base, canned responses, and a few simulated shoppers' chats in the
agents' queue (run through the real assistant, so intents, moods and summaries are real)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from tqdm import tqdm

from support import assistant, knowledge
from support.models import Conversation

# The login the README gives for trying the shop as a shopper (created by shop's `load_demo`). Its chat is
# never seeded: a seeded "waiting for an agent" chat made the demo shopper's own questions go unanswered.
DEMO_LOGIN = "demo"

# (opening messages, what the demo shows the agent)
DEMO_CHATS = [
    (["Hi, where is my order?", "I'd like to talk to a human please"], "asked for a person"),
    (["I was charged twice for my last order and I want my money back, I'll file a chargeback"], "payment dispute"),
    (["THIS IS RIDICULOUS!!! My order arrived broken, worst shop ever, unacceptable!!!"], "angry shopper"),
    (["How long does shipping take?", "thanks!"], "answered by the assistant"),
    (["Can I return headphones I bought last month?"], "answered by the assistant"),
]


class Command(BaseCommand):
    help = "Seed the knowledge base and canned responses, and put simulated shoppers' chats in the queue."

    def add_arguments(self, parser):
        parser.add_argument("--no-chats", action="store_true", help="Only the knowledge base.")

    def handle(self, *args, **options):
        counts = knowledge.seed_knowledge_base()
        embedded = knowledge.refresh_article_vectors()
        self.stdout.write(f"Knowledge base: {counts}; {embedded} article(s) embedded.")
        if options["no_chats"] or Conversation.objects.exists():
            return
        shoppers = list(get_user_model().objects.filter(profile__is_simulated=True, orders__isnull=False)
                        .exclude(username=DEMO_LOGIN).distinct().order_by("pk")[:len(DEMO_CHATS)])
        for shopper, (messages, _) in tqdm(list(zip(shoppers, DEMO_CHATS, strict=False)), desc="Demo chats",
                                           unit="chat"):
            conversation = assistant.start_conversation(user=shopper)
            for text in messages:
                assistant.handle_message(conversation, text, user=shopper)
        waiting = Conversation.objects.filter(status__in=Conversation.HUMAN_STATUSES).count()
        self.stdout.write(f"Demo chats: {len(shoppers)} ({waiting} waiting for an agent).")
