"""Checkpoints from machines: the API's batches, carrier push feeds, polling.

`checkpoints_ingest` takes up to `INGEST_LIMIT` checkpoints, each naming its
shipment by shipment ID or tracking number, and answers one result per item
in the order given: *created*, *duplicate* (its `external_id` is already on
that shipment) or *refused* with the reason. A refused item never stops the
others. Out-of-order and late events follow the same rules as the forms
(`shipments.status`), because they go through the same state machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.core.exceptions import ValidationError

from shipments.models import Location, Source, TrackingEvent
from shipments.selectors import shipments_by_codes
from shipments.services import checkpoint_record
from shipments.status import CHECKPOINT_KINDS, TransitionRefused

INGEST_LIMIT = 1000


@dataclass(frozen=True)
class CheckpointIn:
    reference: str  # shipment ID or tracking number
    kind: str
    occurred_at: datetime
    location: str = ""  # a Location's code
    notes: str = ""
    external_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    status: Literal["created", "duplicate", "refused"]
    shipment_id: str = ""
    event_id: int | None = None
    reason: str = ""
    errors: Mapping[str, list[str]] = field(default_factory=dict)


def checkpoints_ingest(
    items: Sequence[CheckpointIn],
    *,
    source: str = Source.API,
    integration: str = "",
) -> list[IngestResult]:
    """One result per item. Reference implementation: one `checkpoint_record`
    per item (each in its own transaction)."""
    if len(items) > INGEST_LIMIT:
        raise ValidationError(
            {"checkpoints": f"Send at most {INGEST_LIMIT} checkpoints at once."}
        )
    found = shipments_by_codes(i.reference for i in items)
    codes = {i.location for i in items if i.location}
    locations = {
        loc.code: loc for loc in Location.objects.filter(code__in=codes, is_active=True)
    }
    known: dict[tuple[int | None, str], tuple[int | None, str]] = {
        (shipment, external_id): (event, code)
        for event, shipment, external_id, code in TrackingEvent.objects.filter(
            shipment_id__in=set(found.values()),
            external_id__in={i.external_id for i in items if i.external_id},
        ).values_list("pk", "shipment_id", "external_id", "shipment__shipment_id")
    }
    results: list[IngestResult] = []
    for item in items:
        pk = found.get(item.reference.strip().upper())
        seen = known.get((pk, item.external_id)) if item.external_id else None
        if seen is not None:
            results.append(
                IngestResult("duplicate", shipment_id=seen[1], event_id=seen[0])
            )
            continue
        result = _one(item, found, locations, source, integration)
        if result.status == "created" and item.external_id:
            known[(pk, item.external_id)] = (result.event_id, result.shipment_id)
        results.append(result)
    return results


def _one(
    item: CheckpointIn,
    found: Mapping[str, int],
    locations: Mapping[str, Location],
    source: str,
    integration: str,
) -> IngestResult:
    pk = found.get(item.reference.strip().upper())
    if pk is None:
        return IngestResult(
            "refused",
            reason="No shipment has this shipment ID or tracking number.",
            errors={
                "reference": ["No shipment has this shipment ID or tracking number."]
            },
        )
    if item.kind not in CHECKPOINT_KINDS:
        return IngestResult(
            "refused",
            reason="This kind of event cannot be posted as a checkpoint.",
            errors={"kind": ["This kind of event cannot be posted as a checkpoint."]},
        )
    location = locations.get(item.location) if item.location else None
    if item.location and location is None:
        return IngestResult(
            "refused",
            reason=f"No active location has the code {item.location}.",
            errors={"location": [f"No active location has the code {item.location}."]},
        )
    try:
        event = checkpoint_record(
            shipment=pk,
            kind=item.kind,
            user=None,
            occurred_at=item.occurred_at,
            location=location,
            source=source,
            integration=integration,
            notes=item.notes,
            external_id=item.external_id,
            data=item.data,
        )
    except TransitionRefused as exc:
        return IngestResult("refused", reason=str(exc))
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {}
        return IngestResult("refused", reason=" ".join(exc.messages), errors=errors)
    return IngestResult(
        "created", shipment_id=event.shipment.shipment_id, event_id=event.pk
    )
