"""A shopper's whole path in headless Debian Chromium, driven by Playwright."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from shop.models import Order

from .factories import make_category, make_product, make_user

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is installed by `make test`"),
]


@pytest.fixture
def browser_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(20_000)
    return page


@pytest.mark.django_db(transaction=True)
def test_home_to_order_history(live_server, browser_page, tmp_path):
    page = browser_page
    category = make_category("Headphones")
    product = make_product(category, title="Quiet Comfort Headphones", brand="Bose", price=Decimal("199.00"),
                           stock=5, source_rating=Decimal("4.6"), source_review_count=120)
    make_user("ada", password="correct-horse-battery")

    page.goto(live_server.url + "/")
    page.locator(".product-card a", has_text="Quiet Comfort Headphones").first.click()
    page.wait_for_url(re.compile(re.escape(product.get_absolute_url()) + "$"))
    page.locator("#add-to-cart").click()

    page.goto(live_server.url + "/cart/")
    assert "Quiet Comfort Headphones" in page.content()
    page.locator("#checkout-button").click()

    # Checkout needs an account: log in, and the anonymous cart comes along.
    page.wait_for_url(re.compile(r"/account/login/"))
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "correct-horse-battery")
    page.locator("#login-button").click()  # not "the last form": the chat widget has a form too
    page.wait_for_url(re.compile(r"/checkout/"))

    page.fill("input[name=full_name]", "Ada Lovelace")
    page.fill("input[name=address_line1]", "1 Market Street")
    page.fill("input[name=city]", "Seattle")
    page.fill("input[name=postal_code]", "98101")
    page.select_option("select[name=country]", "US")
    page.fill("input[name=card_number]", "4242 4242 4242 4242")
    page.fill("input[name=card_expiry]", "12/39")
    page.fill("input[name=card_cvc]", "123")
    page.locator("#place-order").click()

    page.wait_for_url(re.compile(r"/account/orders/"))
    order = Order.objects.get()
    assert order.user.username == "ada" and order.status == Order.Status.PAID
    assert page.locator(".order-number").first.inner_text().strip().endswith(order.number)

    page.goto(live_server.url + "/account/")
    assert order.number in page.locator(".order-number").all_inner_texts()[0]
    screenshot = tmp_path / "order-history.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    product.refresh_from_db()
    assert product.stock == 4


@pytest.mark.django_db(transaction=True)
def test_beacon_reports_recommendations_and_time_on_page(live_server, browser_page):
    import time

    from behavior.models import Event

    page = browser_page
    category = make_category("Speakers")
    first = make_product(category, title="Bookshelf Speaker", brand="Acme")
    second = make_product(category, title="Party Speaker", brand="Acme")

    page.goto(live_server.url + first.get_absolute_url())
    rec = page.locator(f'[data-rec-product="{second.pk}"]')
    rec.scroll_into_view_if_needed()
    page.wait_for_timeout(700)  # let the observer see it on screen
    rec.click()
    page.wait_for_url(re.compile(re.escape(second.get_absolute_url()) + "$"))
    page.goto(live_server.url + "/")  # leaving the second product page reports its dwell time

    deadline = time.monotonic() + 15
    wanted = {("rec_shown", second.pk), ("rec_clicked", second.pk), ("dwell", first.pk), ("dwell", second.pk)}
    while time.monotonic() < deadline:
        seen = set(Event.objects.filter(source="client").values_list("event_type", "product_id"))
        if wanted <= seen:
            break
        page.wait_for_timeout(300)
    client_events = list(Event.objects.filter(source="client"))
    assert wanted <= {(e.event_type, e.product_id) for e in client_events}
    clicked = next(e for e in client_events if e.event_type == "rec_clicked")
    assert clicked.properties["rail"] == "more-in-category" and clicked.properties["position"] == 1
    assert all(e.properties["ms"] > 0 for e in client_events if e.event_type == "dwell")
    # Each browser event is stored once.
    assert len({e.client_event_id for e in client_events}) == len(client_events)
