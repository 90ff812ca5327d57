"""`python manage.py load_demo`: the electronics catalogue, demo logins and a simulated history.

Idempotent: the import only saves what differs, the logins are only created when missing,
and the simulation is skipped (reported as already loaded) once simulated shoppers exist.
"""

import logging
import sys
import time
from contextlib import contextmanager

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Avg, Count, Q
from django.utils import timezone
from tqdm import tqdm

from shop.demo import accounts, catalogue
from shop.demo.simulator import Simulator
from shop.models import CartItem, Category, CustomerProfile, Order, OrderStatusEvent, Product, Review


@contextmanager
def quiet_loggers(**levels):
    """Raise some loggers' levels for the duration (in-process Celery logs a line per task)."""
    loggers = {logging.getLogger(name.replace("__", ".")): level for name, level in levels.items()}
    previous = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in previous.items():
            logger.setLevel(level)


class Command(BaseCommand):
    help = "Import the electronics catalogue and simulate shoppers, orders and reviews (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Seed of the simulation (default 42).")
        parser.add_argument("--shoppers", type=int, default=150, help="Simulated shoppers (default 150).")
        parser.add_argument("--days", type=int, default=90, help="Days of simulated history (default 90).")
        parser.add_argument("--no-review-history", action="store_true",
                            help="Skip the year of past customers' reviews (and the planted bad batch).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")

    def _progress(self, enabled: bool):
        def progress(iterable=None, **kwargs):
            return tqdm(iterable, file=sys.stderr, disable=not enabled, dynamic_ncols=True, **kwargs)

        return progress

    def handle(self, *args, **options):
        with quiet_loggers(celery__app__trace=logging.WARNING, kombu__connection=logging.ERROR):
            self._handle(options)

    def _handle(self, options):
        if options["shoppers"] < 0 or options["days"] < 1:
            raise CommandError("--shoppers must be >= 0 and --days >= 1.")
        started = time.perf_counter()
        now = timezone.now()
        progress = self._progress(not options["no_progress"] and options["verbosity"] > 0)

        rows = catalogue.read_rows()
        imported = catalogue.import_catalogue(rows, progress=lambda items: progress(items, desc="Catalogue",
                                                                                     unit="row"))
        self.stdout.write(
            f"Catalogue: {len(rows)} rows; {imported.created} products created, {imported.updated} updated, "
            f"{imported.unchanged} unchanged; {imported.categories_created} categories created, "
            f"{imported.categories_updated} updated."
        )

        password = accounts.demo_password()
        if accounts.ensure_admin(password):
            self.stdout.write("Created staff superuser 'admin' (password from AISLE_DEMO_ADMIN_PASSWORD).")
        demo_orders = accounts.ensure_demo_shopper(password, now=now)
        if demo_orders is not None:
            self.stdout.write(f"Created demo shopper 'demo' with {demo_orders} orders (same password).")

        result = Simulator(seed=options["seed"], shoppers=options["shoppers"], days=options["days"], now=now,
                           progress=progress, review_history=not options["no_review_history"]).run()
        if result.already_loaded:
            self.stdout.write("Simulation already loaded (simulated shoppers exist); nothing simulated. "
                              "Start from an empty database to simulate again with another seed.")
        else:
            timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.seconds.items())
            self.stdout.write(
                f"Simulated (seed {options['seed']}, {options['days']} days): {result.shoppers} shoppers, "
                f"{result.sessions} sessions, {result.searches} searches, {result.views} views, "
                f"{result.cart_adds} cart adds, {result.orders} orders "
                f"({result.lines_dropped_out_of_stock} cart lines dropped for lack of stock, "
                f"{result.checkouts_skipped} checkouts skipped), {result.status_changes} status changes, "
                f"{result.reviews} reviews by shoppers, {result.history_reviews} by past customers [{timings}]."
            )
            for product in result.incident_products:
                self.stdout.write(f"Planted a bad batch (a burst of negative reviews): {product}.")
        self._summary(time.perf_counter() - started)

    def _summary(self, seconds: float) -> None:
        write = self.stdout.write
        products = Product.objects.aggregate(
            total=Count("pk"), purchasable=Count("pk", filter=Q(price__isnull=False, stock__gt=0, is_active=True)),
            sold_out=Count("pk", filter=Q(price__isnull=False, stock=0)),
        )
        orders = dict(Order.objects.order_by().values_list("status").annotate(n=Count("pk")))
        reviews = Review.objects.aggregate(n=Count("pk"), avg=Avg("rating"),
                                           simulated=Count("pk", filter=Q(is_simulated=True)))
        # shop imports no other app; the behaviour app's events are counted by model label when installed.
        events = {}
        if apps.is_installed("behavior"):
            events = dict(apps.get_model("behavior", "Event").objects.order_by().values_list("event_type")
                          .annotate(n=Count("pk")))
        write(self.style.SUCCESS("Demo data summary"))
        write(f"  categories: {Category.objects.filter(parent__isnull=True).count()} groups, "
              f"{Category.objects.filter(parent__isnull=False).count()} sub-categories")
        write(f"  products:   {products['total']} ({products['purchasable']} purchasable, "
              f"{products['sold_out']} sold out)")
        write(f"  users:      {get_user_model().objects.count()} "
              f"({CustomerProfile.objects.filter(is_simulated=True).count()} with simulated profiles)")
        write(f"  orders:     {sum(orders.values())} "
              f"({', '.join(f'{status} {n}' for status, n in sorted(orders.items())) or 'none'}); "
              f"{OrderStatusEvent.objects.count()} status events")
        write(f"  carts:      {CartItem.objects.values('cart').distinct().count()} with items left in them")
        write(f"  reviews:    {reviews['n']} ({reviews['simulated']} simulated), average "
              f"{reviews['avg'] or 0:.2f} stars")
        if events:
            write(f"  events:     {sum(events.values())} "
                  f"({', '.join(f'{kind} {n}' for kind, n in sorted(events.items()))})")
        write(f"  took {seconds:.1f}s")
