"""The periodic sweep (the `exceptions_sweep` task, on beat): detection, then
the escalation of stale exceptions by the rules in `escalation.py`.

The sweep selects rows by `escalate_after` through the `exception_due`
partial index, so its cost follows the stale rows, not the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from exceptions_mgmt import detection, escalation, selectors, status
from exceptions_mgmt.models import UNRESOLVED, DeliveryException, ExceptionChange
from notifications.outbox import StaffAlert, queue_batched, staff_alerts_queue
from tracksop import dates
from tracksop.bulk import bulk_set

if TYPE_CHECKING:
    from django.contrib.auth.models import User

A = ExceptionChange.Action


def exceptions_sweep() -> dict[str, int]:
    """The periodic run: detection first, so new delays join this escalation."""
    return {
        "detected": detection.exceptions_detect(),
        "escalated": exceptions_escalate(),
    }


def exceptions_escalate(*, now: datetime | None = None, batch: int = 100) -> int:
    """Escalate what is stale. Rows are claimed with SKIP LOCKED in deadline
    order, so two sweeps at once share the work; levels only go up and each
    email has its own idempotency key, so a second run escalates nothing twice.
    A batch stays locked while its staff emails render (about 1 ms each):
    100 rows keep a supervisor resolving one of them from waiting long, even
    with ten people per level, at a few statements more per 100 rows."""
    now = now or timezone.now()
    rules = selectors.escalation_rules()
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
                previous = exception.escalation_level
                level = escalation.level_due(exception, rules, now)
                if level > previous:
                    exception.escalation_level = level
                    exception.status = status.next_status(
                        exception.status, action=A.ESCALATED
                    )
                    exception.version += 1
                    changes.append(
                        ExceptionChange(
                            exception=exception,
                            actor=None,
                            action=A.ESCALATED,
                            data={"level": level},
                        )
                    )
                    # Every level passed hears of it, supervisors as well as
                    # managers when a late sweep jumps two.
                    for reached in escalation.levels_passed(previous, level):
                        if reached not in recipients:
                            recipients[reached] = list(
                                selectors.escalation_recipients(reached)
                            )
                        alerts.append(
                            StaffAlert(
                                shipment=exception.shipment,
                                users=recipients[reached],
                                key=f"escalation:{exception.pk}:{reached}",
                                context=_alert_context(exception),
                            )
                        )
                    escalated += 1
                exception.escalate_after = escalation.next_deadline(exception, rules)
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
        "cause_code": exception.cause,
        "severity": exception.get_severity_display(),
        "reported_at": dates.localtime(exception.reported_at),
        "deadline": dates.localtime(exception.expected_resolution),
        "level": exception.escalation_level,
        "staff_url": absolute(exception.get_absolute_url()),
    }
