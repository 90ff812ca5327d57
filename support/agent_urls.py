"""The agent console, mounted at /admin/support/console/ (before admin.site.urls) by config/urls.py.
Every view is wrapped in admin_view: staff only, others are redirected to the admin login."""

from django.contrib import admin
from django.urls import path

from . import agent_views as views

app_name = "support_agent"

staff = admin.site.admin_view

urlpatterns = [
    path("", staff(views.queue), name="queue"),
    path("counts.json", staff(views.queue_counts), name="counts"),
    path("conversations/<int:pk>/", staff(views.conversation), name="conversation"),
    path("conversations/<int:pk>/messages.json", staff(views.conversation_messages), name="messages"),
    path("conversations/<int:pk>/suggestions.json", staff(views.suggestions), name="suggestions"),
    path("conversations/<int:pk>/assign/", staff(views.assign), name="assign"),
    path("conversations/<int:pk>/reply/", staff(views.reply), name="reply"),
    path("conversations/<int:pk>/hand-back/", staff(views.hand_back), name="hand_back"),
    path("conversations/<int:pk>/resolve/", staff(views.resolve), name="resolve"),
    path("conversations/<int:pk>/messages/<int:message_id>/intent/", staff(views.correct_intent),
         name="correct_intent"),
]
