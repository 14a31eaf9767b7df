"""The escalation rules and the status table, as the pure functions they are:
no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exceptions_mgmt import escalation, status
from exceptions_mgmt.escalation import Rule
from exceptions_mgmt.models import (
    DeliveryException,
    EscalationRule,
    ExceptionChange,
    ExceptionStatus,
    Level,
    Severity,
)
from exceptions_mgmt.status import ExceptionConflict

A = ExceptionChange.Action
S = ExceptionStatus
W = EscalationRule.When
REPORTED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
RULES = escalation.rules_by_severity(
    [
        Rule(Severity.MEDIUM, W.UNRESOLVED, 48 * HOUR, Level.MANAGERS),
        Rule(Severity.MEDIUM, W.UNACKNOWLEDGED, 4 * HOUR, Level.SUPERVISORS),
    ]
)


def _exception(
    *, level: int = Level.NONE, acknowledged: bool = False
) -> DeliveryException:
    return DeliveryException(
        severity=Severity.MEDIUM,
        reported_at=REPORTED,
        escalation_level=level,
        acknowledged_at=REPORTED + HOUR if acknowledged else None,
    )


@pytest.mark.parametrize(
    ("hours", "acknowledged", "level"),
    [
        (3, False, Level.NONE),
        (4, False, Level.SUPERVISORS),
        (4, True, Level.NONE),
        (48, False, Level.MANAGERS),
        (48, True, Level.MANAGERS),
    ],
)
def test_the_level_due_follows_the_rules_that_still_apply(
    hours: int, acknowledged: bool, level: int
) -> None:
    exception = _exception(acknowledged=acknowledged)

    assert escalation.level_due(exception, RULES, REPORTED + hours * HOUR) == level


def test_a_level_never_goes_down() -> None:
    exception = _exception(level=Level.MANAGERS)

    assert escalation.level_due(exception, RULES, REPORTED) == Level.MANAGERS
    assert escalation.next_deadline(exception, RULES) is None


def test_the_next_deadline_is_the_soonest_rule_that_can_still_raise_the_level() -> None:
    assert escalation.next_deadline(_exception(), RULES) == REPORTED + 4 * HOUR
    assert (
        escalation.next_deadline(_exception(acknowledged=True), RULES)
        == REPORTED + 48 * HOUR
    )
    assert escalation.next_deadline(_exception(level=Level.SUPERVISORS), RULES) == (
        REPORTED + 48 * HOUR
    )


def test_the_next_escalation_says_when_to_which_level_and_unless_what() -> None:
    upcoming = escalation.next_escalation(_exception(), RULES)
    assert upcoming is not None
    assert (upcoming.at, upcoming.level) == (REPORTED + 4 * HOUR, Level.SUPERVISORS)
    assert upcoming.when_label == "not acknowledged"
    assert upcoming.level_label == "Level 1: supervisors"

    taken_on = escalation.next_escalation(_exception(acknowledged=True), RULES)
    assert taken_on is not None
    assert (taken_on.level, taken_on.when_label) == (Level.MANAGERS, "not resolved")
    assert escalation.next_escalation(_exception(level=Level.MANAGERS), RULES) is None


def test_a_late_sweep_passes_every_level_between() -> None:
    assert list(escalation.levels_passed(Level.NONE, Level.MANAGERS)) == [1, 2]


@pytest.mark.parametrize(
    ("before", "action", "after"),
    [
        (S.OPEN, A.ASSIGNED, S.IN_PROGRESS),
        (S.IN_PROGRESS, A.NOTED, S.IN_PROGRESS),
        (S.ESCALATED, A.RESCHEDULED, S.ESCALATED),
        (S.IN_PROGRESS, A.ESCALATED, S.ESCALATED),
        (S.ESCALATED, A.RESOLVED, S.RESOLVED),
        (S.OPEN, A.CLOSED_WITH_SHIPMENT, S.RESOLVED),
        (S.OPEN, A.VOIDED, S.VOID),
    ],
)
def test_the_status_table_moves_an_unresolved_exception(
    before: str, action: str, after: str
) -> None:
    assert status.next_status(before, action=action) == after


@pytest.mark.parametrize("closed", [S.RESOLVED, S.VOID])
@pytest.mark.parametrize("action", [A.ASSIGNED, A.ESCALATED, A.RESOLVED, A.VOIDED])
def test_a_closed_exception_takes_no_move(closed: str, action: str) -> None:
    with pytest.raises(ExceptionConflict, match=str(S(closed).label).lower()):
        status.next_status(closed, action=action)


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(status.TRANSITIONS) == set(ExceptionStatus.values)
