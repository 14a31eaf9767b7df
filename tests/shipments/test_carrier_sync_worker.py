"""End to end: the beat's service queues a batch on the real Redis broker, a
real Celery worker asks the fake carrier server through karrio, records the
scans, opens the exception the carrier reports and emails the customer
through a real SMTP server. Polled again, the same answer records nothing
twice. Transactional: the worker runs in another process."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone

from exceptions_mgmt.models import DeliveryException
from notifications.models import Kind, Notification
from shipments.carriers.due import carrier_sync_due
from shipments.carriers.fake.server import FakeCarrier
from shipments.models import CarrierSync, Source, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.notifications.conftest import smtp_sink, start_worker, wait_for
from tests.shipments.carrier_sync_support import connect, shipments_with

__all__ = ["smtp_sink", "start_worker"]

pytestmark = pytest.mark.django_db(transaction=True)

ATLANTA = {"code": "ATL", "city": "Atlanta", "region": "GA", "postcode": "30301",
           "country": "US", "offset": -5}  # fmt: skip
LOUISVILLE = {"code": "LOU", "city": "Louisville", "region": "KY",
              "postcode": "40201", "country": "US", "offset": -5}  # fmt: skip


def test_a_worker_polls_records_notifies_and_opens_the_carriers_exception_once(
    smtp_sink: Any,
    start_worker: Callable[..., Any],
    fake_carrier: FakeCarrier,
    escalation_rules: None,
) -> None:
    cache.clear()
    start_worker(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_sink.port}",
        TRACKSOP_CARRIER_API_URLS=json.dumps(fake_carrier.api_urls()),
    )
    ups = connect()
    with time_machine.travel(timezone.now() - timedelta(hours=6), tick=False):
        [shipment] = shipments_with(ups, recipient_email="jane@example.net")
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False):
        fake_carrier.script(
            shipment.tracking_number or "",
            events=[
                {"kind": "picked_up", "hours_ago": 5, "place": ATLANTA},
                {"kind": "arrived", "hours_ago": 3, "place": LOUISVILLE},
                {"kind": "exception", "hours_ago": 1, "place": LOUISVILLE},
            ],
        )
    # Seen by the beat for the first time: its row, due within two hours.
    assert carrier_sync_due() == 0
    sync = CarrierSync.objects.get(shipment=shipment)
    assert sync.next_due_at > timezone.now()
    CarrierSync.objects.filter(pk=sync.pk).update(next_due_at=timezone.now())

    assert carrier_sync_due() == 1

    wait_for(
        lambda: CarrierSync.objects.filter(pk=sync.pk, last_result="ok").exists(),
        timeout=60,
        what="the worker to record the carrier's answer",
    )
    scans = TrackingEvent.objects.filter(shipment=shipment, source=Source.CARRIER)
    assert set(scans.values_list("kind", flat=True)) >= {
        EventKind.PICKED_UP,
        EventKind.ARRIVED_HUB,
        EventKind.NOTE,
    }
    assert set(
        scans.exclude(kind=EventKind.EXCEPTION_REPORTED).values_list(
            "integration", flat=True
        )
    ) == {"UPS"}
    [opened] = DeliveryException.objects.filter(shipment=shipment)
    assert "Reported by UPS" in opened.description
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.EXCEPTION
    assert shipment.current_location is not None
    assert shipment.current_location.city == "Louisville"
    # An exception the system found (not staff) reads as a delay to the
    # customer, with the listed cause.
    message = wait_for(
        lambda: [
            m
            for m in smtp_sink.to("jane@example.net")
            if "later than planned" in m["Subject"]
        ],
        timeout=60,
        what="the customer's email about the exception",
    )[0]
    assert shipment.order_number in message["Subject"]
    assert Notification.objects.filter(
        shipment=shipment,
        kind=Kind.DELAY,
        event__kind=EventKind.EXCEPTION_REPORTED,
        to="jane@example.net",
    ).exists()
    # The carrier's own words stay with staff.
    assert "Severe weather" not in message.get_body(("plain",)).get_content()

    # The same answer polled again: nothing recorded, sent or opened twice.
    before = (
        scans.count(),
        Notification.objects.filter(shipment=shipment).count(),
    )
    attempted = CarrierSync.objects.get(pk=sync.pk).last_attempt_at
    assert attempted is not None
    CarrierSync.objects.filter(pk=sync.pk).update(next_due_at=timezone.now())
    assert carrier_sync_due() == 1
    wait_for(
        lambda: CarrierSync.objects.filter(
            pk=sync.pk, last_attempt_at__gt=attempted, queued_at__isnull=True
        ).exists(),
        timeout=60,
        what="the second poll",
    )
    after = (
        scans.count(),
        Notification.objects.filter(shipment=shipment).count(),
    )
    assert after == before
    assert DeliveryException.objects.filter(shipment=shipment).count() == 1
    assert CarrierSync.objects.get(pk=sync.pk).last_message.startswith("No new events")
