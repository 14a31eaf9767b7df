"""Delivery exceptions worked through the services: report, assign, note,
reschedule, resolve, and the history each change leaves behind.

The customer's messages are real outbox rows written by the notifications app
in the same transaction; nothing of ours is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from exceptions_mgmt import reporting, services, sweep
from exceptions_mgmt.models import (
    Cause,
    DeliveryException,
    ExceptionChange,
    ExceptionNote,
    ExceptionStatus,
    Severity,
)
from exceptions_mgmt.status import ExceptionConflict
from notifications.models import Audience, Channel, Kind, Notification
from notifications.outbox import queue_now
from shipments import services as shipment_services
from shipments.checkpoints import checkpoint_record, event_void
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import ShipmentFactory, UserFactory, dispatched_shipment
from tests.helpers import race
from tracksop import roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

K = EventKind
S = ShipmentStatus
EMAIL, SMS = Channel.EMAIL, Channel.SMS


# --- helpers -----------------------------------------------------------------


def _later(hours: float = 6) -> datetime:
    return timezone.now() + timedelta(hours=hours)


def _scan(shipment: Shipment, kind: str) -> TrackingEvent:
    return checkpoint_record(shipment=shipment, kind=kind, user=None)


def _in_transit() -> Shipment:
    shipment = dispatched_shipment()
    _scan(shipment, K.PICKED_UP)
    shipment.refresh_from_db()
    return shipment


def _report(
    shipment: Shipment, user: User | None = None, **kwargs: Any
) -> DeliveryException:
    kwargs.setdefault("cause", Cause.WEATHER)
    kwargs.setdefault("expected_resolution", _later())
    return reporting.exception_report(shipment=shipment, user=user, **kwargs)


def _messages(shipment: Shipment, kind: str) -> dict[str, Notification]:
    """The customer's messages of one kind, by channel."""
    rows = Notification.objects.filter(
        shipment=shipment, kind=kind, audience=Audience.RECIPIENT
    )
    found = {row.channel: row for row in rows}
    assert len(found) == rows.count(), "two messages of one kind on one channel"
    return found


def _nothing_written(shipment: Shipment, events_before: int) -> None:
    assert not DeliveryException.objects.filter(shipment=shipment).exists()
    assert shipment.events.count() == events_before
    assert not Notification.objects.filter(
        shipment=shipment, kind__in=[Kind.EXCEPTION, Kind.DELAY]
    ).exists()


# --- report ------------------------------------------------------------------


def test_reporting_holds_the_shipment_and_logs_the_cause_in_its_timeline(
    staff: User,
) -> None:
    shipment = _in_transit()
    expected = _later(hours=8)

    exception = _report(
        shipment,
        staff,
        cause=Cause.ADDRESS,
        severity=Severity.HIGH,
        description="House number missing",
        expected_resolution=expected,
    )

    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION
    event = shipment.events.get(kind=K.EXCEPTION_REPORTED)
    assert exception.report_event == event
    assert event.recorded_by == staff
    assert event.status_after == S.EXCEPTION
    assert event.notes == "Address issue: House number missing"
    assert event.data == {
        "cause": "Address issue",
        "cause_code": Cause.ADDRESS,
        "public_cause": "Address issue",
        "severity": Severity.HIGH,
        "expected_resolution": expected.isoformat(),
        "exception": exception.pk,
        "detected": False,
    }
    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.OPEN
    assert exception.reported_by == staff
    assert exception.acknowledged_at is None
    # High: the first rule to fall due is "unacknowledged for an hour".
    assert exception.escalate_after == exception.reported_at + timedelta(hours=1)


def test_reporting_tells_the_customer_by_email_and_sms_on_commit(
    staff: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    shipment = _in_transit()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        exception = _report(shipment, staff, cause=Cause.CUSTOMS)

    messages = _messages(shipment, Kind.EXCEPTION)
    assert set(messages) == {EMAIL, SMS}
    for row in messages.values():
        assert row.event == exception.report_event
        assert row.status == "pending"
        assert "Customs hold" in row.body_text
    assert messages[EMAIL].to == shipment.recipient_email
    assert messages[SMS].to == shipment.recipient_phone.as_e164
    # The broker hears of them only after the commit.
    queued = [c for c in callbacks if getattr(c, "func", None) is queue_now]
    assert sorted(pk for c in queued for pk in c.args[0]) == sorted(  # type: ignore[attr-defined]  # the callbacks are partials
        row.pk for row in messages.values()
    )


def test_a_rolled_back_report_leaves_no_exception_no_event_and_no_message(
    staff: User,
) -> None:
    shipment = _in_transit()
    events_before = shipment.events.count()

    def report_then_fail() -> None:
        with transaction.atomic():
            _report(shipment, staff)
            raise RuntimeError("the request failed after the report")

    with pytest.raises(RuntimeError):
        report_then_fail()

    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    _nothing_written(shipment, events_before)


def test_an_other_cause_needs_a_description_of_it(staff: User) -> None:
    shipment = _in_transit()
    events_before = shipment.events.count()

    with pytest.raises(ValidationError) as exc:
        _report(shipment, staff, cause=Cause.OTHER, cause_other="  ")

    assert "cause_other" in exc.value.message_dict
    _nothing_written(shipment, events_before)
    exception = _report(shipment, staff, cause=Cause.OTHER, cause_other="Dog bites")
    assert exception.cause_label == "Dog bites"
    assert exception.report_event is not None
    assert exception.report_event.data["cause"] == "Dog bites"


def test_a_resolution_time_in_the_past_is_refused_and_nothing_is_written(
    staff: User,
) -> None:
    shipment = _in_transit()
    events_before = shipment.events.count()

    with pytest.raises(ValidationError) as exc:
        _report(shipment, staff, expected_resolution=_later(hours=-1))

    assert "expected_resolution" in exc.value.message_dict
    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    _nothing_written(shipment, events_before)


def _created() -> Shipment:
    return ShipmentFactory()


def _delivered() -> Shipment:
    shipment = dispatched_shipment()
    _scan(shipment, K.DELIVERED)
    return shipment


def _cancelled() -> Shipment:
    shipment = ShipmentFactory()
    return shipment_services.shipment_cancel(
        shipment=shipment, user=None, reason="Order withdrawn"
    )


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (_created, S.CREATED),
        (_delivered, S.DELIVERED),
        (_cancelled, S.CANCELLED),
    ],
    ids=["created", "delivered", "cancelled"],
)
def test_reporting_on_a_shipment_that_is_not_on_its_way_is_refused(
    staff: User, make: Callable[[], Shipment], status: str
) -> None:
    shipment = make()
    events_before = shipment.events.count()

    with pytest.raises(ExceptionConflict, match="packages on their way"):
        _report(shipment, staff)

    shipment.refresh_from_db()
    assert shipment.status == status
    _nothing_written(shipment, events_before)


def test_a_second_report_while_one_is_open_is_refused(staff: User) -> None:
    shipment = _in_transit()
    first = _report(shipment, staff)
    events_before = shipment.events.count()

    with pytest.raises(ExceptionConflict, match="already has an open exception"):
        _report(shipment, staff, cause=Cause.DAMAGED)

    assert list(DeliveryException.objects.filter(shipment=shipment)) == [first]
    assert shipment.events.count() == events_before
    assert len(_messages(shipment, Kind.EXCEPTION)) == 2  # the first report's


# --- resolve -----------------------------------------------------------------


def test_resolving_needs_notes(supervisor: User) -> None:
    exception = _report(_in_transit())

    with pytest.raises(ValidationError) as exc:
        services.exception_resolve(exception=exception, user=supervisor, notes=" ")

    assert "notes" in exc.value.message_dict
    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.OPEN
    assert exception.shipment.status == S.EXCEPTION


def test_resolving_returns_the_shipment_in_transit_and_tells_the_customer(
    supervisor: User,
) -> None:
    shipment = _in_transit()
    exception = _report(shipment)

    resolved = services.exception_resolve(
        exception=exception, user=supervisor, notes="  Weather cleared.  "
    )

    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    assert resolved.status == ExceptionStatus.RESOLVED
    assert resolved.resolved_by == supervisor
    assert resolved.resolved_at is not None
    assert resolved.resolution_notes == "Weather cleared."
    assert resolved.escalate_after is None
    event = shipment.events.get(kind=K.EXCEPTION_RESOLVED)
    assert event.status_after == S.IN_TRANSIT
    assert event.recorded_by == supervisor
    messages = _messages(shipment, Kind.EXCEPTION_RESOLVED)
    assert set(messages) == {EMAIL, SMS}
    assert all(row.event == event for row in messages.values())


def test_resolving_returns_the_shipment_to_where_scans_during_it_left_it(
    supervisor: User,
) -> None:
    shipment = _in_transit()
    exception = _report(shipment)
    # The carrier carries on while the exception is open: logged, still held.
    _scan(shipment, K.OUT_FOR_DELIVERY)
    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION

    services.exception_resolve(exception=exception, user=supervisor, notes="Fixed")

    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY


def test_resolving_twice_names_who_resolved_it_first(
    supervisor: User, staff: User
) -> None:
    exception = _report(_in_transit())
    services.exception_resolve(exception=exception, user=supervisor, notes="Done")

    with pytest.raises(ExceptionConflict) as exc:
        services.exception_resolve(exception=exception, user=staff, notes="Also")

    assert f"already resolved by {supervisor.get_full_name()}" in str(exc.value)
    assert exception.shipment.events.filter(kind=K.EXCEPTION_RESOLVED).count() == 1


def test_resolving_a_version_someone_else_changed_is_refused(
    supervisor: User, staff: User
) -> None:
    exception = _report(_in_transit())
    seen = exception.version
    services.exception_note_add(exception=exception, user=staff, text="Called depot")

    with pytest.raises(ExceptionConflict, match="changed this exception"):
        services.exception_resolve(
            exception=exception, user=supervisor, notes="Done", expected_version=seen
        )

    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.IN_PROGRESS
    assert exception.shipment.status == S.EXCEPTION
    resolved = services.exception_resolve(
        exception=exception,
        user=supervisor,
        notes="Done",
        expected_version=exception.version,
    )
    assert resolved.is_resolved


@pytest.mark.django_db(transaction=True)
def test_of_two_supervisors_resolving_at_the_same_moment_one_wins() -> None:
    first = UserFactory(username="sup-a", role=roles.SUPERVISOR)
    second = UserFactory(username="sup-b", role=roles.SUPERVISOR)
    shipment = _in_transit()
    exception = _report(shipment)

    outcomes = race(
        lambda: services.exception_resolve(
            exception=exception, user=first, notes="Rerouted"
        ),
        lambda: services.exception_resolve(
            exception=exception, user=second, notes="Rerouted too"
        ),
    )

    winners = [o for o in outcomes if isinstance(o, DeliveryException)]
    losers = [o for o in outcomes if isinstance(o, ExceptionConflict)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    winner = winners[0].resolved_by
    assert winner is not None
    assert f"already resolved by {winner.get_full_name()}" in str(losers[0])
    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.RESOLVED
    assert exception.resolved_by == winner
    assert shipment.events.filter(kind=K.EXCEPTION_RESOLVED).count() == 1
    assert exception.changes.filter(action="resolved").count() == 1
    assert len(_messages(shipment, Kind.EXCEPTION_RESOLVED)) == 2
    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT


# --- assign ------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["cs_agent", "staff"])
def test_customer_service_and_logistics_staff_take_an_exception_themselves(
    request: pytest.FixtureRequest, persona: str
) -> None:
    user: User = request.getfixturevalue(persona)
    exception = _report(_in_transit())

    taken = services.exception_assign(exception=exception, user=user, assignee=user)

    taken.refresh_from_db()
    assert taken.assignee == user


def test_only_a_supervisor_assigns_an_exception_to_someone_else(
    cs_agent: User, staff: User, supervisor: User
) -> None:
    exception = _report(_in_transit())

    with pytest.raises(PermissionDenied):
        services.exception_assign(exception=exception, user=cs_agent, assignee=staff)
    exception.refresh_from_db()
    assert exception.assignee is None

    services.exception_assign(exception=exception, user=supervisor, assignee=staff)
    exception.refresh_from_db()
    assert exception.assignee == staff


def test_staff_cannot_take_an_exception_someone_else_holds(
    cs_agent: User, staff: User
) -> None:
    exception = _report(_in_transit())
    services.exception_assign(exception=exception, user=staff, assignee=staff)

    with pytest.raises(PermissionDenied, match="reassign"):
        services.exception_assign(exception=exception, user=cs_agent, assignee=cs_agent)

    exception.refresh_from_db()
    assert exception.assignee == staff


def test_assigning_to_someone_without_the_role_is_refused_on_assignee(
    supervisor: User, outsider: User
) -> None:
    exception = _report(_in_transit())

    with pytest.raises(ValidationError) as exc:
        services.exception_assign(
            exception=exception, user=supervisor, assignee=outsider
        )

    assert "assignee" in exc.value.message_dict
    exception.refresh_from_db()
    assert exception.assignee is None
    assert not exception.changes.filter(action="assigned").exists()


def test_assigning_acknowledges_it_and_moves_the_deadline_to_the_unresolved_rule(
    staff: User,
) -> None:
    exception = _report(_in_transit(), severity=Severity.MEDIUM)
    assert exception.escalate_after == exception.reported_at + timedelta(hours=4)

    services.exception_assign(exception=exception, user=staff, assignee=staff)

    exception.refresh_from_db()
    assert exception.acknowledged_at is not None
    assert exception.status == ExceptionStatus.IN_PROGRESS
    # Medium: the "unacknowledged 4h" rule no longer applies; "unresolved 48h" does.
    assert exception.escalate_after == exception.reported_at + timedelta(hours=48)


# --- note --------------------------------------------------------------------


def test_an_empty_note_is_refused(staff: User) -> None:
    exception = _report(_in_transit())

    with pytest.raises(ValidationError) as exc:
        services.exception_note_add(exception=exception, user=staff, text="  \n")

    assert "text" in exc.value.message_dict
    assert not exception.notes.exists()
    exception.refresh_from_db()
    assert exception.acknowledged_at is None


def test_a_customer_contact_needs_the_channel_it_went_through(staff: User) -> None:
    exception = _report(_in_transit())

    with pytest.raises(ValidationError) as exc:
        services.exception_note_add(
            exception=exception,
            user=staff,
            text="Told them about the delay",
            customer_contacted=True,
        )

    assert "contact_channel" in exc.value.message_dict
    assert not exception.notes.exists()


def test_a_note_is_kept_with_its_author_and_acknowledges_the_exception(
    staff: User,
) -> None:
    exception = _report(_in_transit(), severity=Severity.CRITICAL)

    note = services.exception_note_add(
        exception=exception,
        user=staff,
        text=" Called the customer ",
        customer_contacted=True,
        contact_channel=ExceptionNote.Contact.PHONE,
    )

    assert (note.author, note.text) == (staff, "Called the customer")
    assert (note.customer_contacted, note.contact_channel) == (True, "phone")
    exception.refresh_from_db()
    assert exception.acknowledged_at is not None
    assert exception.status == ExceptionStatus.IN_PROGRESS
    assert exception.assignee is None
    assert exception.escalate_after == exception.reported_at + timedelta(hours=4)


# --- reschedule --------------------------------------------------------------


def test_rescheduling_to_the_past_is_refused(staff: User) -> None:
    exception = _report(_in_transit())
    expected = exception.expected_resolution

    with pytest.raises(ValidationError) as exc:
        services.exception_reschedule(
            exception=exception, user=staff, expected_resolution=_later(hours=-2)
        )

    assert "expected_resolution" in exc.value.message_dict
    exception.refresh_from_db()
    assert exception.expected_resolution == expected
    assert not exception.shipment.events.filter(kind=K.EXCEPTION_UPDATED).exists()


def test_rescheduling_tells_the_customer_the_new_time(staff: User) -> None:
    shipment = _in_transit()
    exception = _report(shipment)
    new_time = timezone.localtime(_later(hours=30)).replace(second=0, microsecond=0)

    services.exception_reschedule(
        exception=exception,
        user=staff,
        expected_resolution=new_time,
        reason="Customs asked for an invoice",
    )

    exception.refresh_from_db()
    assert exception.expected_resolution == new_time
    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION
    event = shipment.events.get(kind=K.EXCEPTION_UPDATED)
    assert event.recorded_by == staff
    assert event.data["expected_resolution"] == new_time.isoformat()
    assert event.data["reason"] == "Customs asked for an invoice"
    messages = {
        row.channel: row
        for row in Notification.objects.filter(shipment=shipment, event=event)
    }
    assert set(messages) == {EMAIL, SMS}
    assert all(row.kind == Kind.EXCEPTION for row in messages.values())
    assert f"{new_time:%A %-d %B %Y, %H:%M}" in messages[EMAIL].body_text
    assert f"{new_time:%-d %b %H:%M}" in messages[SMS].body_text


# --- delivered while open ----------------------------------------------------


def test_a_delivery_closes_the_open_exception(staff: User) -> None:
    shipment = _in_transit()
    exception = _report(shipment)

    _scan(shipment, K.DELIVERED)

    shipment.refresh_from_db()
    assert shipment.status == S.DELIVERED
    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.RESOLVED
    assert exception.resolved_at is not None
    assert exception.resolution_notes == "Closed: the shipment is delivered."
    assert exception.escalate_after is None
    change = exception.changes.get(action="closed_with_shipment")
    assert (change.actor, change.data) == (None, {"status": S.DELIVERED})
    with pytest.raises(ExceptionConflict, match="already resolved by the system"):
        services.exception_note_add(exception=exception, user=staff, text="Late")


# --- report voided by a supervisor's correction ------------------------------


def _subscribe(shipment: Shipment, address: str = "fan@example.org") -> None:
    from notifications.models import Subscription

    Subscription.objects.create(
        shipment=shipment,
        channel=EMAIL,
        address=address,
        code_hash="-",
        code_sent_at=timezone.now(),
        confirmed_at=timezone.now(),
    )


def test_voiding_the_report_voids_the_exception_with_who_when_and_why(
    staff: User, supervisor: User
) -> None:
    with time_machine.travel(timezone.now(), tick=False):
        shipment = _in_transit()
        exception = _report(shipment, staff)
        assert exception.report_event is not None

        event_void(
            event=exception.report_event,
            user=supervisor,
            reason="Reported on the wrong package",
        )

        shipment.refresh_from_db()
        assert shipment.status == S.IN_TRANSIT
        exception.refresh_from_db()
        assert exception.status == ExceptionStatus.VOID
        assert (exception.resolved_by, exception.resolved_at) == (
            supervisor,
            timezone.now(),
        )
        assert exception.resolution_notes == "Reported on the wrong package"
        assert exception.escalate_after is None
        change = exception.changes.get(action="voided")
        assert (change.actor, change.at) == (supervisor, timezone.now())
        assert change.data == {"reason": "Reported on the wrong package"}


def test_a_voided_exception_leaves_the_queue_and_the_dashboard_counts(
    staff: User, supervisor: User
) -> None:
    from exceptions_mgmt import selectors

    kept = _report(_in_transit(), staff)
    voided = _report(_in_transit(), staff)
    assert voided.report_event is not None

    event_void(event=voided.report_event, user=supervisor, reason="Duplicate report")

    assert list(selectors.exception_queue()) == [kept]
    assert selectors.queue_counts()["open"] == 1


def test_the_sweep_never_escalates_a_voided_exception(
    staff: User, supervisor: User
) -> None:
    UserFactory(username="boss", role=roles.SUPERVISOR)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        exception = _report(_in_transit(), staff, severity=Severity.CRITICAL)
        assert exception.report_event is not None
        event_void(
            event=exception.report_event, user=supervisor, reason="Wrong package"
        )
        clock.shift(timedelta(days=5))  # past every critical rule

        assert sweep.exceptions_escalate() == 0

    exception.refresh_from_db()
    assert (exception.status, exception.escalation_level) == (
        ExceptionStatus.VOID,
        0,
    )
    assert not Notification.objects.filter(kind=Kind.ESCALATION).exists()


def test_voiding_the_report_tells_neither_customer_nor_subscriber_it_was_resolved(
    staff: User, supervisor: User
) -> None:
    shipment = _in_transit()
    _subscribe(shipment)
    exception = _report(shipment, staff)
    assert exception.report_event is not None
    before = Notification.objects.count()

    correction = event_void(
        event=exception.report_event, user=supervisor, reason="Wrong package"
    )

    assert not Notification.objects.filter(kind=Kind.EXCEPTION_RESOLVED).exists()
    assert not Notification.objects.filter(event=correction).exists()
    assert Notification.objects.count() == before


def test_voiding_the_report_of_a_package_out_for_delivery_sends_nothing_again(
    staff: User, supervisor: User
) -> None:
    """Back to "out for delivery" is not news to the customer: they had that
    message before the mistaken report."""
    shipment = _in_transit()
    _scan(shipment, K.OUT_FOR_DELIVERY)
    exception = _report(shipment, staff)
    assert exception.report_event is not None

    correction = event_void(
        event=exception.report_event, user=supervisor, reason="Wrong package"
    )

    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY
    assert not Notification.objects.filter(event=correction).exists()


def test_a_voided_exception_can_no_longer_be_worked(
    staff: User, supervisor: User
) -> None:
    exception = _report(_in_transit(), staff)
    assert exception.report_event is not None
    event_void(event=exception.report_event, user=supervisor, reason="Wrong package")

    with pytest.raises(ExceptionConflict, match="voided by"):
        services.exception_resolve(exception=exception, user=staff, notes="Done")
    with pytest.raises(ExceptionConflict, match="voided by"):
        services.exception_note_add(exception=exception, user=staff, text="Hm")
    exception.refresh_from_db()
    assert exception.status == ExceptionStatus.VOID
    assert list(exception.changes.values_list("action", flat=True)) == [
        "reported",
        "voided",
    ]


def test_voiding_the_report_of_a_resolved_exception_keeps_its_resolution(
    staff: User, supervisor: User
) -> None:
    """Its history already ends: resolved, with who, when and how."""
    exception = _report(_in_transit(), staff)
    assert exception.report_event is not None
    services.exception_resolve(exception=exception, user=staff, notes="Dried out")

    event_void(event=exception.report_event, user=supervisor, reason="Wrong package")

    exception.refresh_from_db()
    assert (exception.status, exception.resolved_by) == (
        ExceptionStatus.RESOLVED,
        staff,
    )
    assert exception.resolution_notes == "Dried out"


@pytest.mark.django_db(transaction=True)
def test_voiding_the_report_while_someone_resolves_it_leaves_one_story() -> None:
    """The correction locks the shipment, then the exception; resolving must
    take them in the same order, or the two deadlock and one gets an error."""
    supervisor = UserFactory(username="sup-v", role=roles.SUPERVISOR)
    agent = UserFactory(username="agent", role=roles.LOGISTICS)
    shipment = _in_transit()
    exception = _report(shipment)
    assert exception.report_event is not None
    report = exception.report_event

    voided, resolved = race(
        lambda: event_void(event=report, user=supervisor, reason="Wrong package"),
        lambda: services.exception_resolve(
            exception=exception, user=agent, notes="Dried out"
        ),
    )

    assert isinstance(voided, TrackingEvent), voided
    exception.refresh_from_db()
    if isinstance(resolved, ExceptionConflict):
        assert "voided by" in str(resolved)
        assert exception.status == ExceptionStatus.VOID
        assert not shipment.events.filter(kind=K.EXCEPTION_RESOLVED).exists()
    else:
        assert isinstance(resolved, DeliveryException), resolved
        assert exception.status == ExceptionStatus.RESOLVED
    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT


# --- history -----------------------------------------------------------------


def test_every_change_is_recorded_with_who_made_it(
    staff: User, supervisor: User
) -> None:
    exception = _report(_in_transit(), staff)
    services.exception_assign(exception=exception, user=supervisor, assignee=staff)
    services.exception_note_add(exception=exception, user=staff, text="On it")
    services.exception_reschedule(
        exception=exception, user=staff, expected_resolution=_later(hours=12)
    )
    services.exception_resolve(exception=exception, user=supervisor, notes="Done")

    changes = ExceptionChange.objects.filter(exception=exception)
    assert [(c.action, c.actor) for c in changes] == [
        ("reported", staff),
        ("assigned", supervisor),
        ("noted", staff),
        ("rescheduled", staff),
        ("resolved", supervisor),
    ]
    assigned = changes.get(action="assigned")
    assert assigned.data == {"to": staff.pk, "previous": None}
    exception.refresh_from_db()
    assert exception.version == 5  # one per change after the report
