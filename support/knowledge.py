"""The knowledge base: default articles, their embeddings, and semantic retrieval of the best passage.

Articles are few (tens to hundreds), so retrieval is an exact cosine over the stored vectors in
memory; only articles whose title or body changed are re-embedded (`vector_text_hash`).

Each hit carries an *excerpt*: the article's sentences closest to the question (1-3, in article order,
trimmed). The assistant sends it as the default answer, quoted and cited, because it is the article's
own text: nothing can be invented in it. Generated phrasing may replace it only if ml.grounding
accepts it against these passages."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch

import ml
from ml.grounding import sentences as split_sentences
from ml.index import vector_from_bytes, vector_to_bytes

from .models import CannedResponse, KnowledgeArticle
from .replies import source

log = logging.getLogger(__name__)

DATA_FILE = Path(__file__).resolve().parent / "data" / "articles.json"
# Below this cosine (MiniLM, query vs article/passage) the knowledge base is taken to have no answer.
DEFAULT_MIN_SIMILARITY = 0.45
TOP_ARTICLES = 3
# The excerpt: the best sentence plus those scoring at least EXCERPT_RELATIVE of it, at most
# EXCERPT_SENTENCES and EXCERPT_MAX_CHARS (the weakest are dropped first; the best always stays).
# 0.88 keeps "how long does shipping take" to its two delivery sentences and leaves out the price ones.
EXCERPT_RELATIVE = 0.88
EXCERPT_SENTENCES = 3
EXCERPT_MAX_CHARS = 450
_PARAGRAPHS = re.compile(r"\n\s*\n")
# Paragraph vectors are not stored in the database (they change with every edit); a bounded
# process cache keyed by the paragraph's hash spares re-embedding them on every question.
# Sentence vectors (for excerpts) share the cache.
_PASSAGE_CACHE: dict[str, np.ndarray] = {}
_PASSAGE_CACHE_MAX = 5000
_cache_lock = threading.Lock()


def min_similarity() -> float:
    return float(getattr(settings, "AISLE_SUPPORT_KB_MIN_SIMILARITY", DEFAULT_MIN_SIMILARITY))


# --- seeding ------------------------------------------------------------------------------


def seed_knowledge_base(path: Path | None = None) -> dict[str, int]:
    """Create the default articles and canned responses that are missing (idempotent: rows edited in the
    admin are left alone). An article still holding an earlier default text, listed by its hash in
    `replaces_sha256` (e.g. one that promised a "Start a return" button the shop does not have), gets the
    current text. Vectors are computed lazily at the first question."""
    data = json.loads((path or DATA_FILE).read_text(encoding="utf-8"))
    created = {"articles": 0, "canned_responses": 0}
    with transaction.atomic():
        for row in data.get("articles", []):
            article, new = KnowledgeArticle.objects.get_or_create(
                slug=row["slug"], defaults={"title": row["title"], "topic": row.get("topic", ""), "body": row["body"]})
            created["articles"] += new
            if not new and text_hash(article.body) in row.get("replaces_sha256", ()):
                article.body = row["body"]
                article.save(update_fields=["body", "updated_at"])
                log.info("Knowledge article %s updated to the current default text", article.slug)
            if row.get("questions") and not article.questions:  # filled once; a person's edits stay
                KnowledgeArticle.objects.filter(pk=article.pk).update(questions="\n".join(row["questions"]))
        for row in data.get("canned_responses", []):
            _, new = CannedResponse.objects.get_or_create(
                shortcut=row["shortcut"], defaults={"title": row["title"], "body": row["body"]})
            created["canned_responses"] += new
    return created


# --- vectors ------------------------------------------------------------------------------


def article_text(article: KnowledgeArticle) -> str:
    return f"{article.title}\n\n{article.body}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def refresh_article_vectors(articles: list[KnowledgeArticle] | None = None) -> int:
    """Embed the published articles whose text changed since their vector was computed; returns how many."""
    if articles is None:
        articles = list(KnowledgeArticle.objects.filter(is_published=True))
    stale = [a for a in articles if a.vector is None or a.vector_text_hash != text_hash(article_text(a))]
    if not stale:
        return 0
    vectors = ml.embed([article_text(a) for a in stale])
    for article, vector in zip(stale, vectors, strict=True):
        article.vector = vector_to_bytes(vector)
        article.vector_text_hash = text_hash(article_text(article))
        # .update, not .save: saving would bump updated_at, which means "edited by a person".
        KnowledgeArticle.objects.filter(pk=article.pk).update(vector=article.vector,
                                                              vector_text_hash=article.vector_text_hash)
    return len(stale)


def paragraphs(body: str) -> list[str]:
    return [p.strip() for p in _PARAGRAPHS.split(body or "") if p.strip()]


def _passage_vectors(passages: list[str]) -> np.ndarray:
    keys = [text_hash(p) for p in passages]
    missing = [(k, p) for k, p in zip(keys, passages, strict=True) if k not in _PASSAGE_CACHE]
    if missing:
        vectors = ml.embed([p for _, p in missing])
        with _cache_lock:
            if len(_PASSAGE_CACHE) + len(missing) > _PASSAGE_CACHE_MAX:
                _PASSAGE_CACHE.clear()
            for (key, _), vector in zip(missing, vectors, strict=True):
                _PASSAGE_CACHE[key] = vector
    return np.stack([_PASSAGE_CACHE[k] for k in keys])


# --- retrieval ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeHit:
    article: KnowledgeArticle
    passage: str
    score: float          # what the threshold applies to: the mean of article and passage similarity
    article_score: float
    passage_score: float
    excerpt: str = ""     # the sentences that answer the question (see best_sentences)

    @property
    def answer(self) -> str:
        return self.excerpt or self.passage

    @property
    def source(self) -> dict:
        return article_source(self.article)


def article_url(article: KnowledgeArticle) -> str:
    try:
        return article.get_absolute_url()
    except NoReverseMatch:  # the help pages' URLconf is not mounted (e.g. an API-only deployment)
        return f"/support/help/{article.slug}/"


def article_source(article: KnowledgeArticle) -> dict:
    return source("article", article.title, article_url(article))


def search_knowledge(query: str, *, limit: int = 1, topics: tuple[str, ...] = (),
                     min_score: float | None = None, excerpt_relative: float = EXCERPT_RELATIVE) -> list[KnowledgeHit]:
    """Published articles closest in meaning to the query, each with its best paragraph, best first.

    Hits below the similarity threshold (min_score, default the setting) are left out, so [] means "the
    knowledge base has no answer".
    Raises ml.ModelUnavailable when no embedder can be loaded (the caller offers a person instead)."""
    query = (query or "").strip()[:1000]
    if not query:
        return []
    articles = list(KnowledgeArticle.objects.filter(is_published=True))
    if topics:
        articles = [a for a in articles if a.topic in topics] or articles
    if not articles:
        return []
    refresh_article_vectors(articles)
    query_vector = ml.embed(query)[0]
    matrix = np.stack([vector_from_bytes(a.vector) for a in articles])
    if matrix.shape[1] != query_vector.shape[0]:  # the embedder changed: re-embed everything once
        KnowledgeArticle.objects.update(vector_text_hash="")
        for article in articles:
            article.vector_text_hash = ""
        refresh_article_vectors(articles)
        matrix = np.stack([vector_from_bytes(a.vector) for a in articles])
    article_scores = np.maximum(matrix @ query_vector, _question_scores(articles, query_vector))
    hits = []
    for index in np.argsort(-article_scores)[:TOP_ARTICLES]:
        article = articles[int(index)]
        passages = paragraphs(article.body) or [article.body]
        passage_scores = _passage_vectors(passages) @ query_vector
        best = int(np.argmax(passage_scores))
        a_score, p_score = float(article_scores[index]), float(passage_scores[best])
        hits.append(KnowledgeHit(article, passages[best], (a_score + p_score) / 2, a_score, p_score))
    hits = [replace(hit, score=hit.score + _title_bonus(hit.article, query)) for hit in hits]
    hits.sort(key=lambda hit: -hit.score)
    threshold = min_similarity() if min_score is None else min_score
    kept = [hit for hit in hits if hit.score >= threshold][:limit]
    return [replace(hit, excerpt=" ".join(best_sentences(hit.article.body, query_vector, excerpt_relative)))
            for hit in kept]


# A word of an article's title said in the question ("warranty", "invoice", "password") tips a near tie
# between two articles towards it; words every question shares carry no signal.
TITLE_WORD_BONUS = 0.05
_TITLE_WORD_SKIP = frozenset("order orders item items your when will what with from about".split())


def _title_bonus(article: KnowledgeArticle, query: str) -> float:
    said = {_singular(w) for w in re.findall(r"[a-z]+", query.lower())}
    title = {_singular(w) for w in re.findall(r"[a-z]+", article.title.lower())
             if len(w) >= 4 and w not in _TITLE_WORD_SKIP}
    return TITLE_WORD_BONUS if title & said else 0.0


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def article_questions(article: KnowledgeArticle) -> list[str]:
    return [line.strip() for line in (article.questions or "").splitlines() if line.strip()]


def _question_scores(articles: list[KnowledgeArticle], query_vector: np.ndarray) -> np.ndarray:
    """Per article, the best similarity of the query to one of the questions it answers (0 without any).
    A short question ("what cards do you take?") is closer to another short question than to a whole
    article, so this finds articles that plain article vectors rank too low."""
    scores = np.zeros(len(articles), dtype=np.float32)
    for index, article in enumerate(articles):
        questions = article_questions(article)
        if questions:
            scores[index] = float(np.max(_passage_vectors(questions) @ query_vector))
    return scores


def best_sentences(body: str, query_vector: np.ndarray, relative: float = EXCERPT_RELATIVE) -> list[str]:
    """The article's sentences that answer the question, in article order (see EXCERPT_*)."""
    found = [s for paragraph in paragraphs(body) for s in split_sentences(paragraph)]
    if not found:
        return []
    scores = _passage_vectors(found) @ query_vector
    ranked = [int(i) for i in np.argsort(-scores, kind="stable")]
    floor = relative * float(scores[ranked[0]])
    chosen = [i for i in ranked[:EXCERPT_SENTENCES] if float(scores[i]) >= floor] or ranked[:1]
    while len(chosen) > 1 and sum(len(found[i]) + 1 for i in chosen) > EXCERPT_MAX_CHARS:
        chosen.pop()  # the weakest of those left
    excerpt = [found[i] for i in sorted(chosen)]
    if len(excerpt) == 1 and len(excerpt[0]) > EXCERPT_MAX_CHARS:
        excerpt = [excerpt[0][:EXCERPT_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"]
    return excerpt


# The agents' console asks for "search_articles(query, limit=...)": same retrieval, same hits.
search_articles = search_knowledge
