"""Recommendation rails on the storefront: home ("Recommended for you", "Because you viewed X"), product
("Frequently bought together", "Related products") and cart ("Complete your order")."""

import uuid
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from behavior import services as behavior
from recommend import engine, services
from search import embeddings
from search import services as search
from search.models import ProductEmbedding
from shop import services as shop
from shop.models import Cart

from .factories import make_category, make_product, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _model_dir(settings, tmp_path):
    settings.AISLE_MODEL_DIR = str(tmp_path)
    settings.AISLE_RECOMMEND_ALS_FACTORS = 8  # a tiny catalogue; keeps the fit instant
    engine.reset()
    yield
    engine.reset()


@pytest.fixture
def catalogue():
    audio = make_category("Audio")
    headphones = make_category("Headphones", parent=audio)
    cables = make_category("Cables", parent=audio)
    h = [make_product(headphones, title=f"Headphone {i}", brand="Sony") for i in range(4)]
    c = [make_product(cables, title=f"Cable {i}", brand="Anker") for i in range(4)]
    return {"h": h, "c": c, "headphones": headphones, "cables": cables}


def visitor(client) -> str:
    vid = uuid.uuid4().hex
    client.cookies["aisle_vid"] = vid
    return vid


def view(products, **shopper) -> None:
    for product in products:
        shop.record_product_view(product, **shopper)


def buy(products, **shopper) -> None:
    behavior.record_event("order_placed", properties={"products": [p.pk for p in products]}, **shopper)


def co_views(catalogue) -> None:
    """Other shoppers browse within one cluster: headphones together, cables together."""
    h, c = catalogue["h"], catalogue["c"]
    for n, group in enumerate([[h[0], h[1], h[2]], [h[0], h[1], h[3]], [c[0], c[1], c[2]], [c[0], c[1], c[3]]]):
        view(group, visitor_id=f"{n:032x}")


def rail(rails, key):
    return next((r for r in rails if r.key == key), None)


def ids(found) -> list[int]:
    return [item.product.pk for item in found.items] if found else []


def set_vectors(vectors: dict) -> None:
    for product, vector in vectors.items():
        array = np.asarray(vector, dtype=np.float32)
        array /= np.linalg.norm(array)
        ProductEmbedding.objects.update_or_create(product_id=product.pk, defaults={
            "vector": array.tobytes(), "dim": len(array), "is_dirty": False})
    embeddings.reset_index()


# --- home ---------------------------------------------------------------------------------


def test_for_you_rail_follows_a_new_view_on_the_next_request(client, catalogue):
    co_views(catalogue)
    services.train_collaborative()
    h, c = catalogue["h"], catalogue["c"]
    visitor(client)
    client.get(h[0].get_absolute_url())
    first = client.get(reverse("shop:home"))
    html = first.content.decode()
    assert 'data-rec-rail="for-you"' in html and "Recommended for you" in html
    assert "Because you viewed Headphone 0" in html
    assert "Because you viewed Cable 0" not in html
    for_you = rail(first.context["rails"], "for-you")
    assert ids(for_you)[0] == h[1].pk  # the item co-viewed with it most
    assert h[0].pk not in ids(for_you)  # what was just viewed is not recommended back

    client.get(c[0].get_absolute_url())
    second = client.get(reverse("shop:home"))
    html = second.content.decode()
    assert "Because you viewed Cable 0" in html  # within the same minute: the cache key moved on
    assert c[0].pk not in ids(rail(second.context["rails"], "for-you"))
    because = rail(second.context["rails"], "because-you-viewed")
    assert because.title == "Because you viewed Cable 0"
    assert ids(because)[0] == c[1].pk
    assert 'data-rec-rail="because-you-viewed"' in html and 'data-rec-position="1"' in html


def test_signed_in_shopper_never_gets_what_they_bought_for_you(client, catalogue):
    co_views(catalogue)
    h = catalogue["h"]
    user = make_user()
    buy([h[1]], user=user)
    services.train_collaborative()
    client.force_login(user)
    client.get(h[0].get_absolute_url())
    for_you = rail(client.get(reverse("shop:home")).context["rails"], "for-you")
    assert for_you.items
    assert h[1].pk not in ids(for_you)  # the strongest co-view, but already bought
    assert ids(for_you)[0] in {h[2].pk, h[3].pk}


def test_out_of_stock_products_are_left_out_of_every_rail(client, catalogue):
    co_views(catalogue)
    h, c = catalogue["h"], catalogue["c"]
    buy([h[0], h[1]], visitor_id="b" * 32)
    buy([h[0], c[2]], visitor_id="c" * 32)
    services.train_collaborative()
    h[1].stock = 0
    h[1].save()
    vid = visitor(client)
    client.get(h[0].get_absolute_url())
    home = client.get(reverse("shop:home")).context["rails"]
    assert all(h[1].pk not in ids(r) for r in home)
    product = services.product_rails(h[0].pk)
    assert all(h[1].pk not in ids(r) for r in product)
    assert ids(rail(product, "bought-together")) == [c[2].pk]
    assert all(h[1].pk not in ids(r) for r in services.cart_rails([h[0]]))
    assert rail(services.home_rails(visitor_id=vid), "for-you").items


def test_a_new_shopper_gets_trending_and_popular_in_category_rails_labelled_as_such(client, catalogue):
    co_views(catalogue)
    services.train_collaborative()
    visitor(client)
    response = client.get(reverse("shop:home"))
    rails = response.context["rails"]
    assert rail(rails, "for-you") is None and rail(rails, "because-you-viewed") is None  # nothing pretends
    h, c = catalogue["h"], catalogue["c"]
    headphones = rail(rails, f"popular-in-{catalogue['headphones'].pk}")
    cables = rail(rails, f"popular-in-{catalogue['cables'].pk}")
    assert headphones.title == "Popular in Headphones" and cables.title == "Popular in Cables"
    assert ids(headphones)[:2] == [h[0].pk, h[1].pk]  # two shoppers each, the others one
    assert ids(cables)[:2] == [c[0].pk, c[1].pk]
    assert {item.reason for item in headphones.items} == {"Popular in Headphones"}
    html = response.content.decode()
    assert "Popular in Headphones" in html and f'data-rec-rail="popular-in-{catalogue["cables"].pk}"' in html


def test_cold_start_uses_trending_products(catalogue, monkeypatch):
    trending = [catalogue["c"][3].pk, catalogue["h"][2].pk]
    monkeypatch.setattr(engine, "trending_ids", lambda limit=50: trending)
    found = rail(services.home_rails(visitor_id="d" * 32), "trending")
    assert found.title == "Trending now"
    assert ids(found) == trending
    assert {item.reason for item in found.items} == {"Trending now"}


def test_a_new_shop_with_no_events_still_gets_labelled_rails(client, catalogue):
    """No training, no events: the ratings stand in, and the rails still say what they are."""
    for n, product in enumerate(catalogue["h"]):
        product.rating_average, product.rating_count = 4.0 + n / 10, 10
        product.save()
    visitor(client)
    response = client.get(reverse("shop:home"))
    assert response.status_code == 200
    titles = [r.title for r in response.context["rails"]]
    assert titles and all(t.startswith(("Trending now", "Popular in", "Popular with shoppers")) for t in titles)


def test_browsed_category_popularity_explains_fillers(catalogue):
    co_views(catalogue)
    services.train_collaborative()
    vid = "e" * 32
    shop.record_listing_view(catalogue["cables"], page=1, result_count=4, filters={}, visitor_id=vid)
    for_you = rail(services.home_rails(visitor_id=vid), "for-you")
    assert for_you.items[0].reason == "Popular in Cables, which you browse"
    assert for_you.items[0].product.category_id == catalogue["cables"].pk


def test_searches_count_as_interest(catalogue):
    vid = "f" * 32
    search.search("cable 2", visitor_id=vid)
    for_you = rail(services.home_rails(visitor_id=vid), "for-you")
    assert for_you.items[0].product == catalogue["c"][2]
    assert for_you.items[0].reason == "Because you searched for “cable 2”"


# --- product and cart -----------------------------------------------------------------------


def test_bought_together_reflects_co_purchases(client, catalogue):
    h, c = catalogue["h"], catalogue["c"]
    buy([h[0], c[0]], visitor_id="1" * 32)
    buy([h[0], c[0], c[3]], visitor_id="2" * 32)
    buy([h[0], h[2]], visitor_id="3" * 32)
    services.train_collaborative()

    response = client.get(h[0].get_absolute_url())
    html = response.content.decode()
    together = rail(response.context["rails"], "bought-together")
    assert ids(together)[0] == c[0].pk
    assert set(ids(together)) == {c[0].pk, c[3].pk, h[2].pk}
    assert together.items[0].reason == "Often bought together"
    assert 'data-rec-rail="bought-together"' in html and "Frequently bought together" in html
    assert f'data-rec-product="{c[0].pk}"' in html and 'data-rec-reason="Often bought together"' in html

    cart = Cart.objects.create()
    shop.add_to_cart(cart, h[0], 1)
    session = client.session
    session[shop.CART_SESSION_KEY] = cart.pk
    session.save()
    response = client.get(reverse("shop:cart"))
    complete = rail(response.context["rails"], "complete-your-order")
    assert ids(complete)[0] == c[0].pk and h[0].pk not in ids(complete)
    assert complete.items[0].reason == "Often bought with Headphone 0"
    assert 'data-rec-rail="complete-your-order"' in response.content.decode()


def test_related_blends_co_views_and_content_and_covers_new_products(client, catalogue):
    co_views(catalogue)
    services.train_collaborative()
    h, c = catalogue["h"], catalogue["c"]
    new = make_product(catalogue["headphones"], title="Brand new headphone")  # nobody has seen it yet
    set_vectors({h[0]: [1, 0, 0], h[1]: [0.9, 0.1, 0], h[2]: [0.8, 0.3, 0], h[3]: [0.7, 0.2, 0.1],
                 new: [0.95, 0.05, 0.0], **{cable: [0, 0.1, 1] for cable in c}})
    related = rail(services.product_rails(h[0].pk), "related")
    assert ids(related)[0] == h[1].pk  # co-viewed and similar
    assert new.pk in ids(related)  # similar only: content covers the cold product
    assert {item.reason for item in related.items} >= {"Shoppers who viewed this also viewed", "Similar to this item"}
    # The new product's own page relates it by content alone.
    response = client.get(new.get_absolute_url())
    own = rail(response.context["rails"], "related")
    assert ids(own)[0] == h[0].pk and own.items[0].reason == "Similar to this item"
    assert all(pid in {p.pk for p in h} for pid in ids(own)[:4])  # the cables are far away


# --- safety -------------------------------------------------------------------------------


def test_titles_and_reasons_are_escaped(client, catalogue):
    nasty = make_product(catalogue["headphones"], title="<script>alert(1)</script> Phones")
    co_views(catalogue)
    view([nasty, catalogue["h"][0]], visitor_id="9" * 32)
    view([nasty, catalogue["h"][0]], visitor_id="8" * 32)
    services.train_collaborative()
    visitor(client)
    client.get(nasty.get_absolute_url())
    html = client.get(reverse("shop:home")).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "Because you viewed &lt;script&gt;alert(1)&lt;/script&gt; Phones" in html


def test_pages_render_without_rails_when_the_recommender_fails(client, catalogue, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("recommender down")

    monkeypatch.setattr(engine, "latest_event_id", broken)
    monkeypatch.setattr(engine, "bought_together", broken)
    visitor(client)
    home = client.get(reverse("shop:home"))
    assert home.status_code == 200 and "data-rec-rail" not in home.content.decode()
    product = client.get(catalogue["h"][0].get_absolute_url())
    assert product.status_code == 200 and 'data-rec-rail="bought-together"' not in product.content.decode()
    assert "Could not build the home recommendation rails" in caplog.text


def test_a_failing_component_leaves_the_others(catalogue, monkeypatch):
    co_views(catalogue)
    services.train_collaborative()

    def broken(*args, **kwargs):
        raise RuntimeError("index down")

    monkeypatch.setattr(engine, "content_neighbours", broken)
    related = rail(services.product_rails(catalogue["h"][0].pk), "related")
    assert ids(related)[0] == catalogue["h"][1].pk


# --- training and cost ----------------------------------------------------------------------


def test_training_command_saves_and_publishes_the_model(catalogue, settings):
    co_views(catalogue)
    call_command("train_recommender", "--no-progress")
    version = engine.current_version()
    assert version and (Path(settings.AISLE_MODEL_DIR) / "recommend" / f"collaborative-{version}.npz").is_file()
    model = engine.trained_model()
    assert model.als is not None and len(model.item_ids) == 8
    # A flushed cache: the version and the neighbours come back from the artifact on disk.
    from django.core.cache import cache

    cache.clear()
    engine.reset()
    assert engine.current_version() == version
    assert engine.neighbours("coview", [catalogue["h"][0].pk])[catalogue["h"][0].pk][0][0] == catalogue["h"][1].pk


def test_personal_home_page_stays_cheap(client, catalogue, django_assert_max_num_queries):
    co_views(catalogue)
    services.train_collaborative()
    user = make_user()
    client.force_login(user)
    client.get(catalogue["h"][0].get_absolute_url())
    client.get(reverse("shop:home"))  # computes and caches the plan
    with django_assert_max_num_queries(11):  # the page's own 9 + latest event id + the rails' products
        response = client.get(reverse("shop:home"))
    assert rail(response.context["rails"], "for-you").items


def test_complements_keep_to_accessories_unless_really_bought_together(client):
    """The demo's earphones case: one shopper's earbuds-and-guitar order is no reason to pair them;
    a battery (an accessory category of earbuds) is. Bought together in three orders, the guitar
    shows, and the reason says it is a different kind of product."""
    audio = make_category("Audio")
    earbuds = make_product(make_category("Headphones & Earbuds", parent=audio), title="Sony Earbuds")
    guitar = make_product(make_category("Musical Instruments", parent=audio), title="Acoustic Guitar")
    battery = make_product(make_category("Batteries"), title="AA Batteries")
    buy([earbuds, guitar], visitor_id="1" * 32)
    buy([earbuds, battery], visitor_id="2" * 32)
    services.train_collaborative()
    cart = Cart.objects.create()
    shop.add_to_cart(cart, earbuds, 1)
    session = client.session
    session[shop.CART_SESSION_KEY] = cart.pk
    session.save()
    complete = rail(client.get(reverse("shop:cart")).context["rails"], "complete-your-order")
    assert ids(complete) == [battery.pk]
    assert complete.items[0].reason == "Often bought with Sony Earbuds"
    assert guitar.pk not in ids(rail(services.product_rails(earbuds.pk), "bought-together"))

    for n in range(3, 6):
        buy([earbuds, guitar], visitor_id=str(n) * 32)
    services.train_collaborative()
    from django.core.cache import cache

    cache.clear()
    found = rail(services.product_rails(earbuds.pk), "bought-together")
    assert ids(found)[0] == guitar.pk
    assert found.items[0].reason == "Bought with Sony Earbuds in 4 orders, though a different kind of product"


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium is installed by `make test`")
@pytest.mark.django_db(transaction=True)
def test_first_view_changes_the_next_pages_rail_in_a_real_browser(live_server, browser, catalogue):
    """A new visitor sees labelled cold-start rails; clicking one (the beacon reports it) and coming
    back home shows a rail built from that view."""
    import re
    import time

    from behavior.models import Event

    co_views(catalogue)
    services.train_collaborative()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(live_server.url + "/")
    assert page.locator("h2", has_text="Popular in Headphones").count() == 1
    assert page.locator("h2", has_text="Because you viewed").count() == 0
    first = catalogue["h"][0]
    card = page.locator(f'#rail-popular-in-{catalogue["headphones"].pk} [data-rec-product="{first.pk}"]').first
    card.scroll_into_view_if_needed()
    card.click()
    page.wait_for_url(re.compile(re.escape(first.get_absolute_url()) + "$"))
    page.goto(live_server.url + "/")
    assert page.locator("h2", has_text=f"Because you viewed {first.title}").count() == 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not Event.objects.filter(event_type="rec_clicked").exists():
        page.wait_for_timeout(300)
    clicked = Event.objects.get(event_type="rec_clicked")
    assert clicked.product_id == first.pk and clicked.properties["rail"] == f"popular-in-{catalogue['headphones'].pk}"
    page.close()
