"""An admin's template override may change the words but not drop a fact the
procedure requires for its kind: refused when saved, and if one still fails
when a message is written, the file template goes out instead."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications import rendering
from notifications.forms import MessageTemplateForm
from notifications.models import (
    CUSTOMER_KINDS,
    Audience,
    Channel,
    Kind,
    MessageTemplate,
)
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import CarrierFactory, dispatched_shipment

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 16, 45, tzinfo=timezone.get_default_timezone())

FULL_DISPATCH_TEXT = (
    "Order {{ order_number }} left on {{ ship_date|date:'d/m' }} with "
    "{{ carrier_name }} ({{ tracking_number }}), due {{ estimated_delivery }}. "
    "{{ tracking_url }}"
)
DROPS_NUMBER_AND_DATE = (
    "Order {{ order_number }} left on {{ ship_date|date:'d/m' }} with "
    "{{ carrier_name }}. {{ tracking_url }}"
)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def shipment() -> Shipment:
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        order_number="ORD-77001",
    )


def _form(**data: Any) -> MessageTemplateForm:
    return MessageTemplateForm(
        data={"kind": Kind.DISPATCHED, "channel": Channel.EMAIL, "subject": "Sent"}
        | data
    )


# --- refused at save ---------------------------------------------------------


def test_a_dispatch_override_that_drops_facts_is_refused_naming_them() -> None:
    form = _form(body_text=DROPS_NUMBER_AND_DATE)

    assert not form.is_valid()
    [error] = form.errors["body_text"]
    assert "must state the tracking number, estimated delivery date" in error
    for shown in ("order number", "shipment date", "carrier name", "tracking link"):
        assert shown not in error


def test_a_dispatch_override_with_every_fact_in_any_format_is_accepted() -> None:
    assert _form(body_text=FULL_DISPATCH_TEXT).is_valid()
    sms = _form(channel=Channel.SMS, subject="", body_text=FULL_DISPATCH_TEXT)
    assert sms.is_valid(), sms.errors


def test_the_html_part_must_state_the_facts_too() -> None:
    form = _form(body_text=FULL_DISPATCH_TEXT, body_html="<p>Shipped!</p>")

    assert not form.is_valid()
    assert "the text or the HTML leaves them out" in form.errors["body_text"][0]


def test_an_exception_override_must_state_the_cause_and_resolution_time() -> None:
    form = _form(
        kind=Kind.EXCEPTION,
        channel=Channel.SMS,
        subject="",
        body_text="Order {{ order_number }} is held up. {{ manage_url }}",
    )

    assert not form.is_valid()
    assert "cause, expected resolution time" in form.errors["body_text"][0]


def test_a_template_that_fails_to_render_is_refused() -> None:
    form = _form(body_text='{% include "no/such/file.txt" %}')

    assert not form.is_valid()
    assert str(form.errors["body_text"][0]).startswith("Template error:")


def test_the_admin_form_shows_what_is_missing(client: Client) -> None:
    client.force_login(
        User.objects.create_superuser("root", "root@example.com", "pw-unused")
    )

    response = client.post(
        reverse("admin:notifications_messagetemplate_add"),
        {
            "kind": Kind.DISPATCHED,
            "channel": Channel.EMAIL,
            "subject": "Sent",
            "body_text": DROPS_NUMBER_AND_DATE,
            "body_html": "",
        },
    )

    assert response.status_code == 200
    assert "must state the tracking number, estimated delivery date" in (
        response.content.decode()
    )
    assert not MessageTemplate.objects.exists()


# --- never sent without them --------------------------------------------------


def _dispatch_context(shipment: Shipment) -> dict[str, Any]:
    return rendering.message_context(shipment=shipment, audience=Audience.RECIPIENT)


def test_an_override_saved_without_a_fact_is_replaced_by_the_file_at_send_time(
    shipment: Shipment,
) -> None:
    # Written past the form (a data migration, the shell, an older version).
    MessageTemplate.objects.create(
        kind=Kind.DISPATCHED,
        channel=Channel.EMAIL,
        subject="Sent",
        body_text=DROPS_NUMBER_AND_DATE,
    )
    context = _dispatch_context(shipment)

    email = rendering.render(Kind.DISPATCHED, Channel.EMAIL, context)

    assert email == rendering.render_default(Kind.DISPATCHED, Channel.EMAIL, context)
    assert "1Z999AA10123456784" in email.text


def test_an_override_that_errors_at_send_time_is_replaced_by_the_file(
    shipment: Shipment,
) -> None:
    MessageTemplate.objects.create(
        kind=Kind.DISPATCHED,
        channel=Channel.SMS,
        body_text='{% include "no/such/file.txt" %}',
    )
    context = _dispatch_context(shipment)

    sms = rendering.render(Kind.DISPATCHED, Channel.SMS, context)

    assert sms == rendering.render_default(Kind.DISPATCHED, Channel.SMS, context)


def test_a_complete_override_is_used(shipment: Shipment) -> None:
    MessageTemplate.objects.create(
        kind=Kind.DISPATCHED,
        channel=Channel.EMAIL,
        subject="Sent",
        body_text=FULL_DISPATCH_TEXT,
    )

    email = rendering.render(
        Kind.DISPATCHED, Channel.EMAIL, _dispatch_context(shipment)
    )

    assert email.text.startswith("Order ORD-77001 left on 23/11 with UPS")


@pytest.mark.parametrize("channel", Channel)
@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_file_template_states_the_facts_of_its_kind(
    shipment: Shipment, kind: str, channel: str
) -> None:
    data = {
        "cause": "Weather",
        "cause_code": "weather",
        "expected_resolution": (NOW + timedelta(days=1)).isoformat(),
        "from": "2026-11-25",
        "to": "2026-11-27",
    }
    event = TrackingEvent(
        shipment=shipment, kind=EventKind.NOTE, occurred_at=NOW, data=data
    )
    context = rendering.message_context(
        shipment=shipment, audience=Audience.RECIPIENT, event=event
    )
    rendered = rendering.render_default(kind, channel, context)

    assert (
        rendering.unshown_facts(
            kind,
            context,
            rendered,
            lambda c: rendering.render_default(kind, channel, c),
        )
        == []
    )
