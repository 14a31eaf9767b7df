"""Checkpoints and the event log's corrections.

`checkpoint_record` logs one checkpoint (a form, a scanner, the other apps);
`checkpoints_append` logs the same kind on many locked shipments in a fixed
number of statements (the exceptions sweep); `bulk_scan_record` takes a batch
of scanned labels, each saved on its own. `event_void` is a supervisor's
correction, and `status_replay` folds the live log back into the stored status
after it. Machines' batches go through `shipments.ingest` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from shipments import tracking_numbers as tn
from shipments.events import (
    CorrectionData,
    publish_event_recorded,
    publish_events_recorded,
)
from shipments.models import Location, Shipment, Source, TrackingEvent
from shipments.selectors import shipments_by_codes
from shipments.services import (
    ADVANCED_FIELDS,
    PRE_DISPATCH,
    acting_user,
    event_append,
    refuse_event_time,
    shipment_advance,
    shipment_lock,
)
from shipments.status import (
    CHECKPOINT_KINDS,
    EventKind,
    ShipmentStatus,
    TransitionRefused,
    initial_state,
    next_state,
)
from tracksop.bulk import bulk_set

if TYPE_CHECKING:
    from shipments.services import User

__all__ = [
    "BULK_SCAN_LIMIT",
    "OTHER_APP_KINDS",
    "BulkScanResult",
    "Checkpoint",
    "bulk_scan_record",
    "checkpoint_record",
    "checkpoints_append",
    "event_void",
    "status_replay",
]

BULK_SCAN_LIMIT = 500
# Kinds recorded through checkpoint_record by the exceptions and notifications apps.
OTHER_APP_KINDS = frozenset(
    {
        EventKind.EXCEPTION_REPORTED,
        EventKind.EXCEPTION_RESOLVED,
        EventKind.EXCEPTION_UPDATED,
        EventKind.ETA_CHANGED,
    }
)


def checkpoint_record(
    *,
    shipment: Shipment | int,
    kind: str,
    user: User | None,
    occurred_at: datetime | None = None,
    location: Location | None = None,
    source: str = Source.FORM,
    integration: str = "",
    notes: str = "",
    external_id: str = "",
    data: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> TrackingEvent:
    """Log one checkpoint. A repeated `external_id` returns the first event."""
    if kind not in CHECKPOINT_KINDS and kind not in OTHER_APP_KINDS:
        raise ValidationError({"kind": "This kind of event has its own action."})
    occurred_at = occurred_at or timezone.now()
    refuse_event_time(occurred_at)
    with transaction.atomic():
        locked = shipment_lock(shipment, expected_version)
        refuse_event_time(occurred_at, shipments=[locked])
        if external_id:
            # Under the row lock, so two deliveries of one carrier event
            # cannot both pass this check.
            existing = locked.events.filter(external_id=external_id).first()
            if existing is not None:
                return existing
        return event_append(
            locked,
            kind=kind,
            occurred_at=occurred_at,
            user=user,
            source=source,
            integration=integration,
            location=location,
            notes=notes,
            external_id=external_id,
            data=data,
        )


@dataclass(frozen=True)
class Checkpoint:
    """One shipment's entry in `checkpoints_append`."""

    shipment: Shipment
    notes: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def checkpoints_append(
    checkpoints: Sequence[Checkpoint],
    *,
    kind: str,
    user: User | None,
    occurred_at: datetime,
    source: str = Source.FORM,
) -> list[TrackingEvent]:
    """Log the same kind of checkpoint on many shipments at once: one INSERT
    for the events, one UPDATE for the shipments, one announcement, so the
    cost per shipment stays small (the exceptions sweep). The caller holds
    the shipments locked in its transaction (`select_for_update`), one entry
    per shipment. All or nothing, like one checkpoint."""
    if kind not in CHECKPOINT_KINDS and kind not in OTHER_APP_KINDS:
        raise ValidationError({"kind": "This kind of event has its own action."})
    refuse_event_time(occurred_at, shipments=[c.shipment for c in checkpoints])
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "checkpoints_append needs the shipments locked in a transaction."
        )
    if not checkpoints:
        return []
    recorded = [
        shipment_advance(
            c.shipment,
            kind=kind,
            occurred_at=occurred_at,
            user=user,
            source=source,
            notes=c.notes,
            data=c.data,
        )
        for c in checkpoints
    ]
    now = timezone.now()
    for r in recorded:
        r.shipment.updated_at = now
    with transaction.atomic(savepoint=False):  # the caller's transaction
        TrackingEvent.objects.bulk_create([r.event for r in recorded])
        bulk_set([r.shipment for r in recorded], ADVANCED_FIELDS)
        publish_events_recorded(recorded)
    return [r.event for r in recorded]


def event_void(
    *,
    event: TrackingEvent,
    user: User,
    reason: str,
    expected_version: int | None = None,
) -> TrackingEvent:
    """A supervisor's correction: void a wrong event and re-derive the status."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why this event is wrong."})
    with transaction.atomic():
        shipment = shipment_lock(event.shipment_id, expected_version)
        target = TrackingEvent.objects.select_for_update().get(pk=event.pk)
        if target.kind in (EventKind.CREATED, EventKind.CORRECTION):
            raise TransitionRefused("This event cannot be voided.")
        if TrackingEvent.objects.filter(voids=target).exists():
            raise TransitionRefused("This event has already been voided.")
        previous = shipment.status
        status_replay(shipment, also_void=target)
        correction = TrackingEvent.objects.create(
            shipment=shipment,
            kind=EventKind.CORRECTION,
            occurred_at=timezone.now(),
            recorded_by=acting_user(user),
            source=Source.FORM,
            notes=reason,
            voids=target,
            status_after=shipment.status,
            data=CorrectionData(voided_kind=target.kind),
        )
        publish_event_recorded(
            event=correction, shipment=shipment, previous_status=previous
        )
    return correction


def status_replay(
    shipment: Shipment, *, also_void: TrackingEvent | None = None
) -> None:
    """Fold the shipment's live events (recorded order) into its stored status.

    Events that the machine would now refuse (they depended on a voided one)
    stay in the timeline but no longer count.
    """
    live = shipment.events.filter(voided_by__isnull=True).exclude(
        kind=EventKind.CORRECTION
    )
    if also_void is not None:
        live = live.exclude(pk=also_void.pk)
    events = list(live.order_by("id"))
    state = initial_state()
    last: TrackingEvent | None = None
    for event in events:
        try:
            state = next_state(state, kind=event.kind, occurred_at=event.occurred_at)
        except TransitionRefused:
            continue
        if last is None or event.occurred_at >= last.occurred_at:
            last = event
    shipment.status = state.status
    if state.status in PRE_DISPATCH:
        # The dispatch was voided: the carrier's number is free again.
        shipment.carrier = None
        shipment.tracking_number = None
        shipment.estimated_delivery = None
        shipment.dispatched_at = None
    shipment.status_changed_at = state.since or shipment.created_at
    shipment.resume_status = state.resume
    delivered = [e for e in events if e.kind == EventKind.DELIVERED]
    shipment.delivered_at = (
        delivered[-1].occurred_at if state.status == ShipmentStatus.DELIVERED else None
    )
    located = [e for e in events if e.location_id is not None]
    shipment.current_location_id = (
        max(located, key=lambda e: (e.occurred_at, e.id)).location_id
        if located
        else None
    )
    shipment.last_event_at = last.occurred_at if last else shipment.created_at
    shipment.version += 1
    shipment.save()


@dataclass
class BulkScanResult:
    saved: list[TrackingEvent] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def bulk_scan_record(
    *,
    user: User,
    kind: str,
    location: Location | None,
    numbers: Iterable[str],
    occurred_at: datetime | None = None,
    notes: str = "",
) -> BulkScanResult:
    """One event per scanned number; each saves on its own, problems are listed."""
    result = BulkScanResult()
    occurred_at = occurred_at or timezone.now()
    # Keyed by the text as scanned (trimmed, upper case): a label may carry the
    # tracking number (matched normalised) or our shipment ID (matched as is).
    wanted: dict[str, str] = {}
    seen: set[str] = set()
    for raw in numbers:
        code = raw.strip().upper()
        if not code:
            continue
        if tn.normalize(code) in seen:
            result.problems.append((raw, "Scanned twice in this batch; logged once."))
            continue
        seen.add(tn.normalize(code))
        wanted[code] = raw
    if len(wanted) > BULK_SCAN_LIMIT:
        raise ValidationError(
            {"numbers": f"Scan at most {BULK_SCAN_LIMIT} packages in one batch."}
        )
    found = shipments_by_codes(wanted)
    for code, raw in wanted.items():
        pk = found.get(code)
        if pk is None:
            result.problems.append((raw, _unknown_number_reason(code)))
            continue
        try:
            event = checkpoint_record(
                shipment=pk,
                kind=kind,
                user=user,
                occurred_at=occurred_at,
                location=location,
                source=Source.BULK_SCAN,
                notes=notes,
            )
        except TransitionRefused as exc:
            result.problems.append((raw, str(exc)))
        except ValidationError as exc:
            result.problems.append((raw, " ".join(exc.messages)))
        else:
            result.saved.append(event)
    return result


def _unknown_number_reason(number: str) -> str:
    try:
        tn.validate(number)
    except tn.InvalidTrackingNumber as exc:
        return str(exc)
    return "No shipment has this tracking number."
