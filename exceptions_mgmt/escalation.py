"""When an exception goes up a level: the escalation rules, as pure functions.

A rule (the EscalationRule table, which a supervisor edits in the admin; its
defaults come from migration 0002) says how long an exception of a severity
may stay unacknowledged, or unresolved, counted from its report, before it
goes up to a level. Levels only go up. Everything that decides a level or a
deadline asks this module: the report and the first acknowledgement (which
store `escalate_after`, the time the sweep selects rows by), the sweep itself
(`sweep.exceptions_escalate`), and the exception's page, which shows the
next escalation (`next_escalation`). No
I/O here: `selectors.escalation_rules()` loads the rules, once per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exceptions_mgmt.models import DeliveryException, EscalationRule, Level


@dataclass(frozen=True)
class Rule:
    severity: str
    when: str  # EscalationRule.When
    after: timedelta
    level: int


# Per severity, shortest first.
Rules = Mapping[str, Sequence[Rule]]


def rules_by_severity(rules: Iterable[Rule]) -> dict[str, list[Rule]]:
    by_severity: dict[str, list[Rule]] = {}
    for rule in sorted(rules, key=lambda r: r.after):
        by_severity.setdefault(rule.severity, []).append(rule)
    return by_severity


def applies(rule: Rule, exception: DeliveryException) -> bool:
    """Whether the rule can still raise the exception's level: it leads higher
    than the level reached, and watches what is still true of it (a rule on
    acknowledgement stops counting once someone took the exception on)."""
    if rule.level <= exception.escalation_level:
        return False
    return (
        rule.when == EscalationRule.When.UNRESOLVED or exception.acknowledged_at is None
    )


def due_at(rule: Rule, exception: DeliveryException) -> datetime:
    return exception.reported_at + rule.after


@dataclass(frozen=True)
class NextEscalation:
    at: datetime
    level: int
    when: str  # EscalationRule.When: unless acknowledged, or resolved, by then

    @property
    def when_label(self) -> str:
        return str(EscalationRule.When(self.when).label)

    @property
    def level_label(self) -> str:
        return str(Level(self.level).label)


def next_escalation(
    exception: DeliveryException, rules: Rules
) -> NextEscalation | None:
    """The next rule that could still raise its level, and when it falls due;
    None when no rule is left (the sweep no longer looks at it)."""
    pending = [r for r in rules.get(exception.severity, ()) if applies(r, exception)]
    if not pending:
        return None
    rule = min(pending, key=lambda r: (due_at(r, exception), -r.level))
    return NextEscalation(due_at(rule, exception), rule.level, rule.when)


def next_deadline(exception: DeliveryException, rules: Rules) -> datetime | None:
    """When the next rule that could still raise its level falls due (the
    `escalate_after` the sweep selects by)."""
    upcoming = next_escalation(exception, rules)
    return upcoming.at if upcoming is not None else None


def level_due(exception: DeliveryException, rules: Rules, now: datetime) -> int:
    """The level the exception should be at `now`: the highest level of the
    rules that apply and have fallen due, or the level it has (never lower)."""
    return max(
        (
            rule.level
            for rule in rules.get(exception.severity, ())
            if applies(rule, exception) and due_at(rule, exception) <= now
        ),
        default=exception.escalation_level,
    )


def levels_passed(previous: int, level: int) -> range:
    """Each level an escalation from `previous` to `level` passes: a sweep
    that ran late may jump two, and every level passed hears of it."""
    return range(previous + 1, level + 1)
