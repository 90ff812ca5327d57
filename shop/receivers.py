"""Thin receivers: they only enqueue work or call a service."""

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Cart, Category, Order, Product, Review


@receiver([post_save, post_delete], sender=Review, dispatch_uid="shop_review_rating_refresh")
def enqueue_rating_refresh(sender, instance: Review, **kwargs) -> None:
    from . import outbox

    product_id = instance.product_id
    # Bounded, with the outbox as fallback: a review posted while Redis is down still gets its refresh.
    transaction.on_commit(lambda: outbox.publish_or_store("shop.tasks.refresh_product_rating", [product_id]))


@receiver(user_logged_in, dispatch_uid="shop_merge_cart_at_login")
def merge_cart_at_login(sender, request, user, **kwargs) -> None:
    from . import services

    cart_id = request.session.get(services.CART_SESSION_KEY) if request is not None else None
    anonymous = Cart.objects.filter(pk=cart_id, user__isnull=True).first() if cart_id else None
    if anonymous is not None:
        services.merge_carts(anonymous, user)
        request.session.pop(services.CART_SESSION_KEY, None)


@receiver([post_save, post_delete], sender=Product, dispatch_uid="shop_pages_product_changed")
@receiver([post_save, post_delete], sender=Category, dispatch_uid="shop_pages_category_changed")
@receiver([post_save, post_delete], sender=Review, dispatch_uid="shop_pages_review_changed")
@receiver(post_save, sender=Order, dispatch_uid="shop_pages_order_changed")
def expire_cached_pages(sender, **kwargs) -> None:
    """Cached storefront pages and fragments go stale with any catalogue, price, stock or review change.

    Orders are here because checkout and cancellation move stock with bulk_update, which sends no
    signal of its own; every such transaction saves its order. Now, so that this connection's next page
    (still inside the transaction) shows the change, and again after commit: a page another request
    rendered from the old rows between the two would otherwise stay cached under the new version.
    """
    from . import pagecache

    pagecache.catalogue_changed()
    transaction.on_commit(pagecache.catalogue_changed)
