"""The recommend app's public facade: recommendation rails for the storefront (and other apps).

Every rail is a `Rail` of `RailItem(product, reason)`: a short human reason per product ("Because
you viewed Sony WH-1000XM5", "Popular in Headphones, which you browse", "Often bought together").

* `home_rails`: "Recommended for you" (the shopper's recency-weighted views, carts, orders and
  searches, blended by `engine.score_items`; bought items left out) and "Because you viewed X";
* `product_rails`: "Bought together" (order co-occurrence) and "Related" (co-views + content);
* `cart_rails`: "Complete your order" (bought together with the cart, minus what is in it).

Cost per page: the rail plan (ids and reasons) is cached — the shopper's keyed on their latest event
id, so a new view or cart add shows on the next page — and each page then reads its products in one
query, where stock is checked live: out-of-stock and inactive products never show. Cold shoppers and
new products fall back to trending/popular and content similarity.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.cache import cache

from shop import services as shop

from . import engine

log = logging.getLogger(__name__)

FOR_YOU_SIZE = 10
RAIL_SIZE = 5
PLAN_SIZE = 2  # plans keep this many times the rail size, so a few products selling out leave it full
PERSONAL_TTL = 300     # a shopper's plan; any new event of theirs makes a new key anyway
PRODUCT_TTL = 600      # product and cart plans: trained neighbours change only with a new model
COLD_KEY = "cold"

ACTION_REASONS = {
    "product_viewed": "Because you viewed {title}",
    "rec_clicked": "Because you viewed {title}",
    "review_posted": "Because you reviewed {title}",
    "added_to_cart": "Because you added {title} to your cart",
    "checkout_started": "Because you added {title} to your cart",
    "order_placed": "Because you bought {title}",
}


@dataclass
class RailItem:
    product: object
    reason: str


@dataclass
class Rail:
    key: str           # stable id, also the beacon's data-rec-rail
    title: str
    subtitle: str = ""
    items: list[RailItem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items)


# A plan is what is cached: {"rails": [{"key", "title", "subtitle", "items": [[product id, reason]]}]}.
Plan = dict


def _purchasable(product) -> bool:
    return product.is_active and product.price is not None and product.stock > 0


def _resolve(plan: Plan, sizes: dict[str, int]) -> list[Rail]:
    """Turn a cached plan into rails: one query for every product of every rail, stock checked now.

    Rails may share products (a "Because you viewed X" rail often repeats a strong "for you" pick);
    the product page's plan keeps its two rails apart itself."""
    ids = list(dict.fromkeys(pid for rail in plan["rails"] for pid, _reason in rail["items"]))
    products = {p.pk: p for p in shop.get_products(ids)} if ids else {}
    rails = []
    for spec in plan["rails"]:
        rail = Rail(key=spec["key"], title=spec["title"], subtitle=spec.get("subtitle", ""))
        for pid, reason in spec["items"]:
            product = products.get(pid)
            if product is None or not _purchasable(product):
                continue
            rail.items.append(RailItem(product, reason))
            if len(rail.items) >= sizes.get(rail.key, RAIL_SIZE):
                break
        if rail:
            rails.append(rail)
    return rails


def _key(*parts: object) -> str:
    digest = hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"recommend:plan:{digest}"


def _shopper_id(user, visitor_id: str) -> str:
    return f"u{user.pk}:{visitor_id}" if user is not None and user.is_authenticated else f"v{visitor_id}"


# ------------------------------------------------------------------------------------------ home


def home_rails(*, user=None, visitor_id: str = "") -> list[Rail]:
    """"Recommended for you" and "Because you viewed X" for a signed-in or anonymous shopper."""
    latest = engine.latest_event_id(user=user, visitor_id=visitor_id)
    version = engine.current_version()
    shopper = _shopper_id(user, visitor_id) if latest is not None else COLD_KEY
    key = _key("home", shopper, latest, version)
    plan = cache.get(key)
    if plan is None:
        plan = home_plan(user=user, visitor_id=visitor_id) if latest is not None else home_plan()
        cache.set(key, plan, PERSONAL_TTL)
    return _resolve(plan, {"for-you": FOR_YOU_SIZE})


def _reason_for(seed: int | None, history: engine.History, titles: dict[int, str]) -> str | None:
    if seed is None:
        return None
    if seed in history.searched and seed not in history.actions:
        return f"Because you searched for “{history.searched[seed]}”"
    template = ACTION_REASONS.get(history.actions.get(seed, ""))
    title = titles.get(seed)
    return template.format(title=title) if template and title else None


def home_plan(*, user=None, visitor_id: str = "") -> Plan:
    """Compute the home rails' ids and reasons (uncached; `home_rails` caches it)."""
    history = engine.load_history(user=user, visitor_id=visitor_id)
    excluded = set(history.bought) | set(history.actions)
    scored = engine.score_items(history.weights, exclude=excluded) if history.weights else engine.Scored()
    ranked = [pid for pid in scored.ranked() if pid not in excluded][:FOR_YOU_SIZE * 6]
    trending = engine.trending_ids()
    popular = engine.popular_ids()
    anchors = history.last_viewed[:3]
    related = {}
    for anchor in anchors:  # the newest viewed product that is still sold and has relatives
        found = engine.related_scores(anchor)
        if found.scores:
            related[anchor] = found
            break
    wanted = (set(ranked) | set(history.seeds(engine.SEED_ITEMS)) | set(history.searched) | set(anchors)
              | set(trending) | set(popular[:100]))
    for found in related.values():
        wanted |= set(found.ranked()[:RAIL_SIZE * 4])
    products = {p.pk: p for p in shop.get_products(wanted)} if wanted else {}
    titles = {pid: p.title for pid, p in products.items()}
    sellable = {pid for pid, p in products.items() if _purchasable(p)}

    items: list[list] = []
    chosen: set[int] = set()

    def add(pid: int, reason: str) -> None:
        if pid in sellable and pid not in chosen and pid not in excluded and len(items) < FOR_YOU_SIZE * PLAN_SIZE:
            items.append([pid, reason])
            chosen.add(pid)

    for pid in ranked:
        add(pid, _reason_for(scored.because.get(pid), history, titles) or "Picked for you")
    # What their searches found, which they have not opened yet.
    for pid, text in history.searched.items():
        add(pid, f"Because you searched for “{text}”")
    # Short of personal picks (new shopper, new shop): popular items of the categories they browse,
    # then what is trending and popular everywhere.
    names = {p.category_id: p.category.name for p in products.values()}
    browsed = [c for c, _w in sorted(history.categories.items(), key=lambda kv: -kv[1])[:3]]
    for pid in trending + popular:
        product = products.get(pid)
        if product is not None and product.category_id in browsed:
            add(pid, f"Popular in {names[product.category_id]}, which you browse")
    for pid in trending:
        add(pid, "Trending now")
    for pid in popular:
        add(pid, "Popular with shoppers")
    if len(items) < FOR_YOU_SIZE:
        for product in shop.top_rated_products(FOR_YOU_SIZE * PLAN_SIZE):
            sellable.add(product.pk)
            add(product.pk, "Top rated by shoppers")
    personal = bool(history.weights or history.categories)
    rails = [{"key": "for-you", "title": "Recommended for you",
              "subtitle": "Based on what you’ve viewed and bought" if personal else "Popular with shoppers right now",
              "items": items}]
    for anchor, found in related.items():
        if anchor not in titles:
            continue
        rails.append({"key": "because-you-viewed", "title": f"Because you viewed {titles[anchor]}",
                      "subtitle": "", "items": [
                          [pid, "Shoppers who viewed it also viewed this" if found.source.get(pid) == "itemknn"
                           else f"Similar to {titles[anchor]}"]
                          for pid in found.ranked() if pid not in history.bought and pid != anchor
                      ][:RAIL_SIZE * PLAN_SIZE]})
    return {"rails": rails}


# --------------------------------------------------------------------------------------- product


def product_rails(product_id: int) -> list[Rail]:
    """"Frequently bought together" and "Related products" for a product page (the same for every
    shopper: accessories are worth showing even to someone who bought them)."""
    key = _key("product", product_id, engine.current_version())
    plan = cache.get(key)
    if plan is None:
        plan = product_plan(product_id)
        cache.set(key, plan, PRODUCT_TTL)
    return _resolve(plan, {})


def product_plan(product_id: int) -> Plan:
    together = engine.bought_together([product_id])
    together_ids = sorted(together, key=lambda pid: (-together[pid][0], pid))[:RAIL_SIZE * PLAN_SIZE]
    related = engine.related_scores(product_id)
    return {"rails": [
        {"key": "bought-together", "title": "Frequently bought together", "subtitle": "",
         "items": [[pid, "Often bought together" if together[pid][0] >= 2 else "Bought together with this"]
                   for pid in together_ids]},
        {"key": "related", "title": "Related products", "subtitle": "",
         "items": [[pid, "Shoppers who viewed this also viewed" if related.source.get(pid) == "itemknn"
                    else "Similar to this item"]
                   for pid in related.ranked()[:RAIL_SIZE * PLAN_SIZE * 2] if pid not in together]},
    ]}


def related_products(product_id: int, limit: int = RAIL_SIZE) -> list[RailItem]:
    """Related products of one product with reasons (for other apps, e.g. support's answers)."""
    rails = product_rails(product_id)
    return [item for rail in rails for item in rail.items][:limit]


# ------------------------------------------------------------------------------------------ cart


def cart_rails(products: Sequence) -> list[Rail]:
    """"Complete your order": bought together with the cart's products, none of them again."""
    in_cart = {p.pk: p.title for p in products}
    if not in_cart:
        return []
    key = _key("cart", ",".join(map(str, sorted(in_cart))), engine.current_version())
    plan = cache.get(key)
    if plan is None:
        plan = cart_plan(in_cart)
        cache.set(key, plan, PRODUCT_TTL)
    return _resolve(plan, {})


def cart_plan(in_cart: dict[int, str]) -> Plan:
    together = engine.bought_together(list(in_cart))
    ranked = sorted((pid for pid in together if pid not in in_cart), key=lambda pid: (-together[pid][0], pid))
    items = [[pid, f"Often bought with {in_cart[together[pid][1]]}"] for pid in ranked]
    if len(items) < RAIL_SIZE * PLAN_SIZE:
        # No co-purchases yet: what shoppers looked at alongside the cart's items.
        seen = set(ranked) | set(in_cart)
        for seed, pairs in engine.neighbours("coview", list(in_cart)).items():
            for pid, _sim in pairs:
                if pid not in seen:
                    seen.add(pid)
                    items.append([pid, f"Shoppers who viewed {in_cart[seed]} also viewed this"])
    return {"rails": [{"key": "complete-your-order", "title": "Complete your order", "subtitle": "",
                       "items": items[:RAIL_SIZE * PLAN_SIZE]}]}


# -------------------------------------------------------------------------------------- training


def train_collaborative(*, days: int = engine.TRAINING_DAYS, progress: bool = False) -> dict | None:
    """Retrain the collaborative model from recent events and publish it (None: a run is in progress)."""
    report = engine.train_once(days=days, progress=progress)
    return report.as_dict() if report else None

