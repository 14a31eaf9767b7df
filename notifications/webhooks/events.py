"""What a shipment event means to a webhook subscriber: its types and payload.

Pure functions over the objects the shipments app announces; the write path
is in the other modules of `notifications/webhooks/`. The payload is the same
set of keys for every type (Standard Webhooks' `type`, `timestamp`, `data`)
and never carries what staff typed (notes, reasons) or personal data beyond
the order number.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any, cast

from django.utils import timezone

from notifications.models import WebhookEventType
from shipments.events import EtaChangedData, ExceptionData
from shipments.models import Location, Shipment, TrackingEvent
from shipments.status import CHECKPOINT_KINDS, EventKind, ShipmentStatus

T = WebhookEventType

# The checkpoints a subscriber hears of as `checkpoint.recorded`. A note is
# only the text staff typed, which is not sent.
CHECKPOINTS = frozenset(CHECKPOINT_KINDS) - {EventKind.NOTE}


def event_types_for(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> list[str]:
    """Every type one event is, in a fixed order: a delivery scan is a
    checkpoint, a status change and a delivery at once."""
    kind = event.kind
    if kind == EventKind.CREATED:
        return [T.SHIPMENT_CREATED]
    types: list[str] = []
    if kind in CHECKPOINTS:
        types.append(T.CHECKPOINT_RECORDED)
    elif kind == EventKind.EXCEPTION_REPORTED:
        types.append(T.EXCEPTION_OPENED)
    elif kind == EventKind.EXCEPTION_RESOLVED:
        types.append(T.EXCEPTION_RESOLVED)
    elif kind == EventKind.ETA_CHANGED:
        types.append(T.SHIPMENT_ETA_CHANGED)
    if shipment.status != previous_status:
        types.append(T.SHIPMENT_STATUS_CHANGED)
        if shipment.status == ShipmentStatus.DELIVERED:
            types.append(T.SHIPMENT_DELIVERED)
    return types


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_date(value: date | str | None) -> str | None:
    if not value:
        return None
    return value if isinstance(value, str) else value.isoformat()


def payload_for(
    *,
    event_type: str,
    event: TrackingEvent,
    shipment: Shipment,
    previous_status: str,
    carrier_code: str | None,
    location: Location | None,
) -> dict[str, Any]:
    """The body of one message. `sequence` is the shipment's version after
    the event: it grows with every change of the shipment, in the order the
    changes were committed (they are made under the shipment's row lock)."""
    eta_before = (
        cast(EtaChangedData, event.data).get("from") or None
        if event.kind == EventKind.ETA_CHANGED
        else None
    )
    return {
        "type": event_type,
        "timestamp": iso(event.recorded_at or timezone.now()),
        "data": {
            "shipment_id": shipment.shipment_id,
            "sequence": shipment.version,
            "order_number": shipment.order_number,
            "tracking_number": shipment.tracking_number,
            "carrier_code": carrier_code,
            "status": shipment.status,
            "previous_status": previous_status,
            "estimated_delivery": _iso_date(shipment.estimated_delivery),
            "previous_estimated_delivery": eta_before,
            "exception": _exception_facts(event),
            "event": {
                "id": event.pk,
                "kind": event.kind,
                "occurred_at": iso(event.occurred_at),
                "location_code": location.code if location else None,
                "location_city": location.city if location else None,
                "external_id": event.external_id or None,
            },
        },
    }


def _exception_facts(event: TrackingEvent) -> dict[str, str | None] | None:
    """Of an exception event's data, what a subscriber is told: codes and
    dates, never a label staff may have typed ("other" causes)."""
    if event.kind not in (EventKind.EXCEPTION_REPORTED, EventKind.EXCEPTION_RESOLVED):
        return None
    facts = cast(ExceptionData, event.data)
    return {
        "cause_code": facts.get("cause_code") or None,
        "severity": facts.get("severity") or None,
        "expected_resolution": facts.get("expected_resolution") or None,
    }


def sample_payload(*, url: str) -> dict[str, Any]:
    return {
        "type": "webhook.test",
        "timestamp": iso(timezone.now()),
        "data": {"message": "A test event from TrackSOP.", "endpoint_url": url},
    }


def encode(payload: dict[str, Any]) -> str:
    """The exact body: compact, ASCII (so its bytes are its characters)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
