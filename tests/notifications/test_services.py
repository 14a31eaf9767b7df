"""The outbox: which events write which messages, and how a message is delivered,
retried, swept up, and sent again.

Delivery goes to a real SMTP server (aiosmtpd) in this process; the broker is
the real Redis. Only the template loader is patched, in the one test about a
template that cannot render at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from notifications import delivery, outbox, rendering, rules
from notifications.models import (
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Notification,
    Preference,
    Status,
)
from notifications.selectors import failed_notifications
from shipments import services as shipment_services
from shipments.checkpoints import checkpoint_record
from shipments.dispatch import shipment_dispatch, tracking_number_generate
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    NotificationFactory,
    OwnFleetFactory,
    TrackingEventFactory,
    dispatched_shipment,
    ready_shipment,
)
from tests.notifications.conftest import SmtpSink, purge_broker

pytestmark = pytest.mark.django_db

K = EventKind
S = ShipmentStatus
EMAIL, SMS = Channel.EMAIL, Channel.SMS
RECIPIENT, SENDER = Audience.RECIPIENT, Audience.SENDER


def _rows(shipment: Shipment, kind: str) -> dict[tuple[str, str], Notification]:
    """The messages of one kind about a shipment, by (audience, channel)."""
    rows = Notification.objects.filter(shipment=shipment, kind=kind)
    found = {(row.audience, row.channel): row for row in rows}
    assert len(found) == rows.count(), "two messages to one party on one channel"
    return found


def _scan(shipment: Shipment, kind: str, **kwargs: Any) -> TrackingEvent:
    return checkpoint_record(shipment=shipment, kind=kind, user=None, **kwargs)


def _queued(callbacks: list[Callable[[], Any]]) -> list[int]:
    """The ids handed to the broker by the on-commit hooks captured."""
    return sorted(
        pk
        for callback in callbacks
        if getattr(callback, "func", None) is outbox.queue_now
        for pk in callback.args[0]  # type: ignore[attr-defined]
    )


def _all_sent(shipment: Shipment) -> Shipment:
    """A shipment whose messages so far have gone out: the outbox is quiet."""
    Notification.objects.filter(shipment=shipment).update(
        status=Status.SENT, sent_at=timezone.now(), next_attempt_at=None
    )
    return shipment


# --- which events write which messages -------------------------------------


def test_dispatch_writes_an_email_and_an_sms_to_the_recipient() -> None:
    shipment = dispatched_shipment(
        recipient_email="jane@example.net", recipient_phone="+12025550143"
    )
    event = shipment.events.get(kind=K.DISPATCHED)

    rows = _rows(shipment, Kind.DISPATCHED)

    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    email, sms = rows[RECIPIENT, EMAIL], rows[RECIPIENT, SMS]
    assert email.to == "jane@example.net"
    assert sms.to == "+12025550143"
    for row in (email, sms):
        assert row.status == Status.PENDING
        assert row.event == event
        assert row.attempts == 0
        assert row.next_attempt_at is not None
        assert shipment.order_number in row.body_text
    assert shipment.order_number in email.subject
    assert email.body_html


def test_a_rolled_back_dispatch_leaves_no_message() -> None:
    shipment = ready_shipment()
    written: list[int] = []

    def dispatch_then_fail() -> None:
        with transaction.atomic():
            shipment_dispatch(
                shipment=shipment,
                user=None,
                carrier=OwnFleetFactory(),
                tracking_number="",
                estimated_delivery=timezone.localdate() + timedelta(days=3),
            )
            # Written with the event, inside its transaction...
            written.append(Notification.objects.filter(shipment=shipment).count())
            raise RuntimeError("the request failed after the dispatch")

    with pytest.raises(RuntimeError):
        dispatch_then_fail()

    # ...so gone with it.
    assert written == [2]
    assert not Notification.objects.filter(shipment=shipment).exists()
    shipment.refresh_from_db()
    assert shipment.status == S.READY


def test_dispatch_hands_the_messages_to_the_broker_only_on_commit(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    shipment = ready_shipment(recipient_phone="")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        shipment = shipment_dispatch(
            shipment=shipment,
            user=None,
            carrier=OwnFleetFactory(),
            tracking_number="",
            estimated_delivery=timezone.localdate() + timedelta(days=3),
        )

    rows = _rows(shipment, Kind.DISPATCHED)
    # The suppressed SMS (no phone number) is never queued.
    assert rows[RECIPIENT, SMS].status == Status.SUPPRESSED
    assert _queued(callbacks) == [rows[RECIPIENT, EMAIL].pk]


@pytest.mark.parametrize("notify_sender", [True, False])
def test_the_sender_gets_the_dispatch_message_only_when_asked_for(
    notify_sender: bool,
) -> None:
    shipment = dispatched_shipment(
        notify_sender=notify_sender, sender_email="dispatch@acme.example"
    )

    rows = _rows(shipment, Kind.DISPATCHED)

    if notify_sender:
        sender_email = rows[SENDER, EMAIL]
        assert sender_email.to == "dispatch@acme.example"
        assert sender_email.status == Status.PENDING
        assert "dispatched: tracking number" in sender_email.subject
        assert rows[SENDER, SMS].last_error == "No phone number on the shipment."
    else:
        assert {audience for audience, _ in rows} == {RECIPIENT}


def test_a_sender_who_is_also_the_recipient_gets_one_email() -> None:
    shipment = dispatched_shipment(
        notify_sender=True,
        sender_email="Pat@Example.net",
        recipient_email="pat@example.net",
    )

    rows = _rows(shipment, Kind.DISPATCHED)

    emails = [row for (_, channel), row in rows.items() if channel == EMAIL]
    assert len(emails) == 1
    assert emails[0].audience == RECIPIENT


def test_a_later_milestone_goes_to_the_recipient_only() -> None:
    shipment = dispatched_shipment(notify_sender=True)

    _scan(shipment, K.OUT_FOR_DELIVERY)

    assert set(_rows(shipment, Kind.OUT_FOR_DELIVERY)) == {
        (RECIPIENT, EMAIL),
        (RECIPIENT, SMS),
    }


@pytest.mark.parametrize(
    ("scans", "kind"),
    [
        ([K.OUT_FOR_DELIVERY], Kind.OUT_FOR_DELIVERY),
        ([K.PICKED_UP, K.AVAILABLE_FOR_PICKUP], Kind.AVAILABLE_FOR_PICKUP),
        ([K.PICKED_UP, K.OUT_FOR_DELIVERY, K.DELIVERED], Kind.DELIVERED),
    ],
    ids=["out for delivery", "available for pickup", "delivered"],
)
def test_each_milestone_tells_the_recipient_by_email_and_sms(
    scans: list[str], kind: str
) -> None:
    shipment = dispatched_shipment()

    for scan in scans:
        event = _scan(shipment, scan)

    rows = _rows(shipment, kind)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    assert all(row.event == event for row in rows.values())
    assert all(row.status == Status.PENDING for row in rows.values())


def test_the_first_pickup_tells_nobody_by_default() -> None:
    assert "in_transit" not in settings.TRACKSOP_NOTIFY_KINDS
    shipment = dispatched_shipment()

    _scan(shipment, K.PICKED_UP)

    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    assert not Notification.objects.filter(shipment=shipment).exclude(
        kind=Kind.DISPATCHED
    )


def test_the_first_pickup_tells_the_recipient_once_when_turned_on(
    settings: Settings,
) -> None:
    settings.TRACKSOP_NOTIFY_KINDS = [*settings.TRACKSOP_NOTIFY_KINDS, "in_transit"]
    shipment = dispatched_shipment()

    pickup = _scan(shipment, K.PICKED_UP)
    _scan(shipment, K.ARRIVED_HUB)
    _scan(shipment, K.OUT_FOR_DELIVERY)
    # Back in transit after a failed attempt: not picked up a second time.
    _scan(shipment, K.DELIVERY_ATTEMPTED)

    rows = _rows(shipment, Kind.IN_TRANSIT)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    assert all(row.event == pickup for row in rows.values())


def test_a_late_scan_that_does_not_move_the_status_tells_nobody() -> None:
    shipment = dispatched_shipment()
    _scan(shipment, K.OUT_FOR_DELIVERY)
    before = Notification.objects.count()

    late = _scan(
        shipment, K.ARRIVED_HUB, occurred_at=timezone.now() - timedelta(minutes=30)
    )

    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY
    assert late.pk is not None
    assert Notification.objects.count() == before


def test_a_repeated_out_for_delivery_scan_tells_nobody_twice() -> None:
    shipment = dispatched_shipment()
    _scan(shipment, K.OUT_FOR_DELIVERY)

    _scan(shipment, K.OUT_FOR_DELIVERY)

    assert Notification.objects.filter(kind=Kind.OUT_FOR_DELIVERY).count() == 2


def test_an_exception_tells_the_recipient_the_cause_and_the_expected_resolution() -> (
    None
):
    shipment = dispatched_shipment()
    resolution = timezone.now() + timedelta(days=1)

    _scan(
        shipment,
        K.EXCEPTION_REPORTED,
        data={
            "cause": "Damaged",
            "cause_code": "damaged",
            "expected_resolution": resolution.isoformat(),
        },
    )

    rows = _rows(shipment, Kind.EXCEPTION)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    email, sms = rows[RECIPIENT, EMAIL], rows[RECIPIENT, SMS]
    assert "Damaged" in email.subject
    local = timezone.localtime(resolution)
    for row in (email, sms):
        assert "Damaged" in row.body_text
        assert local.strftime("%H:%M") in row.body_text
    assert local.strftime("%B") in email.body_text


def test_a_resolved_exception_tells_the_recipient_it_is_moving_again() -> None:
    shipment = dispatched_shipment()
    _scan(shipment, K.EXCEPTION_REPORTED, data={"cause": "Customs hold"})

    resolved = _scan(shipment, K.EXCEPTION_RESOLVED)

    rows = _rows(shipment, Kind.EXCEPTION_RESOLVED)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    assert all(row.event == resolved for row in rows.values())
    assert "is moving again" in rows[RECIPIENT, EMAIL].subject


def test_an_eta_moved_later_tells_the_recipient_of_the_delay() -> None:
    shipment = dispatched_shipment()
    old = shipment.estimated_delivery
    assert old is not None
    new = old + timedelta(days=2)

    event = shipment_services.shipment_eta_change(
        shipment=shipment,
        user=None,
        estimated_delivery=new,
        reason="Severe weather at the hub",
    )

    rows = _rows(shipment, Kind.DELAY)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    email = rows[RECIPIENT, EMAIL]
    assert email.event == event
    assert "Severe weather at the hub" in email.body_text
    assert new.strftime("%A") in email.body_text
    assert old.strftime("%A") in email.body_text


def test_an_eta_moved_earlier_tells_nobody() -> None:
    shipment = dispatched_shipment()
    assert shipment.estimated_delivery is not None

    event = shipment_services.shipment_eta_change(
        shipment=shipment,
        user=None,
        estimated_delivery=shipment.estimated_delivery - timedelta(days=1),
    )

    assert event is not None
    assert event.kind == K.ETA_CHANGED
    assert not Notification.objects.filter(event=event).exists()
    assert not Notification.objects.filter(kind=Kind.DELAY).exists()


# --- messages that cannot or must not go -------------------------------------


@pytest.mark.parametrize(
    ("change", "channel", "reason"),
    [
        ({"recipient_email": ""}, EMAIL, "No email address on the shipment."),
        (
            {"recipient_email": "jane.example.net"},
            EMAIL,
            "The email address 'jane.example.net' is not valid.",
        ),
        ({"recipient_phone": ""}, SMS, "No phone number on the shipment."),
        (
            {"recipient_phone": "+1555"},
            SMS,
            "The phone number '+1555' is not valid.",
        ),
    ],
    ids=["no email", "invalid email", "no phone", "invalid phone"],
)
def test_a_missing_or_invalid_address_suppresses_that_message_and_keeps_the_scan(
    change: dict[str, str], channel: str, reason: str
) -> None:
    shipment = dispatched_shipment()
    # Data from before validation got stricter, or from an import.
    Shipment.objects.filter(pk=shipment.pk).update(**change)

    event = _scan(shipment, K.OUT_FOR_DELIVERY)

    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY
    assert TrackingEvent.objects.filter(pk=event.pk).exists()
    rows = _rows(shipment, Kind.OUT_FOR_DELIVERY)
    other = SMS if channel == EMAIL else EMAIL
    assert rows[RECIPIENT, channel].status == Status.SUPPRESSED
    assert rows[RECIPIENT, channel].last_error == reason
    assert rows[RECIPIENT, channel].next_attempt_at is None
    assert rows[RECIPIENT, other].status == Status.PENDING


@pytest.mark.parametrize(
    ("choice", "suppressed"),
    [
        (Preference.Choice.EMAIL, {SMS}),
        (Preference.Choice.SMS, {EMAIL}),
        (Preference.Choice.NONE, {EMAIL, SMS}),
        (Preference.Choice.BOTH, set()),
    ],
)
def test_the_recipients_preference_suppresses_the_channels_they_turned_off(
    choice: str, suppressed: set[str]
) -> None:
    shipment = dispatched_shipment()
    outbox.preference_set(shipment=shipment, audience=RECIPIENT, channels=choice)

    _scan(shipment, K.OUT_FOR_DELIVERY)

    rows = _rows(shipment, Kind.OUT_FOR_DELIVERY)
    for channel in (EMAIL, SMS):
        row = rows[RECIPIENT, channel]
        if channel in suppressed:
            assert row.status == Status.SUPPRESSED
            label = "Email" if channel == EMAIL else "SMS"
            assert row.last_error == f"The recipient turned off {label} updates."
        else:
            assert row.status == Status.PENDING


def test_a_preference_changed_after_queuing_is_honoured_at_delivery(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shipment = dispatched_shipment()
    rows = _rows(shipment, Kind.DISPATCHED)
    outbox.preference_set(
        shipment=shipment, audience=RECIPIENT, channels=Preference.Choice.SMS
    )

    email_retry = delivery.notification_deliver(
        notification_id=rows[RECIPIENT, EMAIL].pk
    )
    sms_retry = delivery.notification_deliver(notification_id=rows[RECIPIENT, SMS].pk)

    assert email_retry is None
    assert sms_retry is None
    email, sms = (
        Notification.objects.get(pk=rows[RECIPIENT, c].pk) for c in (EMAIL, SMS)
    )
    assert email.status == Status.SUPPRESSED
    assert "turned off" in email.last_error
    assert email.next_attempt_at is None
    assert mail.outbox == []
    # The channel they kept still goes (the console SMS backend in tests).
    assert sms.status == Status.SENT
    assert sms.provider_message_id.startswith("console-")
    assert shipment.order_number in capsys.readouterr().out


def test_a_dispatch_message_without_the_eta_is_suppressed_naming_it(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # No service dispatches without an ETA; an import or a correction could
    # leave one out, and the customer must not get a message that lacks it.
    shipment = ready_shipment()
    shipment.carrier = OwnFleetFactory()
    shipment.tracking_number = tracking_number_generate()
    shipment.dispatched_at = timezone.now()
    shipment.estimated_delivery = None
    shipment.status = S.DISPATCHED
    shipment.save()
    event = TrackingEventFactory(
        shipment=shipment, kind=K.DISPATCHED, status_after=S.DISPATCHED
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rows = outbox.notifications_for_event(
            event=event, shipment=shipment, previous_status=S.READY
        )

    assert {row.channel for row in rows} == {EMAIL, SMS}
    for row in rows:
        assert row.status == Status.SUPPRESSED
        assert row.last_error == (
            "Not sent: the message needs the estimated delivery date."
        )
    assert _queued(callbacks) == []


def test_an_admins_template_replaces_the_file() -> None:
    MessageTemplate.objects.create(
        kind=Kind.OUT_FOR_DELIVERY,
        channel=SMS,
        body_text="{{ company }} says: {{ order_number }} arrives today.",
    )
    shipment = dispatched_shipment(order_number="ORD-55501")

    _scan(shipment, K.OUT_FOR_DELIVERY)

    sms = _rows(shipment, Kind.OUT_FOR_DELIVERY)[RECIPIENT, SMS]
    assert sms.body_text == "TrackSOP says: ORD-55501 arrives today."


@pytest.mark.parametrize(
    "source",
    [
        "{{ order_number|no_such_filter }}",
        "{% include 'notifications/messages/nowhere.txt' %}",
    ],
    ids=["does not compile", "fails while rendering"],
)
def test_a_broken_admin_template_falls_back_to_the_file(source: str) -> None:
    MessageTemplate.objects.create(
        kind=Kind.OUT_FOR_DELIVERY, channel=SMS, body_text=source
    )
    shipment = dispatched_shipment(order_number="ORD-55502")

    _scan(shipment, K.OUT_FOR_DELIVERY)

    sms = _rows(shipment, Kind.OUT_FOR_DELIVERY)[RECIPIENT, SMS]
    assert sms.status == Status.PENDING
    assert sms.body_text.startswith(
        "TrackSOP: order ORD-55502 is out for delivery today."
    )


def test_a_message_no_template_can_render_is_failed_and_the_scan_still_saves(
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    shipment = dispatched_shipment()

    def broken_file(*args: Any, **kwargs: Any) -> rendering.Rendered:
        raise OSError("template directory unreadable")

    # The only patch of our own code: a fault no test data can cause.
    monkeypatch.setattr(rendering, "render_default", broken_file)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = _scan(shipment, K.OUT_FOR_DELIVERY)

    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY
    assert TrackingEvent.objects.filter(pk=event.pk).exists()
    rows = _rows(shipment, Kind.OUT_FOR_DELIVERY)
    assert set(rows) == {(RECIPIENT, EMAIL), (RECIPIENT, SMS)}
    for row in rows.values():
        assert row.status == Status.FAILED
        assert row.last_error.startswith(f"Template out_for_delivery/{row.channel}")
        assert "template directory unreadable" in row.last_error
        assert row.next_attempt_at is None
    assert _queued(callbacks) == []
    assert set(failed_notifications()) == set(rows.values())


# --- delivery to a real mail server -----------------------------------------


@pytest.fixture
def pending_email() -> Notification:
    shipment = dispatched_shipment(
        order_number="ORD-31337", recipient_email="jane@example.net"
    )
    return _rows(shipment, Kind.DISPATCHED)[RECIPIENT, EMAIL]


def _reload(row: Notification) -> Notification:
    return Notification.objects.get(pk=row.pk)


def test_a_pending_email_is_sent_and_marked_sent(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    retry = delivery.notification_deliver(notification_id=pending_email.pk)

    assert retry is None
    [message] = mail_server.to("jane@example.net")
    assert message["Subject"] == "Your order ORD-31337 is on its way"
    assert message["List-Unsubscribe"].endswith("/unsubscribe/>")
    row = _reload(pending_email)
    assert row.status == Status.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.next_attempt_at is None
    assert row.provider_message_id == message["Message-ID"]


def test_an_address_the_mail_server_refuses_fails_at_once_without_retry(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    mail_server.refuse.add("jane@example.net")

    retry = delivery.notification_deliver(notification_id=pending_email.pk)

    assert retry is None
    row = _reload(pending_email)
    assert row.status == Status.FAILED
    assert row.attempts == 1
    assert row.next_attempt_at is None
    assert "refused the address" in row.last_error
    assert "550" in row.last_error
    assert mail_server.messages == []
    assert row in failed_notifications()


def test_a_mail_server_that_is_down_leaves_the_email_pending_until_it_is_back(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    mail_server.stop()

    retry = delivery.notification_deliver(notification_id=pending_email.pk)

    assert retry is not None
    assert retry > 0
    row = _reload(pending_email)
    assert row.status == Status.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > timezone.now()
    assert "Connection refused" in row.last_error
    # Not due yet: a second task for it does nothing.
    assert delivery.notification_deliver(notification_id=row.pk) is None
    assert _reload(row).attempts == 1

    mail_server.start()
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1), tick=True):
        assert delivery.notification_deliver(notification_id=row.pk) is None

    row = _reload(row)
    assert row.status == Status.SENT
    assert row.attempts == 2
    assert row.last_error == ""
    assert len(mail_server.to("jane@example.net")) == 1


def test_an_email_that_keeps_failing_is_failed_after_the_last_attempt(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    last = settings.TRACKSOP_NOTIFY_MAX_ATTEMPTS
    Notification.objects.filter(pk=pending_email.pk).update(attempts=last - 1)
    mail_server.stop()

    retry = delivery.notification_deliver(notification_id=pending_email.pk)

    assert retry is None
    row = _reload(pending_email)
    assert row.status == Status.FAILED
    assert row.attempts == last
    assert row.next_attempt_at is None
    assert row.last_error.startswith(f"Gave up after {last} attempts.")


def test_a_message_delivered_twice_is_sent_once(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    first = delivery.notification_deliver(notification_id=pending_email.pk)
    second = delivery.notification_deliver(notification_id=pending_email.pk)

    assert first is None
    assert second is None
    assert len(mail_server.messages) == 1
    assert _reload(pending_email).attempts == 1


def test_a_message_another_worker_is_sending_is_left_alone(
    mail_server: SmtpSink, pending_email: Notification
) -> None:
    lease = timezone.now() + timedelta(minutes=5)
    Notification.objects.filter(pk=pending_email.pk).update(
        status=Status.SENDING, attempts=1, next_attempt_at=lease
    )

    assert delivery.notification_deliver(notification_id=pending_email.pk) is None

    row = _reload(pending_email)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        Status.SENDING,
        1,
        lease,
    )
    assert mail_server.messages == []


def test_a_message_that_is_gone_is_ignored(mail_server: SmtpSink) -> None:
    assert delivery.notification_deliver(notification_id=987654321) is None
    assert mail_server.messages == []


# --- backoff ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(1, 30), (2, 60), (3, 120), (5, 480), (8, 3600), (30, 3600)],
)
def test_the_retry_delay_doubles_with_each_attempt_up_to_the_cap(
    settings: Settings, attempts: int, ceiling: float
) -> None:
    settings.TRACKSOP_NOTIFY_RETRY_BASE_SECONDS = 30.0
    settings.TRACKSOP_NOTIFY_RETRY_MAX_SECONDS = 3600.0

    delays = [rules.retry_delay(attempts) for _ in range(200)]

    # Jitter spreads retries of many messages over the upper half.
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 100
    assert min(delays) < ceiling * 0.6
    assert max(delays) > ceiling * 0.9


# --- the sweeper -------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[Callable[[], list[int]]]:
    """The real Redis broker, emptied; returns the ids of the queued sends."""
    purge_broker()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def queued() -> list[int]:
        ids = []
        for raw in client.lrange("celery", 0, -1):
            message = json.loads(raw)
            assert message["headers"]["task"] == "notifications.tasks.notification_send"
            args = json.loads(base64.b64decode(message["body"]))[0]
            ids.append(args[0])
        return sorted(ids)

    yield queued
    purge_broker()


@pytest.fixture
def quiet_shipment() -> Shipment:
    return _all_sent(dispatched_shipment())


def _unsent(shipment: Shipment, *, status: str, due: Any, attempts: int = 0) -> Any:
    return NotificationFactory(
        shipment=shipment,
        status=status,
        attempts=attempts,
        next_attempt_at=due,
        sent_at=None,
    )


def test_the_sweeper_queues_messages_left_pending_longer_than_the_stale_time(
    broker: Callable[[], list[int]], quiet_shipment: Shipment
) -> None:
    now = timezone.now()
    stale = timedelta(seconds=settings.TRACKSOP_NOTIFY_STALE_SECONDS)
    forgotten = _unsent(
        quiet_shipment, status=Status.PENDING, due=now - stale - timedelta(seconds=1)
    )
    # Just queued by its commit hook: in the broker already.
    fresh = _unsent(quiet_shipment, status=Status.PENDING, due=now)

    assert delivery.notifications_sweep() == 1

    assert broker() == [forgotten.pk]
    # Pushed forward, so the next sweep does not queue it a second time.
    assert _reload(forgotten).next_attempt_at >= now  # type: ignore[operator]
    assert delivery.notifications_sweep() == 0
    assert broker() == [forgotten.pk]
    assert _reload(fresh).status == Status.PENDING


def test_the_sweeper_returns_a_message_whose_worker_died_to_pending(
    broker: Callable[[], list[int]], quiet_shipment: Shipment
) -> None:
    now = timezone.now()
    lapsed = _unsent(
        quiet_shipment,
        status=Status.SENDING,
        due=now - timedelta(seconds=1),
        attempts=1,
    )
    working = _unsent(
        quiet_shipment,
        status=Status.SENDING,
        due=now + timedelta(minutes=4),
        attempts=1,
    )

    assert delivery.notifications_sweep() == 1

    row = _reload(lapsed)
    assert row.status == Status.PENDING
    assert row.attempts == 1
    assert "worker stopped" in row.last_error
    assert _reload(working).status == Status.SENDING
    # Queued by the same sweep: its worker is gone, nobody else will.
    assert broker() == [lapsed.pk]


def test_the_sweeper_fails_a_message_whose_worker_died_on_every_attempt(
    broker: Callable[[], list[int]], quiet_shipment: Shipment
) -> None:
    exhausted = _unsent(
        quiet_shipment,
        status=Status.SENDING,
        due=timezone.now() - timedelta(seconds=1),
        attempts=settings.TRACKSOP_NOTIFY_MAX_ATTEMPTS,
    )

    delivery.notifications_sweep()

    row = _reload(exhausted)
    assert row.status == Status.FAILED
    assert row.next_attempt_at is None
    assert row.last_error == "The worker stopped while sending, too many times."
    assert broker() == []
    assert row in failed_notifications()


# --- sending again -----------------------------------------------------------


@pytest.fixture
def sent_email(quiet_shipment: Shipment) -> Notification:
    return _rows(quiet_shipment, Kind.DISPATCHED)[RECIPIENT, EMAIL]


def test_a_resend_is_a_new_message_to_the_current_address(
    cs_agent: User,
    sent_email: Notification,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    assert sent_email.shipment_id is not None
    Shipment.objects.filter(pk=sent_email.shipment_id).update(
        recipient_email="jane.new@example.net"
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        row = delivery.notification_resend(notification=sent_email, user=cs_agent)

    assert row.pk != sent_email.pk
    assert row.to == "jane.new@example.net"
    assert row.status == Status.PENDING
    assert row.resend_of == sent_email
    assert row.requested_by == cs_agent
    assert (row.kind, row.channel, row.audience) == (
        Kind.DISPATCHED,
        EMAIL,
        RECIPIENT,
    )
    assert (row.subject, row.body_text) == (sent_email.subject, sent_email.body_text)
    assert _queued(callbacks) == [row.pk]
    original = _reload(sent_email)
    assert original.status == Status.SENT
    assert original.superseded_at is None


def test_a_message_still_being_sent_cannot_be_resent(cs_agent: User) -> None:
    shipment = dispatched_shipment()
    pending = _rows(shipment, Kind.DISPATCHED)[RECIPIENT, EMAIL]
    before = Notification.objects.count()

    with pytest.raises(ValidationError, match="still being sent"):
        delivery.notification_resend(notification=pending, user=cs_agent)

    assert Notification.objects.count() == before


def test_a_message_on_a_channel_the_customer_turned_off_cannot_be_resent(
    cs_agent: User, quiet_shipment: Shipment
) -> None:
    sms = _rows(quiet_shipment, Kind.DISPATCHED)[RECIPIENT, SMS]
    outbox.preference_set(
        shipment=quiet_shipment, audience=RECIPIENT, channels=Preference.Choice.EMAIL
    )
    before = Notification.objects.count()

    with pytest.raises(ValidationError, match="turned off SMS updates"):
        delivery.notification_resend(notification=sms, user=cs_agent)

    assert Notification.objects.count() == before


def test_a_message_to_an_address_since_removed_cannot_be_resent(
    cs_agent: User, quiet_shipment: Shipment
) -> None:
    sms = _rows(quiet_shipment, Kind.DISPATCHED)[RECIPIENT, SMS]
    Shipment.objects.filter(pk=quiet_shipment.pk).update(recipient_phone="")

    with pytest.raises(ValidationError, match="No phone number on the shipment"):
        delivery.notification_resend(notification=sms, user=cs_agent)


def test_resending_a_failed_message_takes_it_off_the_failed_list(
    cs_agent: User, sent_email: Notification
) -> None:
    Notification.objects.filter(pk=sent_email.pk).update(
        status=Status.FAILED, sent_at=None, last_error="550 No such user here"
    )
    assert list(failed_notifications()) == [sent_email]

    row = delivery.notification_resend(notification=sent_email, user=cs_agent)

    assert list(failed_notifications()) == []
    original = _reload(sent_email)
    assert original.status == Status.FAILED
    assert original.superseded_at is not None
    assert row.status == Status.PENDING


# --- staff alerts ------------------------------------------------------------


def test_a_staff_alert_emails_each_user_once(
    supervisor: User,
    staff: User,
    quiet_shipment: Shipment,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rows = outbox.staff_alert_queue(
            shipment=quiet_shipment,
            users=[supervisor, staff],
            key="escalation:7:2",
            context={"cause": "Damaged in transit", "level": 2},
        )

    assert sorted(row.to for row in rows) == [
        "logistics@example.com",
        "supervisor@example.com",
    ]
    for row in rows:
        assert (row.kind, row.channel, row.audience) == (
            Kind.ESCALATION,
            EMAIL,
            Audience.STAFF,
        )
        assert row.status == Status.PENDING
        assert row.subject == (
            f"[Escalation level 2] {quiet_shipment.shipment_id}: "
            "Damaged in transit is past its deadline"
        )
        assert quiet_shipment.get_absolute_url() in row.body_text
    by_user = {row.to: row for row in rows}
    greeting = f"Hello {supervisor.get_full_name()},"
    assert by_user["supervisor@example.com"].body_text.startswith(greeting)
    assert _queued(callbacks) == sorted(row.pk for row in rows)


def test_a_staff_alert_for_the_same_occasion_writes_nothing_new(
    supervisor: User, quiet_shipment: Shipment
) -> None:
    def alert(key: str) -> list[Notification]:
        return outbox.staff_alert_queue(
            shipment=quiet_shipment, users=[supervisor], key=key, context={}
        )

    first = alert("escalation:7:1")
    again = alert("escalation:7:1")
    next_level = alert("escalation:7:2")

    assert len(first) == 1
    assert again == []
    assert len(next_level) == 1
    assert Notification.objects.filter(kind=Kind.ESCALATION).count() == 2


def test_a_staff_alert_to_a_user_without_email_is_suppressed(
    supervisor: User, quiet_shipment: Shipment
) -> None:
    supervisor.email = ""
    supervisor.save()

    [row] = outbox.staff_alert_queue(
        shipment=quiet_shipment, users=[supervisor], key="escalation:8:1", context={}
    )

    assert row.status == Status.SUPPRESSED
    assert row.last_error.startswith("No email address")
    assert row.next_attempt_at is None


def test_an_ups_dispatch_links_to_the_carriers_own_tracking_page() -> None:
    ups = CarrierFactory()
    shipment = dispatched_shipment(carrier=ups, tracking_number="1Z999AA10123456784")

    email = _rows(shipment, Kind.DISPATCHED)[RECIPIENT, EMAIL]

    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in email.body_text


def test_handling_the_same_event_twice_writes_no_second_message() -> None:
    shipment = dispatched_shipment()
    event = shipment.events.get(kind=EventKind.DISPATCHED)
    before = Notification.objects.filter(event=event).count()

    again = outbox.notifications_for_event(
        event=event, shipment=shipment, previous_status=ShipmentStatus.READY
    )

    assert again == []
    assert Notification.objects.filter(event=event).count() == before == 2
