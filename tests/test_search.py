"""Hybrid search (search/engine.py), its page, the facade (search.services) and the search APIs."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from behavior.models import Event
from search import embeddings, services
from search import engine as search
from search import signals as search_signals
from search.models import ProductEmbedding

from .factories import make_category, make_product

pytestmark = pytest.mark.django_db
DIM = 8


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    search.reset_caches()
    yield
    search.reset_caches()


@pytest.fixture
def store():
    audio = make_category("Audio")
    headphones = make_category("Headphones & Earbuds", parent=audio)
    speakers = make_category("Speakers & Voice Assistants", parent=audio)
    tvs = make_category("TVs")
    products = {
        "sony_cheap": make_product(headphones, title="Sony Quiet Over-Ear Headphones", brand="Sony",
                                   price=Decimal("149.00"), features=["Noise cancelling", "30 hour battery"]),
        "sony_dear": make_product(headphones, title="Sony Studio Headphones Pro", brand="Sony",
                                  price=Decimal("399.00"), features=["Noise cancelling"]),
        "bose": make_product(headphones, title="Bose Sport Earbuds", brand="Bose", price=Decimal("179.00"),
                             features=["Sweat resistant"]),
        "speaker": make_product(speakers, title="JBL Party Speaker", brand="JBL", price=Decimal("99.00"),
                                features=["Deep bass"]),
        "tv": make_product(tvs, title="Samsung 65 inch OLED TV", brand="Samsung", price=Decimal("1299.00"),
                           features=["4K HDR"]),
    }
    return products


def _unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def _write_vectors(vectors: dict) -> None:
    """Vectors straight into the embedding rows (the conftest keeps MiniLM out of on-save embedding)."""
    for product, vector in vectors.items():
        ProductEmbedding.objects.update_or_create(product_id=product.pk, defaults={
            "vector": np.asarray(vector, dtype=np.float32).tobytes(), "dim": DIM, "is_dirty": False})
    embeddings.reset_index()


def _fake_embedder(monkeypatch, mapping: dict[str, np.ndarray], default: np.ndarray | None = None) -> None:
    @lru_cache(maxsize=64)
    def embed_query(text: str) -> np.ndarray:
        for needle, vector in mapping.items():
            if needle in text.lower():
                return vector
        return default if default is not None else _unit(0, 0, 0, 0, 0, 0, 0, 1)

    monkeypatch.setattr(embeddings, "embed_query", embed_query)


def _titles(results) -> list[str]:
    return [product.title for product in results]


# --- fusion ---------------------------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_on_hand_made_rankings():
    fused = search.reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[3][1] == pytest.approx(1 / 63)
    # Equal scores keep first-seen order; a duplicate within one ranking counts once; weights scale.
    assert [i for i, _ in search.reciprocal_rank_fusion([[7, 8], [8, 7]])] == [7, 8]
    assert search.reciprocal_rank_fusion([[5, 5]])[0][1] == pytest.approx(1 / 61)
    assert [i for i, _ in search.reciprocal_rank_fusion([[1], [2]], weights=[1.0, 2.0])] == [2, 1]
    assert search.reciprocal_rank_fusion([]) == []


# --- slots ----------------------------------------------------------------------------------------------------------


def test_price_brand_and_category_slots_filter_results(store):
    under = search.search("headphones under $200")
    assert set(_titles(under.products)) == {"Sony Quiet Over-Ear Headphones", "Bose Sport Earbuds"}
    assert under.parsed.category and under.parsed.price_max == Decimal("200")

    sony = search.search("sony headphones")
    assert set(_titles(sony.products)) == {"Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}

    between = search.search("sony headphones between $300 and $500")
    assert _titles(between.products) == ["Sony Studio Headphones Pro"]

    # A group category includes its sub-categories, and nothing from elsewhere.
    audio = search.search("audio")
    assert "Samsung 65 inch OLED TV" not in _titles(audio.products)
    assert {"JBL Party Speaker", "Bose Sport Earbuds"} <= set(_titles(audio.products))


def test_in_stock_products_rank_before_equal_out_of_stock_ones(store):
    store["sony_cheap"].stock = 0
    store["sony_cheap"].save()
    results = search.search("sony headphones")
    assert _titles(results.products)[-1] == "Sony Quiet Over-Ear Headphones"


# --- the page -------------------------------------------------------------------------------------------------------


def test_chips_render_with_working_remove_links(client, store):
    response = client.get(reverse("search:results"), {"q": "sony headphones under $200"})
    assert response.status_code == 200
    html = response.content.decode()
    assert _titles(response.context["results"]) == ["Sony Quiet Over-Ear Headphones"]
    chips = {chip.kind: chip for chip in response.context["results"].chips}
    assert set(chips) == {"category", "brand", "price"}
    assert chips["price"].remaining == "sony headphones"
    assert 'href="/search/?q=sony%20headphones"' in html or 'href="/search/?q=sony+headphones"' in html
    # Following the price chip's link drops the price filter and keeps the others.
    link = f"{reverse('search:results')}?q={chips['price'].remaining}"
    query = parse_qs(urlsplit(link).query)["q"][0]
    after = client.get(reverse("search:results"), {"q": query})
    assert set(_titles(after.context["results"])) == {"Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}
    assert {chip.kind for chip in after.context["results"].chips} == {"category", "brand"}


def test_result_cards_carry_the_search_rail_for_the_beacon(client, store):
    html = client.get(reverse("search:results"), {"q": "sony headphones"}).content.decode()
    assert 'data-rec-rail="search"' in html
    assert 'data-rec-position="1"' in html and 'data-rec-position="2"' in html
    assert 'data-rec-reason="q:brand=sony category=' in html


def test_typo_query_finds_the_product_and_says_what_it_searched(client, store):
    response = client.get(reverse("search:results"), {"q": "sony headphnes"})
    assert set(_titles(response.context["results"])) == {"Sony Quiet Over-Ear Headphones",
                                                         "Sony Studio Headphones Pro"}
    assert "Showing results for" in response.content.decode()
    assert response.context["results"].corrected_query == "sony headphones"

    # A title word outside the query vocabulary is corrected against the catalogue's own words.
    studio = search.search("studoi")
    assert _titles(studio.products) == ["Sony Studio Headphones Pro"]
    assert studio.corrected_query == "studio"


def test_query_is_escaped_everywhere(client, store):
    html = client.get(reverse("search:results"), {"q": '<img src=x onerror=alert(1)> headphones "under" $200'}
                      ).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_searched_event_is_recorded_once_per_search(client, store):
    client.get(reverse("search:results"), {"q": "sony headphones"})
    client.get(reverse("search:results"), {"q": "qqqxxz"})
    events = list(Event.objects.filter(event_type="searched").order_by("pk"))
    assert [(e.properties["query"], e.properties["result_count"]) for e in events] == [
        ("sony headphones", 2), ("qqqxxz", 0)]


def test_works_with_no_embeddings_and_never_loads_the_model(client, store, monkeypatch, caplog):
    @lru_cache(maxsize=1)  # reset_index() clears embed_query's cache
    def explode(text):
        raise AssertionError("no vectors: the query must not be embedded")

    monkeypatch.setattr(embeddings, "embed_query", explode)
    monkeypatch.setattr(search, "_warned_no_vectors", False)
    outcome = search.search("noise cancelling")
    assert outcome.mode == "keyword"
    assert set(_titles(outcome.products)) == {"Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}
    assert "keyword-only" in caplog.text
    response = client.get(reverse("search:results"), {"q": "zzzz"})
    assert response.status_code == 200 and response.context["results"] == []
    assert "We couldn’t find anything" in response.content.decode()


def test_broken_engine_falls_back_to_keyword_search(client, store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("index gone")

    monkeypatch.setattr(search, "search", broken)
    response = client.get(reverse("search:results"), {"q": "speaker"})
    assert response.status_code == 200
    assert _titles(response.context["results"]) == ["JBL Party Speaker"]
    assert Event.objects.filter(event_type="searched").count() == 1


# --- vectors --------------------------------------------------------------------------------------------------------


@pytest.fixture
def vectors(store, monkeypatch):
    _write_vectors({
        store["sony_cheap"]: _unit(1, 0.1), store["sony_dear"]: _unit(1, 0.3), store["bose"]: _unit(0.7, 1),
        store["speaker"]: _unit(0, 1, 0.2), store["tv"]: _unit(0, 0, 1),
    })
    _fake_embedder(monkeypatch, {"hush": _unit(1, 0.05), "cinema": _unit(0, 0, 1, 0.1),
                                 "gibberish": _unit(0.1, 0, 1, 0.3)})
    return store


def test_vector_side_finds_products_with_no_shared_words(vectors):
    outcome = search.search("something to hush the commute")
    assert outcome.mode == "hybrid"
    assert _titles(outcome.products)[:2] == ["Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"]
    # Slots still filter the vector side.
    assert _titles(search.search("hush under $200").products)[0] == "Sony Quiet Over-Ear Headphones"
    assert "Sony Studio Headphones Pro" not in _titles(search.search("hush under $200").products)


def test_no_results_falls_back_to_the_nearest_products_with_a_message(client, vectors, monkeypatch):
    monkeypatch.setattr(search, "VECTOR_MIN_SIMILARITY", 0.99)  # nothing is close enough to be a match
    response = client.get(reverse("search:results"), {"q": "xqzv gibberish"})
    results = response.context["results"]
    assert not results.exact and _titles(results)[0] == "Samsung 65 inch OLED TV"
    html = response.content.decode()
    assert "No exact matches for “xqzv gibberish”; here are the closest products." in html
    event = Event.objects.get(event_type="searched")
    assert event.properties["result_count"] == 0


def test_clicks_on_past_results_of_the_same_query_boost_a_product(vectors):
    before = search.search("sony headphones")
    assert _titles(before.products)[0] == "Sony Quiet Over-Ear Headphones"
    now = timezone.now()
    for visitor in ("v1", "v2", "v3"):
        Event.objects.create(event_type="rec_clicked", source="client", visitor_id=visitor,
                             product=vectors["sony_dear"], properties={"rail": "search", "reason": f"q:{before.key}"},
                             occurred_at=now)
    # A click from another query's results, or another rail, does not count.
    Event.objects.create(event_type="rec_clicked", source="client", visitor_id="v9", product=vectors["bose"],
                         properties={"rail": "related", "reason": f"q:{before.key}"}, occurred_at=now)
    search.cache.clear()
    after = search.search("headphones SONY")  # the same query key
    assert after.key == before.key
    assert _titles(after.products)[0] == "Sony Studio Headphones Pro"
    assert search.clicked_for_query(before.key) == {vectors["sony_dear"].pk: 3}


# --- autocomplete ---------------------------------------------------------------------------------------------------


def test_autocomplete_suggests_titles_categories_and_brands(client, store):
    response = client.get("/api/search/autocomplete", {"q": "son"})
    assert response.status_code == 200
    items = response.json()["items"]
    assert {"kind": "brand", "label": "Sony", "url": "/search/?q=Sony"} in items
    assert {item["label"] for item in items if item["kind"] == "product"} == {
        "Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}
    assert len(items) <= 10

    headphones = client.get("/api/search/autocomplete", {"q": "headph"}).json()["items"]
    assert headphones[0]["kind"] == "category" and headphones[0]["label"] == "Headphones & Earbuds"
    fuzzy = client.get("/api/search/autocomplete", {"q": "studoi"}).json()["items"]
    assert [item["label"] for item in fuzzy] == ["Sony Studio Headphones Pro"]
    assert client.get("/api/search/autocomplete", {"q": "<script>"}).json()["items"] == []


@pytest.mark.parametrize("q", ["", "   ", "x" * 101])
def test_autocomplete_rejects_empty_or_long_queries(client, q):
    response = client.get("/api/search/autocomplete", {"q": q})
    assert response.status_code == 400
    assert response.json()["q"]


def test_autocomplete_is_throttled(client, store, settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest.get("DEFAULT_THROTTLE_RATES", {}), "autocomplete": "3/min"}
    settings.REST_FRAMEWORK = rest
    codes = [client.get("/api/search/autocomplete", {"q": "son"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


# --- the facade: who is recorded ------------------------------------------------------------------------------------


def test_a_storefront_search_sends_searched_once_a_chat_question_never(store):
    received = []

    def on_search(sender, **kwargs):
        received.append((kwargs["query"], kwargs["result_count"], kwargs["source"]))

    search_signals.searched.connect(on_search)
    try:
        found = services.search("noise cancelling sony headphones")
        services.search("sony headphones", source=services.SOURCE_CHAT)
        services.search("warm up", source=services.SOURCE_INTERNAL)
    finally:
        search_signals.searched.disconnect(on_search)
    assert found.result_count == len(found) > 0
    assert received == [("noise cancelling sony headphones", len(found), "storefront")]


def test_a_chat_product_question_finds_products_but_is_not_a_storefront_search(store):
    from support import assistant

    reply = assistant.product_reply("do you have sony headphones", intent="product_search")
    assert {card["title"] for card in reply.cards} <= {"Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}
    assert reply.cards
    assert not Event.objects.filter(event_type="searched").exists()


# --- the JSON API ---------------------------------------------------------------------------------------------------


def test_search_api_returns_results_slots_chips_and_facets(client, store):
    response = client.get("/api/search/", {"q": "sony headphones under $200"})
    assert response.status_code == 200
    body = response.json()
    assert [r["title"] for r in body["results"]] == ["Sony Quiet Over-Ear Headphones"]
    assert body["count"] == 1 and body["exact"] and not body["not_found"]
    assert body["slots"]["brand"] == "Sony" and body["slots"]["price_max"] == "200.00"
    assert body["slots"]["category"] == store["sony_cheap"].category.slug
    assert {chip["kind"] for chip in body["chips"]} == {"category", "brand", "price"}
    price = next(chip for chip in body["chips"] if chip["kind"] == "price")
    assert price["remaining_query"] == "sony headphones"
    assert body["facets"]["brand"] == [{"value": "Sony", "count": 1}]
    assert body["results"][0]["url"] == store["sony_cheap"].get_absolute_url()
    typo = client.get("/api/search/", {"q": "sony headphnes"}).json()
    assert typo["corrected_query"] == "sony headphones" and typo["corrections"] == {"headphnes": "headphones"}
    # Recorded like the page: the API is a storefront for headless clients.
    assert Event.objects.filter(event_type="searched").count() == 2


@pytest.mark.parametrize(("params", "field"), [
    ({"q": ""}, "q"), ({"q": "x" * 10_000}, "q"), ({"q": "tv", "limit": "0"}, "limit"),
    ({"q": "tv", "limit": "many"}, "limit"), ({"q": "tv", "limit": "49"}, "limit")])
def test_search_api_answers_bad_input_with_a_400_and_a_message(client, params, field):
    response = client.get("/api/search/", params)
    assert response.status_code == 400
    assert response.json()[field]


@pytest.mark.parametrize("q", ["\x07\x1b[31m headphones", "head.*phones$ | (a+)+", "'; DROP TABLE shop_product; --",
                               "%_\\ sony", "\u202esony", "x" * 10_000])
def test_odd_queries_get_an_answer_never_a_500(client, store, q):
    page = client.get(reverse("search:results"), {"q": q})
    assert page.status_code == 200
    api = client.get("/api/search/", {"q": q})
    assert api.status_code == (400 if len(q) > 200 else 200)


def test_search_api_is_throttled_and_documented(client, store, settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest.get("DEFAULT_THROTTLE_RATES", {}), "search": "2/min"}
    settings.REST_FRAMEWORK = rest
    codes = [client.get("/api/search/", {"q": "sony"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/search/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"q", "limit"}
    assert {"200", "400", "429"} <= set(operation["responses"])
    properties = schema["components"]["schemas"]["SearchResponse"]["properties"]
    assert {"results", "slots", "chips", "corrections", "facets", "not_found", "popular"} <= set(properties)


# --- the real encoder -----------------------------------------------------------------------------------------------


@pytest.mark.embeddings
def test_real_minilm_quiet_headphones_for_the_office(store):
    for product in store.values():
        embeddings.mark_dirty([product.pk])
    embeddings.embed_dirty(everything=True)
    embeddings.reset_index()
    outcome = search.search("quiet headphones for the office under $200")
    assert outcome.mode == "hybrid"
    first = outcome.products[0]
    assert first.title in {"Sony Quiet Over-Ear Headphones", "Bose Sport Earbuds"}
    assert all(p.price <= 200 for p in outcome.products)
    assert first.title == "Sony Quiet Over-Ear Headphones"


def test_the_stored_document_follows_every_write(store):
    """The GIN-indexed document is kept by database triggers: saves, bulk updates and category renames."""
    from shop.models import Category, Product

    speaker = store["speaker"]
    assert search.keyword_ranking(search.shop.active_products(), ["party"]) == [speaker.pk]
    Product.objects.filter(pk=speaker.pk).update(title="JBL Boombox Speaker")  # no signals: the trigger still runs
    assert search.keyword_ranking(search.shop.active_products(), ["boombox"]) == [speaker.pk]
    assert search.keyword_ranking(search.shop.active_products(), ["party"]) == []
    Category.objects.filter(pk=speaker.category_id).update(name="Loudspeakers")
    assert search.keyword_ranking(search.shop.active_products(), ["loudspeakers"]) == [speaker.pk]


def test_the_demo_simulator_searches_through_the_search_app(store):
    """shop imports no other app: its simulator asks by shop.signals.search_requested, search answers and records."""
    from shop.demo.simulator import _search as simulated_search

    at = timezone.now() - timezone.timedelta(days=3)
    found = simulated_search("sony headphones", user=None, visitor_id="sim-visitor", occurred_at=at)
    assert {p.title for p in found} == {"Sony Quiet Over-Ear Headphones", "Sony Studio Headphones Pro"}
    event = Event.objects.get(event_type="searched")
    assert (event.properties["query"], event.is_simulated, event.occurred_at) == ("sony headphones", True, at)
