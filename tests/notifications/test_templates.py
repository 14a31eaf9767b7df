"""Message texts: every kind renders from its files with every fact it needs,
SMS texts fit their segment budget, and escaping is right for each format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from notifications import links, rendering
from notifications.models import (
    CUSTOMER_KINDS,
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Notification,
    Status,
)
from shipments.models import Location, Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import CarrierFactory, LocationFactory, dispatched_shipment

pytestmark = pytest.mark.django_db

K = EventKind

# SMS texts that may cost two segments: they carry the most facts (the dispatch
# message the carrier and tracking number, the exception its cause and time).
# Every other text fits one GSM-7 segment with the default TRACKSOP_PUBLIC_URL.
SMS_BUDGET: dict[str, int] = {
    **dict.fromkeys(CUSTOMER_KINDS, 1),
    Kind.DISPATCHED: 2,
    Kind.EXCEPTION: 2,
}

# Late in a month with two-digit days: the longest dates the texts can show.
NOW = datetime(2026, 11, 23, 16, 45, tzinfo=timezone.get_default_timezone())


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def hub() -> Location:
    return LocationFactory(code="spr", name="Springfield depot", city="Springfield")


@pytest.fixture
def shipment() -> Shipment:
    """A realistic UPS shipment: the longest ids and links the texts carry."""
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        order_number="ORD-77001",
        recipient_name="Jane Doe",
        recipient_email="jane@example.net",
    )


def _event(shipment: Shipment, kind: str, hub: Location) -> TrackingEvent | None:
    """The event behind a message of this kind, with the details it shows."""
    eta = shipment.estimated_delivery
    assert eta is not None
    by_kind: dict[str, dict[str, str]] = {
        Kind.EXCEPTION: {
            "cause": "Address label damaged",
            "expected_resolution": (NOW + timedelta(days=1)).isoformat(),
        },
        Kind.EXCEPTION_RESOLVED: {"cause": "Address label damaged"},
        Kind.DELAY: {
            "from": eta.isoformat(),
            "to": (eta + timedelta(days=2)).isoformat(),
            "reason": "Severe weather at the hub",
        },
    }
    data: dict[str, Any] = by_kind.get(kind, {})
    if kind == Kind.DELAY:
        shipment.estimated_delivery = eta + timedelta(days=2)
    if kind == Kind.DELIVERED:
        shipment.delivered_at = timezone.now()
    return TrackingEvent(
        shipment=shipment,
        kind=K.NOTE,
        occurred_at=timezone.now(),
        location=hub,
        data=data,
    )


def _context(
    shipment: Shipment, kind: str, hub: Location, **extra: Any
) -> dict[str, Any]:
    if kind == Kind.ESCALATION:
        return rendering.message_context(
            shipment=shipment,
            audience=Audience.STAFF,
            extra={
                "name": "Sam Supervisor",
                "cause": "Address label damaged",
                "severity": "High",
                "level": 1,
                "reported_at": timezone.now() - timedelta(hours=30),
                "deadline": timezone.now() - timedelta(hours=6),
                **extra,
            },
        )
    return rendering.message_context(
        shipment=shipment,
        audience=Audience.RECIPIENT,
        event=_event(shipment, kind, hub),
        extra=extra,
    )


def _assert_filled(text: str) -> None:
    """No template syntax left over and no Python value shown as such."""
    for leftover in ("{{", "}}", "{%", "%}", "None", "[]"):
        assert leftover not in text


# --- every kind, every channel -------------------------------------------------


@pytest.mark.parametrize("kind", [*CUSTOMER_KINDS, Kind.ESCALATION])
def test_every_email_renders_from_its_files_with_the_order_and_links(
    shipment: Shipment, hub: Location, kind: str
) -> None:
    assert not MessageTemplate.objects.exists()
    context = _context(shipment, kind, hub)

    email = rendering.render(kind, Channel.EMAIL, context)

    assert email == rendering.render_default(kind, Channel.EMAIL, context)
    assert "ORD-77001" in email.subject or "SH-T" in email.subject
    assert "\n" not in email.subject
    for part in (email.text, email.html):
        _assert_filled(part)
        assert "ORD-77001" in part
        if kind == Kind.ESCALATION:
            assert context["staff_url"] in part
        else:
            assert context["tracking_url"] in part
            assert context["manage_url"] in part
    assert email.text.startswith("Hello ")
    assert email.html.startswith("<!doctype html>")


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_sms_renders_from_its_file_as_one_line_with_the_manage_link(
    shipment: Shipment, hub: Location, kind: str
) -> None:
    context = _context(shipment, kind, hub)

    sms = rendering.render(kind, Channel.SMS, context)

    assert sms.subject == sms.html == ""
    _assert_filled(sms.text)
    assert "\n" not in sms.text
    assert sms.text.startswith("TrackSOP: ")
    assert "ORD-77001" in sms.text
    assert sms.text.endswith(context["manage_url"])


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_sms_fits_its_segment_budget(
    shipment: Shipment, hub: Location, kind: str
) -> None:
    sms = rendering.render(kind, Channel.SMS, _context(shipment, kind, hub))

    assert rendering.sms_segments(sms.text) <= SMS_BUDGET[kind], (
        f"{len(sms.text)} characters: {sms.text}"
    )


def test_a_delay_the_sweep_detected_fits_one_sms_segment_too(
    shipment: Shipment, hub: Location
) -> None:
    context = _context(
        shipment,
        Kind.DELAY,
        hub,
        detected=True,
        expected_resolution=timezone.localtime() + timedelta(days=1),
    )

    sms = rendering.render(Kind.DELAY, Channel.SMS, context)

    assert "running late" in sms.text
    assert rendering.sms_segments(sms.text) == 1, f"{len(sms.text)}: {sms.text}"


def test_the_dispatch_email_states_every_fact_the_procedure_requires(
    shipment: Shipment, hub: Location
) -> None:
    email = rendering.render(
        Kind.DISPATCHED, Channel.EMAIL, _context(shipment, Kind.DISPATCHED, hub)
    )

    for line in (
        "Order number:        ORD-77001",
        "Shipment date:       23 November 2026",
        "Carrier:             UPS",
        "Tracking number:     1Z999AA10123456784",
        "Estimated delivery:  Thursday 26 November 2026",
    ):
        assert line in email.text
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in email.text


def test_the_sender_gets_their_own_wording_and_manage_link(
    shipment: Shipment,
) -> None:
    context = rendering.message_context(shipment=shipment, audience=Audience.SENDER)

    email = rendering.render(Kind.DISPATCHED, Channel.EMAIL, context)

    sender_link = links.manage_url(shipment.public_token, Audience.SENDER)
    assert sender_link != links.manage_url(shipment.public_token, Audience.RECIPIENT)
    assert email.subject == (
        "Shipment for order ORD-77001 dispatched: tracking number 1Z999AA10123456784"
    )
    assert f"Hello {shipment.sender_name}," in email.text
    assert sender_link in email.text
    assert sender_link in email.html


def test_the_stored_email_carries_the_manage_link_of_its_party(
    shipment: Shipment,
) -> None:
    row = Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )

    link = links.manage_url(shipment.public_token, Audience.RECIPIENT)
    assert link.startswith(f"http://127.0.0.1:8000/t/{shipment.public_token}/r")
    assert link in row.body_text
    assert link in row.body_html
    assert row.status == Status.PENDING


# --- SMS segments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("€" * 80, 1),  # extension characters take two septets each
        ("€" * 81, 2),
        ("a" * 158 + "[", 1),
        ("a" * 159 + "[", 2),
        ("a" * 152 + "{" * 77, 2),
        ("a" * 153 + "{" * 77, 3),
    ],
    ids=lambda v: f"{len(v)}x{v[-1:]!r}" if isinstance(v, str) else str(v),
)
def test_gsm7_text_costs_160_septets_or_153_per_part(text: str, segments: int) -> None:
    assert rendering.sms_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("ł" * 70, 1),  # not in GSM-7: the whole text goes as UCS-2
        ("ł" * 71, 2),
        ("a" * 69 + "ł", 1),
        ("a" * 70 + "ł", 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("📦" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("📦" * 36, 2),
    ],
    ids=lambda v: f"{len(v)}x{v[-1:]!r}" if isinstance(v, str) else str(v),
)
def test_other_text_costs_70_characters_or_67_per_part(
    text: str, segments: int
) -> None:
    assert rendering.sms_segments(text) == segments


# --- escaping ----------------------------------------------------------------


@pytest.fixture
def awkward() -> Shipment:
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        order_number="PO 12&13",
        recipient_name='<script>alert("x")</script> O\'Hara',
    )


def test_plain_text_is_not_html_escaped(awkward: Shipment, hub: Location) -> None:
    context = _context(awkward, Kind.OUT_FOR_DELIVERY, hub)

    email = rendering.render(Kind.OUT_FOR_DELIVERY, Channel.EMAIL, context)
    sms = rendering.render(Kind.OUT_FOR_DELIVERY, Channel.SMS, context)

    assert email.subject == "Order PO 12&13 is out for delivery today"
    assert "Your order PO 12&13 is out for delivery" in email.text
    assert 'Hello <script>alert("x")</script> O\'Hara,' in email.text
    assert "PO 12&13" in sms.text
    assert " & manage:" in sms.text
    for text in (email.subject, email.text, sms.text):
        assert "&amp;" not in text
        assert "&lt;" not in text
        assert "&#x27;" not in text


def test_the_html_email_is_escaped(awkward: Shipment, hub: Location) -> None:
    context = _context(awkward, Kind.OUT_FOR_DELIVERY, hub)

    html = rendering.render(Kind.OUT_FOR_DELIVERY, Channel.EMAIL, context).html

    assert "<script>" not in html
    assert "Hello &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Hara," in (
        html
    )
    assert "<strong>PO 12&amp;13</strong>" in html


def test_an_admins_template_is_escaped_the_same_way(
    awkward: Shipment, hub: Location
) -> None:
    MessageTemplate.objects.create(
        kind=Kind.OUT_FOR_DELIVERY,
        channel=Channel.EMAIL,
        subject="{{ order_number }} today",
        body_text="Hi {{ name }}: {{ order_number }}",
        body_html="<p>Hi {{ name }}: {{ order_number }}</p>",
    )

    email = rendering.render(
        Kind.OUT_FOR_DELIVERY,
        Channel.EMAIL,
        _context(awkward, Kind.OUT_FOR_DELIVERY, hub),
    )

    assert email.subject == "PO 12&13 today"
    assert email.text == 'Hi <script>alert("x")</script> O\'Hara: PO 12&13\n'
    assert email.html == (
        "<p>Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Hara: "
        "PO 12&amp;13</p>"
    )


def test_an_admins_edit_applies_to_the_next_message_at_once(
    awkward: Shipment, hub: Location, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    def subject() -> str:
        return rendering.render(
            Kind.OUT_FOR_DELIVERY,
            Channel.EMAIL,
            _context(awkward, Kind.OUT_FOR_DELIVERY, hub),
        ).subject

    from_file = subject()
    # The overrides are read once, then served from the cache.
    with django_assert_num_queries(0):
        assert subject() == from_file
    row = MessageTemplate.objects.create(
        kind=Kind.OUT_FOR_DELIVERY, channel=Channel.EMAIL, subject="New", body_text="x"
    )
    assert subject() == "New"
    row.subject = "Newer"
    row.save()
    assert subject() == "Newer"
    row.delete()
    assert subject() == from_file
