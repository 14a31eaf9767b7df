from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from shipments import services
from shipments.checkpoints import checkpoint_record, event_void
from shipments.dispatch import shipment_dispatch
from shipments.models import Carrier, Location, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    ShipmentFactory,
    dispatched_shipment,
    ready_shipment,
)

pytestmark = pytest.mark.django_db

S = ShipmentStatus
K = EventKind


def test_it_generates_a_shipment_id_when_none_is_given() -> None:
    shipment = ShipmentFactory(shipment_id="")
    assert shipment.shipment_id.startswith("SH-")
    assert shipment.status == S.CREATED
    assert list(shipment.events.values_list("kind", flat=True)) == [K.CREATED]


def test_it_refuses_dispatch_before_the_check(own_fleet: Carrier) -> None:
    shipment = ShipmentFactory()
    with pytest.raises(
        services.TransitionRefused, match="Created cannot become Dispatched"
    ):
        shipment_dispatch(
            shipment=shipment,
            user=None,
            carrier=own_fleet,
            tracking_number="",
            estimated_delivery=timezone.localdate(),
        )
    shipment.refresh_from_db()
    assert shipment.status == S.CREATED
    assert shipment.tracking_number is None


def test_it_generates_a_valid_s10_number_for_the_own_fleet(own_fleet: Carrier) -> None:
    shipment = dispatched_shipment(carrier=own_fleet)
    assert shipment.status == S.DISPATCHED
    assert shipment.tracking_number is not None
    assert len(shipment.tracking_number) == 13
    assert shipment.tracking_number.startswith("TS")
    assert shipment.tracking_number.endswith("US")


def test_it_rejects_a_wrong_ups_check_digit() -> None:
    shipment = ready_shipment()
    with pytest.raises(ValidationError) as exc:
        shipment_dispatch(
            shipment=shipment,
            user=None,
            carrier=CarrierFactory(),
            tracking_number="1Z999AA10123456785",
            estimated_delivery=timezone.localdate(),
        )
    assert "check digit" in exc.value.message_dict["tracking_number"][0].lower()


def test_it_refuses_a_tracking_number_another_shipment_has() -> None:
    ups = CarrierFactory()
    first = dispatched_shipment(carrier=ups, tracking_number="1Z999AA10123456784")
    second = ready_shipment()
    with pytest.raises(ValidationError) as exc:
        shipment_dispatch(
            shipment=second,
            user=None,
            carrier=ups,
            tracking_number="1z 999 aa1 0123 4567 84",
            estimated_delivery=timezone.localdate(),
        )
    assert first.shipment_id in exc.value.message_dict["tracking_number"][0]


def test_a_late_scan_joins_the_timeline_without_moving_status_back(
    hub: Location,
) -> None:
    shipment = dispatched_shipment()
    now = timezone.now()
    checkpoint_record(
        shipment=shipment, kind=K.OUT_FOR_DELIVERY, user=None, occurred_at=now
    )
    late = checkpoint_record(
        shipment=shipment,
        kind=K.ARRIVED_HUB,
        user=None,
        location=hub,
        occurred_at=now - timedelta(hours=3),
    )
    shipment.refresh_from_db()
    assert shipment.status == S.OUT_FOR_DELIVERY
    assert late.status_after == S.OUT_FOR_DELIVERY


def test_it_refuses_out_for_delivery_after_delivery() -> None:
    shipment = dispatched_shipment()
    checkpoint_record(shipment=shipment, kind=K.DELIVERED, user=None)
    with pytest.raises(services.TransitionRefused, match="Delivered"):
        checkpoint_record(shipment=shipment, kind=K.OUT_FOR_DELIVERY, user=None)
    assert TrackingEvent.objects.filter(shipment=shipment).count() == 4


def test_a_repeated_external_id_is_harmless() -> None:
    shipment = dispatched_shipment()
    first = checkpoint_record(
        shipment=shipment, kind=K.PICKED_UP, user=None, external_id="carrier-1"
    )
    again = checkpoint_record(
        shipment=shipment, kind=K.PICKED_UP, user=None, external_id="carrier-1"
    )
    assert again.pk == first.pk
    assert shipment.events.filter(kind=K.PICKED_UP).count() == 1


def test_voiding_an_event_rederives_the_status(supervisor: User) -> None:
    shipment = dispatched_shipment()
    wrong = checkpoint_record(shipment=shipment, kind=K.DELIVERED, user=None)
    event_void(event=wrong, user=supervisor, reason="Scanned the wrong parcel")
    shipment.refresh_from_db()
    assert shipment.status == S.DISPATCHED
    assert shipment.delivered_at is None
    assert shipment.events.filter(kind=K.CORRECTION, voids=wrong).exists()


def test_the_database_refuses_to_edit_or_delete_events() -> None:
    shipment = ShipmentFactory()
    event = shipment.events.get()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TrackingEvent.objects.filter(pk=event.pk).update(notes="rewritten")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TrackingEvent.objects.filter(pk=event.pk).delete()
    assert connection.vendor == "postgresql"


def test_a_stale_version_is_refused(staff: User) -> None:
    shipment = ShipmentFactory()
    services.shipment_update(
        shipment=shipment, user=staff, details={"contents": "Maps"}, expected_version=1
    )
    with pytest.raises(services.StaleShipment):
        services.shipment_update(
            shipment=shipment,
            user=staff,
            details={"contents": "Globes"},
            expected_version=1,
        )
    assert Shipment.objects.get(pk=shipment.pk).contents == "Maps"


def test_voiding_the_dispatch_frees_the_tracking_number(supervisor: User) -> None:
    shipment = dispatched_shipment()
    dispatch = shipment.events.get(kind=K.DISPATCHED)
    event_void(event=dispatch, user=supervisor, reason="Wrong parcel")
    shipment.refresh_from_db()
    assert shipment.status == S.READY
    assert shipment.tracking_number is None
    assert shipment.carrier is None
