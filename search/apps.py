from django.apps import AppConfig, apps
from django.conf import settings
from django.db.models.signals import post_save

from shop import signals as shop_signals


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        from . import receivers

        # By model label: this app reads shop through its services and signals, never shop.models.
        post_save.connect(receivers.on_product_saved, sender=apps.get_model("shop", "Product"),
                          dispatch_uid="search_product_saved")
        shop_signals.search_requested.connect(receivers.on_search_requested, dispatch_uid="search_demo_requested")
        if getattr(settings, "AISLE_SEARCH_WARM_AT_READY", False):
            # For servers without gunicorn's post_fork (runserver, other WSGI hosts): the first shopper must not
            # wait for the embedder. Off by default: management commands and tests need no model.
            from . import services

            services.warm_up()
