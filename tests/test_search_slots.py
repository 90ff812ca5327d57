"""Slots that mean what the shopper meant (issue 16): a category filters only as the query's head, a category word
that modifies something else is a soft signal the query's vector decides, chips filter exactly on attributes
stored on the product, and a product the shop does not sell is answered "not found" with no junk grid.

Vectors are hand-made (8 dimensions, one direction per kind of product) so each case says what the vector side
believes; the real MiniLM path is covered in test_search.py."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

import numpy as np
import pytest
from django.urls import reverse

from behavior.models import Event
from search import embeddings, services
from search import engine as search
from search.models import ProductAttributes, ProductEmbedding

from .factories import make_category, make_product

pytestmark = pytest.mark.django_db
DIM = 8
LAPTOP, BATTERY, WATCH, TV, MONITOR, MOUNT, OTHER = range(7)


def _unit(axis: int, wobble: float = 0.0) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[axis] = 1.0
    vector[7] = wobble
    return vector / np.linalg.norm(vector)


@pytest.fixture(autouse=True)
def _fresh():
    search.reset_caches()
    yield
    search.reset_caches()


@pytest.fixture
def shop_floor(monkeypatch):
    computers = make_category("Computers")
    laptops = make_category("Laptops & Notebook Computers", parent=computers)
    power = make_category("Power & Accessories")
    batteries = make_category("Batteries", parent=power)
    wearables = make_category("Phones & Wearables")
    watches = make_category("Smart Watches", parent=wearables)
    tvs = make_category("TVs")
    monitors = make_category("Monitors", parent=computers)
    brackets = make_category("Wall Brackets", parent=power)
    products = {
        "laptop": (make_product(laptops, title="Lenovo Quiet 14 Laptop", brand="Lenovo", price=Decimal("699"),
                                features=["Up to 18 hours of battery life", "Fanless, silent design"]), LAPTOP),
        "laptop2": (make_product(laptops, title='HP 15.6" FHD Laptop', brand="HP", price=Decimal("499"),
                                 features=["8 hours battery life"]), LAPTOP),
        "duracell": (make_product(batteries, title="Duracell AA Batteries 24 Pack", brand="Duracell",
                                  price=Decimal("19"), features=["Long lasting battery life"]), BATTERY),
        "bank": (make_product(batteries, title="Anker Power Bank 20000mAh", brand="Anker", price=Decimal("49"),
                              features=["Charges phones and tablets"]), BATTERY),
        "watch": (make_product(watches, title="Apple Watch Series 9", brand="Apple", price=Decimal("399"),
                               features=["Watch faces", "Stream music and movies to AirPods"]), WATCH),
        "tv4k": (make_product(tvs, title='Samsung 65" Class 4K UHD TV', brand="Samsung", price=Decimal("799"),
                              features=["120Hz Refresh Rate", "Watch movies in Dolby Vision"]), TV),
        "tv1080": (make_product(tvs, title='TCL 40" Class 1080p FHD Smart TV', brand="TCL", price=Decimal("199"),
                                features=["4K upscaling of streams", "60Hz"]), TV),
        "tv720": (make_product(tvs, title='Insignia 32" Class 720p HD TV', brand="Insignia", price=Decimal("99"),
                               features=["Big screen for small rooms"]), TV),
        "mount": (make_product(brackets, title='Sanus TV Wall Mount for 42" - 90" TVs', brand="Sanus",
                               price=Decimal("129"), features=["Holds 4K TVs up to 125 lbs"]), MOUNT),
        "m27": (make_product(monitors, title='Acer 27" Class FHD IPS Monitor', brand="Acer", price=Decimal("149"),
                             features=["1920 x 1080 Resolution", "100 Hz Refresh Rate"]), MONITOR),
        "m27q": (make_product(monitors, title='MSI 27" WQHD Gaming Monitor', brand="MSI", price=Decimal("299"),
                              features=["2560 x 1440", "170Hz Refresh Rate"]), MONITOR),
        "m32": (make_product(monitors, title='Samsung 32" Class 4K UHD Monitor', brand="Samsung",
                             price=Decimal("399"), features=["3840 x 2160 Resolution"]), MONITOR),
        "m49": (make_product(monitors, title='Samsung 49" Odyssey Curved Gaming Monitor', brand="Samsung",
                             price=Decimal("999"), features=["5120 x 1440", "240Hz"]), MONITOR),
    }
    for product, axis in products.values():
        ProductEmbedding.objects.update_or_create(product_id=product.pk, defaults={
            "vector": _unit(axis, 0.05 * (product.pk % 3)).tobytes(), "dim": DIM, "is_dirty": False})
    embeddings.reset_index()
    meanings = {"battery life": LAPTOP, "laptop": LAPTOP, "watch movies": TV, "big screen": TV, "tv stand": MOUNT,
                "battery pack": BATTERY, "batteries": BATTERY, "lawn mower": OTHER, "4k": TV, "monitor": MONITOR}

    @lru_cache(maxsize=64)
    def embed_query(text: str) -> np.ndarray:
        for needle, axis in meanings.items():
            if needle in text.lower():
                return _unit(axis)
        return _unit(OTHER)

    monkeypatch.setattr(embeddings, "embed_query", embed_query)
    found = {name: product for name, (product, _axis) in products.items()}
    found["slugs"] = {c.name: c.slug for c in (laptops, batteries, tvs)}
    return found


def _titles(products) -> list[str]:
    return [p.title for p in products]


def test_battery_life_is_not_a_battery(shop_floor):
    outcome = search.search("quiet laptop with long battery life")
    assert outcome.parsed.category == shop_floor["slugs"]["Laptops & Notebook Computers"]
    assert set(_titles(outcome.products)) == {"Lenovo Quiet 14 Laptop", 'HP 15.6" FHD Laptop'}
    assert _titles(outcome.products)[0] == "Lenovo Quiet 14 Laptop"
    # Said alone, batteries are the head: a hard filter.
    assert set(_titles(search.search("batteries").products)) == {"Duracell AA Batteries 24 Pack",
                                                                 "Anker Power Bank 20000mAh"}


def test_watch_movies_on_a_big_screen_finds_screens_not_watches(shop_floor):
    outcome = search.search("something to watch movies on a big screen")
    assert outcome.parsed.category is None
    titles = _titles(outcome.products)
    assert "Apple Watch Series 9" not in titles[:3]
    assert titles[0] in {'Samsung 65" Class 4K UHD TV', 'TCL 40" Class 1080p FHD Smart TV',
                         'Insignia 32" Class 720p HD TV'}
    assert not any(chip.kind == "category" for chip in outcome.parsed.chips)


def test_tv_stand_is_not_a_tv_filter(shop_floor):
    outcome = search.search("tv stand")
    assert outcome.parsed.category is None and outcome.parsed.soft_categories == [shop_floor["slugs"]["TVs"]]
    assert _titles(outcome.products)[0] == 'Sanus TV Wall Mount for 42" - 90" TVs'


def test_a_soft_category_the_vector_agrees_with_becomes_the_filter(shop_floor):
    outcome = search.search("battery pack")  # "pack" is the head word, but the query means batteries
    assert outcome.parsed.category == shop_floor["slugs"]["Batteries"]
    assert {chip.label for chip in outcome.parsed.chips} == {"Category: Batteries"}
    assert set(_titles(outcome.products)) <= {"Duracell AA Batteries 24 Pack", "Anker Power Bank 20000mAh"}


def test_resolution_chip_lists_only_that_resolution(shop_floor, client):
    response = client.get(reverse("search:results"), {"q": "4k tv"})
    results = response.context["results"]
    assert _titles(results) == ['Samsung 65" Class 4K UHD TV']  # not 1080p/720p sets, not the mount
    assert results.exact and not results.notice  # a filtered listing, not "no exact matches"
    assert {chip.label for chip in results.chips} == {"Category: TVs", "Resolution: 4k"}


def test_size_chip_lists_only_that_size(shop_floor):
    outcome = search.search('27" monitor')
    assert set(_titles(outcome.products)) == {'Acer 27" Class FHD IPS Monitor', 'MSI 27" WQHD Gaming Monitor'}
    ranged = search.search("monitor 30 to 50 inch")
    assert set(_titles(ranged.products)) == {'Samsung 32" Class 4K UHD Monitor',
                                             'Samsung 49" Odyssey Curved Gaming Monitor'}


def test_brand_price_and_refresh_chips_filter_exactly(shop_floor):
    outcome = search.search("samsung monitor under $500")
    assert _titles(outcome.products) == ['Samsung 32" Class 4K UHD Monitor']
    fast = search.search("144hz monitor")
    assert set(_titles(fast.products)) == {'MSI 27" WQHD Gaming Monitor', 'Samsung 49" Odyssey Curved Gaming Monitor'}


def test_budget_chip_says_the_price_it_filters_at(shop_floor):
    outcome = search.search("cheap monitor")
    chip = next(c for c in outcome.parsed.chips if c.facet == "budget")
    limit = Decimal(chip.label.removeprefix("Budget: under $").replace(",", ""))
    assert outcome.products and all(p.price <= limit for p in outcome.products)
    assert 'Samsung 49" Odyssey Curved Gaming Monitor' not in _titles(outcome.products)


def test_attributes_are_stored_once_and_follow_edits(shop_floor):
    tv = shop_floor["tv1080"]
    row = ProductAttributes.objects.get(product=tv)
    assert (row.resolution, row.size_inches, row.refresh_hz) == ("1080p", Decimal("40"), 60)
    assert ProductAttributes.objects.get(product=shop_floor["mount"]).size_inches is None  # sizes it fits
    tv.title = 'TCL 43" Class 4K UHD Smart TV'
    tv.save()
    row.refresh_from_db()
    assert (row.resolution, row.size_inches) == ("4k", Decimal("43"))


def test_lawn_mower_is_not_sold_and_the_page_says_so(shop_floor, client):
    response = client.get(reverse("search:results"), {"q": "lawn mower"})
    results = response.context["results"]
    html = response.content.decode()
    assert results.not_found and list(results) == [] and not results.corrected_query
    assert "Showing results for" not in html and 'id="search-results"' not in html
    assert "Nothing close to “lawn mower” is sold here" in html
    assert "Popular in the shop (not matches for your search)" in html and results.suggestions
    assert results.nearest_categories and 'id="search-nearest-categories"' in html
    assert Event.objects.get(event_type="searched").properties["result_count"] == 0
    api = client.get("/api/search/", {"q": "lawn mower"}).json()
    assert api["not_found"] and api["results"] == [] and api["popular"] and api["nearest_categories"]


def test_a_correction_with_no_hits_is_never_shown(shop_floor):
    outcome = services.search("lenovo qiuet zzqxv")
    assert outcome.corrected_query == "" or outcome.exact



def _embed_as(monkeypatch, meanings: dict[str, np.ndarray]) -> None:
    """Queries containing a needle get its vector; the others the fixture's."""
    fallback = embeddings.embed_query

    @lru_cache(maxsize=64)
    def embed_query(text: str) -> np.ndarray:
        return next((vector for needle, vector in meanings.items() if needle in text.lower()), None) \
            if any(needle in text.lower() for needle in meanings) else fallback(text)

    monkeypatch.setattr(embeddings, "embed_query", embed_query)


def test_a_bare_category_query_puts_the_thing_before_what_goes_with_it(shop_floor, monkeypatch):
    # The most reviewed product of the category, and the nearest to the word "tv": a mounting service.
    service = make_product(shop_floor["tv4k"].category, title="Handy - TV Mounting Service", brand="Handy",
                           price=Decimal("99"), source_review_count=5000, features=["Professional installation"])
    ProductEmbedding.objects.update_or_create(product_id=service.pk, defaults={
        "vector": _unit(TV).tobytes(), "dim": DIM, "is_dirty": False})
    embeddings.reset_index()
    _embed_as(monkeypatch, {"television": _unit(TV)})
    titles = _titles(search.search("television").products)
    assert set(titles[:3]) == {'Samsung 65" Class 4K UHD TV', 'TCL 40" Class 1080p FHD Smart TV',
                               'Insignia 32" Class 720p HD TV'}
    assert titles[3] == "Handy - TV Mounting Service"  # still shown, after the TVs
    # Asked for by its own words, the service comes first.
    assert _titles(search.search("tv mounting service").products)[0] == "Handy - TV Mounting Service"


def test_a_head_word_the_vector_reads_otherwise_is_not_the_filter(shop_floor, monkeypatch):
    instruments = make_category("Musical Instruments")
    tablets = make_category("iPad & Tablets")
    piano = make_product(instruments, title="Casio Portable Keyboard 61 Keys", brand="Casio", source_review_count=900)
    magic = make_product(tablets, title="Apple Magic Keyboard for iPad Pro", brand="Apple", source_review_count=10)
    ipad = make_product(tablets, title="iPad Air 10.9-inch", brand="Apple", source_review_count=500)
    piano_axis = np.zeros(DIM, dtype=np.float32)
    piano_axis[7] = 1.0
    for product, vector in ((piano, piano_axis), (magic, _unit(OTHER, 0.1)), (ipad, _unit(OTHER))):
        ProductEmbedding.objects.update_or_create(product_id=product.pk, defaults={
            "vector": vector.tobytes(), "dim": DIM, "is_dirty": False})
    embeddings.reset_index()
    search.reset_caches()
    _embed_as(monkeypatch, {"ipad keyboard": _unit(OTHER, 0.1), "piano keyboard": piano_axis})

    outcome = search.search("ipad keyboard")
    assert outcome.parsed.category == tablets.slug
    assert [c.label for c in outcome.parsed.chips if c.kind == "category"] == ["Category: iPad & Tablets"]
    assert _titles(outcome.products)[0] == "Apple Magic Keyboard for iPad Pro"
    assert "Casio Portable Keyboard 61 Keys" not in _titles(outcome.products)
    # Where the vector agrees with the head word, the head stays the filter.
    outcome = search.search("piano keyboard")
    assert outcome.parsed.category == instruments.slug
    assert _titles(outcome.products) == ["Casio Portable Keyboard 61 Keys"]
