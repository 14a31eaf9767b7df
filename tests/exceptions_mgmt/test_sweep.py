"""The periodic sweep: escalating stale exceptions by the rules, and raising
delay exceptions for late and silent packages. Time is moved with time-machine;
the database, the outbox and the locks are real.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from exceptions_mgmt import detection, reporting, services, sweep, tasks
from exceptions_mgmt.models import (
    Cause,
    DeliveryException,
    EscalationRule,
    ExceptionStatus,
    Level,
    Severity,
)
from notifications.models import Audience, Channel, Kind, Notification
from notifications.outbox import queue_now
from shipments import services as shipment_services
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import UserFactory, dispatched_shipment
from tests.helpers import race
from tracksop import roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

K = EventKind
S = ShipmentStatus
SECOND = timedelta(seconds=1)

default_rules = importlib.import_module("exceptions_mgmt.migrations.0002_default_rules")
# (severity, after, level) of each default rule, by the condition it watches.
UNACKNOWLEDGED_RULES = [
    (severity, after, level)
    for severity, rules in default_rules.DEFAULT_RULES.items()
    for when, after, level in rules
    if when == EscalationRule.When.UNACKNOWLEDGED
]
UNRESOLVED_RULES = [
    (severity, after, level)
    for severity, rules in default_rules.DEFAULT_RULES.items()
    for when, after, level in rules
    if when == EscalationRule.When.UNRESOLVED
]


def _rule_id(rule: tuple[str, timedelta, int]) -> str:
    severity, after, level = rule
    return f"{severity}-after-{after}-to-level-{level}"


@pytest.fixture
def supervisors(supervisor: User) -> list[User]:
    return [supervisor, UserFactory(username="supervisor-2", role=roles.SUPERVISOR)]


@pytest.fixture
def managers(db: None) -> list[User]:
    return [
        UserFactory(username="manager-1", role=roles.MANAGER),
        UserFactory(username="manager-2", role=roles.MANAGER),
    ]


@pytest.fixture
def recipients(
    supervisors: list[User], managers: list[User], staff: User
) -> dict[int, list[User]]:
    """Who hears of each level; `staff` is there to be left out."""
    return {Level.SUPERVISORS: supervisors, Level.MANAGERS: managers}


# --- helpers -----------------------------------------------------------------


def _report(shipment: Shipment | None = None, **kwargs: Any) -> DeliveryException:
    kwargs.setdefault("cause", Cause.WEATHER)
    kwargs.setdefault("expected_resolution", timezone.now() + timedelta(days=5))
    return reporting.exception_report(
        shipment=shipment or dispatched_shipment(), user=None, **kwargs
    )


def _sweep_at(moment: datetime, **kwargs: Any) -> int:
    with time_machine.travel(moment, tick=False):
        return sweep.exceptions_escalate(**kwargs)


def _emails(exception: DeliveryException) -> list[tuple[int, str]]:
    """The escalation emails about an exception, as (level, address)."""
    rows = Notification.objects.filter(
        shipment=exception.shipment, kind=Kind.ESCALATION
    )
    for row in rows:
        assert (row.channel, row.audience) == (Channel.EMAIL, Audience.STAFF)
        assert row.status == "pending", row.last_error
        assert exception.shipment.shipment_id in row.subject
    return sorted(
        (int(row.idempotency_key.split(":")[2]), row.to) for row in rows.order_by("id")
    )


def _addressed(level: int, users: list[User]) -> list[tuple[int, str]]:
    return sorted((level, user.email) for user in users)


def _escalations(exception: DeliveryException) -> list[tuple[Any, dict[str, Any]]]:
    return [
        (change.actor, change.data)
        for change in exception.changes.filter(action="escalated")
    ]


# --- escalation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "after", "level"),
    UNACKNOWLEDGED_RULES,
    ids=map(_rule_id, UNACKNOWLEDGED_RULES),
)
def test_an_unacknowledged_exception_goes_to_the_supervisors_past_its_limit(
    recipients: dict[int, list[User]], severity: str, after: timedelta, level: int
) -> None:
    exception = _report(severity=severity)
    limit = exception.reported_at + after

    assert _sweep_at(limit - SECOND) == 0
    exception.refresh_from_db()
    assert (exception.escalation_level, exception.status) == (0, ExceptionStatus.OPEN)
    assert _emails(exception) == []

    assert _sweep_at(limit + SECOND) == 1

    exception.refresh_from_db()
    assert level == Level.SUPERVISORS
    assert exception.escalation_level == Level.SUPERVISORS
    assert exception.status == ExceptionStatus.ESCALATED
    assert _emails(exception) == _addressed(level, recipients[level])
    assert _escalations(exception) == [(None, {"level": level})]
    # Next due: the same severity's unresolved rule.
    unresolved = EscalationRule.objects.get(
        severity=severity, when=EscalationRule.When.UNRESOLVED
    )
    assert exception.escalate_after == exception.reported_at + unresolved.after


@pytest.mark.parametrize(
    ("severity", "after", "level"),
    UNRESOLVED_RULES,
    ids=map(_rule_id, UNRESOLVED_RULES),
)
def test_an_acknowledged_exception_escalates_only_when_its_unresolved_rule_falls_due(
    recipients: dict[int, list[User]],
    staff: User,
    severity: str,
    after: timedelta,
    level: int,
) -> None:
    exception = _report(severity=severity)
    services.exception_assign(exception=exception, user=staff, assignee=staff)
    limit = exception.reported_at + after

    # Past every "unacknowledged" limit, short of the unresolved one: nothing.
    assert _sweep_at(limit - SECOND) == 0
    exception.refresh_from_db()
    assert exception.escalation_level == 0
    assert exception.status == ExceptionStatus.IN_PROGRESS
    assert _emails(exception) == []

    assert _sweep_at(limit + SECOND) == 1

    exception.refresh_from_db()
    assert exception.escalation_level == level
    assert exception.status == ExceptionStatus.ESCALATED
    # Straight to the managers: the supervisors, passed over, hear of it too.
    assert _emails(exception) == sorted(
        address
        for reached in range(1, level + 1)
        for address in _addressed(reached, recipients[reached])
    )
    assert _escalations(exception) == [(None, {"level": level})]
    assert exception.escalate_after is None  # no rule left to fall due


def test_an_escalated_exception_left_unresolved_goes_on_to_the_managers(
    recipients: dict[int, list[User]],
) -> None:
    exception = _report(severity=Severity.MEDIUM)
    reported = exception.reported_at

    assert _sweep_at(reported + timedelta(hours=4, seconds=1)) == 1
    assert _sweep_at(reported + timedelta(hours=47)) == 0
    assert _sweep_at(reported + timedelta(hours=48, seconds=1)) == 1

    exception.refresh_from_db()
    assert exception.escalation_level == Level.MANAGERS
    assert _emails(exception) == sorted(
        _addressed(1, recipients[Level.SUPERVISORS])
        + _addressed(2, recipients[Level.MANAGERS])
    )
    assert _escalations(exception) == [(None, {"level": 1}), (None, {"level": 2})]


def test_a_resolved_exception_never_escalates(
    recipients: dict[int, list[User]], supervisor: User
) -> None:
    exception = _report(severity=Severity.CRITICAL)
    services.exception_resolve(exception=exception, user=supervisor, notes="Found")

    assert _sweep_at(exception.reported_at + timedelta(days=30)) == 0

    exception.refresh_from_db()
    assert exception.escalation_level == 0
    assert exception.status == ExceptionStatus.RESOLVED
    assert _emails(exception) == []
    assert _escalations(exception) == []


def test_a_rule_a_supervisor_edits_applies_to_exceptions_reported_afterwards(
    recipients: dict[int, list[User]],
) -> None:
    rule = EscalationRule.objects.get(
        severity=Severity.MEDIUM, when=EscalationRule.When.UNACKNOWLEDGED
    )
    rule.after = timedelta(minutes=30)
    rule.full_clean()
    rule.save()

    exception = _report(severity=Severity.MEDIUM)

    assert exception.escalate_after == exception.reported_at + timedelta(minutes=30)
    assert _sweep_at(exception.reported_at + timedelta(minutes=29)) == 0
    assert _sweep_at(exception.reported_at + timedelta(minutes=30, seconds=1)) == 1
    exception.refresh_from_db()
    assert exception.escalation_level == Level.SUPERVISORS
    assert _emails(exception) == _addressed(1, recipients[Level.SUPERVISORS])


def test_a_second_sweep_escalates_nothing_twice_and_sends_no_second_email(
    recipients: dict[int, list[User]],
) -> None:
    exception = _report(severity=Severity.HIGH)
    moment = exception.reported_at + timedelta(hours=1, seconds=1)

    assert _sweep_at(moment) == 1
    assert _sweep_at(moment) == 0
    assert _sweep_at(moment + timedelta(hours=2)) == 0

    exception.refresh_from_db()
    assert exception.escalation_level == Level.SUPERVISORS
    assert _emails(exception) == _addressed(1, recipients[Level.SUPERVISORS])
    assert len(_escalations(exception)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_escalate_each_exception_once() -> None:
    watchers = [
        UserFactory(username=f"sup-{i}", role=roles.SUPERVISOR) for i in range(2)
    ]
    exceptions = [_report(severity=Severity.HIGH) for _ in range(4)]
    moment = max(e.reported_at for e in exceptions) + timedelta(hours=1, seconds=1)

    with time_machine.travel(moment, tick=False):
        # Small batches, so the two sweeps interleave rather than one taking all.
        outcomes = race(
            lambda: sweep.exceptions_escalate(batch=1),
            lambda: sweep.exceptions_escalate(batch=1),
        )

    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(outcomes) == len(exceptions)
    for exception in exceptions:
        exception.refresh_from_db()
        assert exception.escalation_level == Level.SUPERVISORS
        assert _escalations(exception) == [(None, {"level": 1})]
        assert _emails(exception) == _addressed(1, watchers)


# --- detection ---------------------------------------------------------------


def _delay_messages(exception: DeliveryException) -> dict[str, Notification]:
    rows = Notification.objects.filter(event=exception.report_event)
    assert {row.kind for row in rows} == {Kind.DELAY}
    return {row.channel: row for row in rows}


@pytest.mark.parametrize("scanned", [False, True], ids=["dispatched", "in-transit"])
def test_a_shipment_past_its_eta_gets_one_late_exception(scanned: bool) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipment = dispatched_shipment()
        eta = shipment.estimated_delivery
        assert eta is not None
        clock.shift(timedelta(days=2))
        if scanned:
            checkpoint_record(shipment=shipment, kind=K.ARRIVED_HUB, user=None)
        clock.shift(timedelta(days=1))  # the day of its ETA: not late yet
        assert detection.exceptions_detect() == 0

        # In transit, it is also silent past TRACKSOP_STALL_HOURS by now; one
        # exception holds it, not two.
        clock.shift(timedelta(days=1, hours=1))
        assert detection.exceptions_detect() == 1
        assert detection.exceptions_detect() == 0

    exception = DeliveryException.objects.get(shipment=shipment)
    assert exception.cause == Cause.LATE
    assert exception.severity == Severity.MEDIUM
    assert exception.reported_by is None
    assert exception.detection_key == f"late:{eta.isoformat()}"
    assert exception.changes.get().action == "reported"
    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION
    assert exception.report_event is not None
    assert exception.report_event.data["detected"] is True
    assert exception.report_event.source == "system"
    messages = _delay_messages(exception)
    assert set(messages) == {Channel.EMAIL, Channel.SMS}
    assert "running late" in messages[Channel.EMAIL].body_text
    assert not Notification.objects.filter(
        shipment=shipment, kind=Kind.EXCEPTION
    ).exists()


def test_a_resolved_late_shipment_is_raised_again_only_when_its_new_eta_passes(
    supervisor: User,
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipment = dispatched_shipment()
        clock.shift(timedelta(days=4))
        assert detection.exceptions_detect() == 1
        first = DeliveryException.objects.get(shipment=shipment)
        clock.shift(timedelta(hours=1))
        services.exception_resolve(exception=first, user=supervisor, notes="Found")
        # Still past the same ETA, which was dealt with.
        assert detection.exceptions_detect() == 0

        new_eta = timezone.localdate() + timedelta(days=2)
        shipment_services.shipment_eta_change(
            shipment=shipment, user=supervisor, estimated_delivery=new_eta
        )
        assert detection.exceptions_detect() == 0
        clock.shift(timedelta(days=3))
        assert detection.exceptions_detect() == 1

    second = DeliveryException.objects.exclude(pk=first.pk).get(shipment=shipment)
    assert second.cause == Cause.LATE
    assert second.detection_key == f"late:{new_eta.isoformat()}"
    assert second.status == ExceptionStatus.OPEN
    first.refresh_from_db()
    assert first.status == ExceptionStatus.RESOLVED


def test_an_in_transit_shipment_without_a_scan_gets_one_no_scan_exception(
    settings: Settings,
) -> None:
    settings.TRACKSOP_STALL_HOURS = 6
    with time_machine.travel(timezone.now(), tick=False) as clock:
        moving = dispatched_shipment()
        checkpoint_record(shipment=moving, kind=K.PICKED_UP, user=None)
        waiting = dispatched_shipment()  # not picked up yet: not stalled
        clock.shift(timedelta(hours=5))
        assert detection.exceptions_detect() == 0

        clock.shift(timedelta(hours=2))
        assert detection.exceptions_detect() == 1
        assert detection.exceptions_detect() == 0

    exception = DeliveryException.objects.get()
    assert exception.shipment == moving
    assert exception.cause == Cause.NO_SCAN
    assert exception.detection_key.startswith("stall:")
    assert set(_delay_messages(exception)) == {Channel.EMAIL, Channel.SMS}
    moving.refresh_from_db()
    assert moving.status == S.EXCEPTION
    waiting.refresh_from_db()
    assert waiting.status == S.DISPATCHED


def test_a_delivered_shipment_past_its_eta_gets_nothing() -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipment = dispatched_shipment()
        checkpoint_record(shipment=shipment, kind=K.DELIVERED, user=None)
        clock.shift(timedelta(days=10))
        assert detection.exceptions_detect() == 0

    assert not DeliveryException.objects.filter(shipment=shipment).exists()


def test_a_shipment_with_an_open_exception_gets_nothing_more() -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipment = dispatched_shipment()
        checkpoint_record(shipment=shipment, kind=K.PICKED_UP, user=None)
        open_one = _report(shipment, cause=Cause.DAMAGED)
        clock.shift(timedelta(days=10))  # past its ETA and long silent
        assert detection.exceptions_detect() == 0

    assert list(DeliveryException.objects.filter(shipment=shipment)) == [open_one]


def test_the_periodic_task_detects_then_escalates(
    recipients: dict[int, list[User]],
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        late = dispatched_shipment()
        stale = _report(severity=Severity.MEDIUM)
        clock.shift(timedelta(days=4))

        assert tasks.exceptions_sweep() == {"detected": 1, "escalated": 1}

    assert DeliveryException.objects.get(shipment=late).cause == Cause.LATE
    stale.refresh_from_db()
    # Four days unacknowledged and unresolved: straight to the managers.
    assert stale.escalation_level == Level.MANAGERS


# --- commits and publishes ----------------------------------------------------


def test_a_sweep_hands_its_messages_to_the_broker_in_one_publish_per_commit(
    recipients: dict[int, list[User]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        late = [dispatched_shipment() for _ in range(3)]
        stale = _report(severity=Severity.MEDIUM)
        before = Notification.objects.order_by("pk").last().pk  # type: ignore[union-attr]
        clock.shift(timedelta(days=4))

        with django_capture_on_commit_callbacks() as callbacks:
            assert detection.exceptions_detect(chunk=2) == 3
            assert sweep.exceptions_escalate() == 1

    publishes = [c for c in callbacks if getattr(c, "func", None) is queue_now]
    for callback in callbacks:
        if callback not in publishes:
            callback()  # as the commit would: the rows' ids join their batch
    # Two chunks of detections (two messages each), then one escalation
    # batch (its four emails): one publish each, after its commit.
    assert [len(c.args[0]) for c in publishes] == [4, 2, 4]  # type: ignore[attr-defined]  # the callbacks are partials
    written = Notification.objects.filter(pk__gt=before, status="pending")
    assert sorted(pk for c in publishes for pk in c.args[0]) == sorted(  # type: ignore[attr-defined]
        written.values_list("pk", flat=True)
    )
    # django-stubs read the foreign key's id as Shipment.shipment_id (a str).
    assert set(written.values_list("shipment", flat=True)) == {  # type: ignore[comparison-overlap]
        s.pk for s in [*late, stale.shipment]
    }


def test_a_detection_that_fails_is_undone_alone_and_the_sweep_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first, failing, last = (dispatched_shipment() for _ in range(3))
        # The checkpoint fails after the exception row is written: a fault
        # in the middle of one detection, in the middle of its chunk.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                CREATE FUNCTION pg_temp.refuse() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION 'refused by the test'; END $$
                LANGUAGE plpgsql;
                CREATE TRIGGER refuse BEFORE INSERT ON shipments_trackingevent
                FOR EACH ROW WHEN (NEW.shipment_id = %s)
                EXECUTE FUNCTION pg_temp.refuse();
                """,
                [failing.pk],
            )
        clock.shift(timedelta(days=4))

        with caplog.at_level(logging.ERROR, logger="exceptions_mgmt.detection"):
            assert detection.exceptions_detect(chunk=3) == 2

    assert f"on shipment {failing.pk} failed" in caplog.text
    failing.refresh_from_db()
    assert failing.status == S.DISPATCHED
    assert not DeliveryException.objects.filter(shipment=failing).exists()
    assert not Notification.objects.filter(shipment=failing, kind=Kind.DELAY).exists()
    for shipment in (first, last):
        exception = DeliveryException.objects.get(shipment=shipment)
        assert set(_delay_messages(exception)) == {Channel.EMAIL, Channel.SMS}


@pytest.mark.django_db(transaction=True)
def test_two_detection_sweeps_at_once_raise_each_exception_once() -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        late = [dispatched_shipment() for _ in range(5)]
        clock.shift(timedelta(days=4))
        # Small chunks, so the two sweeps interleave rather than one taking all.
        outcomes = race(
            lambda: detection.exceptions_detect(chunk=2),
            lambda: detection.exceptions_detect(chunk=2),
        )

    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(outcomes) == len(late)
    for shipment in late:
        exception = DeliveryException.objects.get(shipment=shipment)
        assert exception.changes.get().action == "reported"
        assert set(_delay_messages(exception)) == {Channel.EMAIL, Channel.SMS}
        assert (
            Notification.objects.filter(shipment=shipment, kind=Kind.DELAY).count() == 2
        )


# --- cost per stale row ---------------------------------------------------------


def _queries(call: Any) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured)


def test_detection_costs_the_same_queries_for_two_late_shipments_as_for_twelve() -> (
    None
):
    """The set-wise chunk: its statements do not grow with its rows (the
    benchmark's 2-second sweep over 310 stale rows depends on it)."""
    with time_machine.travel(timezone.now(), tick=False) as clock:
        few = [dispatched_shipment() for _ in range(2)]
        clock.shift(timedelta(days=4))
        found, for_few = _queries(detection.exceptions_detect)
        assert found == len(few)
        many = [dispatched_shipment() for _ in range(12)]
        clock.shift(timedelta(days=4))
        found, for_many = _queries(detection.exceptions_detect)
        assert found == len(many)

    assert for_many == for_few
    for shipment in many:
        exception = DeliveryException.objects.get(shipment=shipment)
        assert exception.report_event is not None
        assert exception.report_event.shipment_id == shipment.pk
        assert set(_delay_messages(exception)) == {Channel.EMAIL, Channel.SMS}


def test_escalation_costs_the_same_queries_for_one_stale_exception_as_for_six(
    recipients: dict[int, list[User]],
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _report(severity=Severity.HIGH)
        clock.shift(timedelta(hours=2))  # past the hour it may stay unacknowledged
        escalated, for_one = _queries(sweep.exceptions_escalate)
        assert escalated == 1
        six = [_report(severity=Severity.HIGH) for _ in range(6)]
        clock.shift(timedelta(hours=2))
        escalated, for_six = _queries(sweep.exceptions_escalate)
        assert escalated == len(six)

    assert for_six == for_one
    for exception in six:
        assert _emails(exception) == _addressed(Level.SUPERVISORS, recipients[1])


def test_each_shipment_in_a_chunk_keeps_its_own_choices_and_subscribers() -> None:
    """One chunk reads every shipment's preferences and subscriptions in one
    query each; none may leak to another shipment."""
    from notifications.models import Preference, Subscription

    with time_machine.travel(timezone.now(), tick=False) as clock:
        email_only, sms_only, followed = (dispatched_shipment() for _ in range(3))
        for shipment, channels in ((email_only, "email"), (sms_only, "sms")):
            Preference.objects.create(
                shipment=shipment, audience=Audience.RECIPIENT, channels=channels
            )
        Subscription.objects.create(
            shipment=followed,
            channel=Channel.EMAIL,
            address="fan@example.org",
            code_hash="-",
            code_sent_at=timezone.now(),
            confirmed_at=timezone.now(),
        )
        clock.shift(timedelta(days=4))
        assert detection.exceptions_detect() == 3

    def sent(shipment: Shipment) -> list[tuple[str, str, str]]:
        return sorted(
            (row.audience, row.channel, row.status)
            for row in Notification.objects.filter(shipment=shipment, kind=Kind.DELAY)
        )

    assert sent(email_only) == [
        (Audience.RECIPIENT, Channel.EMAIL, "pending"),
        (Audience.RECIPIENT, Channel.SMS, "suppressed"),
    ]
    assert sent(sms_only) == [
        (Audience.RECIPIENT, Channel.EMAIL, "suppressed"),
        (Audience.RECIPIENT, Channel.SMS, "pending"),
    ]
    assert sent(followed) == [
        (Audience.RECIPIENT, Channel.EMAIL, "pending"),
        (Audience.RECIPIENT, Channel.SMS, "pending"),
        (Audience.SUBSCRIBER, Channel.EMAIL, "pending"),
    ]
