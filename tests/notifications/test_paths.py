"""The fast path (raw claim SQL, the "already sent" marks, stored bytes over
the open SMTP connection) and the plain ORM reference path (conditional
update, EmailMessage.send()) send the same mail: each scenario runs through
both, from the same rows, against a real SMTP server (aiosmtpd), and what the
server received is compared. Nothing is patched."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from notifications import delivery, sending
from notifications.models import Channel, Kind, Notification
from notifications.models import Status as St
from shipments.models import Shipment
from tests.factories import dispatched_shipment
from tests.notifications.conftest import SmtpSink

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_marks")]

PATHS = ("fast", "orm")

Received = list[tuple[str, str, str]]


def _email(shipment: Shipment) -> Notification:
    return Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )


def _emails(count: int) -> list[Notification]:
    return [
        _email(dispatched_shipment(recipient_email=f"customer-{n}@example.net"))
        for n in range(count)
    ]


def _received(sink: SmtpSink) -> Received:
    """Recipient, subject and text of each message the server took."""
    received = []
    for message in sink.messages:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        text = str(body.get_content()).replace("\r\n", "\n")
        received.append((str(message["To"]), str(message["Subject"]), text))
    return sorted(received)


def _through_both(
    sink: SmtpSink, scenario: Callable[[SmtpSink], None]
) -> dict[str, Received]:
    """Run the scenario through each path from the same rows: the database is
    rolled back after each run, the server's mailbox emptied before it."""
    received = {}
    for name in PATHS:
        sink.messages.clear()
        sink.raw.clear()
        sink.defer.clear()
        sending.FAST.taken.clear()
        with override_settings(TRACKSOP_NOTIFY_PATH=name), transaction.atomic():
            assert sending.current() is sending.PATHS[name]
            scenario(sink)
            transaction.set_rollback(True)
        received[name] = _received(sink)
    return received


def test_a_dispatch_email_goes_out_the_same_way_on_both_paths(
    mail_server: SmtpSink,
) -> None:
    row = _email(dispatched_shipment(recipient_email="jane@example.net"))

    def scenario(sink: SmtpSink) -> None:
        assert delivery.notification_deliver(notification_id=row.pk) is None
        assert Notification.objects.get(pk=row.pk).status == St.SENT

    received = _through_both(mail_server, scenario)

    assert len(received["fast"]) == 1
    assert received["fast"][0][:2] == ("jane@example.net", row.subject)
    assert received["orm"] == received["fast"]


def test_an_email_the_server_deferred_is_retried_the_same_way_on_both_paths(
    mail_server: SmtpSink,
) -> None:
    row = _email(dispatched_shipment(recipient_email="busy@example.net"))

    def scenario(sink: SmtpSink) -> None:
        sink.defer.add("busy@example.net")
        assert delivery.notification_deliver(notification_id=row.pk)
        pending = Notification.objects.get(pk=row.pk)
        assert (pending.status, pending.attempts) == (St.PENDING, 1)
        assert "deferred" in pending.last_error
        assert pending.next_attempt_at is not None
        sink.defer.clear()
        with time_machine.travel(
            pending.next_attempt_at + timedelta(seconds=1), tick=True
        ):
            assert delivery.notification_deliver(notification_id=row.pk) is None
        sent = Notification.objects.get(pk=row.pk)
        assert (sent.status, sent.attempts) == (St.SENT, 2)

    received = _through_both(mail_server, scenario)

    assert [to for to, _, _ in received["fast"]] == ["busy@example.net"]
    assert received["orm"] == received["fast"]


def test_a_batch_of_several_sends_each_once_on_both_paths(
    mail_server: SmtpSink,
) -> None:
    first, *others = _emails(4)

    def scenario(sink: SmtpSink) -> None:
        assert (
            delivery.notification_deliver_batch(notification_id=first.pk, size=4) == {}
        )
        # The other rows' own tasks come next: nothing is left for them.
        for row in others:
            assert (
                delivery.notification_deliver_batch(notification_id=row.pk, size=4)
                == {}
            )
        assert set(Notification.objects.filter(status=St.SENT)) == {first, *others}

    received = _through_both(mail_server, scenario)

    assert [to for to, _, _ in received["fast"]] == [
        f"customer-{n}@example.net" for n in range(4)
    ]
    assert received["orm"] == received["fast"]


def test_a_duplicate_delivery_sends_once_on_both_paths(
    mail_server: SmtpSink,
) -> None:
    row = _email(dispatched_shipment(recipient_email="twice@example.net"))

    def scenario(sink: SmtpSink) -> None:
        # Celery is at-least-once: the task comes again, and again in a batch.
        assert delivery.notification_deliver(notification_id=row.pk) is None
        assert delivery.notification_deliver(notification_id=row.pk) is None
        assert delivery.notification_deliver_batch(notification_id=row.pk, size=4) == {}
        assert Notification.objects.get(pk=row.pk).attempts == 1

    received = _through_both(mail_server, scenario)

    assert len(received["fast"]) == 1
    assert received["orm"] == received["fast"]


def test_an_unknown_path_is_refused_at_once(settings: Any) -> None:
    settings.TRACKSOP_NOTIFY_PATH = "quick"

    with pytest.raises(ImproperlyConfigured, match="quick"):
        sending.current()
