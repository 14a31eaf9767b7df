"""The domain event other apps plug into: sent once per event, inside the
transaction that records it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from shipments import services
from shipments.events import events_recorded
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
    event = services.checkpoint_record(
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
            services.checkpoint_record(
                shipment=shipment, kind=EventKind.PICKED_UP, user=None
            )
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
        events = services.checkpoints_append(
            [
                services.Checkpoint(shipment=s, notes=f"note {s.pk}", data={"n": s.pk})
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
        services.checkpoints_append(
            [services.Checkpoint(shipment=shipment)],
            kind=EventKind.EXCEPTION_REPORTED,
            user=None,
            occurred_at=timezone.now(),
        )

    assert list(shipment.events.values_list("kind", flat=True)) == [
        EventKind.CREATED,
        EventKind.CHECK_PASSED,
        EventKind.DISPATCHED,
    ]
