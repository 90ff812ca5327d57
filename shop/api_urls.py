"""URLs of the REST API, mounted at /api/ (the schema and docs are in config/urls.py)."""

from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("products", api.ProductViewSet, basename="product")
router.register("categories", api.CategoryViewSet, basename="category")
router.register("cart/items", api.CartItemViewSet, basename="cart-item")
router.register("cart", api.CartViewSet, basename="cart")
router.register("orders", api.OrderViewSet, basename="order")
router.register("reviews", api.ReviewViewSet, basename="review")

urlpatterns = router.urls
