"""The write path of an opened exception: work it, resolve it, or close it
with its shipment.

Resolving records a checkpoint through the shipments services, so the status,
the timeline and the customer's message follow from the event log. Every
change writes an ExceptionChange row with who and when, and every status
change goes through the status table (`status.next_status`).

Elsewhere: opening exceptions (`reporting.py`), what the system finds itself,
late, stalled or reported by the carrier (`detection.py`), the escalation
rules (`escalation.py`) and the periodic sweep (`sweep.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from exceptions_mgmt import escalation, reporting, selectors, status
from exceptions_mgmt.models import (
    UNRESOLVED,
    DeliveryException,
    ExceptionChange,
    ExceptionNote,
)
from exceptions_mgmt.status import ExceptionConflict
from shipments import checkpoints
from shipments.models import Shipment
from shipments.status import CLOSED, EventKind
from tracksop import dates

if TYPE_CHECKING:
    from django.contrib.auth.models import User

WORK = "exceptions_mgmt.work_exception"
SUPERVISE = "exceptions_mgmt.supervise_exception"

A = ExceptionChange.Action


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
    """Who closed it and when, in words, before the status table's refusal."""
    if exception.is_closed:
        who = exception.resolved_by
        name = (who.get_full_name() or who.get_username()) if who else "the system"
        closed_at = exception.resolved_at or timezone.now()
        when = dates.localtime(closed_at).strftime("%Y-%m-%d %H:%M")
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


def _check_resolution_time(expected: datetime) -> None:
    if expected <= timezone.now():
        raise ValidationError(
            {"expected_resolution": "The expected resolution time is in the past."}
        )


def _work(exception: DeliveryException, action: str, now: datetime) -> None:
    """Someone took it on: the first time acknowledges it, which stops the
    rules on acknowledgement counting (so its deadline moves)."""
    exception.status = status.next_status(exception.status, action=action)
    if exception.acknowledged_at is None:
        exception.acknowledged_at = now
        exception.escalate_after = escalation.next_deadline(
            exception, selectors.escalation_rules()
        )


def _save(exception: DeliveryException) -> None:
    exception.version += 1
    exception.save()


def _may_work(assignee: User) -> bool:
    return bool(assignee.is_active and assignee.has_perm(WORK))


def exception_assign(
    *, exception: DeliveryException, user: User, assignee: User
) -> DeliveryException:
    """Take it (anyone who works exceptions) or hand it to someone (supervisors)."""
    if assignee.pk != user.pk and not user.has_perm(SUPERVISE):
        raise PermissionDenied("Only supervisors assign exceptions to others.")
    if not _may_work(assignee):
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
        _work(locked, A.ASSIGNED, timezone.now())
        _save(locked)
        _change(locked, user, A.ASSIGNED, to=assignee.pk, previous=previous)
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
        _work(locked, A.NOTED, timezone.now())
        _save(locked)
        _change(locked, user, A.NOTED, note=note.pk)
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
        _work(locked, A.RESCHEDULED, timezone.now())
        _save(locked)
        checkpoints.checkpoint_record(
            shipment=locked.shipment_id,
            kind=EventKind.EXCEPTION_UPDATED,
            user=user,
            notes=reason.strip() or "New expected resolution",
            data=reporting.event_data(locked, reason=reason.strip()),
        )
        _change(
            locked,
            user,
            A.RESCHEDULED,
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
        _close(locked, A.RESOLVED, by=user, at=now, notes=notes.strip())
        _save(locked)
        checkpoints.checkpoint_record(
            shipment=locked.shipment_id,
            kind=EventKind.EXCEPTION_RESOLVED,
            user=user,
            occurred_at=now,
            notes=notes.strip(),
            data=reporting.event_data(locked),
        )
        _change(locked, user, A.RESOLVED)
    return locked


def _close(
    exception: DeliveryException,
    action: str,
    *,
    by: User | None,
    at: datetime,
    notes: str,
) -> None:
    """Resolved or void: no rule escalates it any more."""
    exception.status = status.next_status(exception.status, action=action)
    exception.resolved_by = by
    exception.resolved_at = at
    exception.resolution_notes = notes
    exception.escalate_after = None


def exceptions_close_with_shipment(
    *, shipment: Shipment, actor: User | None = None
) -> int:
    """A delivered or returned package closes its open exception (inside the
    event's transaction; called by the event_recorded handler)."""
    return exceptions_close_with_shipments(closing=[(shipment, actor)])


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
        _close(
            exception,
            A.CLOSED_WITH_SHIPMENT,
            by=actor,
            at=now,
            notes=f"Closed: the shipment is {shipment.get_status_display().lower()}.",
        )
        _save(exception)
        _change(exception, actor, A.CLOSED_WITH_SHIPMENT, status=shipment.status)
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
        _close(exception, A.VOIDED, by=actor, at=now, notes=reason)
        _save(exception)
        _change(exception, actor, A.VOIDED, reason=reason)
        voided += 1
    return voided
