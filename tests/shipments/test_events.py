"""The domain event other apps plug into: sent once per event, inside the
transaction that records it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shipments import services
from shipments.events import event_recorded
from shipments.models import TrackingEvent
from shipments.status import EventKind
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    event_recorded.connect(receiver, weak=False)
    yield calls
    event_recorded.disconnect(receiver)


def test_each_checkpoint_announces_itself_with_the_previous_status(received) -> None:
    shipment = dispatched_shipment()
    received.clear()
    event = services.checkpoint_record(
        shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None
    )
    assert len(received) == 1
    assert received[0]["event"] == event
    assert received[0]["previous_status"] == "dispatched"
    assert received[0]["shipment"].status == "out_for_delivery"


def test_a_failing_listener_rolls_the_checkpoint_back() -> None:
    shipment = dispatched_shipment()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")

    event_recorded.connect(broken, weak=False)
    try:
        with pytest.raises(RuntimeError):
            services.checkpoint_record(
                shipment=shipment, kind=EventKind.PICKED_UP, user=None
            )
    finally:
        event_recorded.disconnect(broken)
    assert not TrackingEvent.objects.filter(kind=EventKind.PICKED_UP).exists()
    shipment.refresh_from_db()
    assert shipment.status == "dispatched"
