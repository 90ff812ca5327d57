"""Shapes of the support API (see the contract at the top of support/api.py). Text is returned raw:
the widget renders it with textContent, so nothing here is HTML."""

from __future__ import annotations

from rest_framework import serializers

from . import services
from .models import Conversation, Message


class MessageSerializer(serializers.ModelSerializer):
    """{id, sender, kind, text, sources, cards, created_at, feedback, actions}; needs context["conversation"]."""

    actions = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "sender", "kind", "text", "sources", "cards", "created_at", "feedback", "actions"]
        read_only_fields = fields

    def get_actions(self, message: Message) -> list[dict]:
        conversation = self.context.get("conversation") or message.conversation
        return services.message_actions(message, conversation)


def conversation_payload(conversation: Conversation, messages: list[Message], *, token: bool = True) -> dict:
    data = {
        "status": conversation.status,
        # While waiting for a person: {place, waiting, estimate_minutes, text}; null otherwise.
        "wait": services.wait_info(conversation),
        "messages": MessageSerializer(messages, many=True, context={"conversation": conversation}).data,
    }
    if token:
        data = {"token": str(conversation.token), **data, "satisfaction": conversation.satisfaction}
    return data


class MessageCreateSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=services.MAX_TEXT_CHARS, trim_whitespace=True, allow_blank=False,
        error_messages={
            "blank": "Please type a message.",
            "required": "Please type a message.",
            "max_length": f"Messages can be at most {services.MAX_TEXT_CHARS} characters.",
        },
    )
    # Optional: the widget's id for this send; a retry with the same id is not stored twice.
    client_ref = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", required=False, allow_blank=True, default="",
                                       error_messages={"invalid": "client_ref is 1-64 letters, digits, - or _."})


class FeedbackSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=[1, -1], error_messages={
        "invalid_choice": "Feedback is 1 (helpful) or -1 (not helpful)."})

    def validate_value(self, value) -> int:
        return int(value)


class SatisfactionSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5, error_messages={
        "min_value": "Choose a score from 1 to 5.", "max_value": "Choose a score from 1 to 5."})
    comment = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class AfterSerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, required=False, default=0)
