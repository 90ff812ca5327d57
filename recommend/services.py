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

from django.conf import settings
from django.core.cache import cache

from shop import services as shop

from . import engine, nextitem

log = logging.getLogger(__name__)

FOR_YOU_SIZE = 10
RAIL_SIZE = 5
PLAN_SIZE = 2  # plans keep this many times the rail size, so a few products selling out leave it full
PERSONAL_TTL = 300     # a shopper's plan; any new event of theirs makes a new key anyway
PRODUCT_TTL = 600      # product and cart plans: trained neighbours change only with a new model
COLD_KEY = "cold"
COLD_CATEGORIES = 2  # "Popular in <category>" rails for a visitor with no history

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


def _next_after(history: engine.History, excluded: set[int], k: int) -> list[int]:
    """What the next-item model expects after the shopper's ordered views and cart adds ([] without
    a model, or when it fails: the blended picks still make the rails)."""
    if not history.sequence:
        return []
    try:
        return [pid for pid, _score in nextitem.next_items(history.sequence, k=k, exclude=excluded)]
    except Exception:  # noqa: BLE001 - a broken model file must not cost the shopper the page
        log.exception("Next-item model failed; rails use the blended picks")
        return []


def _interleave(first: list[int], second: list[int]) -> list[int]:
    merged: list[int] = []
    for pair in zip(first, second, strict=False):
        merged.extend(pair)
    longer = first if len(first) > len(second) else second
    merged.extend(longer[min(len(first), len(second)):])
    return list(dict.fromkeys(merged))


def home_plan(*, user=None, visitor_id: str = "") -> Plan:
    """Compute the home rails' ids and reasons (uncached; `home_rails` caches it)."""
    history = engine.load_history(user=user, visitor_id=visitor_id)
    if not (history.weights or history.categories or history.sequence):
        return cold_plan()
    excluded = set(history.bought) | set(history.actions)
    scored = engine.score_items(history.weights, exclude=excluded) if history.weights else engine.Scored()
    ranked = [pid for pid in scored.ranked() if pid not in excluded][:FOR_YOU_SIZE * 6]
    following = _next_after(history, excluded, FOR_YOU_SIZE * 3)
    trending = engine.trending_ids()
    popular = engine.popular_ids()
    anchors = history.last_viewed[:3]
    related = {}
    for anchor in anchors:  # the newest viewed product that is still sold and has relatives
        found = engine.related_scores(anchor)
        if found.scores:
            related[anchor] = found
            break
    if not related and anchors and following:
        related[anchors[0]] = engine.Scored()  # the next-item model alone fills the rail
    wanted = (set(ranked) | set(following) | set(history.seeds(engine.SEED_ITEMS)) | set(history.searched)
              | set(anchors) | set(history.sequence[-1:]) | set(trending) | set(popular[:100]))
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

    # The next-item model's picks take turns with the blend's: one reads the order of this session,
    # the other the whole history.
    latest = history.sequence[-1] if history.sequence else None
    next_reason = _reason_for(latest, history, titles) or "Picked for you"
    from_sequence = set(following)
    for pid in _interleave(following, ranked):
        if pid in from_sequence and pid not in scored.because:
            add(pid, next_reason)
        else:
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
    rails = [{"key": "for-you", "title": "Recommended for you",
              "subtitle": "Based on what you’ve viewed and bought", "items": items}]
    for anchor, found in related.items():
        if anchor not in titles:
            continue
        next_ones = following if anchor == latest else []
        picks: list[list] = [[pid, "Shoppers often look at this next"] for pid in next_ones]
        picks += [[pid, "Shoppers who viewed it also viewed this" if found.source.get(pid) == "itemknn"
                   else f"Similar to {titles[anchor]}"] for pid in found.ranked()]
        seen: set[int] = set()
        rail_items = []
        for pid, reason in picks:
            if pid not in seen and pid not in history.bought and pid != anchor:
                seen.add(pid)
                rail_items.append([pid, reason])
        rails.append({"key": "because-you-viewed", "title": f"Because you viewed {titles[anchor]}",
                      "subtitle": "", "items": rail_items[:RAIL_SIZE * PLAN_SIZE]})
    return {"rails": rails}


def cold_plan() -> Plan:
    """A visitor with no history: what is trending, then the best sellers of the most popular
    categories, each rail saying what it is (nothing here pretends to be personal)."""
    trending = engine.trending_ids()
    popular = engine.popular_ids()
    wanted = set(trending) | set(popular[:200])
    products = {p.pk: p for p in shop.get_products(wanted)} if wanted else {}
    sellable = [pid for pid in dict.fromkeys(trending + popular) if pid in products and _purchasable(products[pid])]
    if len(sellable) < RAIL_SIZE:  # a new shop: no events yet, so the ratings stand in
        for product in shop.top_rated_products(RAIL_SIZE * PLAN_SIZE * 4):
            if product.pk not in products and _purchasable(product):
                products[product.pk] = product
                sellable.append(product.pk)
    trending_items = [[pid, "Trending now"] for pid in trending if pid in sellable][:RAIL_SIZE * PLAN_SIZE]
    rails = []
    if trending_items:
        rails.append({"key": "trending", "title": "Trending now",
                      "subtitle": "What shoppers are viewing and buying this week", "items": trending_items})
    by_category: dict[int, list[int]] = {}
    for pid in sellable:
        by_category.setdefault(products[pid].category_id, []).append(pid)
    shown = {pid for pid, _reason in trending_items}
    for category_id, pids in sorted(by_category.items(), key=lambda kv: -len(kv[1]))[:COLD_CATEGORIES]:
        name = products[pids[0]].category.name
        picks = [[pid, f"Popular in {name}"] for pid in pids if pid not in shown][:RAIL_SIZE * PLAN_SIZE]
        if len(picks) >= 2:
            rails.append({"key": f"popular-in-{category_id}", "title": f"Popular in {name}",
                          "subtitle": "Best sellers of the category", "items": picks})
    if not rails and sellable:
        rails.append({"key": "popular", "title": "Popular with shoppers", "subtitle": "",
                      "items": [[pid, "Popular with shoppers"] for pid in sellable][:RAIL_SIZE * PLAN_SIZE]})
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


# Category affinity: a main item's category -> the categories of its accessories (the demo
# catalogue's leaf names; AISLE_RECOMMEND_ACCESSORIES adds or replaces entries). A co-purchase outside
# these counts only when shoppers really bought the two together (STRONG_TOGETHER orders or more),
# and then the reason says so: one shopper buying earbuds and a guitar is no reason to pair them.
ACCESSORIES = {
    "Laptops & Notebook Computers": ["Monitors", "Hard Drives, SSD & Storage", "Headphones & Earbuds",
                                     "Routers, Wifi Extenders & Modems"],
    "Desktop Computers & PCs": ["Monitors", "Hard Drives, SSD & Storage", "Speakers & Voice Assistants"],
    "Mini PC Desktop Computer & PCs": ["Monitors", "Hard Drives, SSD & Storage"],
    "Monitors": ["Desktop Computers & PCs", "Mini PC Desktop Computer & PCs", "Gaming Desktop Computer & PCs"],
    "iPad & Tablets": ["Headphones & Earbuds", "Batteries"],
    "Video Games & Consoles": ["TVs", "Headphones & Earbuds", "Video Games & Consoles"],
    "Gaming Desktop Computer & PCs": ["Monitors", "Headphones & Earbuds", "Hard Drives, SSD & Storage"],
    "Gaming Laptops & Notebook Computers": ["Headphones & Earbuds", "Monitors", "Hard Drives, SSD & Storage"],
    "TVs": ["Soundbars & Home Theater", "Streaming Devices", "Video Games & Consoles"],
    "Soundbars & Home Theater": ["TVs", "Streaming Devices"],
    "Projectors": ["Soundbars & Home Theater", "Streaming Devices", "Speakers & Voice Assistants"],
    "Streaming Devices": ["TVs", "Soundbars & Home Theater"],
    "Headphones & Earbuds": ["Batteries", "Phones & Two-way Radios", "Smart Watches"],
    "Speakers & Voice Assistants": ["Smart Home & Safety", "Streaming Devices"],
    "Musical Instruments": ["Headphones & Earbuds", "Speakers & Voice Assistants"],
    "Home Security Systems & Cameras": ["Hard Drives, SSD & Storage", "Routers, Wifi Extenders & Modems",
                                        "Smart Home & Safety"],
    "Smart Home & Safety": ["Speakers & Voice Assistants", "Routers, Wifi Extenders & Modems"],
    "Routers, Wifi Extenders & Modems": ["Smart Home & Safety"],
    "Smart Watches": ["Phones & Two-way Radios", "Headphones & Earbuds"],
    "Phones & Two-way Radios": ["Batteries", "Headphones & Earbuds", "Smart Watches"],
    "Cameras & Camcorders": ["Hard Drives, SSD & Storage", "Batteries"],
}
STRONG_TOGETHER = 3


def accessory_categories(category_name: str) -> set[str] | None:
    """Accessory categories of a main category; None when the shop has no prior for it (then every
    co-purchase counts, as there is nothing to judge it by)."""
    mapping = {**ACCESSORIES, **(getattr(settings, "AISLE_RECOMMEND_ACCESSORIES", None) or {})}
    found = mapping.get(category_name)
    return set(found) if found is not None else None


def complements(together: dict[int, tuple[float, int]], mains: dict[int, object]) -> list[tuple[int, str]]:
    """Co-purchased products that go with the main items, best first, each with its reason: an
    accessory category (or no prior) -> "Often bought with X"; another kind of product only after
    STRONG_TOGETHER orders, saying so; anything else is left out."""
    products = {p.pk: p for p in shop.get_products(list(together))} if together else {}
    picks = []
    for pid in sorted(together, key=lambda pid: (-together[pid][0], pid)):
        count, seed = together[pid]
        product, main = products.get(pid), mains.get(seed)
        if product is None or main is None:
            continue
        allowed = accessory_categories(main.category.name)
        if allowed is None or product.category.name in allowed:
            picks.append((pid, f"Often bought with {main.title}"))
        elif count >= STRONG_TOGETHER:
            picks.append((pid, f"Bought with {main.title} in {int(count)} orders, though a different kind of product"))
    return picks


def product_plan(product_id: int) -> Plan:
    together = engine.bought_together([product_id])
    main = {p.pk: p for p in shop.get_products([product_id])}
    chosen = complements(together, main)[:RAIL_SIZE * PLAN_SIZE]
    related = engine.related_scores(product_id)
    return {"rails": [
        {"key": "bought-together", "title": "Frequently bought together", "subtitle": "",
         "items": [[pid, reason if not reason.startswith("Often bought with") else
                    "Often bought together" if together[pid][0] >= 2 else "Bought together with this"]
                   for pid, reason in chosen]},
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
    together = {pid: value for pid, value in together.items() if pid not in in_cart}
    mains = {p.pk: p for p in shop.get_products(list(in_cart))}
    picks = complements(together, mains)
    ranked = [pid for pid, _reason in picks]
    items = [[pid, reason] for pid, reason in picks]
    if len(items) < RAIL_SIZE * PLAN_SIZE:
        # No co-purchases yet: what shoppers looked at alongside the cart's items.
        # Only accessory categories (or any, where the shop has no prior for the cart item's category).
        seen = set(ranked) | set(in_cart)
        viewed = engine.neighbours("coview", list(in_cart))
        kinds = {p.pk: p.category.name for p in shop.get_products({pid for pairs in viewed.values()
                                                                      for pid, _sim in pairs})}
        for seed, pairs in viewed.items():
            allowed = accessory_categories(mains[seed].category.name) if seed in mains else set()
            for pid, _sim in pairs:
                if pid not in seen and pid in kinds and (allowed is None or kinds[pid] in allowed):
                    seen.add(pid)
                    items.append([pid, f"Shoppers who viewed {in_cart[seed]} also viewed this"])
    return {"rails": [{"key": "complete-your-order", "title": "Complete your order", "subtitle": "",
                       "items": items[:RAIL_SIZE * PLAN_SIZE]}]}


# -------------------------------------------------------------------------------------- training


def train_collaborative(*, days: int = engine.TRAINING_DAYS, progress: bool = False) -> dict | None:
    """Retrain the collaborative model from recent events and publish it (None: a run is in progress)."""
    report = engine.train_once(days=days, progress=progress)
    return report.as_dict() if report else None


def train_sequential(*, days: int = nextitem.TRAINING_DAYS, progress: bool = False) -> dict | None:
    """Retrain the next-item model from recent sessions (None: a run is in progress). Too little data
    or a failed fit gives status "fallback" with the reason (also logged); the rails then use the
    blended and popularity picks."""
    report = nextitem.train_once(days=days, progress=progress)
    return report.as_dict() if report else None


def sequential_status() -> dict | None:
    """The last next-item training run: trained (version, figures) or fallback (reason)."""
    return nextitem.status()

