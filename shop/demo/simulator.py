"""A seeded, time-ordered simulation of shoppers on the imported catalogue.

Phases (each with its own progress bar):
1. shoppers: `sim-shopper-001`... with unusable passwords, simulated profiles and 1-3
   sub-category tastes;
2. sessions, in time order over the last `days` days: searches built from category words,
   category listings (browsing a taste), product views weighted to the shopper's tastes and to
   product popularity, cart adds, some cart removals, and checkouts through the shop services:
   each checkout starts (`record_checkout_start`), a share is abandoned, the rest are placed
   (stock is respected: lines whose stock ran out are dropped, and an order that cannot be
   placed is skipped). Every shopper browses from one browser: a stable visitor id of 32 hex
   characters derived from the seed and the shopper's number, shared by all their sessions;
3. fulfilment: every order moves on by its age (paid -> shipped -> delivered, a few
   cancelled or refunded), stamped with past times;
4. reviews: a share of delivered items is reviewed after delivery; stars are drawn around
   the product's source rating and the text follows the stars (see texts.py);
5. review history: reviews by past customers (no account) over the last year, about
   0.4 x sqrt(the product's real review count) per product (at most 40), so the sentiment
   dashboards have a year of history; and, in the last `INCIDENT_DAYS` days, a "bad batch" of a few
   popular products: a burst of 1-2 star reviews about one aspect, which the sentiment alerts
   should catch. It draws from its own RNG, so phases 1-4 are the same with or without it.

Everything goes through shop.services (or, for searches, the `search_requested` signal, which the
search app answers: shop imports no other app), so the behaviour app records its events as for real
shoppers, with `simulated=True` and the simulated time. Everything is marked simulated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from shop import services, signals
from shop.models import Cart, CartItem, CustomerProfile, Order, OrderItem, Product, Review
from shop.payments import CardDetails

from . import texts


def _search(query: str, **context) -> list[Product]:
    """The products the storefront's search finds (the search app answers the signal and records the search);
    without a search app, the shop's own keyword filter (nothing recorded)."""
    for _receiver, found in signals.search_requested.send(sender=Product, query=query, simulated=True, **context):
        if found is not None:
            return list(found)
    return list(services.filter_products(services.ProductFilters(query=query))[:48])

USERNAME_PREFIX = "sim-shopper-"
HISTORY_DAYS = 365
HISTORY_MAX_PER_PRODUCT = 40
INCIDENT_PRODUCTS = 2
INCIDENT_REVIEWS = 20
INCIDENT_BASELINE_REVIEWS = 24
INCIDENT_DAYS = 12
TEST_CARD = CardDetails(number="4242424242424242", expiry_month=12, expiry_year=2099, cvc="123")

LAST_NAMES = [
    "Kim", "Smith", "Garcia", "Nguyen", "Patel", "Johnson", "Brown", "Lee", "Martin", "Rossi", "Müller", "Silva",
    "Walker", "Young", "Hughes", "Okafor", "Tanaka", "Dubois", "Novak", "Larsen", "Ahmed", "Cohen", "Fischer",
    "Evans", "Reyes", "Wright", "Bianchi", "Schmidt", "Kowalski", "O'Brien",
]
STREETS = ["Main Street", "Oak Avenue", "Pine Street", "Maple Drive", "Cedar Lane", "Elm Road", "Market Street",
           "Park Avenue", "Lake Street", "Hillcrest Road", "Sunset Boulevard", "River Road"]
# (city, postal code, country); validated by shop.validators at checkout.
PLACES = [
    ("Seattle", "98101", "US"), ("Portland", "97205", "US"), ("Austin", "78701", "US"), ("Denver", "80202", "US"),
    ("Chicago", "60601", "US"), ("Boston", "02108", "US"), ("New York", "10001", "US"), ("Atlanta", "30303", "US"),
    ("Miami", "33131", "US"), ("Phoenix", "85004", "US"), ("Minneapolis", "55401", "US"),
    ("San Diego", "92101", "US"), ("Toronto", "M5V 2T6", "CA"), ("Vancouver", "V6B 1A1", "CA"),
    ("London", "SW1A 1AA", "GB"), ("Manchester", "M1 1AE", "GB"),
]
CARRIERS = ["UPS", "FedEx", "USPS", "DHL"]
CHECKOUT_ABANDON_RATE = 0.15  # checkouts started but not placed (the cart stays for a later session)
CART_REMOVAL_RATE = 0.1  # sessions that end by taking something out of a non-empty cart
LISTING_SORTS = ["relevance", "relevance", "relevance", "price_asc", "price_desc", "rating", "newest"]
# Relative traffic by hour of day (UTC) and by weekday (Monday first).
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 8, 8, 6, 5, 5, 6, 8, 10, 11, 10, 7, 3]
WEEKDAY_FACTOR = [0.9, 0.9, 0.95, 0.95, 1.0, 1.25, 1.3]

# What people type to find each sub-category (every word must match a product field). The first
# term of each list also matches the category name, so "<brand> <first term>" always finds something.
SEARCH_TERMS = {
    "Laptops & Notebook Computers": ["laptop", "notebook", "macbook", "thinkpad", "chromebook", "touchscreen laptop"],
    "Desktop Computers & PCs": ["desktop", "all-in-one", "imac", "desktop pc"],
    "Mini PC Desktop Computer & PCs": ["mini pc", "mac mini"],
    "Monitors": ["monitor", "curved monitor", "4k monitor", "gaming monitor"],
    "iPad & Tablets": ["tablet", "ipad", "galaxy tab"],
    "Hard Drives, SSD & Storage": ["storage", "ssd", "hard drive", "portable ssd"],
    "Video Games & Consoles": ["console", "xbox", "nintendo", "gift card", "arcade"],
    "Gaming Desktop Computer & PCs": ["gaming desktop", "gaming pc", "rtx 4070"],
    "Gaming Laptops & Notebook Computers": ["gaming laptop", "rtx laptop", "omen"],
    "TVs": ["tv", "4k tv", "oled tv", "qled", "tv mount", "65 tv"],
    "Soundbars & Home Theater": ["soundbar", "sound bar", "home theater", "subwoofer"],
    "Projectors": ["projector", "4k projector"],
    "Streaming Devices": ["streaming", "chromecast"],
    "Headphones & Earbuds": ["headphones", "earbuds", "airpods", "noise cancelling", "beats"],
    "Speakers & Voice Assistants": ["speaker", "bluetooth speaker", "sonos", "smart speaker"],
    "Musical Instruments": ["instrument", "piano", "digital piano", "karaoke", "keyboard", "guitar"],
    "Home Security Systems & Cameras": ["security camera", "doorbell", "nvr", "security system", "ring camera"],
    "Smart Home & Safety": ["smart home", "smart bulb", "thermostat", "smart lock", "smoke", "smart plug", "dimmer"],
    "Routers, Wifi Extenders & Modems": ["router", "mesh wifi", "wifi extender", "modem"],
    "Smart Watches": ["smart watch", "apple watch", "fitbit", "galaxy watch"],
    "Phones & Two-way Radios": ["phone", "two-way radio", "cordless phone"],
    "Cameras & Camcorders": ["camera", "gopro", "drone", "action camera"],
    "Batteries": ["batteries", "aa batteries", "power station", "duracell"],
}

Progress = Callable[..., Iterable]


@dataclass
class Shopper:
    number: int
    user: object
    first_name: str
    last_name: str
    tastes: list[int]  # leaf category ids
    rate: float  # sessions per day
    joined: dt.datetime
    address: dict
    visitor_id: str = ""  # the shopper's browser: one stable id across sessions
    cum_weights: list[float] = field(default_factory=list)
    cart: Cart | None = None
    cart_lines: dict[int, int] = field(default_factory=dict)  # product id -> quantity
    viewed: list[int] = field(default_factory=list)  # recent product indexes
    sessions: int = 0
    last_seen: dt.datetime | None = None


@dataclass
class Placed:
    order: Order
    shopper: Shopper
    placed_at: dt.datetime
    delivered_at: dt.datetime | None = None
    refunded: bool = False


@dataclass
class SimulationResult:
    already_loaded: bool = False
    shoppers: int = 0
    sessions: int = 0
    searches: int = 0
    views: int = 0
    listing_views: int = 0
    cart_adds: int = 0
    cart_removals: int = 0
    checkouts_started: int = 0
    checkouts_abandoned: int = 0
    orders: int = 0
    lines_dropped_out_of_stock: int = 0
    checkouts_skipped: int = 0
    status_changes: int = 0
    reviews: int = 0
    history_reviews: int = 0
    incident_products: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _no_progress(iterable=None, **kwargs):
    return iterable if iterable is not None else _NullBar()


class _NullBar:
    def update(self, n=1):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def simulation_exists() -> bool:
    return CustomerProfile.objects.filter(is_simulated=True, user__username__startswith=USERNAME_PREFIX).exists()


class Simulator:
    def __init__(self, *, seed: int = 42, shoppers: int = 150, days: int = 90, now: dt.datetime | None = None,
                 progress: Progress | None = None, review_history: bool = True):
        if shoppers < 0 or days < 1:
            raise ValueError("shoppers must be >= 0 and days >= 1")
        self.seed, self.n_shoppers, self.days = seed, shoppers, days
        self.review_history = review_history
        self.now = now or timezone.now()
        self.start = self.now - dt.timedelta(days=days)
        self.rng = random.Random(seed)
        self.progress = progress or _no_progress
        self.result = SimulationResult()
        self.shoppers: list[Shopper] = []
        self.placed: list[Placed] = []

    # --- set-up ------------------------------------------------------------------------

    def _load_catalogue(self) -> None:
        self.products: list[Product] = list(
            Product.objects.filter(is_active=True).select_related("category", "category__parent").order_by("pk")
        )
        self.index_of = {product.pk: i for i, product in enumerate(self.products)}
        self.popularity = [
            (1 + product.source_review_count) ** 0.4 * (1.3 if product.compare_at_price else 1.0)
            for product in self.products
        ]
        self.leaves: dict[int, list[int]] = {}
        for i, product in enumerate(self.products):
            self.leaves.setdefault(product.category_id, []).append(i)
        self.leaf_ids = sorted(self.leaves)
        self.leaf_cum = {leaf: list(accumulate(self.popularity[i] for i in items))
                         for leaf, items in self.leaves.items()}
        self.group_of = {
            product.category_id: (product.category.parent_id or product.category_id) for product in self.products
        }
        self.category = {product.category_id: product.category for product in self.products}

    def _visitor_id(self, number: int) -> str:
        # Derived from the seed, not drawn from the RNG: the same shopper keeps the same browser
        # id across runs, and adding it leaves the simulated history unchanged.
        return hashlib.sha256(f"aisle-sim:{self.seed}:{number}".encode()).hexdigest()[:32]

    def _pick(self, items: list[int], cum: list[float]) -> int:
        return items[min(bisect(cum, self.rng.random() * cum[-1]), len(items) - 1)]

    # --- phase 1: shoppers -------------------------------------------------------------------

    def _create_shoppers(self) -> None:
        rng = self.rng
        width = max(3, len(str(self.n_shoppers)))
        leaf_weights = [len(self.leaves[leaf]) ** 0.7 for leaf in self.leaf_ids]
        User = get_user_model()
        bar = self.progress(range(1, self.n_shoppers + 1), desc="Shoppers", unit="shopper")
        for number in bar:
            first, last = rng.choice(texts.FIRST_NAMES), rng.choice(LAST_NAMES)
            tastes = [rng.choices(self.leaf_ids, weights=leaf_weights)[0]]
            for _ in range(rng.choice((0, 1, 1, 2))):
                same_group = [leaf for leaf in self.leaf_ids
                              if self.group_of[leaf] == self.group_of[tastes[0]] and leaf not in tastes]
                pool = same_group if same_group and rng.random() < 0.6 else \
                    [leaf for leaf in self.leaf_ids if leaf not in tastes]
                if pool:
                    tastes.append(rng.choice(pool))
            rate = min(0.8, rng.lognormvariate(math.log(0.14), 0.6))
            if rng.random() < 0.7:
                joined = self.start - dt.timedelta(days=rng.uniform(1, 400))
            else:
                joined = self.start + dt.timedelta(days=rng.uniform(0, 0.8 * self.days))
            city, postal_code, country = rng.choice(PLACES)
            address = {
                "full_name": f"{first} {last}", "address_line1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                "address_line2": "", "city": city, "postal_code": postal_code, "country": country, "phone": "",
            }
            username = f"{USERNAME_PREFIX}{number:0{width}d}"
            user = services.create_shopper(
                username=username, email=f"{username}@example.com", password=None, first_name=first,
                simulated=True, tastes=[self.category[leaf].slug for leaf in tastes],
            )
            User.objects.filter(pk=user.pk).update(last_name=last, date_joined=joined)
            user.last_name, user.date_joined = last, joined
            shopper = Shopper(number=number, user=user, first_name=first, last_name=last, tastes=tastes,
                              rate=rate, joined=joined, address=address,
                              visitor_id=self._visitor_id(number))
            taste_groups = {self.group_of[leaf] for leaf in tastes}
            weights = []
            for i, product in enumerate(self.products):
                boost = 8.0 if product.category_id in tastes else (
                    2.5 if self.group_of[product.category_id] in taste_groups else 1.0)
                weights.append(self.popularity[i] * boost)
            shopper.cum_weights = list(accumulate(weights))
            self.shoppers.append(shopper)
        self.result.shoppers = len(self.shoppers)

    # --- phase 2: sessions -------------------------------------------------------------------

    def _schedule_sessions(self) -> list[tuple[dt.datetime, int]]:
        rng = self.rng
        latest = self.now - dt.timedelta(hours=1)
        first_day = self.start.date()
        sessions = []
        for index, shopper in enumerate(self.shoppers):
            for offset in range(self.days + 1):
                day = first_day + dt.timedelta(days=offset)
                chance = shopper.rate * WEEKDAY_FACTOR[day.weekday()]
                count = (rng.random() < chance) + (rng.random() < chance / 5)
                for _ in range(count):
                    hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
                    at = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)),
                                             tzinfo=dt.UTC)
                    if max(self.start, shopper.joined) <= at <= latest:
                        sessions.append((at, index))
        sessions.sort()
        return sessions

    def _run_sessions(self) -> None:
        sessions = self._schedule_sessions()
        bar = self.progress(total=len(sessions), desc="Sessions", unit="session")
        for at, index in sessions:
            self._session(self.shoppers[index], at)
            bar.update(1)
        bar.close()
        User = get_user_model()
        seen = [shopper for shopper in self.shoppers if shopper.last_seen]
        for shopper in seen:
            shopper.user.last_login = shopper.last_seen
        User.objects.bulk_update([shopper.user for shopper in seen], ["last_login"], batch_size=500)
        self.result.sessions = len(sessions)

    def _seconds(self, low: float, high: float) -> dt.timedelta:
        return dt.timedelta(seconds=self.rng.uniform(low, high))

    def _query(self, leaf: int) -> str:
        rng = self.rng
        name = self.category[leaf].name
        terms = SEARCH_TERMS.get(name) or [word.lower() for word in name.replace("&", " ").split() if len(word) > 2]
        if rng.random() < 0.2:
            brand = self.products[self._pick(self.leaves[leaf], self.leaf_cum[leaf])].brand
            query = f"{brand.lower()} {terms[0]}"
        else:
            query = rng.choice(terms)
        if rng.random() < 0.06 and len(query) > 4:  # a typo: drop an inner letter
            cut = rng.randrange(1, len(query) - 1)
            query = query[:cut] + query[cut + 1:]
        return query

    def _search(self, shopper: Shopper, at: dt.datetime, key: str) -> list[int]:
        rng = self.rng
        leaf = rng.choice(shopper.tastes) if rng.random() < 0.7 else rng.choice(self.leaf_ids)
        query = self._query(leaf)
        results = [product.pk for product in _search(query, user=shopper.user, visitor_id=key, occurred_at=at)]
        self.result.searches += 1
        found = [self.index_of[pk] for pk in results if pk in self.index_of]
        if not found:
            return []
        weights = [(1 / (rank + 1)) ** 0.7 * (2.0 if self.products[i].category_id in shopper.tastes else 1.0)
                   for rank, i in enumerate(found)]
        picks = []
        for _ in range(rng.randint(1, min(4, len(found)))):
            picks.append(rng.choices(found, weights=weights)[0])
        return list(dict.fromkeys(picks))

    def _session(self, shopper: Shopper, at: dt.datetime) -> None:
        rng = self.rng
        shopper.sessions += 1
        key = shopper.visitor_id
        kind = rng.choices(("search", "taste", "explore"), weights=(0.3, 0.5, 0.2))[0]
        if kind == "search":
            to_view = self._search(shopper, at, key)
            at += self._seconds(15, 60)
        elif kind == "taste":
            leaf = rng.choice(shopper.tastes)
            at = self._browse(shopper, leaf, at)
            to_view = [self._pick(self.leaves[leaf], self.leaf_cum[leaf]) for _ in range(rng.randint(2, 6))]
            if shopper.viewed and rng.random() < 0.3:  # come back to something seen before
                to_view.insert(rng.randrange(len(to_view) + 1), rng.choice(shopper.viewed))
        else:
            items = range(len(self.products))
            to_view = [self._pick(items, shopper.cum_weights) for _ in range(rng.randint(1, 4))]
        added_now = False
        for i in dict.fromkeys(to_view):
            product = self.products[i]
            services.record_product_view(product, user=shopper.user, visitor_id=key, occurred_at=at,
                                         simulated=True)
            self.result.views += 1
            revisit = i in shopper.viewed
            shopper.viewed = [*[v for v in shopper.viewed if v != i], i][-20:]
            at += self._seconds(20, 240)
            if self._maybe_add_to_cart(shopper, product, at, key, revisit):
                added_now = True
                at += self._seconds(5, 40)
        if shopper.cart_lines and rng.random() < CART_REMOVAL_RATE:
            at += self._seconds(10, 90)
            self._remove_from_cart(shopper, at)
        shopper.last_seen = at
        if shopper.cart_lines and rng.random() < (0.6 if added_now else 0.2):
            self._checkout(shopper, at + self._seconds(60, 600))

    def _browse(self, shopper: Shopper, leaf: int, at: dt.datetime) -> dt.datetime:
        """Category listings on the way to a taste: sometimes the group first, then the leaf's
        first page (and now and then its second). Returns the time after browsing."""
        rng = self.rng
        category = self.category[leaf]
        pages = []
        if category.parent_id and rng.random() < 0.3:
            group = [i for other, items in self.leaves.items() if self.group_of[other] == category.parent_id
                     for i in items]
            pages.append((category.parent, 1, len(group)))
        pages.append((category, 1, len(self.leaves[leaf])))
        if len(self.leaves[leaf]) > 24 and rng.random() < 0.25:
            pages.append((category, 2, len(self.leaves[leaf])))
        sort = rng.choice(LISTING_SORTS)
        for listed, page, count in pages:
            services.record_listing_view(
                listed, page=page, result_count=count, user=shopper.user, visitor_id=shopper.visitor_id,
                filters={"brands": [], "min_price": "", "max_price": "", "in_stock": False, "sort": sort},
                occurred_at=at, simulated=True,
            )
            self.result.listing_views += 1
            at += self._seconds(8, 45)
        return at

    def _remove_from_cart(self, shopper: Shopper, at: dt.datetime) -> None:
        """A change of mind: drop one line, or one unit of a line holding several."""
        product_id = self.rng.choice(sorted(shopper.cart_lines))
        item_id = CartItem.objects.filter(cart=shopper.cart, product_id=product_id).values_list("pk", flat=True) \
            .first()
        if item_id is None:
            return
        quantity = shopper.cart_lines[product_id]
        actor = {"user": shopper.user, "visitor_id": shopper.visitor_id, "occurred_at": at, "simulated": True}
        if quantity > 1:
            services.set_line_quantity(shopper.cart, item_id, quantity - 1, **actor)
            shopper.cart_lines[product_id] = quantity - 1
        else:
            services.remove_line(shopper.cart, item_id, **actor)
            del shopper.cart_lines[product_id]
        self.result.cart_removals += 1

    def _maybe_add_to_cart(self, shopper: Shopper, product: Product, at: dt.datetime, key: str,
                           revisit: bool) -> bool:
        rng = self.rng
        in_cart = shopper.cart_lines.get(product.pk, 0)
        if product.price is None or product.stock <= in_cart:
            return False
        price = float(product.price)
        price_factor = 1.3 if price < 50 else 1.0 if price < 200 else 0.75 if price < 800 else 0.55
        chance = 0.09 * price_factor * (1.7 if product.category_id in shopper.tastes else 1.0) * \
            (1.5 if revisit else 1.0)
        if rng.random() >= chance:
            return False
        quantity = 1
        if price < 60 and rng.random() < 0.2:
            quantity = rng.randint(2, 3)
        quantity = min(quantity, product.stock - in_cart, 20 - in_cart)
        if quantity < 1:
            return False
        if shopper.cart is None:
            shopper.cart = Cart.objects.get_or_create(user=shopper.user)[0]
        try:
            services.add_to_cart(shopper.cart, product, quantity, user=shopper.user, visitor_id=key,
                                 occurred_at=at, simulated=True)
        except ValidationError:
            return False
        shopper.cart_lines[product.pk] = in_cart + quantity
        self.result.cart_adds += 1
        return True

    def _checkout(self, shopper: Shopper, at: dt.datetime) -> None:
        # Stock may have run out since the items were added: drop or shrink those lines.
        for product_id, quantity in list(shopper.cart_lines.items()):
            stock = self.products[self.index_of[product_id]].stock
            if stock >= quantity:
                continue
            self.result.lines_dropped_out_of_stock += 1
            lines = CartItem.objects.filter(cart=shopper.cart, product_id=product_id)
            if stock == 0:
                lines.delete()
                del shopper.cart_lines[product_id]
            else:
                lines.update(quantity=stock)
                shopper.cart_lines[product_id] = stock
        if not shopper.cart_lines:
            return
        services.record_checkout_start(shopper.cart, services.cart_lines(shopper.cart), user=shopper.user,
                                       visitor_id=shopper.visitor_id, occurred_at=at, simulated=True)
        self.result.checkouts_started += 1
        if self.rng.random() < CHECKOUT_ABANDON_RATE:  # left at the payment form; the cart stays
            self.result.checkouts_abandoned += 1
            return
        at += self._seconds(30, 240)  # filling in the address and card
        try:
            order = services.place_order(cart=shopper.cart, email=shopper.user.email, address=shopper.address,
                                         card=TEST_CARD, user=shopper.user, visitor_id=shopper.visitor_id,
                                         occurred_at=at, simulated=True)
        except ValidationError:
            self.result.checkouts_skipped += 1
            return
        for product_id, quantity in shopper.cart_lines.items():
            self.products[self.index_of[product_id]].stock -= quantity
        shopper.cart_lines.clear()
        shopper.last_seen = at
        self.placed.append(Placed(order=order, shopper=shopper, placed_at=at))
        self.result.orders += 1

    # --- phase 3: fulfilment -------------------------------------------------------------------

    def _change(self, placed: Placed, status: str, at: dt.datetime, note: str) -> bool:
        if at >= self.now:
            return False
        placed.order = services.change_order_status(placed.order, status, note=note, occurred_at=at)
        self.result.status_changes += 1
        return True

    def _fulfil(self) -> None:
        rng = self.rng
        bar = self.progress(total=len(self.placed), desc="Fulfilment", unit="order")
        for placed in self.placed:
            self._fulfil_one(rng, placed)
            bar.update(1)
        bar.close()

    def _fulfil_one(self, rng: random.Random, placed: Placed) -> None:
        days = dt.timedelta(days=1)
        if rng.random() < 0.04:
            at = placed.placed_at + dt.timedelta(hours=rng.uniform(1, 20))
            self._change(placed, Order.Status.CANCELLED, at, "Cancelled at the customer's request (simulated)")
            return
        shipped = placed.placed_at + rng.uniform(0.3, 2.5) * days
        if not self._change(placed, Order.Status.SHIPPED, shipped, f"Shipped with {rng.choice(CARRIERS)}"):
            return
        delivered = shipped + rng.uniform(1.0, 5.0) * days
        if not self._change(placed, Order.Status.DELIVERED, delivered, "Delivered"):
            return
        placed.delivered_at = delivered
        if rng.random() < 0.035:
            refunded = delivered + rng.uniform(2, 15) * days
            placed.refunded = self._change(placed, Order.Status.REFUNDED, refunded,
                                           "Returned by the customer, refunded (simulated)")

    # --- phase 4: reviews ----------------------------------------------------------------------

    def _stars(self, product: Product, refunded: bool) -> int:
        rng = self.rng
        if refunded:
            return rng.choice((1, 1, 2, 2, 3))
        if rng.random() < 0.02:  # the odd faulty unit
            return 1
        centre = float(product.source_rating) if product.source_rating is not None else 4.2
        return max(1, min(5, round(rng.gauss(centre, 0.85))))

    def _review(self) -> None:
        rng = self.rng
        delivered = [placed for placed in self.placed if placed.delivered_at]
        lines: dict[int, list[int]] = {}
        for order_id, product_id in (OrderItem.objects.filter(order__in=[p.order.pk for p in delivered],
                                                              product__isnull=False)
                                     .order_by("order_id", "pk").values_list("order_id", "product_id")):
            lines.setdefault(order_id, []).append(product_id)
        candidates = []
        for placed in delivered:
            for product_id in lines.get(placed.order.pk, []):
                if product_id in self.index_of and rng.random() < (0.6 if placed.refunded else 0.4):
                    at = placed.delivered_at + dt.timedelta(days=rng.uniform(1, 14))
                    if at < self.now:
                        candidates.append((at, placed.shopper.number, product_id, placed))
        candidates.sort(key=lambda c: c[:3])
        done: set[tuple[int, int]] = set()
        bar = self.progress(total=len(candidates), desc="Reviews", unit="review")
        for at, number, product_id, placed in candidates:
            bar.update(1)
            if (number, product_id) in done:
                continue
            done.add((number, product_id))
            product = self.products[self.index_of[product_id]]
            category = product.category
            stars = self._stars(product, placed.refunded)
            review = texts.compose_review(
                rng, stars, group=category.parent.name if category.parent_id else category.name,
                leaf=category.name, brand=product.brand,
            )
            shopper = placed.shopper
            try:
                services.post_review(
                    product=product, user=shopper.user, rating=stars, title=review.title, text=review.text,
                    author_name=texts.author_name(shopper.first_name, shopper.last_name[0]),
                    visitor_id=shopper.visitor_id, status=Review.Status.APPROVED, occurred_at=at, simulated=True,
                )
            except ValidationError:  # e.g. already reviewed: skip
                continue
            self.result.reviews += 1
        bar.close()

    # --- phase 5: review history and a bad batch --------------------------------------------------

    def _review_history(self) -> None:
        rng = random.Random(f"aisle-sim-history:{self.seed}")

        def post(product: Product, stars: int, at: dt.datetime, focus: str | None = None) -> None:
            category = product.category
            review = texts.compose_review(
                rng, stars, group=category.parent.name if category.parent_id else category.name,
                leaf=category.name, brand=product.brand, focus=focus)
            name = texts.author_name(rng.choice(texts.FIRST_NAMES), rng.choice(texts.LAST_INITIALS))
            services.post_review(product=product, user=None, rating=stars, title=review.title, text=review.text,
                                 author_name=name, status=Review.Status.APPROVED, occurred_at=at, simulated=True)
            self.result.history_reviews += 1

        # The bad batch: well-loved, popular products whose category has its own aspects to complain about.
        popular = sorted((p for p in self.products if p.price is not None and (p.source_rating or 0) >= 4.4
                          and len(texts.aspects_for(
            p.category.parent.name if p.category.parent_id else p.category.name, p.category.name))
            > len(texts.GENERAL_ASPECTS)), key=lambda p: -(p.source_review_count or 0))[:30]
        incidents = rng.sample(popular, k=min(INCIDENT_PRODUCTS, len(popular)))
        incident_ids = {product.pk for product in incidents}
        plan: list[Product] = []
        for product in self.products:
            n = min(HISTORY_MAX_PER_PRODUCT, round(0.4 * math.sqrt(product.source_review_count or 0)))
            if product.pk in incident_ids:
                n = max(n, INCIDENT_BASELINE_REVIEWS)  # enough of a baseline for the alert's test
            plan.extend([product] * n)
        bar = self.progress(total=len(plan) + INCIDENT_REVIEWS * len(incidents), desc="Review history",
                            unit="review")
        span = HISTORY_DAYS * 86400
        for product in plan:
            if product.pk in incident_ids:
                # A newer model: its reviews fall in the alerts' 90-day baseline, all before the incident.
                at = self.now - dt.timedelta(days=INCIDENT_DAYS, seconds=rng.uniform(3600, 100 * 86400))
            else:
                at = self.now - dt.timedelta(seconds=rng.uniform(3600, span))
            centre = float(product.source_rating) if product.source_rating is not None else 4.2
            post(product, 1 if rng.random() < 0.02 else max(1, min(5, round(rng.gauss(centre, 0.85)))), at)
            bar.update(1)
        for product in incidents:
            aspects = texts.aspects_for(product.category.parent.name if product.category.parent_id
                                        else product.category.name, product.category.name)
            fault = rng.choice([name for name in aspects if name not in texts.GENERAL_ASPECTS])
            for _ in range(INCIDENT_REVIEWS):
                at = self.now - dt.timedelta(seconds=rng.uniform(3600, INCIDENT_DAYS * 86400))
                if rng.random() < 0.85:
                    post(product, rng.choice((1, 1, 2)), at, focus=fault)
                else:
                    post(product, rng.choice((4, 5)), at)
                bar.update(1)
            self.result.incident_products.append(f"{product.title} ({fault})")
        bar.close()

    # --- driver ----------------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        if simulation_exists():
            self.result.already_loaded = True
            return self.result
        self._load_catalogue()
        if not self.products:
            raise RuntimeError("No products to simulate on: import the catalogue first.")
        # One transaction: fast on SQLite, and an interrupted run leaves nothing half-loaded behind.
        # The services' on_commit work (order/review events, rating refreshes) runs at the commit.
        with transaction.atomic():
            for name, phase in (("shoppers", self._create_shoppers), ("sessions", self._run_sessions),
                                ("fulfilment", self._fulfil), ("reviews", self._review),
                                ("review history", self._review_history if self.review_history else lambda: None)):
                started = time.perf_counter()
                phase()
                self.result.seconds[name] = time.perf_counter() - started
            started = time.perf_counter()
        self.result.seconds["commit"] = time.perf_counter() - started
        return self.result
