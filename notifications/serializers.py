"""The shapes of the webhook management API (notifications/api.py)."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    id = serializers.CharField(source="code", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    """With the signing secret: the answer to a create and to a rotation."""

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [
            *WebhookEndpointSerializer.Meta.fields,
            "secret",
            "previous_secret_expires_at",
        ]
        read_only_fields = fields


class WebhookEndpointInputSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=2000, help_text="http or https.")
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices),
        allow_empty=False,
        max_length=len(WebhookEventType.choices),
    )


class WebhookAttemptSerializer(serializers.ModelSerializer[WebhookAttempt]):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "created_at",
            "url",
            "request_headers",
            "response_status",
            "response_excerpt",
            "duration_ms",
            "error",
            "succeeded",
        ]
        read_only_fields = fields


class WebhookMessageSerializer(serializers.ModelSerializer[WebhookMessage]):
    id = serializers.CharField(source="message_id", read_only=True)
    type = serializers.CharField(source="event_type", read_only=True)
    shipment_id = serializers.CharField(source="shipment_code", read_only=True)
    status = serializers.ChoiceField(choices=WebhookStatus.choices, read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta:
        model = WebhookMessage
        fields = [
            "id",
            "type",
            "shipment_id",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "last_error",
            "payload",
        ]
        read_only_fields = fields

    def get_payload(self, obj: WebhookMessage) -> dict[str, Any]:
        return json.loads(obj.payload)  # type: ignore[no-any-return]


class WebhookMessageDetailSerializer(WebhookMessageSerializer):
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta(WebhookMessageSerializer.Meta):
        fields = [*WebhookMessageSerializer.Meta.fields, "attempt_log"]
        read_only_fields = fields
