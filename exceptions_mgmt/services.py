"""The write path of exceptions: report, work, escalate, detect, resolve.

Reporting and resolving record checkpoints through the shipments services, so
the status, the timeline and the customer's message follow from the event log.
Every change writes an ExceptionChange row with who and when.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from exceptions_mgmt.models import (
    UNRESOLVED,
    Cause,
    DeliveryException,
    EscalationRule,
    ExceptionChange,
    ExceptionNote,
    ExceptionStatus,
    Level,
    Severity,
)
from notifications.outbox import StaffAlert, queue_batched, staff_alerts_queue
from shipments import selectors as shipment_selectors
from shipments import tracking_numbers as tn
from shipments.checkpoints import Checkpoint, checkpoint_record, checkpoints_append
from shipments.models import Inquiry, Shipment, Source, TrackingEvent
from shipments.services import TransitionRefused
from shipments.status import CLOSED, MOVING, EventKind, ShipmentStatus
from tracksop import dates
from tracksop.bulk import bulk_set
from tracksop.errors import Refused

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

WORK = "exceptions_mgmt.work_exception"
SUPERVISE = "exceptions_mgmt.supervise_exception"


class ExceptionConflict(Refused):
    """Someone else changed it first (resolved it, say); the message says what."""


def _change(
    exception: DeliveryException, actor: User | None, action: str, **data: Any
) -> None:
    ExceptionChange.objects.create(
        exception=exception, actor=actor, action=action, data=data
    )


def _lock(exception: DeliveryException | int) -> DeliveryException:
    pk = exception if isinstance(exception, int) else exception.pk
    # Not resolved_by: when the lock waits for a concurrent resolve, PostgreSQL
    # re-checks the row but keeps the joined rows it read before the wait, so
    # a joined resolver would still be empty. Loaded after the lock, it is not.
    return (
        DeliveryException.objects.select_for_update(of=("self",))
        .select_related("shipment")
        .get(pk=pk)
    )


def _lock_with_shipment(exception: DeliveryException) -> DeliveryException:
    """For changes that record a checkpoint: the shipment first, then the
    exception. Every shipment event takes them in that order (a delivery that
    closes the exception, a correction that voids it), so the two never
    deadlock; the shipment of an exception never changes."""
    Shipment.objects.select_for_update(of=("self",)).only("pk").get(
        pk=exception.shipment_id
    )
    return _lock(exception)


def _refuse_if_closed(exception: DeliveryException) -> None:
    if exception.is_closed:
        who = exception.resolved_by
        name = (who.get_full_name() or who.get_username()) if who else "the system"
        when = dates.localtime(exception.resolved_at).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
        if exception.is_void:
            raise ExceptionConflict(
                f"This exception was voided by {name} at {when}: its report "
                "was a mistake."
            )
        raise ExceptionConflict(
            f"This exception was already resolved by {name} at {when}."
        )
    if exception.shipment.status in CLOSED:
        raise ExceptionConflict(
            f"The shipment is {exception.shipment.get_status_display().lower()}; "
            "its record is closed."
        )


def _rules() -> dict[str, list[EscalationRule]]:
    rules: dict[str, list[EscalationRule]] = {}
    for rule in EscalationRule.objects.order_by("after"):
        rules.setdefault(rule.severity, []).append(rule)
    return rules


def _applies(rule: EscalationRule, exception: DeliveryException) -> bool:
    if rule.level <= exception.escalation_level:
        return False
    return (
        rule.when == EscalationRule.When.UNRESOLVED or exception.acknowledged_at is None
    )


def next_deadline(
    exception: DeliveryException, rules: dict[str, list[EscalationRule]]
) -> datetime | None:
    """When the next rule that could still raise its level falls due."""
    due = [
        exception.reported_at + rule.after
        for rule in rules.get(exception.severity, [])
        if _applies(rule, exception)
    ]
    return min(due) if due else None


def _check_resolution_time(expected: datetime) -> None:
    if expected <= timezone.now():
        raise ValidationError(
            {"expected_resolution": "The expected resolution time is in the past."}
        )


def _event_data(exception: DeliveryException, **extra: Any) -> dict[str, Any]:
    return {
        "cause": exception.cause_label,
        # The code as well: the public page words the cause in the reader's language.
        "cause_code": exception.cause,
        "severity": exception.severity,
        "expected_resolution": exception.expected_resolution.isoformat(),
        "exception": exception.pk,
        **extra,
    }


def exception_report(
    *,
    shipment: Shipment | int,
    user: User | None,
    cause: str,
    expected_resolution: datetime,
    severity: str = Severity.MEDIUM,
    cause_other: str = "",
    description: str = "",
    source: str = Source.FORM,
    detection_key: str = "",
    occurred_at: datetime | None = None,
    rules: dict[str, list[EscalationRule]] | None = None,
    inquiry: Inquiry | None = None,
) -> DeliveryException:
    """Log an exception: a checkpoint puts the shipment on hold and the
    customer is told the cause and the expected resolution at once.
    `rules` are the escalation rules when the caller has loaded them (a sweep
    reporting many at once). `inquiry`: the customer inquiry it comes from,
    which must be about this shipment."""
    errors = _report_errors(
        cause=cause,
        cause_other=cause_other,
        severity=severity,
        expected_resolution=expected_resolution,
    )
    pk = shipment if isinstance(shipment, int) else shipment.pk
    if inquiry is not None and inquiry.shipment_id != pk:
        errors["inquiry"] = "That inquiry is about another shipment."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = Shipment.objects.select_for_update(of=("self",)).get(pk=pk)
            if refusal := _refusal(locked):
                raise ExceptionConflict(refusal)
            [exception] = _open(
                [locked],
                detection_keys=[detection_key],
                cause=cause,
                cause_other=cause_other,
                severity=severity,
                description=description,
                expected_resolution=expected_resolution,
                user=user,
                source=source,
                now=now,
                occurred_at=occurred_at or now,
                rules=_rules() if rules is None else rules,
                inquiry=inquiry,
            )
    except IntegrityError as exc:
        raise ExceptionConflict("This shipment already has an open exception.") from exc
    return exception


def _report_errors(
    *, cause: str, cause_other: str, severity: str, expected_resolution: datetime
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if cause not in Cause.values:
        errors["cause"] = "Choose a cause."
    if cause == Cause.OTHER and not cause_other.strip():
        errors["cause_other"] = "Say what the cause is."
    if severity not in Severity.values:
        errors["severity"] = "Choose a severity."
    if expected_resolution <= timezone.now():
        errors["expected_resolution"] = "The expected resolution time is in the past."
    return errors


def _refusal(shipment: Shipment) -> str:
    """Why no exception can be reported on this (locked) shipment, if so."""
    if shipment.status in MOVING:
        return ""
    if shipment.status == ShipmentStatus.EXCEPTION:
        return "This shipment already has an open exception; work that one."
    return (
        "Exceptions are reported for packages on their way; this one is "
        f"{shipment.get_status_display().lower()}."
    )


@dataclass
class ScanReport:
    reported: list[DeliveryException] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (scanned, why)


def exceptions_report_scanned(
    *,
    user: User,
    numbers: list[str],
    cause: str,
    expected_resolution: datetime,
    severity: str = Severity.MEDIUM,
    cause_other: str = "",
    description: str = "",
) -> ScanReport:
    """One exception with the same details on each scanned package (shipment
    ID or tracking number): a hub closed by weather, a sorted lot damaged.
    What could not be reported is listed with the reason. All the packages
    that can be are reported together, in a fixed number of statements, and
    their customers' messages go out in one publish; if that fails, they are
    reported one at a time, so one bad package does not hold up the rest."""
    errors = _report_errors(
        cause=cause,
        cause_other=cause_other,
        severity=severity,
        expected_resolution=expected_resolution,
    )
    if errors:
        raise ValidationError(errors)
    wanted: dict[str, tuple[int, str]] = {}  # code → (line, as scanned), first
    problems: list[tuple[int, str, str]] = []  # (line, as scanned, why)
    seen: set[str] = set()
    for line, raw in enumerate(numbers):
        code = raw.strip().upper()
        if tn.normalize(code) in seen:
            problems.append((line, raw, "Scanned twice in this batch; reported once."))
            continue
        seen.add(tn.normalize(code))
        wanted[code] = (line, raw)
    found = shipment_selectors.shipments_by_codes(wanted)
    problems += [
        (*wanted[code], _unknown_code_reason(code))
        for code in wanted
        if code not in found
    ]
    details: dict[str, Any] = {
        "cause": cause,
        "cause_other": cause_other,
        "severity": severity,
        "description": description,
        "expected_resolution": expected_resolution,
        "source": Source.BULK_SCAN,
    }
    codes = {pk: code for code, pk in found.items()}
    opened: dict[str, DeliveryException] = {}
    with transaction.atomic(), queue_batched():
        try:
            with transaction.atomic():
                moving, refused = [], []
                # Locked in id order, as the sweep locks them.
                for shipment in (
                    Shipment.objects.select_for_update(of=("self",))
                    .select_related("carrier")  # the customers' messages name it
                    .filter(pk__in=codes)
                    .order_by("pk")
                ):
                    if refusal := _refusal(shipment):
                        refused.append((*wanted[codes[shipment.pk]], refusal))
                    else:
                        moving.append(shipment)
                now = timezone.now()
                for exception in _open(
                    moving,
                    detection_keys=[""] * len(moving),
                    user=user,
                    now=now,
                    occurred_at=now,
                    rules=_rules(),
                    **details,
                ):
                    opened[codes[exception.shipment_id]] = exception
            problems += refused
        except IntegrityError:
            # Someone reported one of them at the same moment.
            log.warning("Scanned exceptions in one go failed; one at a time")
            opened = {}
            for pk, code in sorted(codes.items()):
                try:
                    opened[code] = exception_report(shipment=pk, user=user, **details)
                except (ExceptionConflict, TransitionRefused) as exc:
                    problems.append((*wanted[code], str(exc)))
    return ScanReport(
        reported=[opened[code] for code in wanted if code in opened],
        problems=[(raw, why) for _line, raw, why in sorted(problems)],
    )


def _unknown_code_reason(code: str) -> str:
    try:
        tn.validate(code)
    except tn.InvalidTrackingNumber as exc:
        return f"No shipment has this ID. {exc}"
    return "No shipment has this tracking number."


def _open(
    shipments: list[Shipment],
    *,
    detection_keys: list[str],
    cause: str,
    cause_other: str,
    severity: str,
    description: str,
    expected_resolution: datetime,
    user: User | None,
    source: str,
    now: datetime,
    occurred_at: datetime,
    rules: dict[str, list[EscalationRule]],
    inquiry: Inquiry | None = None,
) -> list[DeliveryException]:
    """Open one exception on each of these shipments, which the caller holds
    locked and has checked are on their way: the exceptions, their checkpoints
    (and so the customers' messages) and their history, in a few statements
    however many there are. A duplicate raises IntegrityError, rolling back all."""
    reporter = user if user is not None and user.is_authenticated else None
    exceptions = []
    for shipment, key in zip(shipments, detection_keys, strict=True):
        exception = DeliveryException(
            shipment=shipment,
            cause=cause,
            cause_other=cause_other.strip() if cause == Cause.OTHER else "",
            severity=severity,
            description=description.strip(),
            expected_resolution=expected_resolution,
            reported_by=reporter,
            reported_at=now,
            detection_key=key,
            inquiry=inquiry,
        )
        exception.escalate_after = next_deadline(exception, rules)
        exceptions.append(exception)
    # Part of the caller's transaction: no savepoint of its own to pay for.
    with transaction.atomic(savepoint=False):
        DeliveryException.objects.bulk_create(exceptions)
        events = checkpoints_append(
            [
                Checkpoint(
                    shipment=exception.shipment,
                    notes=exception.cause_label
                    + (f": {exception.description}" if exception.description else ""),
                    data=_event_data(exception, detected=bool(exception.detection_key)),
                )
                for exception in exceptions
            ],
            kind=EventKind.EXCEPTION_REPORTED,
            user=user,
            occurred_at=occurred_at,
            source=source,
        )
        for exception, event in zip(exceptions, events, strict=True):
            exception.report_event = event
        bulk_set(exceptions, ["report_event"])
        ExceptionChange.objects.bulk_create(
            ExceptionChange(
                exception=exception,
                actor=reporter,
                action="reported",
                data={"cause": cause},
            )
            for exception in exceptions
        )
    return exceptions


def _acknowledge(exception: DeliveryException, now: datetime) -> None:
    if exception.acknowledged_at is None:
        exception.acknowledged_at = now
        exception.escalate_after = next_deadline(exception, _rules())
    if exception.status == ExceptionStatus.OPEN:
        exception.status = ExceptionStatus.IN_PROGRESS


def _save(exception: DeliveryException) -> None:
    exception.version += 1
    exception.save()


def _may_work(user: User, assignee: Any) -> bool:
    return bool(assignee.is_active and assignee.has_perm(WORK))


def exception_assign(
    *, exception: DeliveryException, user: User, assignee: User
) -> DeliveryException:
    """Take it (anyone who works exceptions) or hand it to someone (supervisors)."""
    if assignee.pk != user.pk and not user.has_perm(SUPERVISE):
        raise PermissionDenied("Only supervisors assign exceptions to others.")
    if not _may_work(user, assignee):
        raise ValidationError(
            {"assignee": f"{assignee.get_username()} does not work exceptions."}
        )
    with transaction.atomic():
        locked = _lock(exception)
        _refuse_if_closed(locked)
        previous = locked.assignee_id
        if (
            previous
            and previous != user.pk
            and previous != assignee.pk
            and not user.has_perm(SUPERVISE)
        ):
            raise PermissionDenied("Only supervisors reassign an exception.")
        locked.assignee = assignee
        _acknowledge(locked, timezone.now())
        _save(locked)
        _change(locked, user, "assigned", to=assignee.get_username(), previous=previous)
    return locked


def exception_note_add(
    *,
    exception: DeliveryException,
    user: User,
    text: str,
    customer_contacted: bool = False,
    contact_channel: str = "",
) -> ExceptionNote:
    if not text.strip():
        raise ValidationError({"text": "Write the note."})
    if customer_contacted and not contact_channel:
        raise ValidationError(
            {"contact_channel": "Say how the customer was contacted."}
        )
    if contact_channel not in ExceptionNote.Contact.values:
        raise ValidationError({"contact_channel": "Choose phone, email, SMS or chat."})
    with transaction.atomic():
        locked = _lock(exception)
        _refuse_if_closed(locked)
        note = ExceptionNote.objects.create(
            exception=locked,
            author=user,
            text=text.strip(),
            customer_contacted=customer_contacted,
            contact_channel=contact_channel if customer_contacted else "",
        )
        _acknowledge(locked, timezone.now())
        _save(locked)
        _change(locked, user, "noted", note=note.pk)
    return note


def exception_reschedule(
    *,
    exception: DeliveryException,
    user: User,
    expected_resolution: datetime,
    reason: str = "",
) -> DeliveryException:
    """A new expected resolution time; the customer is told."""
    _check_resolution_time(expected_resolution)
    with transaction.atomic():
        locked = _lock_with_shipment(exception)
        _refuse_if_closed(locked)
        previous = locked.expected_resolution
        locked.expected_resolution = expected_resolution
        _acknowledge(locked, timezone.now())
        _save(locked)
        checkpoint_record(
            shipment=locked.shipment_id,
            kind=EventKind.EXCEPTION_UPDATED,
            user=user,
            notes=reason.strip() or "New expected resolution",
            data=_event_data(locked, reason=reason.strip()),
        )
        _change(
            locked,
            user,
            "rescheduled",
            to=expected_resolution.isoformat(),
            previous=previous.isoformat(),
        )
    return locked


def exception_resolve(
    *,
    exception: DeliveryException,
    user: User,
    notes: str,
    expected_version: int | None = None,
) -> DeliveryException:
    """Resolve: a checkpoint returns the shipment to where its scans left it,
    and the customer is told. Of two people resolving at once, one wins."""
    if not notes.strip():
        raise ValidationError({"notes": "Say how it was resolved."})
    with transaction.atomic():
        locked = _lock_with_shipment(exception)
        _refuse_if_closed(locked)
        if expected_version is not None and locked.version != expected_version:
            raise ExceptionConflict(
                "Someone changed this exception while you were working on it. "
                "Reload the page and try again."
            )
        now = timezone.now()
        locked.status = ExceptionStatus.RESOLVED
        locked.resolved_by = user
        locked.resolved_at = now
        locked.resolution_notes = notes.strip()
        locked.escalate_after = None
        _save(locked)
        checkpoint_record(
            shipment=locked.shipment_id,
            kind=EventKind.EXCEPTION_RESOLVED,
            user=user,
            occurred_at=now,
            notes=notes.strip(),
            data=_event_data(locked),
        )
        _change(locked, user, "resolved")
    return locked


def exceptions_close_with_shipment(
    *, shipment: Shipment, actor: User | None = None
) -> int:
    """A delivered or returned package closes its open exception (inside the
    event's transaction; called by the event_recorded handler)."""
    return exceptions_close_with_shipments(closing=[(shipment, actor)])


def exceptions_report_from_carrier(
    *, reports: Sequence[tuple[TrackingEvent, Shipment]]
) -> list[DeliveryException]:
    """A carrier's own exception scan (a push, later a poll) opens an
    exception in the queue, with the carrier as its source and its words in
    the staff description; the customer hears the listed cause ("Carrier
    delay"), never the carrier's text. A package already held keeps its open
    exception; the same carrier event never opens two (detection key)."""
    opened = []
    resolution = timezone.now() + timedelta(
        hours=settings.TRACKSOP_DETECTED_RESOLUTION_HOURS
    )
    for event, shipment in reports:
        if shipment.status in CLOSED or shipment.status == ShipmentStatus.EXCEPTION:
            continue
        text = str(event.data.get("carrier_text") or "")[:500]
        try:
            opened.append(
                exception_report(
                    shipment=shipment.pk,
                    user=None,
                    cause=Cause.CARRIER_DELAY,
                    severity=settings.TRACKSOP_DETECTED_SEVERITY,
                    expected_resolution=resolution,
                    description=f"Reported by {event.integration or 'the carrier'}"
                    + (f": {text}" if text else "."),
                    source=event.source,
                    detection_key=f"carrier-event:{event.pk}",
                )
            )
        except (ExceptionConflict, TransitionRefused, ValidationError) as exc:
            log.info("Carrier exception on %s not opened: %s", shipment.pk, exc)
    return opened


def exceptions_close_with_shipments(
    *, closing: Sequence[tuple[Shipment, User | None]]
) -> int:
    """`exceptions_close_with_shipment` for many shipments (a batch of scans
    delivers hundreds): one locking read for all of them, in primary-key
    order; each exception still closes with its own history row."""
    if not closing:
        return 0
    now = timezone.now()
    by_pk = {shipment.pk: (shipment, actor) for shipment, actor in closing}
    closed = 0
    for exception in (
        DeliveryException.objects.select_for_update()
        .filter(shipment_id__in=list(by_pk), status__in=UNRESOLVED)
        .order_by("pk")
    ):
        shipment, actor = by_pk[exception.shipment_id]
        exception.status = ExceptionStatus.RESOLVED
        exception.resolved_at = now
        exception.resolution_notes = (
            f"Closed: the shipment is {shipment.get_status_display().lower()}."
        )
        exception.escalate_after = None
        exception.resolved_by = actor
        _save(exception)
        _change(exception, actor, "closed_with_shipment", status=shipment.status)
        closed += 1
    return closed


def exceptions_void_with_report(
    *, report_event_ids: list[int], actor: User | None, reason: str
) -> int:
    """A supervisor voided the events that reported these exceptions (inside
    the correction's transaction; called by the events_recorded handler).
    The correction has already put the shipment back where its scans left
    it, so no checkpoint is recorded here, and so the customer is not told a
    problem that never was has been "resolved". Exceptions already resolved
    keep their resolution: their history is complete."""
    now = timezone.now()
    voided = 0
    # The shipment is locked by the correction; the exception after it, in
    # the order `exceptions_close_with_shipment` takes them.
    for exception in DeliveryException.objects.select_for_update().filter(
        report_event_id__in=report_event_ids, status__in=UNRESOLVED
    ):
        exception.status = ExceptionStatus.VOID
        exception.resolved_by = actor
        exception.resolved_at = now
        exception.resolution_notes = reason
        exception.escalate_after = None
        _save(exception)
        _change(exception, actor, "voided", reason=reason)
        voided += 1
    return voided


def _level_recipients(level: int) -> Iterable[User]:
    from tracksop import roles

    group = roles.SUPERVISOR if level == Level.SUPERVISORS else roles.MANAGER
    return get_user_model().objects.filter(groups__name=group, is_active=True)


def exceptions_escalate(*, now: datetime | None = None, batch: int = 100) -> int:
    """Escalate what is stale. Rows are claimed with SKIP LOCKED in deadline
    order, so two sweeps at once share the work; levels only go up and each
    email has its own idempotency key, so a second run escalates nothing twice.
    A batch stays locked while its staff emails render (about 1 ms each):
    100 rows keep a supervisor resolving one of them from waiting long, even
    with ten people per level, at a few statements more per 100 rows."""
    now = now or timezone.now()
    rules = _rules()
    recipients: dict[int, list[User]] = {}  # looked up once per level per run
    escalated = 0
    while True:
        with transaction.atomic(), queue_batched():
            rows = list(
                DeliveryException.objects.select_for_update(
                    skip_locked=True, of=("self",)
                )
                .select_related("shipment__carrier")
                .filter(status__in=UNRESOLVED, escalate_after__lte=now)
                .order_by("escalate_after", "id")[:batch]
            )
            changes = []
            alerts = []
            for exception in rows:
                level = max(
                    (
                        rule.level
                        for rule in rules.get(exception.severity, [])
                        if _applies(rule, exception)
                        and exception.reported_at + rule.after <= now
                    ),
                    default=exception.escalation_level,
                )
                previous = exception.escalation_level
                if level > previous:
                    exception.escalation_level = level
                    exception.status = ExceptionStatus.ESCALATED
                    exception.version += 1
                    changes.append(
                        ExceptionChange(
                            exception=exception,
                            actor=None,
                            action="escalated",
                            data={"level": level},
                        )
                    )
                    # A sweep that ran late may jump two levels: every level
                    # passed hears of it, supervisors as well as managers.
                    for reached in range(previous + 1, level + 1):
                        if reached not in recipients:
                            recipients[reached] = list(_level_recipients(reached))
                        alerts.append(
                            StaffAlert(
                                shipment=exception.shipment,
                                users=recipients[reached],
                                key=f"escalation:{exception.pk}:{reached}",
                                context=_alert_context(exception),
                            )
                        )
                    escalated += 1
                exception.escalate_after = next_deadline(exception, rules)
            # A row not escalated (a rule was lengthened) gets its new deadline
            # but keeps its version: a form open on it must not be told it
            # changed. Its other fields go back as read, under the lock.
            bulk_set(rows, ["escalation_level", "status", "version", "escalate_after"])
            ExceptionChange.objects.bulk_create(changes)
            staff_alerts_queue(alerts)
        if len(rows) < batch:
            return escalated


def _alert_context(exception: DeliveryException) -> dict[str, Any]:
    from notifications.links import absolute

    return {
        "cause": exception.cause_label,
        # The code as well: the public page words the cause in the reader's language.
        "cause_code": exception.cause,
        "severity": exception.get_severity_display(),
        "reported_at": dates.localtime(exception.reported_at),
        "deadline": dates.localtime(exception.expected_resolution),
        "level": exception.escalation_level,
        "staff_url": absolute(exception.get_absolute_url()),
    }


def exceptions_detect(
    *, now: datetime | None = None, limit: int = 1000, chunk: int = 50
) -> int:
    """Raise a delay exception, once, for each package past its ETA and each
    in-transit package without a scan for TRACKSOP_STALL_HOURS."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    resolution = now + timedelta(hours=settings.TRACKSOP_DETECTED_RESOLUTION_HOURS)
    detected = DeliveryException.objects.filter(
        shipment=OuterRef("pk"), detection_key=OuterRef("key")
    )
    moving = Shipment.objects.filter(status__in=sorted(MOVING))
    found = 0
    late = (
        moving.filter(estimated_delivery__lt=today)
        .annotate(key=_key("late:", "estimated_delivery"))
        .filter(~Exists(detected))
        .order_by("estimated_delivery", "id")
        .values_list("pk", "key")[:limit]
    )
    # In transit only (a moving status): no `moving` filter besides, whose
    # redundant status test makes the planner misjudge the rows and read every
    # in-transit shipment instead of the shipment_moving_last_event range.
    stalled = (
        Shipment.objects.filter(
            status=ShipmentStatus.IN_TRANSIT,
            last_event_at__lt=now - timedelta(hours=settings.TRACKSOP_STALL_HOURS),
        )
        .annotate(key=_key("stall:", "last_event_at"))
        .filter(~Exists(detected))
        .order_by("last_event_at", "id")
        .values_list("pk", "key")[:limit]
    )
    rules = _rules()
    for cause, rows in ((Cause.LATE, late), (Cause.NO_SCAN, stalled)):
        work = list(rows)  # read once the late ones are on hold, not before
        for start in range(0, len(work), chunk):
            # One commit and one publish per chunk rather than per detection.
            with transaction.atomic(), queue_batched():
                found += _detect_chunk(
                    dict(work[start : start + chunk]),
                    cause=cause,
                    resolution=resolution,
                    rules=rules,
                )
    return found


def _detect_chunk(
    keys: dict[int, str],
    *,
    cause: str,
    resolution: datetime,
    rules: dict[str, list[EscalationRule]],
) -> int:
    """Open the delay exceptions of one chunk of found shipments together,
    in a savepoint. If that fails (a shipment another sweep got to first, a
    row the database refuses), try them one at a time: one bad row must not
    hold up the rest, and each detection stays all or nothing."""
    fields: dict[str, Any] = {
        "cause": cause,
        "severity": settings.TRACKSOP_DETECTED_SEVERITY,
        "expected_resolution": resolution,
        "source": Source.SYSTEM,
        "rules": rules,
    }
    try:
        with transaction.atomic():
            # Locked in id order: two sweeps at once cannot deadlock. A
            # shipment that moved on since it was found (delivered, or on
            # hold already) is left alone.
            locked = list(
                Shipment.objects.select_for_update(of=("self",))
                .select_related("carrier")
                .filter(pk__in=keys, status__in=sorted(MOVING))
                .order_by("pk")
            )
            now = timezone.now()
            _open(
                locked,
                detection_keys=[keys[shipment.pk] for shipment in locked],
                cause_other="",
                description="",
                user=None,
                now=now,
                occurred_at=now,
                **fields,
            )
            return len(locked)
    except Exception:
        log.warning("Detections in one go failed; one at a time", exc_info=True)
    found = 0
    for pk, key in sorted(keys.items()):
        try:
            exception_report(shipment=pk, user=None, detection_key=key, **fields)
        except (ExceptionConflict, IntegrityError):
            continue  # moved on, or another sweep got there first
        except Exception:
            # Rolled back to its savepoint; the next sweep tries it again.
            log.exception("Detecting %s on shipment %s failed", key, pk)
            continue
        found += 1
    return found


def _key(prefix: str, field: str) -> Any:
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat

    return Concat(Value(prefix), Cast(field, CharField()), output_field=CharField())


def exceptions_sweep() -> dict[str, int]:
    """The periodic run: detection first, so new delays join this escalation."""
    return {"detected": exceptions_detect(), "escalated": exceptions_escalate()}


def queue_counts() -> dict[str, int]:
    """Dashboard figures over unresolved exceptions (one query)."""
    from django.db.models import Count

    now = timezone.now()
    return DeliveryException.objects.filter(status__in=UNRESOLVED).aggregate(
        open=Count("id"),
        escalated=Count("id", filter=Q(status=ExceptionStatus.ESCALATED)),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        overdue=Count("id", filter=Q(expected_resolution__lt=now)),
    )
