"""The search app's signal: a shopper searched the storefront (page or API). `behavior` records it.

Chat product questions and warm-ups search with another `source` and send nothing, so the search
analytics count only what shoppers typed into the shop's search.
"""

from django.dispatch import Signal

# kwargs: query, result_count, user, visitor_id, occurred_at, simulated, source
searched = Signal()
