"""Races on the real PostgreSQL: two threads, two connections, one moment.

These tests commit, so they run with `transaction=True`. The flush after each
empties every table; post_migrate (tracksop.roles) puts the role groups back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from shipments.checkpoints import checkpoint_record
from shipments.dispatch import shipment_dispatch
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus, initial_state, next_state
from tests.factories import CarrierFactory, dispatched_shipment, ready_shipment
from tests.helpers import race

S = ShipmentStatus
K = EventKind

pytestmark = pytest.mark.django_db(transaction=True)

UPS_NUMBER = "1Z999AA10123456784"


def replayed_status(shipment: Shipment) -> str:
    state = initial_state()
    for event in shipment.events.order_by("id"):
        state = next_state(state, kind=event.kind, occurred_at=event.occurred_at)
    return state.status


def test_two_scans_of_one_package_are_serialised_by_the_row_lock() -> None:
    shipment = dispatched_shipment()
    version = shipment.version
    now = timezone.now()

    outcomes = race(
        lambda: checkpoint_record(
            shipment=shipment.pk,
            kind=K.OUT_FOR_DELIVERY,
            user=None,
            occurred_at=now - timedelta(minutes=1),
        ),
        lambda: checkpoint_record(
            shipment=shipment.pk, kind=K.DELIVERED, user=None, occurred_at=now
        ),
    )

    # Whichever ran first, both are logged: out for delivery then delivered,
    # or delivered then a late out-for-delivery scan (timeline only).
    assert all(isinstance(o, TrackingEvent) for o in outcomes), outcomes
    shipment.refresh_from_db()
    assert shipment.status == S.DELIVERED
    assert shipment.delivered_at == now
    assert shipment.version == version + 2  # no lost update
    kinds = list(shipment.events.order_by("id").values_list("kind", flat=True))
    assert sorted(kinds[-2:]) == sorted([K.OUT_FOR_DELIVERY, K.DELIVERED])
    assert replayed_status(shipment) == shipment.status
    assert outcomes[1].status_after == S.DELIVERED


def test_two_clerks_cannot_dispatch_with_the_same_tracking_number() -> None:
    ups = CarrierFactory()
    first, second = ready_shipment(), ready_shipment()
    eta = timezone.localdate() + timedelta(days=2)

    def dispatch(shipment: Shipment) -> Callable[[], Shipment]:
        return lambda: shipment_dispatch(
            shipment=shipment,
            user=None,
            carrier=ups,
            tracking_number=UPS_NUMBER,
            estimated_delivery=eta,
        )

    outcomes = race(dispatch(first), dispatch(second))

    winners = [o for o in outcomes if isinstance(o, Shipment)]
    losers = [o for o in outcomes if isinstance(o, ValidationError)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    assert "tracking_number" in losers[0].message_dict
    winner = Shipment.objects.get(pk=winners[0].pk)
    loser = Shipment.objects.get(pk=({first.pk, second.pk} - {winner.pk}).pop())
    assert (winner.status, winner.tracking_number) == (S.DISPATCHED, UPS_NUMBER)
    # Nothing of the losing dispatch was kept.
    assert loser.status == S.READY
    assert (loser.tracking_number, loser.carrier_id, loser.dispatched_at) == (
        None,
        None,
        None,
    )
    assert loser.version == (first if loser.pk == first.pk else second).version
    assert not loser.events.filter(kind=K.DISPATCHED).exists()
    assert winner.events.filter(kind=K.DISPATCHED).count() == 1


def test_one_carrier_event_delivered_twice_at_once_is_logged_once() -> None:
    shipment = dispatched_shipment()
    version = shipment.version

    def deliver() -> TrackingEvent:
        return checkpoint_record(
            shipment=shipment.pk,
            kind=K.DELIVERED,
            user=None,
            source="webhook",
            integration="ups-feed",
            external_id="ups-evt-42",
        )

    outcomes = race(deliver, deliver)

    assert all(isinstance(o, TrackingEvent) for o in outcomes), outcomes
    assert outcomes[0].pk == outcomes[1].pk
    shipment.refresh_from_db()
    assert shipment.events.filter(external_id="ups-evt-42").count() == 1
    assert shipment.events.filter(kind=K.DELIVERED).count() == 1
    assert shipment.status == S.DELIVERED
    assert shipment.version == version + 1
