"""The core of the write path: applying an event to a shipment, and the
shipment's own record (create, correct its details, move its ETA, cancel).

Every service is atomic, locks the shipment row (`shipment_lock`, so two scans
of one package serialise), appends to the event log (`event_append`, through
`shipment_advance`), keeps the stored status equal to the fold of the log, and
announces each event through `shipments.events`. The other services build on
these: `shipments.dispatch` (check and dispatch), `shipments.checkpoints`
(checkpoints, bulk scans, corrections), `shipments.ingest` (machines' batches);
`shipments.inquiries` and `shipments.feedback` write no events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from shipments import bounds
from shipments.events import (
    DetailsChangedData,
    EtaChangedData,
    Recorded,
    publish_event_recorded,
    publish_events_recorded,
)
from shipments.models import (
    Location,
    Shipment,
    Source,
    TrackingEvent,
    new_shipment_code,
)
from shipments.status import (
    MOVING,
    EventKind,
    ShipmentStatus,
    State,
    TransitionRefused,
    next_state,
)
from tracksop.errors import Refused

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    # Who acts: staff, or nobody (an integration, a sweep) as None or anonymous.
    User = AbstractUser | AnonymousUser

__all__ = [
    "ADVANCED_FIELDS",
    "DETAIL_FIELDS",
    "PRE_DISPATCH",
    "StaleShipment",
    "TransitionRefused",
    "acting_user",
    "event_append",
    "refuse_event_time",
    "shipment_advance",
    "shipment_cancel",
    "shipment_create",
    "shipment_eta_change",
    "shipment_lock",
    "shipment_update",
]

DETAIL_FIELDS = (
    "order_number",
    "sender_name",
    "sender_email",
    "sender_phone",
    "sender_address",
    "notify_sender",
    "recipient_name",
    "language",
    "recipient_email",
    "recipient_phone",
    "recipient_address",
    "recipient_postcode",
    "recipient_city",
    "recipient_country",
    "weight_kg",
    "length_cm",
    "width_cm",
    "height_cm",
    "contents",
    "pieces",
)
PRE_DISPATCH = (ShipmentStatus.CREATED, ShipmentStatus.READY)


class StaleShipment(Refused):
    """The shipment changed after the user loaded the form."""

    def __init__(self, shipment: Shipment) -> None:
        super().__init__(
            f"Shipment {shipment.shipment_id} was changed by someone else while you "
            "were working on it. Reload the page to see the latest version, then "
            "try again."
        )


def shipment_lock(
    shipment: Shipment | int, expected_version: int | None = None
) -> Shipment:
    """The shipment's row, locked for the caller's transaction; StaleShipment
    when it is not at the version the user's form was loaded with."""
    pk = shipment if isinstance(shipment, int) else shipment.pk
    locked = (
        Shipment.objects.select_for_update(of=("self",))
        .select_related("carrier")
        .get(pk=pk)
    )
    if expected_version is not None and locked.version != expected_version:
        raise StaleShipment(locked)
    return locked


def acting_user(user: User | None) -> Any:
    """The user to record as responsible: nobody for anonymous callers."""
    return user if user is not None and user.is_authenticated else None


def refuse_event_time(
    occurred_at: datetime, *, shipments: Sequence[Shipment] = ()
) -> None:
    """The checkpoint time's sane range (`shipments.bounds`), before any write."""
    now = timezone.now()
    problem = bounds.event_time_error(occurred_at, created_at=None, now=now)
    # A time after now minus the tolerance is after every shipment's earliest
    # (each was created by now): no need to look at them (the sweeps' case).
    if problem is None and occurred_at < bounds.earliest_event_time(now):
        created = min((s.created_at for s in shipments), default=None)
        problem = bounds.event_time_error(occurred_at, created_at=created, now=now)
    if problem:
        raise ValidationError({"occurred_at": problem})


def _refuse_eta(estimated_delivery: date, *, shipment: Shipment) -> None:
    problem = bounds.eta_error(
        estimated_delivery, created_at=shipment.created_at, today=timezone.localdate()
    )
    if problem:
        raise ValidationError({"estimated_delivery": problem})


def shipment_advance(
    shipment: Shipment,
    *,
    kind: str,
    occurred_at: datetime,
    user: User | None,
    source: str,
    integration: str = "",
    location: Location | None = None,
    notes: str = "",
    external_id: str = "",
    data: Mapping[str, Any] | None = None,
    voids: TrackingEvent | None = None,
    located_later: bool | None = None,
) -> Recorded:
    """Apply one event to a locked shipment in memory; the caller writes both.
    `located_later`: whether a live located event after this one exists, when
    the caller knows (a batch works it out for all its shipments at once);
    None asks the database."""
    previous = shipment.status
    state = State(
        status=shipment.status,
        since=shipment.status_changed_at,
        resume=shipment.resume_status,
    )
    new = next_state(state, kind=kind, occurred_at=occurred_at)
    event = TrackingEvent(
        shipment=shipment,
        kind=kind,
        occurred_at=occurred_at,
        location=location,
        recorded_by=acting_user(user),
        integration=integration,
        source=source,
        notes=notes,
        external_id=external_id,
        data=dict(data or {}),
        voids=voids,
        status_after=new.status,
    )
    shipment.status = new.status
    shipment.status_changed_at = new.since or occurred_at
    shipment.resume_status = new.resume
    if new.status == ShipmentStatus.DELIVERED and previous != ShipmentStatus.DELIVERED:
        shipment.delivered_at = occurred_at
    if occurred_at >= shipment.last_event_at:
        shipment.last_event_at = occurred_at
    # The latest located event places the package (as `status_replay` derives
    # it), even when a later event without a location was logged since.
    if location is not None and located_later is None:
        located_later = shipment.events.filter(
            occurred_at__gt=occurred_at,
            location__isnull=False,
            voided_by__isnull=True,
        ).exists()
    if location is not None and not located_later:
        shipment.current_location = location
    if location is not None and shipment.origin_id is None:
        shipment.origin = location
    shipment.version += 1
    return Recorded(event, shipment, previous)


def event_append(shipment: Shipment, **fields: Any) -> TrackingEvent:
    """Apply one event to a locked shipment, write it, save the shipment
    (with whatever else the caller changed on it)."""
    recorded = shipment_advance(shipment, **fields)
    recorded.event.save()
    shipment.save()
    publish_events_recorded([recorded])
    return recorded.event


# What applying an event changes on a shipment (see `shipment_advance`).
ADVANCED_FIELDS = (
    "status",
    "status_changed_at",
    "resume_status",
    "delivered_at",
    "last_event_at",
    "current_location",
    "origin",
    "version",
    "updated_at",  # auto_now, which bulk_set does not apply
)


def _clean_details(shipment: Shipment) -> None:
    try:
        shipment.full_clean(
            exclude=["status_changed_at", "last_event_at", "created_by", "public_token"]
        )
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc


def shipment_create(
    *,
    user: User | None,
    details: Mapping[str, Any],
    shipment_id: str = "",
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    now = timezone.now()
    shipment = Shipment(
        **{name: details[name] for name in DETAIL_FIELDS if name in details},
        shipment_id=shipment_id.strip().upper() or new_shipment_code(),
        created_by=acting_user(user),
        status=ShipmentStatus.CREATED,
        status_changed_at=now,
        last_event_at=now,
    )
    _clean_details(shipment)
    try:
        with transaction.atomic():
            shipment.save()
            event = TrackingEvent.objects.create(
                shipment=shipment,
                kind=EventKind.CREATED,
                occurred_at=now,
                recorded_by=acting_user(user),
                integration=integration,
                source=source,
                status_after=ShipmentStatus.CREATED,
            )
            publish_event_recorded(
                event=event, shipment=shipment, previous_status=ShipmentStatus.CREATED
            )
    except IntegrityError as exc:
        # Two clerks submitting the same ID at once: full_clean saw neither.
        raise ValidationError(
            {"shipment_id": "A shipment with this shipment ID already exists."}
        ) from exc
    return shipment


def shipment_update(
    *,
    shipment: Shipment,
    user: User | None,
    details: Mapping[str, Any],
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    """Change the details; after dispatch only a supervisor may (a correction)."""
    with transaction.atomic():
        locked = shipment_lock(shipment, expected_version)
        if locked.is_closed:
            raise TransitionRefused(
                f"Shipment {locked.shipment_id} is {locked.get_status_display()}; "
                "its record is closed."
            )
        if locked.status not in PRE_DISPATCH and not (
            user is not None and user.has_perm("shipments.correct_event")
        ):
            raise PermissionDenied(
                "Only a supervisor can correct a shipment after dispatch."
            )
        changed = [
            name
            for name in DETAIL_FIELDS
            if name in details and getattr(locked, name) != details[name]
        ]
        if not changed:
            return locked
        for name in changed:
            setattr(locked, name, details[name])
        _clean_details(locked)
        event_append(
            locked,
            kind=EventKind.DETAILS_CHANGED,
            occurred_at=timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes="Changed: " + ", ".join(_verbose_name(name) for name in changed),
            data=DetailsChangedData(fields=changed),
        )
    return locked


def _verbose_name(field_name: str) -> str:
    return str(
        getattr(Shipment._meta.get_field(field_name), "verbose_name", field_name)
    )


def shipment_eta_change(
    *,
    shipment: Shipment,
    user: User | None,
    estimated_delivery: date,
    reason: str = "",
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
    occurred_at: datetime | None = None,
) -> TrackingEvent | None:
    """Move the estimated delivery date. Later than before is a delay, which
    the customer is told about; the same date records nothing. `occurred_at`:
    when a carrier announced the date (its push), else now."""
    _refuse_eta(estimated_delivery, shipment=shipment)
    with transaction.atomic():
        locked = shipment_lock(shipment, expected_version)
        if locked.status not in MOVING and locked.status != ShipmentStatus.EXCEPTION:
            raise TransitionRefused(
                "The estimated delivery date can change only while the shipment is "
                f"on its way, not when it is {locked.get_status_display().lower()}."
            )
        previous = locked.estimated_delivery
        if previous == estimated_delivery:
            return None
        locked.estimated_delivery = estimated_delivery
        return event_append(
            locked,
            kind=EventKind.ETA_CHANGED,
            occurred_at=occurred_at or timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes=reason,
            data=EtaChangedData(
                {
                    "from": previous.isoformat() if previous else "",
                    "to": estimated_delivery.isoformat(),
                    "reason": reason,
                }
            ),
        )


def shipment_cancel(
    *,
    shipment: Shipment,
    user: User | None,
    reason: str,
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    if not reason.strip():
        raise ValidationError({"reason": "Say why the shipment is cancelled."})
    with transaction.atomic():
        locked = shipment_lock(shipment, expected_version)
        event_append(
            locked,
            kind=EventKind.CANCELLED,
            occurred_at=timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes=reason,
        )
    return locked
