"""The only write path for shipments and their event log.

Every function is atomic, locks the shipment row (so two scans of one package
serialise), appends to the event log, keeps the stored status equal to the fold
of the log, and announces each event through `shipments.events`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from shipments import bounds
from shipments import tracking_numbers as tn
from shipments.events import Recorded, publish_event_recorded, publish_events_recorded
from shipments.models import (
    Carrier,
    Feedback,
    Inquiry,
    Location,
    Shipment,
    Source,
    TrackingEvent,
    new_shipment_code,
)
from shipments.public import tracking_page_forget
from shipments.selectors import shipments_by_codes
from shipments.status import (
    CHECKPOINT_KINDS,
    MOVING,
    EventKind,
    ShipmentStatus,
    State,
    TransitionRefused,
    initial_state,
    next_state,
)
from tracksop import dates
from tracksop.bulk import bulk_set
from tracksop.errors import Refused

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser
    from django.contrib.auth.models import User as StaffUser

    User = AbstractUser | AnonymousUser

__all__ = [
    "Checkpoint",
    "InquiryAlreadyAnswered",
    "StaleShipment",
    "TransitionRefused",
    "bulk_scan_record",
    "checkpoint_record",
    "checkpoints_append",
    "event_void",
    "inquiry_answer",
    "inquiry_log",
    "shipment_advance",
    "shipment_cancel",
    "shipment_check",
    "shipment_create",
    "shipment_dispatch",
    "shipment_eta_change",
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
INQUIRY_QUESTION_MAX = Inquiry._meta.get_field("question").max_length or 2000
INQUIRY_ANSWER_MAX = Inquiry._meta.get_field("answer").max_length or 4000
BULK_SCAN_LIMIT = 500


class StaleShipment(Refused):
    """The shipment changed after the user loaded the form."""

    def __init__(self, shipment: Shipment) -> None:
        super().__init__(
            f"Shipment {shipment.shipment_id} was changed by someone else while you "
            "were working on it. Reload the page to see the latest version, then "
            "try again."
        )


def _lock(shipment: Shipment | int, expected_version: int | None = None) -> Shipment:
    pk = shipment if isinstance(shipment, int) else shipment.pk
    locked = (
        Shipment.objects.select_for_update(of=("self",))
        .select_related("carrier")
        .get(pk=pk)
    )
    if expected_version is not None and locked.version != expected_version:
        raise StaleShipment(locked)
    return locked


def _actor(user: User | None) -> Any:
    return user if user is not None and user.is_authenticated else None


def _refuse_event_time(
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
        recorded_by=_actor(user),
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


def _append_event(shipment: Shipment, **fields: Any) -> TrackingEvent:
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
    if kind not in CHECKPOINT_KINDS and kind not in _OTHER_APP_KINDS:
        raise ValidationError({"kind": "This kind of event has its own action."})
    _refuse_event_time(occurred_at, shipments=[c.shipment for c in checkpoints])
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
        created_by=_actor(user),
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
                recorded_by=_actor(user),
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
        locked = _lock(shipment, expected_version)
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
        _append_event(
            locked,
            kind=EventKind.DETAILS_CHANGED,
            occurred_at=timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes="Changed: " + ", ".join(_verbose_name(name) for name in changed),
            data={"fields": changed},
        )
    return locked


def _verbose_name(field_name: str) -> str:
    return str(
        getattr(Shipment._meta.get_field(field_name), "verbose_name", field_name)
    )


def shipment_check(
    *,
    shipment: Shipment,
    user: User | None,
    quality_ok: bool,
    quantity_ok: bool,
    notes: str = "",
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    """Record the final quality and quantity check; both must pass for READY."""
    passed = quality_ok and quantity_ok
    if not passed and not notes.strip():
        raise ValidationError({"notes": "Say what is wrong when a check fails."})
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(shipment, expected_version)
        if locked.status not in PRE_DISPATCH:
            raise TransitionRefused(
                f"Shipment {locked.shipment_id} is already "
                f"{locked.get_status_display()}; the check happens before dispatch."
            )
        locked.checked_by = _actor(user)
        locked.checked_at = now
        locked.quality_ok = quality_ok
        locked.quantity_ok = quantity_ok
        locked.check_notes = notes
        _append_event(
            locked,
            kind=EventKind.CHECK_PASSED if passed else EventKind.CHECK_FAILED,
            occurred_at=now,
            user=user,
            source=source,
            integration=integration,
            notes=notes,
            data={"quality_ok": quality_ok, "quantity_ok": quantity_ok},
        )
    return locked


def tracking_number_generate() -> str:
    """A fresh S10 number for the own fleet, unused by any shipment."""
    while True:
        number = tn.s10_generate(
            prefix=settings.TRACKSOP_S10_PREFIX,
            serial=secrets.randbelow(100_000_000),
            country=settings.TRACKSOP_S10_COUNTRY,
        )
        if not Shipment.objects.filter(tracking_number=number).exists():
            return number


def shipment_dispatch(
    *,
    shipment: Shipment,
    user: User | None,
    carrier: Carrier,
    tracking_number: str,
    estimated_delivery: date,
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    """Hand the shipment to its carrier: tracking number and ETA → DISPATCHED."""
    now = timezone.now()
    errors: dict[str, str] = {}
    routing_zip = ""
    if tracking_number.strip():
        try:
            candidate = tn.validate(tracking_number, carrier.family)
        except tn.InvalidTrackingNumber as exc:
            errors["tracking_number"] = str(exc)
        else:
            number, routing_zip = candidate.number, candidate.routing_zip
    elif carrier.is_own_fleet:
        number = tracking_number_generate()
    else:
        errors["tracking_number"] = (
            f"Enter the tracking number {carrier.name} gave for this shipment."
        )
    eta_problem = bounds.eta_error(
        estimated_delivery,
        created_at=shipment.created_at,
        today=timezone.localdate(now),
    )
    if eta_problem:
        errors["estimated_delivery"] = eta_problem
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            locked = _lock(shipment, expected_version)
            clash = (
                Shipment.objects.filter(tracking_number=number)
                .exclude(pk=locked.pk)
                .values_list("shipment_id", flat=True)
                .first()
            )
            if clash:
                raise ValidationError(
                    {"tracking_number": f"Shipment {clash} already has this number."}
                )
            if routing_zip:
                _routing_zip_apply(locked, routing_zip)
            locked.carrier = carrier
            locked.tracking_number = number
            locked.estimated_delivery = estimated_delivery
            locked.dispatch_eta = estimated_delivery
            locked.dispatched_at = now
            _append_event(
                locked,
                kind=EventKind.DISPATCHED,
                occurred_at=now,
                user=user,
                source=source,
                integration=integration,
                data={
                    "carrier": carrier.code,
                    "tracking_number": number,
                    "estimated_delivery": estimated_delivery.isoformat(),
                    **({"routing_zip": routing_zip} if routing_zip else {}),
                },
            )
    except IntegrityError as exc:
        raise ValidationError(
            {"tracking_number": "Another shipment has this tracking number."}
        ) from exc
    return locked


def _routing_zip_apply(shipment: Shipment, routing_zip: str) -> None:
    """A scanned USPS label names the ZIP code it is routed to: it must be the
    shipment's postcode (its first 5 digits), or become it when there is none.
    No field of its own: the destination postcode already says where the
    package goes, and the dispatch event keeps the ZIP as scanned."""
    zip5 = routing_zip[:5]
    postcode = shipment.recipient_postcode.strip()
    if not postcode:
        shipment.recipient_postcode = (
            f"{zip5}-{routing_zip[5:]}" if len(routing_zip) == 9 else zip5
        )
    elif re.sub(r"[\s-]", "", postcode)[:5] != zip5:
        raise ValidationError(
            {
                "tracking_number": f"This label is routed to ZIP code {zip5}, but "
                f"the shipment goes to {postcode}: check that it is this "
                "package's label."
            }
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
) -> TrackingEvent | None:
    """Move the estimated delivery date. Later than before is a delay, which
    the customer is told about; the same date records nothing."""
    _refuse_eta(estimated_delivery, shipment=shipment)
    with transaction.atomic():
        locked = _lock(shipment, expected_version)
        if locked.status not in MOVING and locked.status != ShipmentStatus.EXCEPTION:
            raise TransitionRefused(
                "The estimated delivery date can change only while the shipment is "
                f"on its way, not when it is {locked.get_status_display().lower()}."
            )
        previous = locked.estimated_delivery
        if previous == estimated_delivery:
            return None
        locked.estimated_delivery = estimated_delivery
        return _append_event(
            locked,
            kind=EventKind.ETA_CHANGED,
            occurred_at=timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes=reason,
            data={
                "from": previous.isoformat() if previous else "",
                "to": estimated_delivery.isoformat(),
                "reason": reason,
            },
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
        locked = _lock(shipment, expected_version)
        _append_event(
            locked,
            kind=EventKind.CANCELLED,
            occurred_at=timezone.now(),
            user=user,
            source=source,
            integration=integration,
            notes=reason,
        )
    return locked


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
    if kind not in CHECKPOINT_KINDS and kind not in _OTHER_APP_KINDS:
        raise ValidationError({"kind": "This kind of event has its own action."})
    occurred_at = occurred_at or timezone.now()
    _refuse_event_time(occurred_at)
    with transaction.atomic():
        locked = _lock(shipment, expected_version)
        _refuse_event_time(occurred_at, shipments=[locked])
        if external_id:
            # Under the row lock, so two deliveries of one carrier event
            # cannot both pass this check.
            existing = locked.events.filter(external_id=external_id).first()
            if existing is not None:
                return existing
        return _append_event(
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


# Kinds recorded through checkpoint_record by the exceptions and notifications apps.
_OTHER_APP_KINDS = frozenset(
    {
        EventKind.EXCEPTION_REPORTED,
        EventKind.EXCEPTION_RESOLVED,
        EventKind.EXCEPTION_UPDATED,
        EventKind.ETA_CHANGED,
    }
)


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
        shipment = _lock(event.shipment_id, expected_version)
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
            recorded_by=_actor(user),
            source=Source.FORM,
            notes=reason,
            voids=target,
            status_after=shipment.status,
            data={"voided_kind": target.kind},
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


# --- the customer service desk ------------------------------------------------
# Inquiries are the desk's own record (who asked what, who answered, when).
# They write no TrackingEvent: the event log drives the status, the customer's
# messages and the public page, and a customer's question changes none of them.
# Nor do they lock or bump the shipment: logging a call must not make a
# colleague's open edit form stale.


class InquiryAlreadyAnswered(TransitionRefused):
    """Someone answered the inquiry first; the message says who and when."""


def _inquiry_text_errors(*, question: str | None, answer: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if question is not None:
        if not question:
            errors["question"] = "Write what the customer asked."
        elif len(question) > INQUIRY_QUESTION_MAX:
            errors["question"] = (
                f"Keep the question to {INQUIRY_QUESTION_MAX} characters "
                f"(it has {len(question)})."
            )
    if len(answer) > INQUIRY_ANSWER_MAX:
        errors["answer"] = (
            f"Keep the answer to {INQUIRY_ANSWER_MAX} characters "
            f"(it has {len(answer)})."
        )
    return errors


def inquiry_log(
    *,
    shipment: Shipment,
    user: StaffUser,
    channel: str,
    question: str,
    answer: str = "",
) -> Inquiry:
    """Log a customer's question. With an answer it is answered at once (the
    common phone call); without, it stays open in the desk's list. Closed
    shipments take inquiries too: customers call after delivery."""
    question, answer = question.strip(), answer.strip()
    errors = _inquiry_text_errors(question=question, answer=answer)
    if channel not in Inquiry.Channel.values:
        errors["channel"] = "Choose how the customer reached us."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        return Inquiry.objects.create(
            shipment=shipment,
            channel=channel,
            question=question,
            answer=answer,
            status=Inquiry.Status.ANSWERED if answer else Inquiry.Status.OPEN,
            created_by=user,
            answered_by=user if answer else None,
            answered_at=now if answer else None,
        )


def inquiry_answer(*, inquiry: Inquiry, user: StaffUser, answer: str) -> Inquiry:
    """Answer an open inquiry, once. The conditional UPDATE lets exactly one of
    two agents answering at the same moment through; the other is told who
    answered and when, and nothing changes."""
    answer = answer.strip()
    errors = _inquiry_text_errors(question=None, answer=answer)
    if not answer:
        errors["answer"] = "Write what the customer was told."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        won = Inquiry.objects.filter(pk=inquiry.pk, status=Inquiry.Status.OPEN).update(
            status=Inquiry.Status.ANSWERED,
            answer=answer,
            answered_by=user,
            answered_at=timezone.now(),
        )
        current = Inquiry.objects.select_related("answered_by").get(pk=inquiry.pk)
    if not won:
        who = current.answered_by
        name = (who.get_full_name() or who.get_username()) if who else "someone"
        when = dates.localtime(current.answered_at).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
        raise InquiryAlreadyAnswered(
            f"Inquiry #{current.pk} was already answered by {name} at {when}; "
            "your answer was not saved."
        )
    return current


class FeedbackRefused(Exception):
    """Feedback that cannot be taken; `already` tells a repeat from too early."""

    def __init__(self, message: str, *, already: bool = False) -> None:
        super().__init__(message)
        self.already = already


def feedback_record(
    *, shipment: Shipment, rating: int, comment: str = "", language: str = ""
) -> Feedback:
    """The customer's rating after delivery, once per shipment. Two submissions
    at the same moment: the unique shipment column lets one in."""
    if shipment.status != ShipmentStatus.DELIVERED:
        raise FeedbackRefused(
            gettext("You can tell us how it went once the package is delivered.")
        )
    if not 1 <= rating <= 5:
        raise FeedbackRefused(gettext("Choose a rating from 1 to 5."))
    try:
        with transaction.atomic():
            feedback = Feedback.objects.create(
                shipment=shipment,
                rating=rating,
                comment=comment.strip()[:1000],
                language=language[:8],
            )
    except IntegrityError:
        raise FeedbackRefused(
            gettext("We already have your feedback for this delivery. Thank you!"),
            already=True,
        ) from None
    transaction.on_commit(
        partial(tracking_page_forget, shipment.public_token), robust=True
    )
    return feedback
