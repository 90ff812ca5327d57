"""GET /api/sentiment/products/<slug>/summary: the precomputed, cached summary (no model runs here)."""

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services


class ProductSentimentSummaryView(APIView):
    """What shoppers say about one product: shares of positive/neutral/negative reviews, the aspects
    they love and complain about, and which model scored them."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Review sentiment summary of a product",
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("summary", response_only=True, value={
            "product": "sony-wh-1000xm5-42", "reviews": 37, "positive_share": 0.73, "neutral_share": 0.11,
            "negative_share": 0.16, "average_score": 0.52, "loves": ["sound", "battery"], "complaints": ["fit"],
            "model_version": "ml:sentiment:v3"})],
    )
    def get(self, request: Request, slug: str) -> Response:
        try:
            product, summary = services.product_summary_for_slug(slug)
        except ObjectDoesNotExist:
            return Response({"detail": "No such product."}, status=404)
        return Response({"product": product.slug, **summary})
