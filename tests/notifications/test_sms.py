"""SMS: the Twilio backend against a local server that speaks Twilio's
Messages API (no remote calls), and the file and console backends. Messages
go through `delivery.notification_deliver`, the path the worker takes."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from pytest_django import Settings

from notifications import delivery
from notifications.models import Channel, Kind, Notification, Status
from shipments.dispatch import shipment_dispatch
from shipments.models import Shipment
from tests.factories import OwnFleetFactory, dispatched_shipment, ready_shipment
from tests.notifications.conftest import TWILIO_SETTINGS, FakeTwilio, wait_for

PHONE = "+12025550143"
SID = TWILIO_SETTINGS["TWILIO_ACCOUNT_SID"]
TOKEN = TWILIO_SETTINGS["TWILIO_AUTH_TOKEN"]
FIRST_SID = "SM" + "0" * 32  # the fake's first message SID


def _sms(shipment: Shipment) -> Notification:
    return Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.SMS
    )


def _deliver(row: Notification) -> float | None:
    result = delivery.notification_deliver(notification_id=row.pk)
    row.refresh_from_db()
    return result


def _basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


# --- Twilio, in this process -----------------------------------------------


@pytest.mark.django_db
def test_twilio_posts_to_from_and_body_with_basic_auth_and_keeps_the_sid(
    fake_twilio: FakeTwilio,
) -> None:
    row = _sms(dispatched_shipment(recipient_phone=PHONE))
    assert row.status == Status.PENDING
    assert row.body_text

    assert _deliver(row) is None

    assert fake_twilio.messages == [
        {"To": PHONE, "From": TWILIO_SETTINGS["TWILIO_FROM"], "Body": row.body_text}
    ]
    assert fake_twilio.auth == [_basic_auth()]
    assert row.status == Status.SENT
    assert row.attempts == 1
    assert row.provider_message_id == FIRST_SID
    assert row.sent_at is not None
    assert row.last_error == ""


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 21211),  # invalid 'To' number
        (400, 21610),  # the recipient replied STOP
    ],
)
@pytest.mark.django_db
def test_twilio_permanent_errors_fail_the_message_without_a_retry(
    fake_twilio: FakeTwilio, status: int, code: int
) -> None:
    fake_twilio.fail_next = [(status, code)]
    row = _sms(dispatched_shipment(recipient_phone=PHONE))

    assert _deliver(row) is None

    assert row.status == Status.FAILED
    assert row.attempts == 1
    assert row.next_attempt_at is None
    assert f"Twilio {status} error {code}" in row.last_error
    assert row.provider_message_id == ""
    # Nothing left to retry: another delivery of the task does nothing.
    assert _deliver(row) is None
    assert len(fake_twilio.auth) == 1
    assert fake_twilio.messages == []
    assert row.attempts == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, 20500),  # Twilio's own trouble
        (429, 20429),  # too many requests
    ],
)
@pytest.mark.django_db
def test_twilio_server_errors_and_rate_limits_retry_with_backoff(
    fake_twilio: FakeTwilio, status: int, code: int
) -> None:
    fake_twilio.fail_next = [(status, code)]
    row = _sms(dispatched_shipment(recipient_phone=PHONE))
    before = timezone.now()

    delay = _deliver(row)

    assert delay is not None
    assert delay > 0
    assert row.status == Status.PENDING
    assert row.attempts == 1
    assert f"Twilio {status} error {code}" in row.last_error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=delay * 0.9)
    # Not due yet: an early delivery of the retry does nothing.
    assert _deliver(row) is None
    assert (row.status, row.attempts, len(fake_twilio.auth)) == (Status.PENDING, 1, 1)

    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        assert _deliver(row) is None

    assert row.status == Status.SENT
    assert row.attempts == 2
    assert row.provider_message_id == FIRST_SID
    assert row.last_error == ""
    assert len(fake_twilio.messages) == 1
    assert len(fake_twilio.auth) == 2


@pytest.mark.django_db
def test_twilio_unreachable_is_a_temporary_failure(fake_twilio: FakeTwilio) -> None:
    row = _sms(dispatched_shipment(recipient_phone=PHONE))
    fake_twilio.stop()
    fake_twilio.server = None  # stopped for good; the fixture has nothing to stop

    delay = _deliver(row)

    assert delay is not None
    assert row.status == Status.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > timezone.now()
    assert "Twilio unreachable" in row.last_error


@pytest.mark.django_db
def test_a_messaging_service_sid_is_sent_as_messaging_service_sid(
    fake_twilio: FakeTwilio, settings: Settings
) -> None:
    service = "MG" + "1" * 32
    settings.TWILIO_FROM = service
    row = _sms(dispatched_shipment(recipient_phone=PHONE))

    assert _deliver(row) is None

    assert row.status == Status.SENT
    (posted,) = fake_twilio.messages
    assert posted["MessagingServiceSid"] == service
    assert "From" not in posted
    assert posted["To"] == PHONE


@pytest.mark.django_db
def test_an_invalid_phone_on_the_shipment_suppresses_the_text(
    fake_twilio: FakeTwilio,
) -> None:
    shipment = ready_shipment(recipient_phone=PHONE)
    # Stored before validation existed, or by an import that skipped it.
    Shipment.objects.filter(pk=shipment.pk).update(recipient_phone="+1 555 01")
    shipment = shipment_dispatch(
        shipment=shipment,
        user=None,
        carrier=OwnFleetFactory(),
        tracking_number="",
        estimated_delivery=timezone.localdate() + timedelta(days=3),
    )
    row = _sms(shipment)

    assert row.status == Status.SUPPRESSED
    assert row.attempts == 0
    assert row.next_attempt_at is None
    assert "is not valid" in row.last_error
    assert _deliver(row) is None
    assert row.status == Status.SUPPRESSED
    assert fake_twilio.messages == []
    assert fake_twilio.auth == []
    # The email still goes.
    email = Notification.objects.get(shipment=shipment, channel=Channel.EMAIL)
    assert email.status == Status.PENDING


# --- the file and console backends ---------------------------------------------


@pytest.mark.django_db
def test_the_file_backend_writes_one_file_per_text(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "sms"
    settings.TRACKSOP_SMS_BACKEND = "file"
    settings.TRACKSOP_SMS_FILE_PATH = folder
    phones = ["+12025550161", "+12025550162"]
    rows = [_sms(dispatched_shipment(recipient_phone=phone)) for phone in phones]

    for row in rows:
        assert _deliver(row) is None

    files = sorted(folder.iterdir())
    assert len(files) == 2
    for row, phone in zip(rows, phones, strict=True):
        assert row.status == Status.SENT
        assert row.provider_message_id.startswith("file-")
        (written,) = [f for f in files if row.provider_message_id in f.name]
        text = written.read_text(encoding="utf-8")
        assert text.startswith(f"To: {phone}\nId: {row.provider_message_id}\n")
        assert row.body_text in text


@pytest.mark.django_db
def test_the_console_backend_prints_the_text(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.TRACKSOP_SMS_BACKEND = "console"
    row = _sms(dispatched_shipment(recipient_phone=PHONE))

    assert _deliver(row) is None

    out = capsys.readouterr().out
    assert row.status == Status.SENT
    assert row.provider_message_id.startswith("console-")
    assert f"SMS to {PHONE} ({row.provider_message_id}):" in out
    assert row.body_text in out


# --- Twilio through a real worker -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_text_through_twilio(
    fake_twilio: FakeTwilio, smtp_sink: Any, start_worker: Any
) -> None:
    start_worker(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_sink.port}",
        TWILIO_API_URL=fake_twilio.url,
        **TWILIO_SETTINGS,
    )
    shipment = dispatched_shipment(recipient_phone=PHONE)
    row = _sms(shipment)

    wait_for(lambda: fake_twilio.messages, what="the text at the Twilio server")
    wait_for(
        lambda: Notification.objects.filter(pk=row.pk, status=Status.SENT).exists(),
        what="the row to be marked sent",
    )

    row.refresh_from_db()
    assert fake_twilio.messages == [
        {"To": PHONE, "From": TWILIO_SETTINGS["TWILIO_FROM"], "Body": row.body_text}
    ]
    assert fake_twilio.auth == [_basic_auth()]
    assert row.provider_message_id == FIRST_SID
    assert row.attempts == 1
    assert f"order {shipment.order_number} shipped" in row.body_text
