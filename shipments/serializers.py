"""What the API reads and writes for shipments (shipments/api.py).

Input goes through the same Django forms as the staff pages (`form_data`), so
an API client gets exactly the form's rules and messages; the serializers
declare the fields for the schema and turn JSON types into form values.
"""

from __future__ import annotations

from typing import Any

from django import forms
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from shipments.ingest import INGEST_LIMIT
from shipments.models import Carrier, Location, Shipment
from shipments.services import DETAIL_FIELDS
from shipments.status import CHECKPOINT_KINDS, ShipmentStatus

TEXT_MAX = 2000
REFERENCE_MAX = 60
EXTERNAL_ID_MAX = 100


def form_data(form: forms.BaseForm) -> dict[str, Any]:
    """The form's cleaned data, or a DRF validation error with its messages."""
    if not form.is_valid():
        raise serializers.ValidationError(
            {
                ("detail" if name == "__all__" else name): [
                    str(message) for message in messages
                ]
                for name, messages in form.errors.items()
            }
        )
    return dict(form.cleaned_data)


def as_form_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    return value


class ShipmentSerializer(serializers.ModelSerializer[Shipment]):
    """A shipment as the API shows it."""

    carrier: serializers.SlugRelatedField[Carrier] = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )
    current_location: serializers.SlugRelatedField[Location] = (
        serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    )
    sender_phone = serializers.CharField(read_only=True)
    recipient_phone = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=ShipmentStatus.choices, read_only=True)

    class Meta:
        model = Shipment
        fields = [
            "shipment_id",
            *DETAIL_FIELDS,
            "status",
            "carrier",
            "tracking_number",
            "estimated_delivery",
            "dispatched_at",
            "delivered_at",
            "current_location",
            "last_event_at",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = fields


@extend_schema_serializer(many=False)  # a page object, not a list of pages
class ShipmentPageSerializer(serializers.Serializer[Any]):
    """One page of the list; follow `next` until it is null."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ShipmentSerializer(many=True)


class ShipmentWriteSerializer(serializers.Serializer[Any]):
    """The fields of the shipment form; on update every field is optional.
    Types only: lengths and rules are the form's, so the messages are too."""

    shipment_id = serializers.CharField(
        required=False, allow_blank=True, help_text="Empty: generated."
    )
    order_number = serializers.CharField(max_length=64)
    sender_name = serializers.CharField(max_length=200)
    sender_email = serializers.EmailField(required=False, allow_blank=True)
    sender_phone = serializers.CharField(
        required=False, allow_blank=True, help_text="E.164"
    )
    sender_address = serializers.CharField(max_length=500)
    notify_sender = serializers.BooleanField(required=False, default=False)
    recipient_name = serializers.CharField(max_length=200)
    language = serializers.CharField(required=False, allow_blank=True)
    recipient_email = serializers.EmailField(required=False, allow_blank=True)
    recipient_phone = serializers.CharField(
        required=False, allow_blank=True, help_text="E.164"
    )
    recipient_address = serializers.CharField(max_length=500)
    recipient_postcode = serializers.CharField(required=False, allow_blank=True)
    recipient_city = serializers.CharField(max_length=100)
    recipient_country = serializers.CharField(help_text="ISO 3166")
    weight_kg = serializers.DecimalField(max_digits=None, decimal_places=None)
    length_cm = serializers.DecimalField(max_digits=None, decimal_places=None)
    width_cm = serializers.DecimalField(max_digits=None, decimal_places=None)
    height_cm = serializers.DecimalField(max_digits=None, decimal_places=None)
    contents = serializers.CharField(max_length=1000)
    pieces = serializers.IntegerField(
        required=False, default=1, min_value=1, max_value=32767
    )
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="On update: the version you read; a later one answers 409.",
    )


class DispatchSerializer(serializers.Serializer[Any]):
    carrier = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="Carrier code; empty: detected from the tracking number.",
    )
    tracking_number = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=REFERENCE_MAX,
        help_text="Empty for the own fleet: one is generated.",
    )
    estimated_delivery = serializers.DateField()
    version = serializers.IntegerField(required=False, min_value=1)


class CheckSerializer(serializers.Serializer[Any]):
    quality_ok = serializers.BooleanField()
    quantity_ok = serializers.BooleanField()
    notes = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    version = serializers.IntegerField(required=False, min_value=1)


class CancelSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=TEXT_MAX)
    version = serializers.IntegerField(required=False, min_value=1)


class CheckpointSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(
        choices=[(k.value, k.label) for k in CHECKPOINT_KINDS]
    )
    occurred_at = serializers.DateTimeField(
        required=False, help_text="ISO 8601 with offset; empty: now."
    )
    location = serializers.CharField(
        required=False, allow_blank=True, max_length=32, help_text="Location code"
    )
    notes = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=TEXT_MAX,
        help_text="Staff-only: never shown to customers.",
    )
    external_id = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=EXTERNAL_ID_MAX,
        help_text="The sender's event id: the same id twice is one event.",
    )


class BatchCheckpointSerializer(CheckpointSerializer):
    reference = serializers.CharField(
        max_length=REFERENCE_MAX, help_text="Shipment ID or tracking number"
    )


class BatchSerializer(serializers.Serializer[Any]):
    # Items are checked one by one in the view, so one bad item refuses only itself.
    checkpoints = serializers.ListField(
        child=serializers.JSONField(allow_null=True),
        min_length=1,
        max_length=INGEST_LIMIT,
        help_text=f"Up to {INGEST_LIMIT} items shaped like BatchCheckpoint.",
    )


class ResultSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "refused"])
    shipment_id = serializers.CharField(allow_blank=True)
    event_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    # The API's field names; they shadow Serializer.errors and Field.label.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField())
    )


class BatchResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = ResultSerializer(many=True)


class EventSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    location = serializers.CharField(source="location.code", default="")
    external_id = serializers.CharField()
    status_after = serializers.CharField()
    duplicate = serializers.BooleanField(default=False)


class PublicCheckpointSerializer(serializers.Serializer[Any]):
    when = serializers.DateTimeField()
    description = serializers.CharField()
    place = serializers.CharField()


class PublicProblemSerializer(serializers.Serializer[Any]):
    cause = serializers.CharField()
    expected_resolution = serializers.DateTimeField(allow_null=True)


class PublicStepSerializer(serializers.Serializer[Any]):
    label = serializers.CharField()  # type: ignore[assignment]
    state = serializers.ChoiceField(choices=["done", "current", "todo"])


class TrackingSerializer(serializers.Serializer[Any]):
    """Exactly what the public tracking page shows, nothing more."""

    status = serializers.CharField()
    headline = serializers.CharField()
    steps = PublicStepSerializer(many=True)
    estimated_delivery = serializers.DateField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    carrier_url = serializers.CharField()
    checkpoints = PublicCheckpointSerializer(many=True)
    problem = PublicProblemSerializer(allow_null=True)
    is_closed = serializers.BooleanField()
    public_url = serializers.CharField()
