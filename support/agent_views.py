"""The agent console, mounted at /admin/support/console/ and wrapped in admin_view (staff only; anyone
else is sent to the admin login). The logic is in support.agents; these views parse, call and render."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import agents, assistant
from .models import Conversation, Message

CONSOLE_PERMISSION = "support.change_conversation"


def _check(request: HttpRequest) -> None:
    # admin_view lets every staff member in; answering shoppers also needs the conversation permission.
    if not request.user.has_perm(CONSOLE_PERMISSION):
        raise PermissionDenied


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("x-requested-with") == "fetch" or "application/json" in request.headers.get("accept", "")


def _conversation(pk: int) -> Conversation:
    return get_object_or_404(Conversation.objects.select_related("user", "assigned_to"), pk=pk)


def _after(request: HttpRequest) -> int:
    try:
        return max(0, int(request.GET.get("after", "0")))
    except ValueError:
        return 0


@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    _check(request)
    status = request.GET.get("status", Conversation.Status.WAITING)
    if status not in agents.QUEUE_TABS:
        status = Conversation.Status.WAITING
    rows, counts = agents.queue(status)
    tabs = [{"status": key, "label": label, "count": counts[key], "active": key == status}
            for key, label in agents.QUEUE_TABS.items()]
    return render(request, "support/console/queue.html", {
        **admin.site.each_context(request), "title": "Support console", "status": status,
        "tabs": tabs, "rows": rows, "counts": counts,
    })


@require_GET
def queue_counts(request: HttpRequest) -> JsonResponse:
    _check(request)
    return JsonResponse({"counts": agents.queue_counts()})


@require_GET
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    _check(request)
    chat = _conversation(pk)
    context = agents.conversation_context(chat)
    messages_data = [agents.message_data(m) for m in context["messages"]]
    return render(request, "support/console/conversation.html", {
        **admin.site.each_context(request),
        "title": f"Conversation {chat.pk}",
        "chat": chat,
        "ctx": context,
        "suggestions": agents.suggested_replies(chat),
        "canned": agents.canned_responses(),
        "intent_choices": agents.intent_choices(),
        "console_data": {
            "messages": messages_data,
            "last_id": messages_data[-1]["id"] if messages_data else 0,
            "status": chat.status,
            "mood": context["mood_series"],
            "urls": {
                "messages": reverse("support_agent:messages", args=[chat.pk]),
                "reply": reverse("support_agent:reply", args=[chat.pk]),
                "suggestions": reverse("support_agent:suggestions", args=[chat.pk]),
            },
        },
    })


@require_GET
def conversation_messages(request: HttpRequest, pk: int) -> JsonResponse:
    _check(request)
    chat = _conversation(pk)
    new = assistant.messages_after(chat, _after(request))
    return JsonResponse({
        "status": chat.status,
        "status_label": chat.get_status_display(),
        "assigned_to": chat.assigned_to.get_username() if chat.assigned_to else "",
        "messages": [agents.message_data(m) for m in new],
    })


@require_GET
def suggestions(request: HttpRequest, pk: int) -> JsonResponse:
    """The generator's suggestion, fetched after the page has rendered (it may take seconds)."""
    _check(request)
    chat = _conversation(pk)
    generated = [s for s in agents.suggested_replies(chat, generate=True) if s.source.startswith("Phrased")]
    return JsonResponse({"suggestions": [{"text": s.text, "source": s.source} for s in generated]})


def _done(request: HttpRequest, chat: Conversation, note: str = "", *, error: str = "",
          message: Message | None = None) -> HttpResponse:
    if _wants_json(request):
        payload: dict = {"status": chat.status, "ok": not error}
        if error:
            payload["error"] = error
        if message is not None:
            payload["message"] = agents.message_data(message)
        return JsonResponse(payload, status=400 if error else 200)
    if error:
        messages.error(request, error)
    elif note:
        messages.success(request, note)
    return redirect("support_agent:conversation", pk=chat.pk)


def _act(request: HttpRequest, pk: int, action, note: str) -> HttpResponse:
    """Run one of the agent actions that take (conversation, agent) and report it on the conversation page."""
    _check(request)
    chat = _conversation(pk)
    action(chat, request.user)
    return _done(request, chat, note)


@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, agents.assign, "You now have this conversation.")


@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    _check(request)
    chat = _conversation(pk)
    try:
        sent = agents.agent_reply(chat, request.user, request.POST.get("text", ""))
    except ValidationError as error:
        return _done(request, chat, error=" ".join(error.messages))
    return _done(request, chat, "Reply sent.", message=sent)


@require_POST
def hand_back(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, agents.hand_back, "The assistant has the conversation again.")


@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, agents.resolve, "Conversation resolved; the shopper is asked to rate it.")


@require_POST
def correct_intent(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    _check(request)
    chat = _conversation(pk)
    message = get_object_or_404(Message, pk=message_id, conversation=chat)
    intent = request.POST.get("intent", "")
    try:
        agents.correct_intent(message, intent, request.user)
    except ValidationError as error:
        return _done(request, chat, error=" ".join(error.messages))
    return _done(request, chat, f"Intent of message {message.pk} set to “{intent}”.")
