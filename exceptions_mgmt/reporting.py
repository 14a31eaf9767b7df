"""Opening exceptions: one reported by staff (from the shipment page, an
inquiry, or the system's own detection), one on each of a batch of scanned
packages, and the bulk write they share (`exceptions_open`), which puts the
shipments on hold through the shipments services, so the timeline and the
customers' messages follow from the event log. What the system finds itself
is in `detection.py`; working an opened exception in `services.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from exceptions_mgmt import escalation, selectors, status
from exceptions_mgmt.escalation import Rules
from exceptions_mgmt.models import Cause, DeliveryException, ExceptionChange, Severity
from exceptions_mgmt.status import ExceptionConflict
from notifications.outbox import queue_batched
from shipments import checkpoints
from shipments import selectors as shipment_selectors
from shipments import tracking_numbers as tn
from shipments.models import Inquiry, Shipment, Source
from shipments.status import MOVING, EventKind, ShipmentStatus, TransitionRefused
from tracksop.bulk import bulk_set

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

A = ExceptionChange.Action


def event_data(exception: DeliveryException, **extra: Any) -> dict[str, Any]:
    """The data of the checkpoints an exception records (report, update,
    resolution): what staff, integrations and customers read of it."""
    return {
        "cause": exception.cause_label,
        # The code as well, for integrations (webhooks carry it).
        "cause_code": exception.cause,
        # What customers read (shipments.public words it in their language).
        "public_cause": exception.public_cause,
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
    rules: Rules | None = None,
    inquiry: Inquiry | None = None,
) -> DeliveryException:
    """Log an exception: a checkpoint puts the shipment on hold and the
    customer is told the cause and the expected resolution at once.
    `rules` are the escalation rules when the caller has loaded them (a sweep
    reporting many at once). `inquiry`: the customer inquiry it comes from,
    which must be about this shipment."""
    errors = report_errors(
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
            if refusal := report_refusal(locked):
                raise ExceptionConflict(refusal)
            [exception] = exceptions_open(
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
                rules=selectors.escalation_rules() if rules is None else rules,
                inquiry=inquiry,
            )
    except IntegrityError as exc:
        raise ExceptionConflict("This shipment already has an open exception.") from exc
    return exception


def report_errors(
    *, cause: str, cause_other: str, severity: str, expected_resolution: datetime
) -> dict[str, str]:
    """What is wrong with a report's details, by field (empty: nothing)."""
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


def report_refusal(shipment: Shipment) -> str:
    """Why no exception can be reported on this (locked) shipment, if so."""
    if shipment.status in MOVING:
        return ""
    if shipment.status == ShipmentStatus.EXCEPTION:
        return "This shipment already has an open exception; work that one."
    return (
        "Exceptions are reported for packages on their way; this one is "
        f"{shipment.get_status_display().lower()}."
    )


def exceptions_open(
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
    rules: Rules,
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
            status=status.INITIAL,
            reported_by=reporter,
            reported_at=now,
            detection_key=key,
            inquiry=inquiry,
        )
        exception.escalate_after = escalation.next_deadline(exception, rules)
        exceptions.append(exception)
    # Part of the caller's transaction: no savepoint of its own to pay for.
    with transaction.atomic(savepoint=False):
        DeliveryException.objects.bulk_create(exceptions)
        events = checkpoints.checkpoints_append(
            [
                checkpoints.Checkpoint(
                    shipment=exception.shipment,
                    notes=exception.cause_label
                    + (f": {exception.description}" if exception.description else ""),
                    data=event_data(exception, detected=bool(exception.detection_key)),
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
                action=A.REPORTED,
                data={"cause": cause},
            )
            for exception in exceptions
        )
    return exceptions


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
    errors = report_errors(
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
                    if refusal := report_refusal(shipment):
                        refused.append((*wanted[codes[shipment.pk]], refusal))
                    else:
                        moving.append(shipment)
                now = timezone.now()
                for exception in exceptions_open(
                    moving,
                    detection_keys=[""] * len(moving),
                    user=user,
                    now=now,
                    occurred_at=now,
                    rules=selectors.escalation_rules(),
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
