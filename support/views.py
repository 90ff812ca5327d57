"""Storefront pages of support, mounted at /support/: the full-size chat and the help centre.
The chat itself talks to the JSON API (/api/support/, support.api); these pages only render."""

from __future__ import annotations

from itertools import groupby

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .models import KnowledgeArticle


def _published():
    return KnowledgeArticle.objects.filter(is_published=True).only("title", "slug", "topic", "body")


def _by_topic(articles) -> list[tuple[str, list[KnowledgeArticle]]]:
    return [(topic or "General", list(group)) for topic, group in groupby(articles, key=lambda a: a.topic)]


@require_GET
def chat(request: HttpRequest) -> HttpResponse:
    return render(request, "support/chat.html", {"topics": _by_topic(_published())})


@require_GET
def help_index(request: HttpRequest) -> HttpResponse:
    return render(request, "support/help.html", {"topics": _by_topic(_published())})


@require_GET
def article(request: HttpRequest, slug: str) -> HttpResponse:
    # Drafts are invisible to shoppers, also by direct link.
    item = get_object_or_404(_published(), slug=slug)
    paragraphs = [p.strip() for p in item.body.replace("\r\n", "\n").split("\n\n") if p.strip()]
    related = list(_published().filter(topic=item.topic).exclude(pk=item.pk)[:5]) if item.topic else []
    return render(request, "support/article.html", {"article": item, "paragraphs": paragraphs, "related": related})
