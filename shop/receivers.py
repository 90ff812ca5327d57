"""Thin receivers: they only enqueue work or call a service."""

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Cart, Review


@receiver([post_save, post_delete], sender=Review, dispatch_uid="shop_review_rating_refresh")
def enqueue_rating_refresh(sender, instance: Review, **kwargs) -> None:
    from .tasks import refresh_product_rating

    product_id = instance.product_id
    transaction.on_commit(lambda: refresh_product_rating.delay(product_id))


@receiver(user_logged_in, dispatch_uid="shop_merge_cart_at_login")
def merge_cart_at_login(sender, request, user, **kwargs) -> None:
    from . import services

    cart_id = request.session.get(services.CART_SESSION_KEY) if request is not None else None
    anonymous = Cart.objects.filter(pk=cart_id, user__isnull=True).first() if cart_id else None
    if anonymous is not None:
        services.merge_carts(anonymous, user)
        request.session.pop(services.CART_SESSION_KEY, None)
