"""Celery tasks of the shop: thin wrappers around services."""

from celery import shared_task
from django.core.mail import send_mail
from django.template.loader import render_to_string

from . import copywriting, services
from .models import Order


@shared_task
def refresh_product_rating(product_id: int) -> str:
    product = services.refresh_product_rating(product_id)
    return f"{product.pk}: {product.rating_average} over {product.rating_count}"


@shared_task
def purge_stale_carts() -> int:
    return services.purge_stale_carts()


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def send_order_confirmation(order_id: int) -> None:
    order = Order.objects.prefetch_related("items").get(pk=order_id)
    body = render_to_string("shop/email/order_confirmation.txt", {"order": order})
    send_mail(f"Your Aisle order {order.number}", body, None, [order.email])


@shared_task
def generate_copy_draft(draft_id: int) -> str:
    """Write one queued copy draft. Idempotent: a redelivered task finds the draft claimed or done and
    leaves it (see copywriting.generate_draft); model failures mark the draft failed, they do not raise."""
    return copywriting.generate_draft(draft_id)
