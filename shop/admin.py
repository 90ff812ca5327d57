from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from . import services
from .models import (
    Cart,
    CartItem,
    Category,
    CustomerProfile,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ReturnRequest,
    Review,
)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "parent", "slug", "position"]
    list_filter = ["parent"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "brand", "category", "price", "stock", "rating_average", "rating_count", "is_active"]
    list_filter = ["is_active", "category", "brand"]
    list_editable = ["price", "stock", "is_active"]
    search_fields = ["title", "brand", "slug"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["rating_average", "rating_count", "source_key", "created_at", "updated_at"]
    list_select_related = ["category"]
    list_per_page = 50


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["title", "product", "rating", "author_name", "status", "is_simulated", "created_at"]
    list_filter = ["status", "rating", "is_simulated"]
    search_fields = ["title", "text", "product__title", "author_name"]
    list_select_related = ["product"]
    raw_id_fields = ["product", "user"]
    actions = ["approve", "reject"]

    @admin.action(description="Approve selected reviews")
    def approve(self, request, queryset):
        count = services.moderate_reviews(queryset.values_list("pk", flat=True), Review.Status.APPROVED)
        self.message_user(request, f"Approved {count} review(s).")

    @admin.action(description="Reject selected reviews")
    def reject(self, request, queryset):
        count = services.moderate_reviews(queryset.values_list("pk", flat=True), Review.Status.REJECTED)
        self.message_user(request, f"Rejected {count} review(s).")


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    readonly_fields = ["product", "title", "unit_price", "quantity"]
    can_delete = False


class OrderStatusEventInline(admin.TabularInline):
    model = OrderStatusEvent
    extra = 0
    readonly_fields = ["status", "note", "created_at"]
    can_delete = False


class ReturnRequestInline(admin.TabularInline):
    model = ReturnRequest
    extra = 0
    fields = ["status", "reason", "channel", "created_at"]
    readonly_fields = ["reason", "channel", "created_at"]
    can_delete = False


@admin.register(ReturnRequest)
class ReturnRequestAdmin(admin.ModelAdmin):
    list_display = ["order", "status", "channel", "created_at"]
    list_filter = ["status", "channel"]
    search_fields = ["order__number", "order__email", "reason"]
    readonly_fields = ["order", "reason", "channel", "created_at"]


def _status_action(status: str, label: str):
    def action(modeladmin, request, queryset):
        done, failed = 0, []
        for order in queryset:
            try:
                services.change_order_status(order, status, note=f"by {request.user.get_username()}")
                done += 1
            except ValidationError as exc:
                failed.append(f"{order.number}: {' '.join(exc.messages)}")
        if done:
            modeladmin.message_user(request, f"{label}: {done} order(s).")
        for message in failed:
            modeladmin.message_user(request, message, level=messages.WARNING)

    action.short_description = f"Mark selected orders as {label.lower()}"
    action.__name__ = f"mark_{status}"
    return action


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "created_at", "customer", "status_badge", "total", "tracking_number", "is_simulated"]
    list_filter = ["status", "is_simulated", "created_at"]
    search_fields = ["number", "email", "full_name", "tracking_number"]
    date_hierarchy = "created_at"
    inlines = [OrderItemInline, OrderStatusEventInline, ReturnRequestInline]
    readonly_fields = ["number", "user", "status", "subtotal", "shipping", "total", "payment_reference",
                       "tracking_number", "created_at", "is_simulated"]
    actions = [_status_action(s, label) for s, label in (
        (Order.Status.SHIPPED, "Shipped"), (Order.Status.DELIVERED, "Delivered"),
        (Order.Status.CANCELLED, "Cancelled"), (Order.Status.REFUNDED, "Refunded"),
    )]

    @admin.display(description="Customer")
    def customer(self, order: Order) -> str:
        return order.full_name or order.email

    @admin.display(description="Status", ordering="status")
    def status_badge(self, order: Order) -> str:
        return format_html('<span class="order-status order-status--{}">{}</span>', order.status,
                           order.get_status_display())


class CartItemInline(admin.TabularInline):
    model = CartItem
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ["pk", "user", "created_at", "updated_at"]
    inlines = [CartItemInline]
    raw_id_fields = ["user"]


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "is_simulated"]
    list_filter = ["is_simulated"]
    search_fields = ["user__username", "user__email"]
