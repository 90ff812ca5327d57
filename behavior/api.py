"""The browser beacon: POST /api/events/batch."""

from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.throttling import AccountAndAddressThrottle
from shop import services as shop_services

from . import services


@method_decorator(csrf_protect, name="dispatch")
class EventBatchView(APIView):
    """Client-only events (recommendations shown/clicked, time on page) in batches of up to 100.

    The shopper is taken from the session and the visitor cookie, never from the payload.
    CSRF is enforced for everyone (send X-CSRFToken), and the endpoint is rate limited.
    """

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [AccountAndAddressThrottle]  # by address and account, X-Forwarded-For only if trusted
    throttle_scope = "events"

    @extend_schema(
        summary="Record a batch of browser events",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 429: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("batch", request_only=True, value={"events": [
            {"id": "6f1c2a9e-1b7d-4c55-9d1e-0a5f8b1c2d3e", "type": "rec_clicked", "product": 42,
             "occurred_at": "2026-11-23T10:00:00Z", "properties": {"rail": "related", "position": 2}}]})],
    )
    def post(self, request: Request) -> Response:
        payload = request.data
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            return Response({"detail": "Send a JSON object with an `events` list."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            result = services.ingest_client_batch(
                events, user=request.user, visitor_id=shop_services.request_visitor_id(request._request))
        except services.BatchTooLarge as exc:
            return Response({"detail": str(exc), "stored": 0}, status=status.HTTP_400_BAD_REQUEST)
        code = status.HTTP_400_BAD_REQUEST if result.errors else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)
