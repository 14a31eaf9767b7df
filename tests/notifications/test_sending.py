"""How a worker sends: each email is built when its row is written and sent as
stored; a task sends its own row and, over the same connection, other emails
that are due, whose own tasks then have nothing to do.

Delivery goes to a real SMTP server (aiosmtpd) in this process. Nothing is
patched."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
import time_machine
from celery import shared_task
from django.core import mail
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from notifications import delivery, gateways, outbox, sending
from notifications.models import Audience, Channel, Kind, Notification, Preference
from notifications.models import Status as St
from shipments.checkpoints import checkpoint_record
from shipments.events import Recorded
from shipments.models import Shipment
from shipments.status import EventKind
from tests.factories import NotificationFactory, dispatched_shipment
from tests.notifications.conftest import SmtpSink

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_marks")]


def _email(shipment: Shipment) -> Notification:
    return Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )


def _reload(row: Notification) -> Notification:
    return Notification.objects.get(pk=row.pk)


def _emails(count: int) -> list[Notification]:
    """Pending dispatch emails to customer-<n>@example.net, oldest first."""
    return [
        _email(dispatched_shipment(recipient_email=f"customer-{n}@example.net"))
        for n in range(count)
    ]


# --- built when written ------------------------------------------------------


def test_an_email_is_built_when_its_row_is_written_and_sent_byte_for_byte(
    mail_server: SmtpSink,
) -> None:
    row = _email(dispatched_shipment(recipient_email="jane@example.net"))

    stored = bytes(row.mime)
    message = message_from_bytes(stored, policy=policy.SMTP)
    assert message["Message-ID"] == gateways.message_id(row.pk)
    assert message["To"] == "jane@example.net"
    assert message["Subject"] == row.subject
    assert message["List-Unsubscribe"].endswith("/unsubscribe/>")
    assert b"\r\nList-Unsubscribe: <http" in stored

    assert delivery.notification_deliver(notification_id=row.pk) is None

    # The record holds exactly what the mail server got.
    assert mail_server.raw == [stored]
    assert _reload(row).provider_message_id == message["Message-ID"]


def test_an_sms_row_stores_no_email() -> None:
    shipment = dispatched_shipment(recipient_phone="+14155550123")

    sms = Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.SMS
    )
    assert sms.status == St.PENDING
    assert bytes(sms.mime) == b""


def test_an_email_row_written_without_its_bytes_is_built_once_when_sent(
    mail_server: SmtpSink,
) -> None:
    # Rows from before this change, or written by another path (a resend).
    row = NotificationFactory(to="old@example.net", status=St.PENDING, sent_at=None)
    assert bytes(row.mime) == b""
    mail_server.defer.add("old@example.net")

    assert delivery.notification_deliver(notification_id=row.pk)

    # Kept from the first attempt: the retry sends the same bytes.
    stored = bytes(_reload(row).mime)
    message = message_from_bytes(stored, policy=policy.SMTP)
    assert message["Message-ID"] == gateways.message_id(row.pk)
    assert message["List-Unsubscribe"].endswith("/unsubscribe/>")
    mail_server.defer.clear()
    retry_at = _reload(row).next_attempt_at
    assert retry_at is not None
    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        assert delivery.notification_deliver(notification_id=row.pk) is None
    assert mail_server.raw == [stored]
    assert _reload(row).status == St.SENT


@shared_task
def _alert_from_a_task(shipment_id: int, user_id: int) -> int:
    from django.contrib.auth.models import User

    [row] = outbox.staff_alert_queue(
        shipment=Shipment.objects.get(pk=shipment_id),
        users=[User.objects.get(pk=user_id)],
        key="from-a-task",
        context={},
    )
    return row.pk


def test_an_email_written_by_a_task_is_built_by_the_worker_that_sends_it(
    mail_server: SmtpSink,
) -> None:
    # The exceptions sweep is such a task: the workers would build it either
    # way, and the sweep stays short.
    shipment, user = dispatched_shipment(), _staff_user()
    pk = _alert_from_a_task.apply(args=(shipment.pk, user.pk)).get()
    assert bytes(Notification.objects.get(pk=pk).mime) == b""

    assert delivery.notification_deliver(notification_id=pk) is None

    [message] = mail_server.to("supervisor@example.com")
    assert message["Message-ID"] == gateways.message_id(pk)
    assert mail_server.raw == [bytes(Notification.objects.get(pk=pk).mime)]


def test_a_backend_other_than_smtp_gets_the_message_built_from_the_row() -> None:
    # The test settings' locmem backend stands for console, file or an API.
    row = _email(dispatched_shipment(recipient_email="api@example.net"))

    assert delivery.notification_deliver(notification_id=row.pk) is None

    [message] = mail.outbox
    assert message.to == ["api@example.net"]
    assert message.subject == row.subject
    assert message.extra_headers["Message-ID"] == gateways.message_id(row.pk)
    assert message.extra_headers["List-Unsubscribe-Post"] == (
        "List-Unsubscribe=One-Click"
    )
    assert _reload(row).status == St.SENT


def test_a_staff_alert_is_built_without_an_unsubscribe_header() -> None:
    staff_user = _staff_user()
    shipment = dispatched_shipment()

    [row] = outbox.staff_alert_queue(
        shipment=shipment,
        users=[staff_user],
        key="test-alert",
        context={"level": 1},
    )

    message = message_from_bytes(bytes(row.mime), policy=policy.SMTP)
    assert message["To"] == "supervisor@example.com"
    assert message["List-Unsubscribe"] is None


def _staff_user() -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user("sup", email="supervisor@example.com")


# --- several due emails per task ---------------------------------------------


def test_a_task_sends_other_due_emails_over_its_connection_and_their_tasks_do_nothing(
    mail_server: SmtpSink, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    first, *others = _emails(4)

    retries = delivery.notification_deliver_batch(notification_id=first.pk, size=10)

    assert retries == {}
    assert len(mail_server.messages) == 4
    assert mail_server.sessions == 1
    for row in (first, *others):
        row = _reload(row)
        assert (row.status, row.attempts) == (St.SENT, 1)
        assert row.provider_message_id == gateways.message_id(row.pk)
    # Their own tasks come next: no query, nothing sent again.
    for row in others:
        with django_assert_num_queries(0):
            assert (
                delivery.notification_deliver_batch(notification_id=row.pk, size=10)
                == {}
            )
    # A task delivered twice (Celery is at-least-once) claims, and finds it sent.
    with django_assert_num_queries(1):
        delivery.notification_deliver_batch(notification_id=others[0].pk, size=10)
    assert len(mail_server.messages) == 4


def test_a_batch_takes_the_newest_due_emails_up_to_its_size(
    mail_server: SmtpSink,
) -> None:
    first, *others = _emails(5)

    delivery.notification_deliver_batch(notification_id=first.pk, size=3)

    # Its own and the two newest: the tasks of the oldest are next in line.
    sent = {row.pk for row in Notification.objects.filter(status=St.SENT)}
    assert sent == {first.pk, others[-1].pk, others[-2].pk}
    assert set(sending.FAST.taken) == {others[-1].pk, others[-2].pk}


def test_a_batch_leaves_texts_rows_not_due_and_rows_another_worker_has(
    mail_server: SmtpSink,
) -> None:
    first, later, taken = _emails(3)
    Notification.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    lease = timezone.now() + timedelta(minutes=5)
    Notification.objects.filter(pk=taken.pk).update(
        status=St.SENDING, attempts=1, next_attempt_at=lease
    )

    delivery.notification_deliver_batch(notification_id=first.pk, size=10)

    assert [m["To"] for m in mail_server.messages] == [first.to]
    assert _reload(later).status == St.PENDING
    assert (_reload(taken).status, _reload(taken).attempts) == (St.SENDING, 1)
    assert not Notification.objects.filter(channel=Channel.SMS, attempts__gt=0)


def test_a_sms_task_sends_its_text_alone(mail_server: SmtpSink) -> None:
    shipment = dispatched_shipment(recipient_phone="+14155550123")
    _emails(2)
    sms = Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.SMS
    )

    assert delivery.notification_deliver_batch(notification_id=sms.pk, size=10) == {}

    assert _reload(sms).status == St.SENT
    assert mail_server.messages == []


def test_a_deferred_address_in_a_batch_is_retried_alone_and_the_rest_go(
    mail_server: SmtpSink,
) -> None:
    first, busy, last = _emails(3)
    mail_server.defer.add(busy.to)

    retries = delivery.notification_deliver_batch(notification_id=first.pk, size=10)

    assert list(retries) == [busy.pk]
    assert retries[busy.pk] > 0
    assert {m["To"] for m in mail_server.messages} == {first.to, last.to}
    row = _reload(busy)
    assert (row.status, row.attempts) == (St.PENDING, 1)
    assert "450" in row.last_error
    # Its retry task is not mistaken for a task the batch has done.
    mail_server.defer.clear()
    assert row.next_attempt_at is not None
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1), tick=True):
        assert (
            delivery.notification_deliver_batch(notification_id=busy.pk, size=10) == {}
        )
    assert (_reload(busy).status, _reload(busy).attempts) == (St.SENT, 2)
    assert [m["To"] for m in mail_server.to(busy.to)] == [busy.to]


def test_a_refused_address_in_a_batch_fails_and_the_rest_go(
    mail_server: SmtpSink,
) -> None:
    first, refused, last = _emails(3)
    mail_server.refuse.add(refused.to)

    assert delivery.notification_deliver_batch(notification_id=first.pk, size=10) == {}

    assert _reload(refused).status == St.FAILED
    assert {m["To"] for m in mail_server.messages} == {first.to, last.to}


def test_a_preference_changed_after_writing_suppresses_a_batched_email(
    mail_server: SmtpSink,
) -> None:
    first, declined = _emails(2)
    assert declined.shipment is not None
    outbox.preference_set(
        shipment=declined.shipment,
        audience=Audience.RECIPIENT,
        channels=Preference.Choice.SMS,
    )

    delivery.notification_deliver_batch(notification_id=first.pk, size=10)

    row = _reload(declined)
    assert row.status == St.SUPPRESSED
    assert "turned off" in row.last_error
    assert mail_server.to(declined.to) == []


def test_a_slow_server_makes_a_batch_hand_back_the_rest_untried(
    mail_server: SmtpSink, settings: Settings
) -> None:
    # Half the lease is 0.1 s; the first message takes longer than that.
    settings.TRACKSOP_NOTIFY_LEASE_SECONDS = 0.2
    mail_server.delay = 0.3
    first, *rest = _emails(3)

    retries = delivery.notification_deliver_batch(notification_id=first.pk, size=10)

    assert _reload(first).status == St.SENT
    assert set(retries) == {row.pk for row in rest}
    for row in rest:
        row = _reload(row)
        # Back to pending, the attempt it never had undone, later.
        assert (row.status, row.attempts) == (St.PENDING, 0)
        assert row.next_attempt_at is not None
        assert row.next_attempt_at > timezone.now()
    assert len(mail_server.messages) == 1
    assert sending.FAST.taken == {}


def test_a_large_batch_leaves_building_the_emails_to_the_workers(
    settings: Settings,
) -> None:
    """The request that writes many rows at once (an API batch) stores them
    unbuilt; the worker builds each as it sends, as for the sweep's rows."""
    settings.TRACKSOP_NOTIFY_PREBUILD_MAX = 1
    events = [
        checkpoint_record(
            shipment=dispatched_shipment(), kind=EventKind.OUT_FOR_DELIVERY, user=None
        )
        for _ in range(2)
    ]
    rows = Notification.objects.filter(event__in=events, channel="email")
    # One event per call: each call's single email is built by the writer.
    assert len(rows) == 2
    assert all(bytes(r.mime) for r in rows)
    Notification.objects.filter(event__in=events).delete()
    built = outbox.notifications_for_events(
        [Recorded(e, e.shipment, "in_transit") for e in events]
    )
    emails = [r for r in built if r.channel == "email"]
    assert len(emails) == 2
    assert not any(bytes(Notification.objects.get(pk=r.pk).mime) for r in emails)
