"""Reads for the exception pages and the sweep: each decides its joins so
pages stay constant-query, whatever the number of rows, notes or changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from exceptions_mgmt.escalation import Rule, rules_by_severity
from exceptions_mgmt.models import (
    UNRESOLVED,
    DeliveryException,
    EscalationRule,
    ExceptionChange,
    ExceptionNote,
    ExceptionStatus,
    Level,
    Severity,
)
from notifications.models import Audience, Notification
from shipments.models import Shipment
from shipments.status import ShipmentStatus
from tracksop import dates, roles

if TYPE_CHECKING:
    from django.contrib.auth.models import User

A = ExceptionChange.Action


# --- the queue's order ----------------------------------------------------------
#
# Most urgent first, as a supervisor reads the queue:
#   1. past its expected resolution before not yet due;
#   2. then the higher escalation level;
#   3. then the higher severity (critical, high, medium, low);
#   4. then the earlier expected resolution (the most overdue, or due soonest).
# So a critical escalated exception never sits below a medium one that is
# as late. `urgency_key` says it in Python, `urgency_order` in SQL; a test
# holds the two to the same table of cases.

SEVERITY_RANK: dict[str, int] = {
    Severity.CRITICAL: 3,
    Severity.HIGH: 2,
    Severity.MEDIUM: 1,
    Severity.LOW: 0,
}


def urgency_key(
    *,
    expected_resolution: datetime,
    escalation_level: int,
    severity: str,
    now: datetime,
) -> tuple[int, int, int, datetime]:
    """Sorting ascending by this puts the most urgent exception first."""
    return (
        0 if expected_resolution < now else 1,
        -escalation_level,
        -SEVERITY_RANK[severity],
        expected_resolution,
    )


def urgency_order(*, now: datetime) -> list[Any]:
    """`urgency_key` as ORDER BY terms, with the id last for a stable page."""
    return [
        Case(When(expected_resolution__lt=now, then=Value(0)), default=Value(1)),
        F("escalation_level").desc(),
        Case(
            *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
            default=Value(0),
        ).desc(),
        "expected_resolution",
        "id",
    ]


def exception_queue(*, now: datetime | None = None) -> QuerySet[DeliveryException]:
    """Unresolved exceptions, most urgent first (`urgency_order`). The order
    is computed per row, so the database sorts the unresolved rows (the
    `exception_queue` partial index finds them): a few thousand at most,
    never the table."""
    return (
        DeliveryException.objects.filter(status__in=UNRESOLVED)
        .select_related("shipment", "shipment__carrier", "assignee")
        .order_by(*urgency_order(now=now or timezone.now()))
    )


def exception_get(*, pk: int) -> DeliveryException:
    return get_object_or_404(
        DeliveryException.objects.select_related(
            "shipment",
            "shipment__carrier",
            "assignee",
            "reported_by",
            "resolved_by",
            "inquiry",
        ),
        pk=pk,
    )


def exceptions_by_pk(pks: list[int]) -> dict[int, DeliveryException]:
    """The rows a bulk action names, whatever their status (one query)."""
    rows = DeliveryException.objects.filter(pk__in=pks).select_related("shipment")
    return {row.pk: row for row in rows}


def exception_notes(*, exception: DeliveryException) -> list[ExceptionNote]:
    return list(
        ExceptionNote.objects.filter(exception=exception).select_related("author")
    )


def escalation_rules() -> dict[str, list[Rule]]:
    """The escalation rules, per severity (one query; `escalation.py` reads
    them)."""
    return rules_by_severity(
        Rule(severity=r.severity, when=r.when, after=r.after, level=r.level)
        for r in EscalationRule.objects.all()
    )


def escalation_recipients(level: int) -> QuerySet[User]:
    """Who hears of an escalation to `level`: the active people of its role."""
    group = roles.SUPERVISOR if level == Level.SUPERVISORS else roles.MANAGER
    return get_user_model().objects.filter(groups__name=group, is_active=True)


def queue_counts() -> dict[str, int]:
    """Dashboard figures over unresolved exceptions (one query)."""
    now = timezone.now()
    return DeliveryException.objects.filter(status__in=UNRESOLVED).aggregate(
        open=Count("id"),
        escalated=Count("id", filter=Q(status=ExceptionStatus.ESCALATED)),
        unassigned=Count("id", filter=Q(assignee__isnull=True)),
        overdue=Count("id", filter=Q(expected_resolution__lt=now)),
    )


@dataclass(frozen=True)
class ChangeEntry:
    change: ExceptionChange
    text: str


def exception_history(
    *, exception: DeliveryException, show_levels: bool
) -> list[ChangeEntry]:
    """Who changed what and when, oldest first, in words. Escalation levels are
    for supervisors: others read that it was escalated, not to which level."""
    changes = list(
        ExceptionChange.objects.filter(exception=exception).select_related("actor")
    )
    # Assignments name people by id; show them as colleagues know them.
    ids = {
        to
        for c in changes
        if c.action == A.ASSIGNED and isinstance(to := c.data.get("to"), int)
    }
    names = (
        {
            user.pk: user.get_full_name() or user.get_username()
            for user in get_user_model().objects.filter(pk__in=ids)
        }
        if ids
        else {}
    )
    return [
        ChangeEntry(c, describe_change(c, show_levels=show_levels, names=names))
        for c in changes
    ]


def _when(value: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return dates.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def describe_change(
    change: ExceptionChange,
    *,
    show_levels: bool = True,
    names: dict[int, str] | None = None,
) -> str:
    """One history row in words. `names`: the people assignments name, by
    user id (`exception_history` reads them in one query)."""
    data = change.data or {}
    match change.action:
        case A.REPORTED:
            return "Reported"
        case A.ASSIGNED:
            to = data.get("to")
            # Rows older than the ids keep the login of someone since gone.
            name = (names or {}).get(to) if isinstance(to, int) else None
            return f"Assigned to {name or to or '?'}"
        case A.NOTED:
            return "Added a note"
        case A.RESCHEDULED:
            return (
                f"Expected resolution moved from {_when(data.get('previous'))} "
                f"to {_when(data.get('to'))}"
            )
        case A.RESOLVED:
            return "Resolved"
        case A.VOIDED:
            return f"Voided with its report: {data.get('reason', '')}"
        case A.ESCALATED:
            if not show_levels:
                return "Escalated"
            level = data.get("level")
            label = Level(level).label if level in Level.values else level
            return f"Escalated: {label}"
        case A.CLOSED_WITH_SHIPMENT:
            status = data.get("status", "")
            label = (
                ShipmentStatus(status).label
                if status in ShipmentStatus.values
                else status
            )
            return f"Closed with the shipment ({str(label).lower()})"
    return str(change.action).replace("_", " ").capitalize()


def exception_workers() -> QuerySet[User]:
    """Active people who may be given an exception: the work permission
    through a group or their own, or superusers (one query)."""
    perm = Permission.objects.filter(
        content_type__app_label="exceptions_mgmt", codename="work_exception"
    )
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__in=perm)
            | Q(user_permissions__in=perm)
        )
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def open_exception(*, shipment: Shipment) -> DeliveryException | None:
    """The exception holding a shipment, if any. Only a shipment in status
    Exception can have one, so other shipment pages cost no query."""
    if shipment.status != ShipmentStatus.EXCEPTION:
        return None
    return (
        DeliveryException.objects.filter(shipment=shipment, status__in=UNRESOLVED)
        .select_related("assignee")
        .first()
    )


def customer_messages(*, exception: DeliveryException) -> list[Notification]:
    """The messages its report wrote to the customer (recipient or sender)."""
    if exception.report_event_id is None:
        return []
    return list(
        Notification.objects.filter(
            event_id=exception.report_event_id,
            audience__in=[Audience.RECIPIENT, Audience.SENDER],
        ).order_by("id")
    )
