"""The queue's order: what a supervisor looks at first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from exceptions_mgmt import reporting, selectors
from exceptions_mgmt.models import Cause, DeliveryException, Level, Severity
from tests.factories import dispatched_shipment

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
NONE, SUP, MAN = Level.NONE, Level.SUPERVISORS, Level.MANAGERS


def _due(hours: float) -> datetime:
    """Expected resolution `hours` from NOW (negative: overdue)."""
    return NOW + timedelta(hours=hours)


# (first, second, why): each row is (hours until due, level, severity).
CASES = [
    ((-1, SUP, C), (-1, NONE, M), "critical escalated above medium, same lateness"),
    ((-1, NONE, C), (-1, NONE, M), "critical above medium, same lateness"),
    ((-1, MAN, M), (-1, SUP, C), "a higher level above a lower, same lateness"),
    ((-1, SUP, L), (-1, NONE, C), "escalated above not escalated, same lateness"),
    ((-1, NONE, M), (-30, NONE, L), "within overdue: severity above how long"),
    ((-30, NONE, M), (-1, NONE, M), "same level and severity: most overdue first"),
    ((-1, NONE, L), (2, MAN, C), "anything overdue above anything not yet due"),
    ((48, NONE, C), (1, NONE, M), "not yet due: critical above medium"),
    ((48, SUP, L), (1, NONE, H), "not yet due: escalated above not escalated"),
    ((1, NONE, M), (48, NONE, M), "same level and severity: due soonest first"),
]


def _key(spec: tuple[float, int, str]) -> tuple[Any, ...]:
    hours, level, severity = spec
    return selectors.urgency_key(
        expected_resolution=_due(hours),
        escalation_level=level,
        severity=severity,
        now=NOW,
    )


@pytest.mark.parametrize(("first", "second", "why"), CASES, ids=[c[2] for c in CASES])
def test_the_more_urgent_exception_comes_first(
    first: tuple[float, int, str], second: tuple[float, int, str], why: str
) -> None:
    assert _key(first) < _key(second), why


@pytest.mark.django_db
@pytest.mark.usefixtures("escalation_rules")
@time_machine.travel(NOW, tick=False)
def test_the_queue_page_orders_rows_as_the_rule_says(
    client: Client, supervisor: User
) -> None:
    specs = {spec for case in CASES for spec in case[:2]}
    made = {}
    for spec in specs:
        hours, level, severity = spec
        row = reporting.exception_report(
            shipment=dispatched_shipment(),
            user=None,
            cause=Cause.WEATHER,
            severity=severity,
            expected_resolution=_due(100),  # reported for the future
        )
        # Set as the sweep and a reschedule would leave them.
        DeliveryException.objects.filter(pk=row.pk).update(
            expected_resolution=_due(hours), escalation_level=level
        )
        made[spec] = row.pk

    client.force_login(supervisor)
    page = client.get(reverse("exception-queue")).context["page"]

    assert [e.pk for e in page.object_list] == [
        made[spec] for spec in sorted(specs, key=_key)
    ]
