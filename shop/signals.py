"""Cross-app events of the shop (django-oscar style). Receivers live in other apps.

Every signal is sent with keyword arguments; all of them carry `user` (or None),
`visitor_id` (or ""), `occurred_at` (aware datetime) and `simulated` (bool).
"""

from django.dispatch import Signal

# product=Product
product_viewed = Signal()
# category=Category, page=int, result_count=int, filters=dict
listing_viewed = Signal()
# product=Product, quantity=int
added_to_cart = Signal()
# product=Product, quantity=int (units taken out of the cart)
removed_from_cart = Signal()
# cart=Cart, item_count=int, subtotal=Decimal
checkout_started = Signal()
# order=Order
order_placed = Signal()
# review=Review
review_posted = Signal()
# query=str (plus user, visitor_id, occurred_at, simulated): sent only by the demo simulator, whose shoppers
# search like real ones at back-dated times; the search app answers it (its receiver returns the products
# found and sends search's own `searched` signal). Shop imports no other app, so it asks by signal.
search_requested = Signal()
