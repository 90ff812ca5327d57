"""Storefront pages: rendering, filters, cart, checkout, account, auth and reviews, through the test client."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from search import signals as search_signals
from shop import services, signals
from shop.models import Cart, CartItem, CustomerProfile, Order, Product, Review
from tests.factories import GOOD_ADDRESS, GOOD_CARD, make_category, make_product, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass-123"
CHECKOUT_DATA = {
    "email": "ada@example.com",
    **GOOD_ADDRESS,
    "card_number": "4242 4242 4242 4242",
    "card_expiry": "12/99",
    "card_cvc": "123",
}


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def titles(response, key: str = "products") -> list[str]:
    return [product.title for product in response.context[key]]


def cart_of(user) -> Cart:
    return Cart.objects.get(user=user)


def place_order_for(user, product: Product, **extra) -> Order:
    cart, _ = Cart.objects.get_or_create(user=user)
    services.add_to_cart(cart, product, 1)
    return services.place_order(cart=cart, email=user.email, address=GOOD_ADDRESS, card=GOOD_CARD, user=user, **extra)


@pytest.fixture
def shopper():
    return make_user("ada", password=PASSWORD)


@pytest.fixture
def signed_in(client, shopper):
    client.force_login(shopper)
    return client


# --- Home, category, search --------------------------------------------------------------


def test_home_shows_categories_top_rated_and_deals(client):
    kitchen = make_category("Kitchen")
    rated = make_product(kitchen, title="Chef Knife", source_rating=Decimal("4.80"), source_review_count=40)
    deal = make_product(kitchen, title="Cast Iron Pan", price=Decimal("30.00"), compare_at_price=Decimal("40.00"))
    plain = make_product(kitchen, title="Plain Spoon")

    response = client.get(reverse("shop:home"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Kitchen" in content
    assert "Top rated" in content and "Deals" in content
    assert list(response.context["top_rated"]) == [rated]
    assert list(response.context["deals"]) == [deal]
    assert plain.title not in content
    assert "−25%" in content  # the deal badge
    assert 'class="product-card"' in content and deal.get_absolute_url() in content


def test_category_lists_category_and_descendants_only(client):
    audio = make_category("Audio")
    headphones = make_category("Headphones", parent=audio)
    garden = make_category("Garden")
    make_product(audio, title="Speaker")
    make_product(headphones, title="Earbuds")
    make_product(garden, title="Rake")
    make_product(audio, title="Retired Speaker", is_active=False)

    response = client.get(audio.get_absolute_url())

    assert response.status_code == 200
    assert sorted(titles(response)) == ["Earbuds", "Speaker"]
    assert "Headphones" in response.content.decode()  # subcategory chip


def test_category_filters_by_price_brand_and_stock(client):
    cat = make_category()
    make_product(cat, title="Cheap Acme", brand="Acme", price=Decimal("5.00"))
    make_product(cat, title="Mid Acme", brand="Acme", price=Decimal("50.00"))
    make_product(cat, title="Mid Zeta", brand="Zeta", price=Decimal("55.00"))
    make_product(cat, title="Mid Acme Sold Out", brand="Acme", price=Decimal("52.00"), stock=0)
    make_product(cat, title="Pricey Acme", brand="Acme", price=Decimal("500.00"))
    url = cat.get_absolute_url()

    response = client.get(url, {"min_price": "10", "max_price": "100", "brand": "Acme", "in_stock": "1"})
    assert response.status_code == 200
    assert titles(response) == ["Mid Acme"]

    response = client.get(url, {"brand": ["Acme", "Zeta"], "max_price": "60"})
    assert sorted(titles(response)) == ["Cheap Acme", "Mid Acme", "Mid Acme Sold Out", "Mid Zeta"]

    # The brand facets come from the category, with counts, and the ticked brand stays ticked.
    response = client.get(url, {"brand": "Zeta"})
    assert dict(response.context["brand_facets"]) == {"Acme": 4, "Zeta": 1}
    assert 'value="Zeta" class="js-autosubmit" checked' in response.content.decode()


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("price_asc", ["B", "C", "A"]),
        ("price_desc", ["A", "C", "B"]),
        ("title", ["A", "B", "C"]),
    ],
)
def test_category_sorting(client, sort, expected):
    cat = make_category()
    make_product(cat, title="A", price=Decimal("30.00"))
    make_product(cat, title="B", price=Decimal("10.00"))
    make_product(cat, title="C", price=Decimal("20.00"))

    response = client.get(cat.get_absolute_url(), {"sort": sort})

    assert response.status_code == 200
    assert titles(response) == expected


def test_category_rating_sort_puts_unrated_products_last(client):
    cat = make_category()
    make_product(cat, title="Unrated")
    make_product(cat, title="Good", source_rating=Decimal("4.10"), source_review_count=3)
    make_product(cat, title="Best", source_rating=Decimal("4.90"), source_review_count=2)

    response = client.get(cat.get_absolute_url(), {"sort": "rating"})

    assert titles(response) == ["Best", "Good", "Unrated"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"min_price": "abc"}, "Minimum price must be a number"),
        ({"min_price": "-5"}, "greater than or equal to 0"),
        ({"max_price": "NaN"}, "Maximum price must be a number"),
        ({"sort": "bogus"}, "is not a way we can sort products"),
        ({"min_price": "50", "max_price": "10"}, "must not be below the minimum price"),
    ],
)
def test_bad_filter_values_give_a_message_not_a_500(client, query, message):
    cat = make_category()
    make_product(cat, title="Still Listed", price=Decimal("60.00"))

    response = client.get(cat.get_absolute_url(), query)

    assert response.status_code == 400
    content = response.content.decode()
    assert "Some filters could not be applied" in content
    assert message in content
    assert titles(response) == ["Still Listed"]  # the bad filter is ignored, the page still lists


def test_category_paginates_24_and_keeps_filters_in_links(client):
    cat = make_category()
    for n in range(30):
        make_product(cat, title=f"Item {n:02d}", brand="Acme")

    first = client.get(cat.get_absolute_url(), {"brand": "Acme", "sort": "title"})
    second = client.get(cat.get_absolute_url(), {"brand": "Acme", "sort": "title", "page": "2"})
    garbage = client.get(cat.get_absolute_url(), {"page": "abc"})

    assert len(first.context["products"]) == 24
    assert titles(second) == [f"Item {n:02d}" for n in range(24, 30)]
    assert "?brand=Acme&amp;sort=title&amp;page=2" in first.content.decode()
    assert garbage.status_code == 200 and len(garbage.context["products"]) == 24


def test_unknown_category_is_404(client):
    assert client.get(reverse("shop:category", args=["no-such-thing"])).status_code == 404


def test_search_finds_matches_and_sends_signal(client):
    cat = make_category()
    make_product(cat, title="Noise Cancelling Headphones", brand="Sonic")
    make_product(cat, title="Garden Hose")
    received = []

    def receiver(sender, query, result_count, **kwargs):
        received.append((query, result_count))

    search_signals.searched.connect(receiver)
    try:
        response = client.get(reverse("search:results"), {"q": "headphones"})
    finally:
        search_signals.searched.disconnect(receiver)

    assert response.status_code == 200
    assert titles(response, "results") == ["Noise Cancelling Headphones"]
    assert received == [("headphones", 1)]


@pytest.mark.parametrize(("q", "text"), [("", "What are you looking for?"), ("zzzz", "We couldn’t find anything")])
def test_search_empty_states(client, q, text):
    make_category("Toys")
    response = client.get(reverse("search:results"), {"q": q})
    assert response.status_code == 200
    assert text in response.content.decode()
    assert response.context["results"] == []


# --- Product page and reviews --------------------------------------------------------------


def test_product_page_shows_details_and_only_approved_reviews(client, shopper):
    product = make_product(
        title="Trail Runner", brand="Stride", price=Decimal("80.00"), compare_at_price=Decimal("100.00"),
        discount_label="Spring sale", features=["Grippy sole", "Breathable mesh"], description="Light and fast.",
        stock=3, source_rating=Decimal("4.20"), source_review_count=12,
    )
    now = timezone.now()
    Review.objects.create(product=product, author_name="Kim", rating=5, title="Love them", text="Great shoes.",
                          status=Review.Status.APPROVED, created_at=now, is_simulated=True)
    Review.objects.create(product=product, author_name="Lee", rating=1, title="Awaiting check", text="Hmm hmm.",
                          status=Review.Status.PENDING, created_at=now)

    response = client.get(product.get_absolute_url())

    assert response.status_code == 200
    content = response.content.decode()
    for text in ("Trail Runner", "Stride", "$80.00", "Spring sale", "Grippy sole", "Light and fast.",
                 "Only 3 left", "Love them", "Simulated", 'id="add-to-cart"'):
        assert text in content, text
    assert '<s class="price-compare"' in content and "$100.00" in content
    assert "Awaiting check" not in content
    assert "Sign in</a> to share your thoughts" in content  # anonymous: no review form


def test_product_without_price_cannot_be_added(client):
    product = make_product(price=None)
    content = client.get(product.get_absolute_url()).content.decode()
    assert "Available in warehouses only" in content
    assert 'id="add-to-cart"' not in content


def test_out_of_stock_product_has_no_add_button(client):
    content = client.get(make_product(stock=0).get_absolute_url()).content.decode()
    assert "Out of stock" in content
    assert 'id="add-to-cart"' not in content


def test_inactive_or_unknown_product_is_404(client):
    product = make_product(is_active=False)
    assert client.get(product.get_absolute_url()).status_code == 404
    assert client.get(reverse("shop:product", args=["nope"])).status_code == 404


def test_product_get_sends_product_viewed(signed_in, shopper):
    product = make_product()
    received = []

    def receiver(sender, product, user, visitor_id, **kwargs):
        received.append((product, user, visitor_id))

    signals.product_viewed.connect(receiver)
    try:
        signed_in.get(product.get_absolute_url())
    finally:
        signals.product_viewed.disconnect(receiver)

    assert len(received) == 1
    viewed, user, visitor_id = received[0]
    assert viewed == product and user == shopper
    assert len(visitor_id) == 32 and visitor_id == signed_in.cookies["aisle_vid"].value


def test_review_post_creates_pending_review(signed_in, shopper):
    product = make_product()
    url = reverse("shop:review", args=[product.slug])

    response = signed_in.post(url, {"rating": "4", "title": "Solid", "text": "Does what it says on the tin."})

    assert response.status_code == 302
    review = Review.objects.get(product=product)
    assert (review.user, review.rating, review.status) == (shopper, 4, Review.Status.PENDING)
    assert "Thanks — your review will appear after moderation" in messages_of(response)
    page = signed_in.get(product.get_absolute_url()).content.decode()
    assert "Solid" not in page  # pending reviews are not public
    assert "already reviewed this product" in page

    again = signed_in.post(url, {"rating": "5", "title": "Again", "text": "Trying to review twice."})
    assert again.status_code == 400
    assert Review.objects.filter(product=product).count() == 1


@pytest.mark.parametrize("rating", ["0", "6", "abc", ""])
def test_review_with_bad_rating_is_rejected(signed_in, rating):
    product = make_product()
    response = signed_in.post(reverse("shop:review", args=[product.slug]),
                              {"rating": rating, "title": "Title", "text": "Long enough text here."})
    assert response.status_code == 400
    assert "1 to 5" in response.content.decode()
    assert not Review.objects.exists()


def test_review_needs_sign_in(client):
    product = make_product()
    response = client.post(reverse("shop:review", args=[product.slug]),
                           {"rating": "5", "title": "Hi", "text": "Anonymous attempt."})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("shop:login"))
    assert not Review.objects.exists()


def test_review_posting_is_rate_limited(signed_in, settings):
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "review": 2}
    product = make_product()
    url = reverse("shop:review", args=[product.slug])
    codes = [signed_in.post(url, {"rating": "9"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


def test_user_text_is_escaped(client):
    product = make_product()
    Review.objects.create(product=product, author_name="<b>bold</b>", rating=3, title="<script>alert(1)</script>",
                          text="fine text", status=Review.Status.APPROVED, created_at=timezone.now())

    content = client.get(product.get_absolute_url()).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<script>alert(1)</script>" not in content
    assert "&lt;b&gt;bold&lt;/b&gt;" in content

    search = client.get(reverse("search:results"), {"q": "<script>alert(2)</script>"}).content.decode()
    assert "<script>alert(2)</script>" not in search
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in search


# --- Cart ------------------------------------------------------------------------------


def test_add_to_cart_then_cart_page_shows_totals(client):
    product = make_product(title="Desk Lamp", price=Decimal("20.00"))

    response = client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "2"})

    assert response.status_code == 302 and response["Location"] == reverse("shop:cart")
    item = CartItem.objects.get()
    assert (item.product, item.quantity) == (product, 2)
    page = client.get(reverse("shop:cart"))
    content = page.content.decode()
    assert page.status_code == 200
    assert "Desk Lamp" in content and 'id="checkout-button"' in content
    totals = page.context["totals"]
    assert (totals.subtotal, totals.shipping, totals.total) == (Decimal("40.00"), Decimal("9.99"), Decimal("49.99"))
    assert "$49.99" in content
    assert page.context["cart_item_count"] == 2


def test_add_to_cart_twice_adds_up_and_free_shipping(client):
    product = make_product(price=Decimal("40.00"))
    url = reverse("shop:cart_add", args=[product.pk])
    client.post(url, {"quantity": "1"})
    client.post(url)  # no quantity means one

    totals = client.get(reverse("shop:cart")).context["totals"]
    assert CartItem.objects.get().quantity == 2
    assert (totals.shipping, totals.total) == (Decimal("0.00"), Decimal("80.00"))


@pytest.mark.parametrize("quantity", ["0", "-1", "999", "abc", "", "1.5"])
def test_add_with_bad_quantity_changes_nothing(client, quantity):
    product = make_product()

    response = client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": quantity})

    assert response.status_code == 302 and response["Location"] == product.get_absolute_url()
    assert messages_of(response), "a message explains the refusal"
    assert not CartItem.objects.exists()
    assert not Cart.objects.exists()  # not even an empty cart is left behind


def test_add_refusal_message_is_shown_on_the_page(client):
    product = make_product()
    response = client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "999"}, follow=True)
    assert response.status_code == 200
    assert "at most 20" in response.content.decode()


def test_add_more_than_stock_or_unsellable_gives_message(client):
    scarce = make_product(title="Scarce", stock=1)
    unsellable = make_product(title="Warehouse Only", price=None)

    too_many = client.post(reverse("shop:cart_add", args=[scarce.pk]), {"quantity": "2"})
    not_sold = client.post(reverse("shop:cart_add", args=[unsellable.pk]), {"quantity": "1"})

    assert any("Only 1" in m for m in messages_of(too_many))
    assert any("not sold online" in m for m in messages_of(not_sold))
    assert not CartItem.objects.exists()


def test_add_unknown_product_is_404_and_get_is_405(client):
    assert client.post(reverse("shop:cart_add", args=[999999]), {"quantity": "1"}).status_code == 404
    assert client.get(reverse("shop:cart_add", args=[make_product().pk])).status_code == 405


def test_update_and_remove_cart_lines(signed_in, shopper):
    first, second = make_product(title="First"), make_product(title="Second")
    cart = Cart.objects.create(user=shopper)
    line1 = services.add_to_cart(cart, first, 1)
    line2 = services.add_to_cart(cart, second, 1)

    response = signed_in.post(reverse("shop:cart_update", args=[line1.pk]), {"quantity": "3"})
    assert response.status_code == 302
    line1.refresh_from_db()
    assert line1.quantity == 3

    signed_in.post(reverse("shop:cart_update", args=[line1.pk]), {"quantity": "0"})
    assert not CartItem.objects.filter(pk=line1.pk).exists()

    signed_in.post(reverse("shop:cart_update", args=[line2.pk]), {"remove": "1"})
    assert not cart.items.exists()


@pytest.mark.parametrize("quantity", ["-1", "999", "abc", ""])
def test_update_with_bad_quantity_changes_nothing(signed_in, shopper, quantity):
    cart = Cart.objects.create(user=shopper)
    line = services.add_to_cart(cart, make_product(), 2)

    response = signed_in.post(reverse("shop:cart_update", args=[line.pk]), {"quantity": quantity})

    assert response.status_code == 302
    assert messages_of(response)
    line.refresh_from_db()
    assert line.quantity == 2


def test_update_beyond_stock_gives_message(signed_in, shopper):
    cart = Cart.objects.create(user=shopper)
    line = services.add_to_cart(cart, make_product(stock=3), 1)
    response = signed_in.post(reverse("shop:cart_update", args=[line.pk]), {"quantity": "5"})
    assert any("Only 3" in m for m in messages_of(response))
    line.refresh_from_db()
    assert line.quantity == 1


def test_cannot_touch_another_carts_line(signed_in):
    other_cart = Cart.objects.create(user=make_user())
    line = services.add_to_cart(other_cart, make_product(), 2)

    update = signed_in.post(reverse("shop:cart_update", args=[line.pk]), {"quantity": "5"})
    remove = signed_in.post(reverse("shop:cart_update", args=[line.pk]), {"remove": "1"})
    unknown = signed_in.post(reverse("shop:cart_update", args=[987654]), {"quantity": "1"})

    for response in (update, remove, unknown):
        assert response.status_code == 302
        assert "That item is no longer in your cart." in messages_of(response)
    line.refresh_from_db()
    assert line.quantity == 2


def test_empty_cart_page(client):
    response = client.get(reverse("shop:cart"))
    assert response.status_code == 200
    assert "Your cart is empty" in response.content.decode()
    assert 'id="checkout-button"' not in response.content.decode()


# --- Checkout ----------------------------------------------------------------------------


def test_checkout_requires_login(client):
    response = client.get(reverse("shop:checkout"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('shop:login')}?next={reverse('shop:checkout')}"


def test_checkout_form_is_prefilled_and_explains_test_cards(signed_in, shopper):
    services.add_to_cart(Cart.objects.create(user=shopper), make_product(), 1)
    response = signed_in.get(reverse("shop:checkout"))
    content = response.content.decode()
    assert response.status_code == 200
    assert f'value="{shopper.email}"' in content
    assert "4242 4242 4242 4242" in content and "4000 0000 0000 0002" in content
    assert 'id="place-order"' in content
    for name in ("full_name", "address_line1", "city", "postal_code", "country", "phone",
                 "card_number", "card_expiry", "card_cvc"):
        assert f'name="{name}"' in content


def test_checkout_with_empty_cart_redirects_to_cart(signed_in):
    response = signed_in.get(reverse("shop:checkout"))
    assert response.status_code == 302 and response["Location"] == reverse("shop:cart")


def test_checkout_happy_path_creates_paid_order(signed_in, shopper):
    product = make_product(price=Decimal("25.00"), stock=5)
    signed_in.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "2"})

    response = signed_in.post(reverse("shop:checkout"), CHECKOUT_DATA)

    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == order.get_absolute_url()
    assert (order.user, order.status, order.total) == (shopper, Order.Status.PAID, Decimal("59.99"))
    assert order.city == "Seattle" and order.email == "ada@example.com"
    product.refresh_from_db()
    assert product.stock == 3
    assert not cart_of(shopper).items.exists()
    assert any(order.number in m for m in messages_of(response))


def test_declined_card_gives_400_and_changes_nothing(signed_in, shopper):
    product = make_product(stock=5)
    services.add_to_cart(Cart.objects.create(user=shopper), product, 2)

    response = signed_in.post(reverse("shop:checkout"), {**CHECKOUT_DATA, "card_number": "4000 0000 0000 0002"})

    assert response.status_code == 400
    assert "Your card was declined." in response.content.decode()
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 5
    assert cart_of(shopper).items.get().quantity == 2
    assert 'value="4000 0000 0000 0002"' not in response.content.decode()  # card data is not echoed back


def test_checkout_out_of_stock_shows_message(signed_in, shopper):
    product = make_product(title="Last One", stock=2)
    services.add_to_cart(Cart.objects.create(user=shopper), product, 2)
    Product.objects.filter(pk=product.pk).update(stock=0)  # sold elsewhere meanwhile

    response = signed_in.post(reverse("shop:checkout"), CHECKOUT_DATA)

    assert response.status_code == 400
    assert "out of stock" in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_posts_are_rate_limited(signed_in, settings):
    settings.AISLE_PAGE_RATE_LIMITS = {**settings.AISLE_PAGE_RATE_LIMITS, "checkout": 1}
    codes = [signed_in.post(reverse("shop:checkout"), {"email": "bad"}).status_code for _ in range(2)]
    assert codes == [400, 429]


def test_checkout_invalid_fields_show_errors(signed_in, shopper):
    services.add_to_cart(Cart.objects.create(user=shopper), make_product(), 1)
    data = {**CHECKOUT_DATA, "postal_code": "ABC", "card_number": "1234", "card_expiry": "13/30", "country": "ZZ"}

    response = signed_in.post(reverse("shop:checkout"), data)

    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) >= {"card_number", "card_expiry", "country"}
    assert "Enter a valid card number." in response.content.decode()
    assert not Order.objects.exists()


# --- Account, orders, auth ----------------------------------------------------------------


def test_order_history_lists_only_own_orders(signed_in, shopper):
    mine = place_order_for(shopper, make_product())
    simulated = place_order_for(shopper, make_product(), simulated=True)
    theirs = place_order_for(make_user(), make_product())

    response = signed_in.get(reverse("shop:account"))

    content = response.content.decode()
    assert response.status_code == 200
    assert {order.number for order in response.context["orders"]} == {mine.number, simulated.number}
    assert mine.number in content and theirs.number not in content
    assert 'class="order-number"' in content and "Simulated" in content


def test_account_requires_login(client):
    response = client.get(reverse("shop:account"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("shop:login"))


def test_order_detail_shows_items_totals_and_timeline(signed_in, shopper):
    order = place_order_for(shopper, make_product(title="Kettle", price=Decimal("30.00")))
    services.change_order_status(order, Order.Status.SHIPPED)
    order.refresh_from_db()

    response = signed_in.get(order.get_absolute_url())

    content = response.content.decode()
    assert response.status_code == 200
    for text in (order.number, "Kettle", "$39.99", "Seattle", "United States", order.tracking_number,
                 "Placed", "Paid", "Shipped", "Card ending 4242"):
        assert text in content, text
    assert 'class="order-number"' in content


def test_another_users_order_is_404(signed_in):
    theirs = place_order_for(make_user(), make_product())
    assert signed_in.get(theirs.get_absolute_url()).status_code == 404
    assert signed_in.get(reverse("shop:order_detail", args=["NOPE1234"])).status_code == 404


def test_signup_creates_shopper_logs_in_and_merges_cart(client):
    product = make_product()
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "2"})

    response = client.post(reverse("shop:signup"), {
        "username": "grace", "email": "grace@example.com",
        "password1": "Cobol-is-2-fun!", "password2": "Cobol-is-2-fun!",
    })

    assert response.status_code == 302 and response["Location"] == reverse("shop:account")
    user = get_user_model().objects.get(username="grace")
    assert user.email == "grace@example.com"
    assert CustomerProfile.objects.filter(user=user, is_simulated=False).exists()
    assert int(client.session["_auth_user_id"]) == user.pk
    assert cart_of(user).items.get().quantity == 2


def test_signup_rejects_taken_username_and_mismatched_passwords(client, shopper):
    response = client.post(reverse("shop:signup"), {
        "username": shopper.username, "email": "x@example.com", "password1": "Cobol-is-2-fun!", "password2": "nope",
    })
    assert response.status_code == 400
    assert {"username", "password2"} <= set(response.context["form"].errors)
    assert get_user_model().objects.count() == 1


def test_login_merges_anonymous_cart(client, shopper):
    product = make_product()
    client.post(reverse("shop:cart_add", args=[product.pk]), {"quantity": "3"})
    anonymous_cart = Cart.objects.get(user__isnull=True)

    response = client.post(reverse("shop:login"), {"username": "ada", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == reverse("shop:account")
    assert cart_of(shopper).items.get().quantity == 3
    assert not Cart.objects.filter(pk=anonymous_cart.pk).exists()
    assert client.get(reverse("shop:cart")).context["cart_item_count"] == 3


def test_login_with_wrong_password_and_next(client, shopper):
    bad = client.post(reverse("shop:login"), {"username": "ada", "password": "wrong"})
    assert bad.status_code == 200 and "_auth_user_id" not in client.session
    assert "Please enter a correct username and password" in bad.content.decode()

    good = client.post(reverse("shop:login"), {"username": "ada", "password": PASSWORD,
                                               "next": reverse("shop:checkout")})
    assert good["Location"] == reverse("shop:checkout")


def test_logout_is_post_only(signed_in):
    assert signed_in.get(reverse("shop:logout")).status_code == 405
    response = signed_in.post(reverse("shop:logout"))
    assert response.status_code == 302 and "_auth_user_id" not in signed_in.session


def test_pages_show_header_and_base_blocks(signed_in):
    outdoors = make_category("Outdoors")
    content = signed_in.get(reverse("shop:cart")).content.decode()  # a page that lists no categories itself
    assert f'<a href="{outdoors.get_absolute_url()}">Outdoors</a>' in content  # category nav
    assert 'id="cart-count"' in content and 'name="q"' in content
    assert "aisle.css" in content and "csrfmiddlewaretoken" in content  # logout form
