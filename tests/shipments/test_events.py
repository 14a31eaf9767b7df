"""The domain event other apps plug into: sent once per event, inside the
transaction that records it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from exceptions_mgmt import reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt.models import Cause
from shipments import services
from shipments.checkpoints import (
    Checkpoint,
    checkpoint_record,
    checkpoints_append,
    event_void,
)
from shipments.events import (
    CheckData,
    CorrectionData,
    DetailsChangedData,
    DispatchedData,
    EtaChangedData,
    ExceptionData,
    events_recorded,
)
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    events_recorded.connect(receiver, weak=False)
    yield calls
    events_recorded.disconnect(receiver)


def test_each_checkpoint_announces_itself_with_the_previous_status(
    received: list[dict[str, Any]],
) -> None:
    shipment = dispatched_shipment()
    received.clear()
    event = checkpoint_record(
        shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None
    )
    assert len(received) == 1
    [(got, shipment_after, previous)] = received[0]["records"]
    assert got == event
    assert previous == "dispatched"
    assert shipment_after.status == "out_for_delivery"


def test_a_failing_listener_rolls_the_checkpoint_back() -> None:
    shipment = dispatched_shipment()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")

    events_recorded.connect(broken, weak=False)
    try:
        with pytest.raises(RuntimeError):
            checkpoint_record(shipment=shipment, kind=EventKind.PICKED_UP, user=None)
    finally:
        events_recorded.disconnect(broken)
    assert not TrackingEvent.objects.filter(kind=EventKind.PICKED_UP).exists()
    shipment.refresh_from_db()
    assert shipment.status == "dispatched"


def test_checkpoints_on_many_shipments_are_one_announcement(
    received: list[dict[str, Any]],
) -> None:
    shipments = [dispatched_shipment() for _ in range(3)]
    received.clear()
    before = {s.pk: (s.version, s.updated_at) for s in shipments}

    with transaction.atomic():
        locked = list(
            Shipment.objects.select_for_update().filter(
                pk__in=[s.pk for s in shipments]
            )
        )
        events = checkpoints_append(
            [
                Checkpoint(shipment=s, notes=f"note {s.pk}", data={"n": s.pk})
                for s in locked
            ],
            kind=EventKind.EXCEPTION_REPORTED,
            user=None,
            occurred_at=timezone.now(),
        )

    [call] = received
    assert [r.event for r in call["records"]] == events
    assert {r.previous_status for r in call["records"]} == {"dispatched"}
    for event in events:
        event.refresh_from_db()
        assert event.notes == f"note {event.shipment_id}"
        assert event.data == {"n": event.shipment_id}
        assert event.status_after == "exception"
        shipment = Shipment.objects.get(pk=event.shipment_id)
        assert shipment.status == "exception"
        assert shipment.resume_status == "dispatched"
        assert shipment.last_event_at == event.occurred_at
        version, updated_at = before[shipment.pk]
        assert shipment.version == version + 1
        assert shipment.updated_at > updated_at


@pytest.mark.django_db(transaction=True)
def test_checkpoints_on_many_shipments_need_them_locked_in_a_transaction() -> None:
    """Outside a transaction the shipments cannot be locked: refused, and
    nothing is written (a test that commits, to be outside one)."""
    shipment = dispatched_shipment()

    with pytest.raises(RuntimeError, match="locked in a transaction"):
        checkpoints_append(
            [Checkpoint(shipment=shipment)],
            kind=EventKind.EXCEPTION_REPORTED,
            user=None,
            occurred_at=timezone.now(),
        )

    assert list(shipment.events.values_list("kind", flat=True)) == [
        EventKind.CREATED,
        EventKind.CHECK_PASSED,
        EventKind.DISPATCHED,
    ]


# The data each kind's writers give, as `shipments.events` declares it.
DATA_TYPES: dict[str, Any] = {
    EventKind.DETAILS_CHANGED: DetailsChangedData,
    EventKind.CHECK_PASSED: CheckData,
    EventKind.DISPATCHED: DispatchedData,
    EventKind.ETA_CHANGED: EtaChangedData,
    EventKind.CORRECTION: CorrectionData,
    EventKind.EXCEPTION_REPORTED: ExceptionData,
    EventKind.EXCEPTION_UPDATED: ExceptionData,
    EventKind.EXCEPTION_RESOLVED: ExceptionData,
}


def test_each_kinds_data_has_the_keys_its_typed_dict_declares(
    supervisor: User,
) -> None:
    shipment = dispatched_shipment()
    services.shipment_update(
        shipment=shipment, user=supervisor, details={"contents": "Globes"}
    )
    services.shipment_eta_change(
        shipment=shipment,
        user=supervisor,
        estimated_delivery=timezone.localdate() + timedelta(days=9),
        reason="Storm",
    )
    scan = checkpoint_record(shipment=shipment, kind=EventKind.PICKED_UP, user=None)
    event_void(event=scan, user=supervisor, reason="Wrong parcel")
    exception = reporting.exception_report(
        shipment=shipment,
        user=supervisor,
        cause=Cause.WEATHER,
        expected_resolution=timezone.now() + timedelta(days=1),
    )
    exception_services.exception_reschedule(
        exception=exception,
        user=supervisor,
        expected_resolution=timezone.now() + timedelta(days=2),
        reason="Roads closed",
    )
    exception_services.exception_resolve(
        exception=exception, user=supervisor, notes="Roads open"
    )

    seen: set[str] = set()
    for event in TrackingEvent.objects.filter(shipment=shipment):
        declared = DATA_TYPES.get(event.kind)
        if declared is None:
            continue
        seen.add(event.kind)
        keys = set(event.data)
        assert declared.__required_keys__ <= keys, event.kind
        assert keys <= declared.__required_keys__ | declared.__optional_keys__, (
            event.kind
        )
    assert seen == set(DATA_TYPES)
