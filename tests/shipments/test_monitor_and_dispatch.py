"""Carrier detection at dispatch, monitor filters, the time-zone preference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from shipments.models import Shipment
from tests.factories import (
    CarrierFactory,
    ShipmentFactory,
    StaffProfileFactory,
    dispatched_shipment,
    ready_shipment,
)
from tests.helpers import TestResponse
from tracksop import roles

pytestmark = pytest.mark.django_db

# Published SSCC-18 with its "00" identifier: also a valid legacy USPS number.
AMBIGUOUS = "00000123450000000027"


def _dispatch(client: Client, shipment: Shipment, number: str) -> TestResponse:
    return client.post(
        reverse("shipment-dispatch", args=[shipment.shipment_id]),
        {
            "carrier": "",
            "tracking_number": number,
            "estimated_delivery": (
                timezone.localdate() + timedelta(days=2)
            ).isoformat(),
            "version": shipment.version,
        },
    )


def test_dispatch_detects_the_carrier_from_a_ups_number(
    client: Client, staff: User
) -> None:
    ups = CarrierFactory()
    CarrierFactory(code="dhl", name="DHL Express", tracking_family="dhl_express")
    shipment = ready_shipment()
    client.force_login(staff)
    response = _dispatch(client, shipment, "1z999aa10123456784")
    assert response.status_code == 302
    shipment.refresh_from_db()
    assert shipment.carrier == ups
    assert shipment.tracking_number == "1Z999AA10123456784"


def test_dispatch_asks_staff_to_choose_when_a_number_fits_two_carriers(
    client: Client, staff: User
) -> None:
    CarrierFactory(code="fedex", name="FedEx", tracking_family="fedex")
    CarrierFactory(code="usps", name="USPS", tracking_family="usps")
    shipment = ready_shipment()
    client.force_login(staff)
    response = _dispatch(client, shipment, AMBIGUOUS)
    assert response.status_code == 400
    message = " ".join(response.context["form"].errors["carrier"])
    assert "more than one carrier" in message
    assert "SSCC" in message
    assert "USPS" in message
    shipment.refresh_from_db()
    assert shipment.status == "ready"
    assert shipment.tracking_number is None


def test_the_monitor_filters_late_shipments_and_marks_them(
    client: Client, cs_agent: User
) -> None:
    late = dispatched_shipment()
    Shipment.objects.filter(pk=late.pk).update(
        estimated_delivery=timezone.localdate() - timedelta(days=1)
    )
    on_time = dispatched_shipment()
    client.force_login(cs_agent)
    response = client.get(reverse("monitor"), {"overdue": "true"})
    page = response.content.decode()
    assert late.shipment_id in page
    assert on_time.shipment_id not in page
    assert "overdue" in page  # the row is highlighted
    all_open = client.get(reverse("monitor")).content.decode()
    assert on_time.shipment_id in all_open


def test_the_monitor_filters_by_status(client: Client, cs_agent: User) -> None:
    ready = ready_shipment()
    moving = dispatched_shipment()
    client.force_login(cs_agent)
    page = client.get(reverse("monitor"), {"status": "ready"}).content.decode()
    assert ready.shipment_id in page
    assert moving.shipment_id not in page


def test_the_monitor_refuses_a_malformed_filter_quietly(
    client: Client, cs_agent: User
) -> None:
    client.force_login(cs_agent)
    response = client.get(reverse("monitor"), {"dispatched_from": "not-a-date"})
    assert response.status_code == 200
    assert "Enter a valid date" in response.content.decode()


def test_times_show_in_the_zone_a_person_chooses(client: Client, staff: User) -> None:
    shipment = dispatched_shipment()
    client.force_login(staff)
    response = client.post(reverse("preferences"), {"timezone": "Asia/Tokyo"})
    assert response.status_code == 302
    page = client.get(shipment.get_absolute_url()).content.decode()
    assert "JST" in page


def test_a_saved_zone_applies_again_at_the_next_login(client: Client) -> None:
    profile = StaffProfileFactory(user__username="berlin", user__role=roles.LOGISTICS)
    shipment = dispatched_shipment()
    response = client.post(
        reverse("login"), {"username": "berlin", "password": "pass-word-123"}
    )
    assert response.status_code == 302
    page = client.get(shipment.get_absolute_url()).content.decode()
    assert profile.timezone == "Europe/Berlin"
    assert "CET" in page or "CEST" in page


def test_an_unknown_time_zone_is_refused_at_the_field(
    client: Client, staff: User
) -> None:
    client.force_login(staff)
    response = client.post(reverse("preferences"), {"timezone": "Mars/Olympus"})
    assert response.status_code == 400
    assert response.context["form"].errors["timezone"]


def test_the_monitor_lists_late_packages_first_and_those_without_an_eta_last(
    client: Client, cs_agent: User
) -> None:
    # Shipments not yet dispatched have no ETA. SQLite sorts NULL first, so
    # the order must say where they go rather than leave it to the database.
    awaiting = [ShipmentFactory() for _ in range(3)]
    ready = ready_shipment()
    on_time = dispatched_shipment()
    late = dispatched_shipment()
    later = dispatched_shipment()
    today = timezone.localdate()
    Shipment.objects.filter(pk=late.pk).update(
        estimated_delivery=today - timedelta(days=1)
    )
    Shipment.objects.filter(pk=later.pk).update(
        estimated_delivery=today - timedelta(days=3)
    )
    client.force_login(cs_agent)

    rows = list(client.get(reverse("monitor")).context["page"].object_list)

    assert rows[:3] == [later, late, on_time]
    assert set(rows[3:]) == {*awaiting, ready}


def test_the_monitor_says_where_shipments_without_an_eta_go() -> None:
    # PostgreSQL puts NULL last by itself; SQLite (`make run`) puts it first.
    from shipments.selectors import monitor_queryset

    assert "NULLS LAST" in str(monitor_queryset().query).upper()
