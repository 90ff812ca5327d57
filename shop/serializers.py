"""Serializers of the REST API. They only shape data and check input types; the rules
(quantities, addresses, cards, review content) come from validators.py and services.py,
so the pages and the API answer with the same messages."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from . import services
from .models import Category, Order, OrderItem, OrderStatusEvent, Product, Review
from .payments import CardDetails
from .validators import MAX_LINE_QUANTITY, validate_address, validate_card, validate_quantity

LOW_STOCK_THRESHOLD = 5

# ASCII digits only: str.isdigit() also says yes to "²" or "٣", which int() then refuses (a 500 before).
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")
MAX_ID = 2**63 - 1  # a bigint primary key

QUANTITY_NOT_WHOLE = "Quantity must be a whole number."
RATING_NOT_WHOLE = "Rating must be a whole number of stars from 1 to 5."


@extend_schema_field(OpenApiTypes.INT)
class WholeNumberField(serializers.Field):
    """An integer that must be sent as one: 3 or "3", never 3.5, "three" or true.

    DRF's IntegerField silently accepts 4.0 and says "A valid integer is required."; this
    field answers with the shop's own message (passed as `invalid_message`)."""

    def __init__(self, *, invalid_message: str, **kwargs) -> None:
        self.invalid_message = invalid_message
        super().__init__(**kwargs)
        self.error_messages["null"] = invalid_message

    def to_internal_value(self, data) -> int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        if isinstance(data, str) and WHOLE_NUMBER.fullmatch(data.strip()):
            return int(data.strip())
        raise serializers.ValidationError(self.invalid_message, code="invalid")

    def to_representation(self, value) -> int:
        return int(value)


def _enum_schema(choices: type) -> dict:
    return {
        "type": "string",
        "enum": list(choices.values),
        "description": "\n".join(f"* `{value}` - {label}" for value, label in choices.choices),
    }


# Order and review statuses are both called `status`; named components keep the schema's
# enum names stable (and free of drf-spectacular's collision warning).
@extend_schema_field(_enum_schema(Order.Status), component_name="OrderStatusEnum")
class OrderStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=Order.Status.choices, **kwargs)


@extend_schema_field(_enum_schema(Review.Status), component_name="ReviewStatusEnum")
class ReviewStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=Review.Status.choices, **kwargs)


# --- Catalogue ---------------------------------------------------------------------------


class CategoryRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "slug"]
        read_only_fields = fields


class CategoryTreeSerializer(serializers.ModelSerializer):
    """A category with its whole subtree (`children`, recursively) and its parent's slug."""

    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True,
                                          help_text="The parent's slug; null for a top-level category.")
    children = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = ["id", "name", "slug", "description", "parent", "children"]
        read_only_fields = fields

    def get_children(self, category: Category) -> list[dict]:
        # services.category_tree() fills `subcategories` from one query; fall back to the relation.
        children = getattr(category, "subcategories", None)
        if children is None:
            children = category.children.all()
        return CategoryTreeSerializer(children, many=True, context=self.context).data


# The schema of `children` refers to the serializer itself (a recursive component).
extend_schema_field(CategoryTreeSerializer(many=True, read_only=True))(CategoryTreeSerializer.get_children)


def stock_state(product: Product) -> str:
    if not product.is_active or product.price is None:
        return "not_for_sale"
    if product.stock <= 0:
        return "out_of_stock"
    if product.stock <= LOW_STOCK_THRESHOLD:
        return "low_stock"
    return "in_stock"


STOCK_STATES = ["in_stock", "low_stock", "out_of_stock", "not_for_sale"]


class ProductSummarySerializer(serializers.ModelSerializer):
    """A product as shown in cart lines."""

    stock_state = serializers.SerializerMethodField()
    is_purchasable = serializers.BooleanField(read_only=True)

    class Meta:
        model = Product
        fields = ["id", "slug", "title", "brand", "price", "image_hue", "stock_state", "is_purchasable"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=STOCK_STATES))
    def get_stock_state(self, product: Product) -> str:
        return stock_state(product)


class ProductListSerializer(ProductSummarySerializer):
    """A product as shown in lists: with its category, rating and discount."""

    category = CategoryRefSerializer(read_only=True)
    rating = serializers.DecimalField(source="display_rating", max_digits=3, decimal_places=2,
                                      read_only=True, allow_null=True)
    review_count = serializers.IntegerField(source="display_review_count", read_only=True)

    class Meta(ProductSummarySerializer.Meta):
        fields = [
            *ProductSummarySerializer.Meta.fields,
            "compare_at_price", "discount_label", "category", "rating", "review_count",
        ]
        read_only_fields = fields


class ProductDetailSerializer(ProductListSerializer):
    """A product's page: everything in the list plus bullets, description and how many may be bought."""

    discount_amount = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True, allow_null=True)
    features = serializers.ListField(child=serializers.CharField(), read_only=True)
    max_quantity = serializers.SerializerMethodField()

    class Meta(ProductListSerializer.Meta):
        fields = [
            *ProductListSerializer.Meta.fields,
            "discount_amount", "features", "description", "max_quantity",
        ]
        read_only_fields = fields

    def get_max_quantity(self, product: Product) -> int:
        """How many a shopper may put in the cart now (0 when it cannot be bought)."""
        return min(product.stock, MAX_LINE_QUANTITY) if product.is_purchasable else 0


class ProductFilterSerializer(serializers.Serializer):
    """Query parameters of the product list; each bad one gets its own message."""

    category = serializers.SlugField(required=False, help_text="Category slug; includes its subcategories.")
    brand = serializers.ListField(child=serializers.CharField(max_length=120), required=False,
                                  help_text="Brand name; repeat the parameter for several brands.")
    min_price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"), required=False)
    max_price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("0"), required=False)
    in_stock = serializers.BooleanField(required=False, default=False, help_text="Only products in stock.")
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Keywords.")
    ordering = serializers.ChoiceField(choices=list(services.SORTS), required=False, default="relevance")

    def validate_category(self, slug: str) -> Category:
        category = Category.objects.filter(slug=slug).first()
        if category is None:
            raise serializers.ValidationError(f"There is no category “{slug}”.")
        return category

    def validate(self, attrs: dict) -> dict:
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"max_price": ["The maximum price must not be below the minimum."]})
        return attrs

    def to_filters(self) -> services.ProductFilters:
        data = self.validated_data
        return services.ProductFilters(
            category=data.get("category"),
            brands=tuple(brand.strip() for brand in data.get("brand", []) if brand.strip()),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=data.get("in_stock", False),
            query=data.get("q", "").strip(),
            sort=data.get("ordering", "relevance"),
        )


# --- Cart ----------------------------------------------------------------------------------


class CartLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    product = ProductSummarySerializer(read_only=True)
    quantity = serializers.IntegerField(read_only=True)
    unit_price = serializers.DecimalField(source="product.price", max_digits=10, decimal_places=2,
                                          read_only=True, allow_null=True)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)


# One object even on the viewset's `list` route (GET /api/cart/), which drf-spectacular would document as an array.
@extend_schema_serializer(many=False)
class CartSerializer(serializers.Serializer):
    """The shopper's cart: `id` is null while nothing was ever added."""

    id = serializers.IntegerField(read_only=True, allow_null=True)
    lines = CartLineSerializer(many=True, read_only=True)
    item_count = serializers.IntegerField(read_only=True)
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    shipping = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)
    total = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    free_shipping_from = serializers.DecimalField(max_digits=10, decimal_places=2, read_only=True)


def _check_quantity(quantity: int) -> int:
    try:
        return validate_quantity(quantity)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict["quantity"]) from exc


class CartItemCreateSerializer(serializers.Serializer):
    product_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = WholeNumberField(invalid_message=QUANTITY_NOT_WHOLE, required=False, default=1)

    def validate_quantity(self, quantity: int) -> int:
        return _check_quantity(quantity)


class CartItemUpdateSerializer(serializers.Serializer):
    quantity = WholeNumberField(invalid_message=QUANTITY_NOT_WHOLE, help_text="0 removes the line.")

    def validate_quantity(self, quantity: int) -> int:
        return quantity if quantity == 0 else _check_quantity(quantity)


# --- Orders ------------------------------------------------------------------------------


class OrderItemSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)

    class Meta:
        model = OrderItem
        fields = ["id", "product", "title", "unit_price", "quantity", "line_total"]


class OrderStatusEventSerializer(serializers.ModelSerializer):
    status = OrderStatusField(read_only=True)

    class Meta:
        model = OrderStatusEvent
        fields = ["status", "created_at"]  # the note can mention the card: never sent


class OrderListSerializer(serializers.ModelSerializer):
    status = OrderStatusField(read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    items = OrderItemSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "number", "status", "status_display", "created_at", "email",
            "full_name", "address_line1", "address_line2", "city", "postal_code", "country", "phone",
            "subtotal", "shipping", "total", "tracking_number", "items",
        ]
        read_only_fields = fields


class OrderSerializer(OrderListSerializer):
    history = OrderStatusEventSerializer(many=True, read_only=True)

    class Meta(OrderListSerializer.Meta):
        fields = [*OrderListSerializer.Meta.fields, "history"]
        read_only_fields = fields


class CheckoutSerializer(serializers.Serializer):
    """Checkout input. Address and card are checked by the shared validators, all at once,
    so one answer names every bad field. Card data is write-only and never stored."""

    # Checked in validate() with the rest, so one answer names every bad field.
    email = serializers.CharField(required=False, allow_blank=True, max_length=254,
                                  help_text="E-mail address; defaults to the account's.")
    # The order's own column widths, so nothing longer than the database holds gets that far.
    full_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                      max_length=Order._meta.get_field("full_name").max_length)
    address_line1 = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          max_length=Order._meta.get_field("address_line1").max_length)
    address_line2 = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          max_length=Order._meta.get_field("address_line2").max_length)
    city = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 max_length=Order._meta.get_field("city").max_length)
    postal_code = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                        max_length=Order._meta.get_field("postal_code").max_length)
    country = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=2,
                                    help_text="ISO 3166 two-letter code of a country we ship to.")
    phone = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                  max_length=Order._meta.get_field("phone").max_length)
    card_number = serializers.CharField(write_only=True, required=False, allow_blank=True)
    card_expiry = serializers.CharField(write_only=True, required=False, allow_blank=True, help_text="MM/YY")
    card_cvc = serializers.CharField(write_only=True, required=False, allow_blank=True)

    ADDRESS_FIELDS = ("full_name", "address_line1", "address_line2", "city", "postal_code", "country", "phone")

    def validate(self, attrs: dict) -> dict:
        errors: dict = {}
        email = attrs.get("email") or ""
        if not email:
            user = self.context["request"].user
            email = user.email if user.is_authenticated else ""
        if not email:
            errors["email"] = ["Enter an e-mail address for the order confirmation."]
        else:
            try:
                validate_email(email)
            except DjangoValidationError as exc:
                errors["email"] = exc.messages
        address = {field: attrs.get(field, "") for field in self.ADDRESS_FIELDS}
        try:
            address = validate_address(address)
        except DjangoValidationError as exc:
            errors.update(exc.message_dict)
        card = None
        try:
            number, month, year, cvc = validate_card(
                attrs.get("card_number", ""), attrs.get("card_expiry", ""), attrs.get("card_cvc", "")
            )
            card = CardDetails(number=number, expiry_month=month, expiry_year=year, cvc=cvc)
        except DjangoValidationError as exc:
            errors.update(exc.message_dict)
        if errors:
            raise serializers.ValidationError(errors)
        return {"email": email, "address": address, "card": card}


# --- Reviews -----------------------------------------------------------------------------


class ReviewSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = ReviewStatusField(read_only=True)

    class Meta:
        model = Review
        fields = ["id", "product", "author_name", "rating", "title", "text", "status", "created_at"]
        read_only_fields = fields


class ReviewCreateSerializer(serializers.Serializer):
    """Review input; the content rules (stars, lengths, one per product) are post_review's."""

    product = serializers.SlugRelatedField(
        slug_field="slug", queryset=services.active_products(),
        error_messages={"does_not_exist": "There is no product “{value}”.", "invalid": "Give a product slug."},
    )
    rating = WholeNumberField(invalid_message=RATING_NOT_WHOLE, help_text="Whole stars, 1 to 5.")
    title = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                  max_length=Review._meta.get_field("title").max_length,
                                  error_messages={"max_length": "The title can be at most {max_length} characters."})
    text = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                 max_length=Review._meta.get_field("text").max_length,
                                 error_messages={"max_length": "Reviews can be at most {max_length} characters."})
