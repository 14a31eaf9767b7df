"""What staff type reaches customers only where the form says so: a subscriber
(anyone with the tracking link) is told what the tracking page shows and no
more; the recipient also gets the text a form labels as sent to them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt.forms import ReportForm, RescheduleForm
from exceptions_mgmt.models import Cause
from notifications import subscriptions
from notifications.models import Audience, Channel, Kind, Notification
from shipments import services as shipment_services
from shipments.forms import EtaForm
from shipments.models import Shipment
from tests.factories import CarrierFactory, UserFactory, dispatched_shipment

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 16, 45, tzinfo=timezone.get_default_timezone())
OTHER_CAUSE = "Driver Bob refused the stairs"
DESCRIPTION = "Mrs Lee at no. 4 shouted at the driver"
RESCHEDULE_REASON = "We are sending a second van tomorrow morning"
ETA_REASON = "Severe weather at the hub"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def shipment() -> Shipment:
    shipment = dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        order_number="ORD-50001",
        recipient_email="recipient@example.net",
        recipient_phone="+12025550143",
    )
    for channel, address in (
        (Channel.EMAIL, "fan@example.org"),
        (
            Channel.SMS,
            "+12025550188",
        ),
    ):
        subscription = subscriptions.subscription_request(
            shipment=shipment, channel=channel, address=address, language="en"
        )
        code = Notification.objects.filter(subscription=subscription).get()
        found = re.search(r"\b(\d{6})\b", code.body_text)
        assert found is not None
        subscriptions.subscription_confirm(
            subscription=subscription, code=found.group(1)
        )
    return shipment


def _texts(shipment: Shipment, kind: str, audience: str) -> dict[str, str]:
    rows = Notification.objects.filter(shipment=shipment, kind=kind, audience=audience)
    found = {
        r.channel: r.subject + "\n" + r.body_text + "\n" + r.body_html for r in rows
    }
    assert set(found) == {Channel.EMAIL, Channel.SMS}
    return found


def _report_other(shipment: Shipment) -> Any:
    return exception_reporting.exception_report(
        shipment=shipment,
        user=UserFactory(),
        cause=Cause.OTHER,
        cause_other=OTHER_CAUSE,
        description=DESCRIPTION,
        expected_resolution=NOW + timedelta(days=1),
    )


def test_a_subscriber_is_told_of_an_other_cause_as_the_tracking_page_words_it(
    shipment: Shipment,
) -> None:
    _report_other(shipment)

    for text in _texts(shipment, Kind.EXCEPTION, Audience.SUBSCRIBER).values():
        assert "A problem with the delivery" in text
        assert OTHER_CAUSE not in text
        assert DESCRIPTION not in text


def test_the_recipient_is_not_told_the_internal_cause_or_description_either(
    shipment: Shipment,
) -> None:
    _report_other(shipment)

    for text in _texts(shipment, Kind.EXCEPTION, Audience.RECIPIENT).values():
        assert "A problem with the delivery" in text
        assert OTHER_CAUSE not in text
        assert DESCRIPTION not in text


def test_a_new_resolution_time_tells_the_recipient_their_message_and_not_others(
    shipment: Shipment,
) -> None:
    exception = _report_other(shipment)
    Notification.objects.all().delete()

    exception_services.exception_reschedule(
        exception=exception,
        user=UserFactory(),
        expected_resolution=NOW + timedelta(days=2),
        reason=RESCHEDULE_REASON,
    )

    recipient = _texts(shipment, Kind.EXCEPTION, Audience.RECIPIENT)
    assert RESCHEDULE_REASON in recipient[Channel.EMAIL]
    for text in recipient.values():
        assert OTHER_CAUSE not in text
        assert DESCRIPTION not in text
    for text in _texts(shipment, Kind.EXCEPTION, Audience.SUBSCRIBER).values():
        assert RESCHEDULE_REASON not in text
        assert OTHER_CAUSE not in text


def test_a_delay_reason_goes_to_the_recipient_and_not_to_subscribers(
    shipment: Shipment,
) -> None:
    assert shipment.estimated_delivery is not None
    shipment_services.shipment_eta_change(
        shipment=shipment,
        user=UserFactory(),
        estimated_delivery=shipment.estimated_delivery + timedelta(days=3),
        reason=ETA_REASON,
    )

    assert ETA_REASON in _texts(shipment, Kind.DELAY, Audience.RECIPIENT)[Channel.EMAIL]
    for text in _texts(shipment, Kind.DELAY, Audience.SUBSCRIBER).values():
        assert "delayed" in text
        assert ETA_REASON not in text


def test_the_forms_say_which_text_goes_to_the_recipient() -> None:
    report = ReportForm().fields
    for name in ("cause_other", "description"):
        assert "Internal, never shown to the customer" in str(report[name].help_text)
    for form in (EtaForm(), RescheduleForm()):
        field = form.fields["reason"]
        assert field.label == "Message to the recipient"
        assert "Sent to the recipient" in str(field.help_text)
        assert "tracking page are not sent it" in str(field.help_text)
