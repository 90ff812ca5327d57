"""The shopper-facing support API, mounted at /api/support/ (namespace "support_api").

CONTRACT (the chat widget and the bench are written against this; keep it stable)
--------------------------------------------------------------------------------
Identity: a signed-in shopper (session) owns conversations with user = them; an anonymous shopper
owns those with their visitor id (cookie `aisle_vid`, set by shop's middleware) and no user.
Anything else -> 404, exactly as if it did not exist. Session-authenticated POSTs need the CSRF
token (header X-CSRFToken), as everywhere in DRF's SessionAuthentication. POSTs are throttled
(scope "support_chat", setting AISLE_RATE_SUPPORT, default "30/min") -> 429 with Retry-After; GETs
(polling) are not. Errors: 400 {"field": ["message"]} (e.g. {"text": ["Please type a message."]}),
404 {"detail": "Not found."}, 429 {"detail": "..."}.

  POST /api/support/conversations/
      -> 201 {token, status, messages: [...], satisfaction} a new conversation (with the greeting),
      -> 200 the same shape when the caller already has an open one (status bot/waiting/assigned).
  GET  /api/support/conversations/current/
      -> 200 {token, status, messages, satisfaction}: the caller's latest open conversation; 404 if none.
  GET  /api/support/conversations/<token>/messages/?after=<message id>
      -> 200 {status, messages: [messages with id > after]} (poll this for agent replies).
  POST /api/support/conversations/<token>/messages/   {"text": "...", "client_ref": "..." (optional)}
      text: 1-1000 characters; client_ref: the sender's id for this send (1-64 of [A-Za-z0-9_-]): a
      retry with the same client_ref stores nothing again and returns the stored message and its replies.
      -> 201 {status, wait, messages: [the shopper's message, then the assistant's replies]}
         (while waiting for a person the reply acknowledges it with the wait; while an agent has it
         (assigned) only the shopper's message). `wait` is {place, waiting, estimate_minutes, text}
         while the status is "waiting", null otherwise; every conversation payload carries it.
  POST /api/support/conversations/<token>/assistant/
      -> 200 {status: "bot", wait: null, messages: [the assistant's welcome back]}: leave the queue for a
         person (only while "waiting"; 400 {"status": [...]} once an agent has joined or it is resolved).
  POST /api/support/messages/<id>/feedback/           {"value": 1 | -1}
      -> 200 {id, feedback}; only on the assistant's messages; sending again replaces the value.
  POST /api/support/conversations/<token>/satisfaction/  {"score": 1-5, "comment": "..." (optional, <=500)}
      -> 200 {token, satisfaction, comment}

Message: {id, sender: "shopper"|"bot"|"agent"|"system", kind: text|data|article|generated|confirm|
          action|rephrase|handoff|small_talk|refusal, text (plain text, never HTML: render with
          textContent), sources: [{type: "article"|"product"|"order"|"link", title, url}],
          cards: [{title, price, url, availability, rating, reviews}] (product answers: drawn as cards),
          created_at (ISO 8601), feedback: 1|-1|null, actions: [{label, reply}]}
`actions` are quick replies: post `reply` as the shopper's next message when the button is clicked
("Yes, cancel it" / "No" under a pending confirmation; one per order when the assistant asks which order
holds the item named; "Talk to a person" where the assistant had no answer). They disappear once answered.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from shop.services import request_visitor_id

from . import services
from .models import Conversation
from .serializers import (
    AfterSerializer,
    FeedbackSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    SatisfactionSerializer,
    conversation_payload,
)

DEFAULT_RATE = "30/min"


class SupportChatThrottle(ScopedRateThrottle):
    """Scope "support_chat"; falls back to AISLE_RATE_SUPPORT (or 30/min) when the project's
    DEFAULT_THROTTLE_RATES does not list the scope, rather than failing every request."""

    def get_rate(self) -> str | None:
        try:
            return super().get_rate()
        except ImproperlyConfigured:
            return getattr(settings, "AISLE_RATE_SUPPORT", DEFAULT_RATE)


class SupportView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [SupportChatThrottle]
    throttle_scope = "support_chat"

    def get_throttles(self) -> list:
        # Polling for agent replies is free; only writes (messages, feedback) are limited.
        return [] if self.request.method in SAFE_METHODS else super().get_throttles()

    def identity(self) -> dict:
        user = self.request.user if self.request.user.is_authenticated else None
        return {"user": user, "visitor_id": request_visitor_id(self.request._request)}

    def conversation(self, token: str) -> Conversation:
        conversation = services.conversation_for(token=token, **self.identity())
        if conversation is None:
            raise NotFound()
        return conversation


NOT_FOUND = {404: OpenApiResponse(description="No such conversation of yours.")}

# The shapes of the payloads above, for the schema only (conversation_payload builds them).
WAIT = inline_serializer("SupportWait", allow_null=True, help_text="While waiting for a person; null otherwise.",
                         fields={"place": serializers.IntegerField(), "waiting": serializers.IntegerField(),
                                 "estimate_minutes": serializers.IntegerField(allow_null=True),
                                 "text": serializers.CharField()})
STATUS = serializers.ChoiceField(choices=Conversation.Status.choices)
MESSAGES_PAYLOAD = inline_serializer("SupportMessages", fields={
    "status": STATUS, "wait": WAIT, "messages": MessageSerializer(many=True)})
CONVERSATION = inline_serializer("SupportConversation", fields={
    "token": serializers.UUIDField(), "status": STATUS, "wait": WAIT, "messages": MessageSerializer(many=True),
    "satisfaction": serializers.IntegerField(allow_null=True, min_value=1, max_value=5)})


class ConversationsView(SupportView):
    @extend_schema(summary="Start a chat (or get the open one)", request=None,
                   responses={201: OpenApiResponse(CONVERSATION, description="A new conversation, with the greeting."),
                              200: OpenApiResponse(CONVERSATION, description="The caller's open conversation.")})
    def post(self, request: Request) -> Response:
        conversation, created = services.get_or_start_conversation(**self.identity())
        payload = conversation_payload(conversation, services.messages_after(conversation))
        return Response(payload, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CurrentConversationView(SupportView):
    @extend_schema(summary="The caller's open chat", responses={200: CONVERSATION, **NOT_FOUND})
    def get(self, request: Request) -> Response:
        identity = self.identity()
        conversation = services.conversation_for(**identity)
        if conversation is None and identity["user"] is not None:
            conversation = services.adopt_visitor_conversation(**identity)
        if conversation is None:
            raise NotFound("You have no open conversation.")
        return Response(conversation_payload(conversation, services.messages_after(conversation)))


class MessagesView(SupportView):
    @extend_schema(summary="Messages after an id (polling)", parameters=[AfterSerializer],
                   responses={200: MESSAGES_PAYLOAD, **NOT_FOUND})
    def get(self, request: Request, token: str) -> Response:
        conversation = self.conversation(token)
        params = AfterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        messages = services.messages_after(conversation, params.validated_data["after"])
        return Response(conversation_payload(conversation, messages, token=False))

    @extend_schema(summary="Send a message to the assistant", request=MessageCreateSerializer,
                   responses={201: OpenApiResponse(MESSAGES_PAYLOAD, description="The shopper's message, then the "
                                                   "replies; a retried client_ref returns the stored ones."),
                              **NOT_FOUND})
    def post(self, request: Request, token: str) -> Response:
        conversation = self.conversation(token)
        data = MessageCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            shopper, replies = services.reply_to(conversation, data.validated_data["text"],
                                                 user=self.identity()["user"],
                                                 client_ref=data.validated_data["client_ref"])
        except DjangoValidationError as exc:  # e.g. only control characters: nothing left to store
            raise BadRequest(exc.message_dict if hasattr(exc, "error_dict") else {"text": exc.messages}) from exc
        return Response(conversation_payload(conversation, [shopper, *replies], token=False),
                        status=status.HTTP_201_CREATED)


class BackToAssistantView(SupportView):
    @extend_schema(summary="Leave the queue for a person and carry on with the assistant", request=None,
                   responses={200: MESSAGES_PAYLOAD,
                              400: OpenApiResponse(description="An agent has joined, or the chat is resolved."),
                              **NOT_FOUND})
    def post(self, request: Request, token: str) -> Response:
        conversation = self.conversation(token)
        last = conversation.messages.order_by("-pk").values_list("pk", flat=True).first() or 0
        try:
            conversation = services.return_to_assistant(conversation)
        except DjangoValidationError as exc:
            raise BadRequest(exc.message_dict) from exc
        return Response(conversation_payload(conversation, services.messages_after(conversation, last), token=False))


class FeedbackView(SupportView):
    @extend_schema(summary="Thumbs up/down on an answer", request=FeedbackSerializer,
                   responses={200: inline_serializer("SupportFeedback", fields={
                       "id": serializers.IntegerField(), "feedback": serializers.IntegerField(help_text="1 or -1.")}),
                              **NOT_FOUND})
    def post(self, request: Request, message_id: int) -> Response:
        identity = self.identity()
        message = services.owned_message(message_id, **identity)
        if message is None:
            raise NotFound()
        data = FeedbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            message = services.record_feedback(message, data.validated_data["value"], **identity)
        except PermissionDenied as exc:
            raise NotFound() from exc
        return Response({"id": message.pk, "feedback": message.feedback})


class SatisfactionView(SupportView):
    @extend_schema(summary="Satisfaction score at the end of a chat", request=SatisfactionSerializer,
                   responses={200: inline_serializer("SupportSatisfaction", fields={
                       "token": serializers.UUIDField(),
                       "satisfaction": serializers.IntegerField(min_value=1, max_value=5),
                       "comment": serializers.CharField(allow_blank=True)}),
                              **NOT_FOUND})
    def post(self, request: Request, token: str) -> Response:
        conversation = self.conversation(token)
        data = SatisfactionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.record_satisfaction(conversation, data.validated_data["score"],
                                                    data.validated_data.get("comment", ""))
        return Response({"token": str(conversation.token), "satisfaction": conversation.satisfaction,
                         "comment": conversation.satisfaction_comment})


__all__ = ["BackToAssistantView", "ConversationsView", "CurrentConversationView", "FeedbackView",
           "MessageSerializer", "MessagesView", "SatisfactionView", "SupportChatThrottle"]
