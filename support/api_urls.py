"""The shopper-facing support API, mounted at /api/support/ (contract: support/api.py)."""

from django.urls import path

from . import api

app_name = "support_api"
urlpatterns = [
    path("conversations/", api.ConversationsView.as_view(), name="conversations"),
    path("conversations/current/", api.CurrentConversationView.as_view(), name="current"),
    path("conversations/<uuid:token>/messages/", api.MessagesView.as_view(), name="messages"),
    path("conversations/<uuid:token>/assistant/", api.BackToAssistantView.as_view(), name="assistant"),
    path("conversations/<uuid:token>/satisfaction/", api.SatisfactionView.as_view(), name="satisfaction"),
    path("messages/<int:message_id>/feedback/", api.FeedbackView.as_view(), name="feedback"),
]
