"""REST API of the shop (mounted at /api/ by shop/api_urls.py).

The viewsets are thin: they parse input with the serializers, call services.py and shape
the answer. Domain errors (django ValidationError) become 400s in config/api.py."""

from __future__ import annotations

from dataclasses import asdict

from django.db import IntegrityError, transaction
from django.db.models import QuerySet, prefetch_related_objects
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import SAFE_METHODS, AllowAny, IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from config.throttling import AccountAndAddressThrottle

from . import services
from .middleware import visitor_id
from .models import Cart, CartItem, Category, Order, Product, Review
from .payments import PaymentDeclined
from .serializers import (
    CartItemCreateSerializer,
    CartItemUpdateSerializer,
    CartSerializer,
    CategoryTreeSerializer,
    CheckoutSerializer,
    OrderListSerializer,
    OrderSerializer,
    ProductDetailSerializer,
    ProductFilterSerializer,
    ProductListSerializer,
    ReviewCreateSerializer,
    ReviewSerializer,
)

ERRORS = {400: OpenApiResponse(description="Invalid input: field -> messages.")}
NOT_FOUND = {404: OpenApiResponse(description="Not found.")}


class WriteThrottleMixin:
    """ScopedRateThrottle (scope `throttle_scope`) on unsafe methods only: reads are free."""

    throttle_classes = [AccountAndAddressThrottle]

    def get_throttles(self) -> list:
        if self.request.method in SAFE_METHODS:
            return []
        return super().get_throttles()


def _user_or_none(request: Request):
    return request.user if request.user.is_authenticated else None


def _visitor_id(request: Request) -> str:
    return visitor_id(request._request)


# --- Catalogue ---------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List products",
        parameters=[ProductFilterSerializer],
        responses={200: ProductListSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(summary="A product by slug", responses={200: ProductDetailSerializer, **NOT_FOUND}),
)
class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """Active products of the catalogue."""

    permission_classes = [AllowAny]
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Product]:
        return services.active_products()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ProductDetailSerializer if self.action == "retrieve" else ProductListSerializer

    def list(self, request: Request, *args, **kwargs) -> Response:
        params = ProductFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = self.paginate_queryset(services.filter_products(params.to_filters()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def get_object(self) -> Product:
        slug = self.kwargs["slug"]
        try:
            return services.get_product(slug)
        except Product.DoesNotExist as exc:
            raise NotFound(f"There is no product “{slug}”.") from exc


@extend_schema_view(
    list=extend_schema(summary="The category tree", responses=CategoryTreeSerializer(many=True)),
    retrieve=extend_schema(summary="A category and its subtree", responses={200: CategoryTreeSerializer,
                                                                            **NOT_FOUND}),
)
class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """Categories as a tree: top-level ones, each with its children (recursively)."""

    permission_classes = [AllowAny]
    serializer_class = CategoryTreeSerializer
    queryset = Category.objects.all()
    lookup_field = "slug"
    pagination_class = None

    def list(self, request: Request, *args, **kwargs) -> Response:
        roots = services.category_tree()
        return Response(CategoryTreeSerializer(roots, many=True, context=self.get_serializer_context()).data)

    def get_object(self) -> Category:
        slug = self.kwargs["slug"]
        pending = services.category_tree()
        while pending:  # walk the tree built in one query, so the subtree needs no more queries
            category = pending.pop()
            if category.slug == slug:
                return category
            pending.extend(category.subcategories)
        raise NotFound(f"There is no category “{slug}”.")


# --- Cart ----------------------------------------------------------------------------------


def _cart_payload(cart: Cart | None) -> dict:
    lines = services.cart_lines(cart)
    return {
        "id": cart.pk if cart else None,
        "lines": lines,
        **asdict(services.cart_totals(lines)),
        "free_shipping_from": services.FREE_SHIPPING_FROM,
    }


def _cart_response(request: Request, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(CartSerializer(_cart_payload(services.get_cart(request))).data, status=status_code)


class CartViewSet(WriteThrottleMixin, viewsets.ViewSet):
    """The cart of the session (anonymous shoppers) or of the signed-in user."""

    permission_classes = [AllowAny]
    throttle_scope = "cart_write"

    @extend_schema(summary="The current cart", responses=CartSerializer)
    def list(self, request: Request) -> Response:
        return _cart_response(request)


LINE_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Cart line id.")
NO_SUCH_LINE = "No such line in your cart."


class CartItemViewSet(WriteThrottleMixin, viewsets.ViewSet):
    """Lines of the current cart. Writes are throttled (scope `cart_write`)."""

    permission_classes = [AllowAny]
    throttle_scope = "cart_write"
    lookup_value_regex = r"\d+"

    @extend_schema(summary="Add a product to the cart", request=CartItemCreateSerializer,
                   responses={201: CartSerializer, **ERRORS, **NOT_FOUND})
    def create(self, request: Request) -> Response:
        data = CartItemCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product_id = data.validated_data["product_id"]
        product = services.get_products([product_id])
        if not product:
            raise NotFound(f"There is no product with id {product_id}.")
        cart = services.get_cart(request, create=True)
        services.add_to_cart(cart, product[0], data.validated_data["quantity"], user=_user_or_none(request),
                             visitor_id=_visitor_id(request))
        return _cart_response(request, status.HTTP_201_CREATED)

    @extend_schema(summary="Change a line's quantity (0 removes it)", parameters=[LINE_ID],
                   request=CartItemUpdateSerializer, responses={200: CartSerializer, **ERRORS, **NOT_FOUND})
    def partial_update(self, request: Request, pk: str) -> Response:
        data = CartItemUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cart = services.get_cart(request)
        if cart is None:
            raise NotFound(NO_SUCH_LINE)
        try:
            services.set_line_quantity(cart, int(pk), data.validated_data["quantity"], user=_user_or_none(request),
                                       visitor_id=_visitor_id(request))
        except CartItem.DoesNotExist as exc:
            raise NotFound(NO_SUCH_LINE) from exc
        return _cart_response(request)

    @extend_schema(summary="Remove a line", parameters=[LINE_ID], responses={204: None, **NOT_FOUND})
    def destroy(self, request: Request, pk: str) -> Response:
        cart = services.get_cart(request)
        if cart is None:
            raise NotFound(NO_SUCH_LINE)
        try:
            services.remove_line(cart, int(pk), user=_user_or_none(request), visitor_id=_visitor_id(request))
        except CartItem.DoesNotExist as exc:
            raise NotFound(NO_SUCH_LINE) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Orders ------------------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="8-64 URL-safe characters, new for each checkout. A retry with the same key returns the "
                "order the first call placed (same status and body) instead of placing and charging a second.",
)


@extend_schema_view(
    list=extend_schema(summary="Your orders", responses=OrderListSerializer(many=True)),
    retrieve=extend_schema(summary="One of your orders", responses={200: OrderSerializer, **NOT_FOUND}),
    create=extend_schema(
        summary="Check out the current cart",
        parameters=[IDEMPOTENCY_KEY],
        request=CheckoutSerializer,
        responses={201: OrderSerializer, **ERRORS},
    ),
)
class OrderViewSet(WriteThrottleMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   viewsets.GenericViewSet):
    """The signed-in shopper's own orders; POST places an order from the current cart."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "checkout"
    lookup_field = "number"
    queryset = Order.objects.none()  # for the schema; get_queryset is what runs

    def get_queryset(self) -> QuerySet[Order]:
        return services.orders_for_user(self.request.user).prefetch_related("items__product")

    def get_serializer_class(self) -> type[BaseSerializer]:
        return {"list": OrderListSerializer, "create": CheckoutSerializer}.get(self.action, OrderSerializer)

    def get_object(self) -> Order:
        try:
            order = services.get_order_for_user(self.request.user, self.kwargs["number"])
        except Order.DoesNotExist as exc:
            raise NotFound("You have no order with this number.") from exc
        prefetch_related_objects([order], "items__product")
        return order

    def create(self, request: Request, *args, **kwargs) -> Response:
        checkout = CheckoutSerializer(data=request.data, context=self.get_serializer_context())
        checkout.is_valid(raise_exception=True)
        cart = services.get_cart(request)
        if cart is None:
            raise ValidationError({"cart": ["Your cart is empty."]})
        try:
            outcome = services.checkout(
                cart=cart,
                email=checkout.validated_data["email"],
                address=checkout.validated_data["address"],
                card=checkout.validated_data["card"],
                visitor_id=_visitor_id(request),
                user=request.user,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        except PaymentDeclined as exc:
            raise ValidationError({"payment": exc.messages}) from exc
        # A repeat of a key answers as the first call did: 201 with the same order.
        order = services.get_order_for_user(request.user, outcome.order.number)
        prefetch_related_objects([order], "items__product")
        return Response(OrderSerializer(order, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


# --- Reviews -----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Approved reviews",
        parameters=[OpenApiParameter("product", OpenApiTypes.STR, description="Only this product's (slug).")],
        responses={200: ReviewSerializer(many=True), **ERRORS},
    ),
    create=extend_schema(
        summary="Write a review (published after moderation)",
        request=ReviewCreateSerializer,
        responses={201: ReviewSerializer, **ERRORS},
    ),
)
class ReviewViewSet(WriteThrottleMixin, mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Approved reviews for everyone; signed-in shoppers may post one review per product."""

    permission_classes = [IsAuthenticatedOrReadOnly]
    throttle_scope = "review_write"
    serializer_class = ReviewSerializer
    queryset = Review.objects.none()  # for the schema; get_queryset is what runs

    def get_queryset(self) -> QuerySet[Review]:
        slug = self.request.query_params.get("product", "").strip()
        if not slug:
            return services.approved_reviews()
        product = services.active_products().filter(slug=slug).first()
        if product is None:
            raise ValidationError({"product": [f"There is no product “{slug}”."]})
        return services.approved_reviews(product)

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ReviewCreateSerializer if self.action == "create" else ReviewSerializer

    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ReviewCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                review = services.post_review(
                    product=data.validated_data["product"],
                    user=request.user,
                    visitor_id=_visitor_id(request),
                    rating=data.validated_data["rating"],
                    title=data.validated_data["title"],
                    text=data.validated_data["text"],
                )
        except IntegrityError as exc:  # a second review raced past post_review's check
            raise ValidationError({"product": ["You have already reviewed this product."]}) from exc
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
