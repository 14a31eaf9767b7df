"""Milestone messages go out in the recipient's language: the one set on the
shipment (a subscriber: the one of the page they subscribed on), with every
customer template in English and Spanish, and texts within their SMS budget
in both, accents (UCS-2) included."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone, translation
from pytest_django import Settings

from notifications import rendering, subscriptions
from notifications.models import (
    CUSTOMER_KINDS,
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Notification,
)
from shipments.checkpoints import checkpoint_record
from shipments.forms import ShipmentForm
from shipments.models import Location, Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    ShipmentFactory,
    dispatched_shipment,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 16, 45, tzinfo=timezone.get_default_timezone())
MESSAGES = Path(settings.BASE_DIR) / "notifications/templates/notifications/messages"

# How many SMS parts each text may cost, per language, with the long values
# below: an accented place or cause makes the whole text UCS-2 (70 characters,
# 67 a part), which is what Spanish causes and many place names do.
SMS_BUDGET: dict[str, dict[str, int]] = {
    "en": {
        **dict.fromkeys(CUSTOMER_KINDS, 1),
        Kind.DISPATCHED: 2,
        Kind.EXCEPTION: 2,
        Kind.AVAILABLE_FOR_PICKUP: 3,
    },
    "es": {
        **dict.fromkeys(CUSTOMER_KINDS, 1),
        Kind.DISPATCHED: 2,
        Kind.EXCEPTION: 3,
        Kind.AVAILABLE_FOR_PICKUP: 3,
    },
}


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _shipment(language: str, tracking_number: str = "1Z999AA10123456784") -> Shipment:
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number=tracking_number,
        order_number="ORD-77001",
        recipient_email="ana@example.net",
        recipient_phone="+12025550143",
        language=language,
    )


def _rows(shipment: Shipment, kind: str, audience: str = Audience.RECIPIENT) -> Any:
    return {
        row.channel: row
        for row in Notification.objects.filter(
            shipment=shipment, kind=kind, audience=audience
        )
    }


def test_a_spanish_recipient_is_told_of_the_dispatch_in_spanish() -> None:
    rows = _rows(_shipment("es"), Kind.DISPATCHED)

    email, sms = rows[Channel.EMAIL], rows[Channel.SMS]
    assert email.subject == "Su pedido ORD-77001 está en camino"
    assert "Número de seguimiento: 1Z999AA10123456784" in email.body_text
    assert "23 de noviembre de 2026" in email.body_text
    assert "Número de seguimiento" in email.body_html
    assert '<html lang="es">' in email.body_html
    assert sms.body_text.startswith("TrackSOP: pedido ORD-77001 enviado el 23 ")


def test_an_english_recipient_is_told_in_english() -> None:
    rows = _rows(_shipment("en"), Kind.DISPATCHED)

    assert rows[Channel.EMAIL].subject == "Your order ORD-77001 is on its way"
    assert "Tracking number:" in rows[Channel.EMAIL].body_text


def test_the_cause_is_worded_in_the_recipients_language() -> None:
    shipment = _shipment("es")

    checkpoint_record(
        shipment=shipment,
        kind=EventKind.EXCEPTION_REPORTED,
        user=None,
        data={
            "cause": "Address issue",
            "cause_code": "address",
            "expected_resolution": (NOW + timedelta(days=1)).isoformat(),
        },
    )

    email = _rows(shipment, Kind.EXCEPTION)[Channel.EMAIL]
    assert "Problema con la dirección" in email.subject
    assert "Address issue" not in email.body_text


def test_a_subscriber_reads_the_language_of_the_page_they_subscribed_on() -> None:
    shipment = _shipment("en")
    subscription = subscriptions.subscription_request(
        shipment=shipment,
        channel=Channel.EMAIL,
        address="fan@example.org",
        language="es",
    )
    Shipment.objects.filter(pk=shipment.pk)  # the recipient stays English
    subscription.confirmed_at = timezone.now()
    subscription.save(update_fields=["confirmed_at"])

    checkpoint_record(shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None)

    fan = _rows(shipment, Kind.OUT_FOR_DELIVERY, Audience.SUBSCRIBER)[Channel.EMAIL]
    assert "sale hoy para entrega" in fan.subject
    recipient = _rows(shipment, Kind.OUT_FOR_DELIVERY)[Channel.EMAIL]
    assert "out for delivery today" in recipient.subject


def test_a_new_shipment_takes_the_default_language_setting(settings: Settings) -> None:
    settings.TRACKSOP_DEFAULT_LANGUAGE = "es"

    assert ShipmentFactory().language == "es"
    assert Shipment().language == "es"


def test_the_shipment_form_offers_the_languages_of_the_site() -> None:
    field = ShipmentForm().fields["language"]

    assert list(field.choices) == [("en", "English"), ("es", "Español")]  # type: ignore[attr-defined]


def test_an_admins_override_applies_to_messages_in_the_default_language_only() -> None:
    MessageTemplate.objects.create(
        kind=Kind.OUT_FOR_DELIVERY,
        channel=Channel.EMAIL,
        subject="Today: {{ order_number }}",
        body_text="Today: {{ order_number }}",
    )
    english, spanish = _shipment("en"), _shipment("es", "1Z999AA10123456793")
    for shipment in (english, spanish):
        checkpoint_record(shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None)

    assert _rows(english, Kind.OUT_FOR_DELIVERY)[Channel.EMAIL].subject == (
        "Today: ORD-77001"
    )
    assert "sale hoy para entrega" in (
        _rows(spanish, Kind.OUT_FOR_DELIVERY)[Channel.EMAIL].subject
    )


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_customer_template_has_a_spanish_version(kind: str) -> None:
    english = sorted(p.name for p in (MESSAGES / kind).iterdir())
    spanish = sorted(p.name for p in (MESSAGES / "es" / kind).iterdir())

    assert english == spanish == ["body.html", "body.txt", "sms.txt", "subject.txt"]


# --- SMS budgets ---------------------------------------------------------------


@pytest.fixture
def hub() -> Location:
    return LocationFactory(
        code="ssr", name="Centro logístico", city="San Sebastián de los Reyes"
    )


def _long_context(shipment: Shipment, kind: str, hub: Location) -> dict[str, Any]:
    eta = shipment.estimated_delivery
    assert eta is not None
    by_kind: dict[str, dict[str, str]] = {
        Kind.EXCEPTION: {
            "cause": "Address issue",
            "cause_code": "address",
            "expected_resolution": (NOW + timedelta(days=1)).isoformat(),
        },
        Kind.EXCEPTION_RESOLVED: {"cause": "Address issue", "cause_code": "address"},
        Kind.DELAY: {
            "from": eta.isoformat(),
            "to": (eta + timedelta(days=2)).isoformat(),
            "reason": "Severe weather at the hub",
        },
    }
    data: dict[str, Any] = by_kind.get(kind, {})
    if kind == Kind.DELIVERED:
        shipment.delivered_at = timezone.now()
    event = TrackingEvent(
        shipment=shipment,
        kind=EventKind.NOTE,
        occurred_at=timezone.now(),
        location=hub,
        data=data,
    )
    return rendering.message_context(
        shipment=shipment, audience=Audience.RECIPIENT, event=event
    )


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_sms_fits_its_budget_in_each_language(
    kind: str, language: str, hub: Location
) -> None:
    shipment = _shipment(language)
    with translation.override(language):
        text = rendering.render(
            kind, Channel.SMS, _long_context(shipment, kind, hub)
        ).text

    assert rendering.sms_segments(text) <= SMS_BUDGET[language][kind], (
        f"{len(text)} characters: {text}"
    )


def test_an_accent_makes_a_text_ucs2_at_67_characters_a_part(hub: Location) -> None:
    shipment = _shipment("es")
    with translation.override("es"):
        text = rendering.render(
            Kind.EXCEPTION,
            Channel.SMS,
            _long_context(shipment, Kind.EXCEPTION, hub),
        ).text

    assert "dirección" in text
    assert rendering.sms_segments(text) == math.ceil(len(text) / 67) == 3
    plain = text.replace("ó", "o")  # GSM-7 again: 153 septets a part
    assert rendering.sms_segments(plain) == math.ceil(len(plain) / 153) == 2
