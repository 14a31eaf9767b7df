"""POST /api/v1/carriers/<carrier code>/webhook/: carriers push their events.

No API key: each push is verified on its raw bytes with the carrier's secret
(`shipments.carrier_formats`), stored once per provider event id, answered
202 at once and processed by a Celery task (`shipments.carrier_services`).
A replay answers 200 "duplicate" and does nothing. Every refusal is a 4xx
application/problem+json (tracksop/api.py's handler), and stores nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shipments import carrier_formats
from shipments.carrier_services import carrier_webhook_receive
from shipments.models import Carrier, PushFormat
from tracksop.api import PayloadTooLarge

log = logging.getLogger(__name__)


def webhook_secret(carrier: Carrier) -> str:
    return str(settings.TRACKSOP_CARRIER_WEBHOOK_SECRETS.get(carrier.code, ""))


class PushAnswerSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["accepted", "duplicate"])
    id = serializers.CharField(help_text="The provider's event id of the push.")
    received_at = serializers.DateTimeField()


class CarrierWebhookView(APIView):
    # No API key: the signature on the body is the carrier's credential.
    authentication_classes: list[type[Any]] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[Any]] = []

    @extend_schema(
        operation_id="carrier_webhook_push",
        summary="Receive a carrier's push (generic signed JSON or UPS Track Alert)",
        description=(
            "Signed with the carrier's secret: `TrackSOP-Signature: t=<unix>,"
            "v1=<hex HMAC-SHA256 of '<t>.' + body>` (generic) or the subscription's "
            "`credential` header (UPS Track Alert). The body shown is the generic "
            "format."
        ),
        request=carrier_formats.GenericPushSerializer,
        parameters=[
            OpenApiParameter(
                carrier_formats.SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="Generic format: t=<unix time>,v1=<hex HMAC-SHA256>.",
            ),
            OpenApiParameter(
                carrier_formats.UPS_CREDENTIAL_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="UPS Track Alert: the subscription's credential.",
            ),
        ],
        # Errors (problem+json) are added to every operation by
        # tracksop.api's schema hook.
        responses={202: PushAnswerSerializer, 200: PushAnswerSerializer},
        tags=["carrier webhooks"],
    )
    def post(self, request: Request, code: str) -> Response:
        limit = settings.TRACKSOP_API_MAX_BODY
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise PayloadTooLarge(
                f"The request body is {length} bytes; the limit is {limit}."
            )
        carrier = (
            Carrier.objects.filter(code=code, is_active=True).first()
            if len(code) <= 32 and "\x00" not in code
            else None
        )
        if carrier is None:
            raise exceptions.NotFound("No active carrier has this code.")
        secret = webhook_secret(carrier)
        if not secret:
            log.warning(
                "Push to carrier %s refused: it has no secret in "
                "TRACKSOP_CARRIER_WEBHOOK_SECRETS",
                carrier.code,
            )
            raise exceptions.PermissionDenied(
                "This carrier's pushes are not enabled (no webhook secret is "
                "configured)."
            )
        try:
            body = request.body
        except RequestDataTooBig:
            raise PayloadTooLarge(f"The request body is over {limit} bytes.") from None
        if len(body) > limit:
            raise PayloadTooLarge(
                f"The request body is {len(body)} bytes; the limit is {limit}."
            )
        carrier_formats.verify(
            carrier.push_format,
            body=body,
            headers=request.headers,
            secret=secret,
            now=timezone.now(),
        )
        push = carrier_formats.parse(carrier.push_format, body)
        webhook, created = carrier_webhook_receive(
            carrier=carrier, push=push, body=body, headers=request.headers
        )
        # UPS's spec asks for a 200; everyone else learns "not processed yet".
        accepted = (
            status.HTTP_200_OK
            if carrier.push_format == PushFormat.UPS_TRACK_ALERT
            else status.HTTP_202_ACCEPTED
        )
        return Response(
            {
                "status": "accepted" if created else "duplicate",
                "id": webhook.provider_event_id,
                "received_at": webhook.received_at,
            },
            status=accepted if created else status.HTTP_200_OK,
        )


urlpatterns = [
    path(
        "carriers/<str:code>/webhook/",
        CarrierWebhookView.as_view(),
        name="api-carrier-webhook",
    ),
]
