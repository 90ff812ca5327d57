"""Celery tasks of the shop: thin wrappers around services."""

from celery import shared_task
from django.core.mail import send_mail
from django.template.loader import render_to_string

from . import services
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
def drain_outbox() -> dict:
    """Publish the tasks that request paths could not hand to the broker (scheduled every minute)."""
    return services.drain_outbox()


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def send_password_reset(email: str, domain: str, use_https: bool) -> None:
    """The reset link for the accounts with this address, if any (the page never says which)."""
    from .forms import ShopPasswordResetForm

    ShopPasswordResetForm.send_reset_mail(email, domain=domain, use_https=use_https)
