"""Times and dates stay within sane bounds, and pages survive any stored one.

A checkpoint dated year 0001, or an ETA of 9999-12-31, is refused at the field
and in the service (so the API and bulk scans refuse it too). Rows already
stored with such values (put straight into the database here) still render.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from notifications.rendering import message_context
from shipments import services
from shipments.checkpoints import bulk_scan_record, checkpoint_record
from shipments.models import Carrier, Location, Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import LocationFactory, dispatched_shipment
from tracksop.middleware import SESSION_KEY

pytestmark = pytest.mark.django_db

K = EventKind
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


def _minute(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def _errors(response: Any, field: str) -> list[str]:
    return list(response.context["form"].errors.get(field, []))


def _post(client: Client, name: str, shipment: Shipment, **data: Any) -> Any:
    return client.post(
        reverse(name, args=[shipment.shipment_id]),
        {"version": shipment.version, **data},
    )


# --- checkpoints ---------------------------------------------------------------


def test_the_form_refuses_a_checkpoint_from_year_one_naming_the_bound(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    events = shipment.events.count()
    client.force_login(staff)
    response = _post(
        client,
        "checkpoint-create",
        shipment,
        kind=K.IN_TRANSIT_SCAN,
        occurred_at="0001-01-01T00:00",
    )
    assert response.status_code == 400
    earliest = shipment.created_at - timedelta(days=30)
    assert _errors(response, "occurred_at") == [
        "This time is before the shipment existed: enter a time on or after "
        f"{earliest:%Y-%m-%d %H:%M} UTC (30 days before it was recorded)."
    ]
    assert shipment.events.count() == events


def test_a_carrier_scan_within_the_tolerance_before_creation_is_accepted(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    client.force_login(staff)
    when = shipment.created_at - timedelta(days=29)
    response = _post(
        client,
        "checkpoint-create",
        shipment,
        kind=K.IN_TRANSIT_SCAN,
        occurred_at=_minute(when),
    )
    assert response.status_code == 302
    assert shipment.events.filter(kind=K.IN_TRANSIT_SCAN).count() == 1


def test_the_service_refuses_a_checkpoint_before_the_shipment_existed(
    settings: Settings,
) -> None:
    settings.TRACKSOP_PAST_TOLERANCE_DAYS = 2
    shipment = dispatched_shipment()
    with pytest.raises(ValidationError) as caught:
        checkpoint_record(
            shipment=shipment.pk,
            kind=K.IN_TRANSIT_SCAN,
            user=None,
            occurred_at=shipment.created_at - timedelta(days=3),
        )
    [message] = caught.value.message_dict["occurred_at"]
    assert "before the shipment existed" in message
    assert "2 days before it was recorded" in message
    assert not shipment.events.filter(kind=K.IN_TRANSIT_SCAN).exists()


def test_a_bulk_scan_dated_year_one_is_listed_as_a_problem(
    staff: User, hub: Location
) -> None:
    shipment = dispatched_shipment()
    result = bulk_scan_record(
        user=staff,
        kind=K.ARRIVED_HUB,
        location=hub,
        numbers=[shipment.tracking_number or ""],
        occurred_at=datetime(1, 1, 1, tzinfo=UTC),
    )
    assert result.saved == []
    [(_, problem)] = result.problems
    assert "before the shipment existed" in problem


# --- estimated delivery ----------------------------------------------------------


def test_the_eta_form_refuses_a_date_past_the_maximum_naming_it(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    before = shipment.estimated_delivery
    client.force_login(staff)
    response = _post(client, "shipment-eta", shipment, estimated_delivery="9999-12-31")
    assert response.status_code == 400
    assert _errors(response, "estimated_delivery") == [
        "The estimated delivery date is too far ahead: enter a date on or before "
        "2026-09-13 (at most 90 days from today)."
    ]
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == before


def test_the_dispatch_form_refuses_an_eta_past_the_maximum(
    client: Client, staff: User, own_fleet: Carrier
) -> None:
    from tests.factories import ready_shipment

    shipment = ready_shipment()
    client.force_login(staff)
    response = _post(
        client,
        "shipment-dispatch",
        shipment,
        carrier=own_fleet.pk,
        tracking_number="",
        estimated_delivery="2026-09-14",
    )
    assert response.status_code == 400
    assert "at most 90 days" in _errors(response, "estimated_delivery")[0]
    shipment.refresh_from_db()
    assert shipment.status == "ready"


def test_the_service_refuses_an_eta_too_far_ahead_or_before_creation(
    settings: Settings,
) -> None:
    settings.TRACKSOP_MAX_ETA_DAYS = 10
    shipment = dispatched_shipment()
    with pytest.raises(ValidationError) as far:
        services.shipment_eta_change(
            shipment=shipment,
            user=None,
            estimated_delivery=date(2026, 6, 26),
        )
    assert "at most 10 days" in far.value.message_dict["estimated_delivery"][0]
    with pytest.raises(ValidationError) as early:
        services.shipment_eta_change(
            shipment=shipment, user=None, estimated_delivery=date(2026, 1, 1)
        )
    # Before the shipment was recorded is in the past too.
    assert early.value.message_dict["estimated_delivery"] == [
        "The estimated delivery date is in the past."
    ]
    # The last day allowed is allowed.
    services.shipment_eta_change(
        shipment=shipment, user=None, estimated_delivery=date(2026, 6, 25)
    )
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == date(2026, 6, 25)


# --- pages survive what is already stored --------------------------------------


@pytest.mark.parametrize(
    ("moment", "eta", "zone"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), date(1, 1, 1), "America/Chicago"),
        (
            datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
            date(9999, 12, 31),
            "Asia/Tokyo",
        ),
    ],
    ids=["year-1", "year-9999"],
)
def test_pages_answer_200_for_times_at_the_edge_of_the_calendar(
    client: Client, supervisor: User, moment: datetime, eta: date, zone: str
) -> None:
    shipment = dispatched_shipment()
    event = TrackingEvent.objects.create(
        shipment=shipment,
        kind=K.ARRIVED_HUB,
        occurred_at=moment,
        location=LocationFactory(code="edge", timezone=zone),
        source="api",
        status_after=shipment.status,
    )
    Shipment.objects.filter(pk=shipment.pk).update(
        estimated_delivery=eta,
        last_event_at=moment,
        status_changed_at=moment,
        dispatched_at=moment,
    )
    shipment.refresh_from_db()

    assert (
        client.get(reverse("public-tracking", args=[shipment.public_token])).status_code
        == 200
    )
    client.force_login(supervisor)
    session = client.session
    session[SESSION_KEY] = zone  # the viewer's zone has no room for it either
    session.save()
    for url in [
        reverse("shipment-detail", args=[shipment.shipment_id]),
        reverse("monitor"),
        reverse("shipment-search") + f"?q={shipment.recipient_name[:4]}",
        reverse("dashboard"),
        reverse("inquiry-list"),
        reverse("exception-queue"),
        reverse("notification-failed"),
    ]:
        assert client.get(url).status_code == 200, url
    # A message about the event can still be written.
    context = message_context(shipment=shipment, audience="recipient", event=event)
    assert context["event_time"] == moment


@pytest.mark.parametrize(
    ("zone", "typed"),
    [("Asia/Tokyo", "0001-01-01T00:00"), ("America/Chicago", "9999-12-31T23:59")],
)
def test_a_time_typed_at_the_calendars_edge_in_the_users_zone_is_a_field_error(
    client: Client, supervisor: User, zone: str, typed: str
) -> None:
    shipment = dispatched_shipment()
    client.force_login(supervisor)
    session = client.session
    session[SESSION_KEY] = zone
    session.save()
    checkpoint = _post(
        client,
        "checkpoint-create",
        shipment,
        kind=K.IN_TRANSIT_SCAN,
        occurred_at=typed,
    )
    assert checkpoint.status_code == 400
    assert _errors(checkpoint, "occurred_at")
    report = client.post(
        reverse("exception-report", args=[shipment.shipment_id]),
        {"cause": "weather", "severity": "medium", "expected_resolution": typed},
    )
    assert report.status_code == 400
