"""End to end: event → outbox row → Celery worker on the real Redis → a real
SMTP server. Transactional: the worker runs in another process."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from django.utils import timezone

from notifications.models import Channel, Kind, Notification, Status
from tests.factories import CarrierFactory, dispatched_shipment
from tests.notifications.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    html: str = part.get_content()
    return html


def test_the_dispatch_email_reaches_the_mail_server_with_every_required_fact(
    smtp_sink: Any, start_worker: Any
) -> None:
    start_worker(EMAIL_URL=f"smtp://127.0.0.1:{smtp_sink.port}")
    ups = CarrierFactory(
        name="UPS",
        code="ups",
        tracking_family="ups",
        tracking_url_template="https://www.ups.com/track?tracknum={number}",
    )
    shipment = dispatched_shipment(
        carrier=ups,
        tracking_number="1Z999AA10123456784",
        order_number="ORD-77001",
        recipient_email="jane@example.net",
    )

    message = wait_for(lambda: smtp_sink.to("jane@example.net"), what="the email")[0]

    assert message["Subject"] == "Your order ORD-77001 is on its way"
    text, html = _text(message), _html(message)
    ship_date = timezone.localdate(shipment.dispatched_at)
    eta = shipment.estimated_delivery
    assert eta is not None
    for body in (text, html):
        assert "ORD-77001" in body
        assert "UPS" in body
        assert "1Z999AA10123456784" in body
        assert ship_date.strftime("%B") in body
        assert eta.strftime("%B") in body
        assert f"/t/{shipment.public_token}/" in body
    assert str(eta.day) in text
    # The manage link in the footer and the one-click unsubscribe header.
    assert f"/t/{shipment.public_token}/r" in text
    assert message["List-Unsubscribe"].endswith("/unsubscribe/>")
    # Whole on the wire, not folded into RFC 2047 words mail clients ignore.
    assert b"\nList-Unsubscribe: <http" in smtp_sink.raw[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    row = Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )
    wait_for(
        lambda: Notification.objects.filter(pk=row.pk, status=Status.SENT).exists(),
        what="the row to be marked sent",
    )
    row.refresh_from_db()
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.provider_message_id == message["Message-ID"]
