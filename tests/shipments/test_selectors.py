"""The reads behind the staff pages: search, timeline, monitor and dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from shipments import selectors, services
from shipments.checkpoints import checkpoint_record, event_void
from shipments.dispatch import shipment_dispatch
from shipments.models import Carrier, Location, Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    OwnFleetFactory,
    ShipmentFactory,
    dispatched_shipment,
    ready_shipment,
)

pytestmark = pytest.mark.django_db

S = ShipmentStatus
K = EventKind

UPS_A = "1Z999AA10123456784"
UPS_B = "1Z999AA10123456793"  # shares the prefix 1Z999AA101234567


@pytest.fixture
def ups(db: None) -> Carrier:
    return CarrierFactory()


@pytest.fixture
def parcel(ups: Carrier) -> Shipment:
    """The one shipment most searches below are looking for."""
    return dispatched_shipment(
        carrier=ups,
        tracking_number=UPS_A,
        shipment_id="SH-T4KQ9",
        order_number="ORD-Alpha-7",
        recipient_name="Marguerite Okonkwo",
        recipient_email="Marguerite.O@Example.com",
        recipient_phone="+12025550143",
    )


@pytest.fixture
def other(ups: Carrier) -> Shipment:
    return dispatched_shipment(
        carrier=ups,
        tracking_number=UPS_B,
        order_number="ORD-BETA-8",
        recipient_name="Tom Baker",
        recipient_email="tom@example.org",
        recipient_phone="+12025550199",
    )


def search(user: User, query: str, **kwargs: int) -> selectors.SearchResult:
    return selectors.shipment_search(user=user, query=query, **kwargs)


# --- shipment_search ---------------------------------------------------------


def test_it_finds_a_tracking_number_exactly(
    cs_agent: User, parcel: Shipment, other: Shipment
) -> None:
    result = search(cs_agent, UPS_A)
    assert result.shipments == [parcel]
    assert result.exact == parcel


@pytest.mark.parametrize(
    "typed",
    ["1z999aa10123456784", " 1Z 999 AA1 0123 4567 84 ", "1z-999-aa1.0123.4567.84"],
)
def test_it_normalises_a_typed_tracking_number(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.exact == parcel
    assert result.shipments == [parcel]


def test_a_tracking_number_prefix_lists_without_an_exact_match(
    cs_agent: User, parcel: Shipment, other: Shipment
) -> None:
    result = search(cs_agent, "1z999aa1012345")
    assert set(result.shipments) == {parcel, other}
    assert result.exact is None


def test_an_exact_tracking_number_wins_over_prefix_neighbours(
    cs_agent: User, parcel: Shipment, other: Shipment
) -> None:
    assert search(cs_agent, UPS_B).exact == other


def test_a_short_fragment_is_not_a_prefix_search(
    cs_agent: User, parcel: Shipment
) -> None:
    assert search(cs_agent, "1Z9").shipments == []


@pytest.mark.parametrize("typed", ["SH-T4KQ9", "sh-t4kq9", "  sh-T4kq9 "])
def test_it_finds_a_shipment_id(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.shipments == [parcel]
    assert result.exact == parcel


def test_it_finds_a_shipment_not_yet_dispatched_by_its_id(cs_agent: User) -> None:
    shipment = ShipmentFactory(shipment_id="")
    assert search(cs_agent, shipment.shipment_id.lower()).exact == shipment


@pytest.mark.parametrize("typed", ["ORD-Alpha-7", "ord-alpha-7", "ORD-ALPHA-7"])
def test_it_finds_an_order_number_in_any_case(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.shipments == [parcel]
    assert result.exact == parcel


@pytest.mark.parametrize(
    "typed", ["marguerite.o@example.com", "MARGUERITE.O@EXAMPLE.COM"]
)
def test_it_finds_an_email_in_any_case(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.shipments == [parcel]
    assert result.exact == parcel


def test_a_partial_email_finds_nothing(cs_agent: User, parcel: Shipment) -> None:
    assert search(cs_agent, "marguerite.o@").shipments == []


@pytest.mark.parametrize(
    "typed",
    [
        "+12025550143",
        "+1 202 555 0143",
        "+1-202-555-0143",
        "(202) 555-0143",
        "202.555.0143",
        "2025550143",
    ],
)
def test_it_finds_a_phone_number_in_any_format(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.shipments == [parcel]
    assert result.exact == parcel


def test_part_of_a_phone_number_finds_nothing(cs_agent: User, parcel: Shipment) -> None:
    assert search(cs_agent, "555-0143").shipments == []


@pytest.mark.parametrize("typed", ["okonkwo", "OKONK", "guerite Ok"])
def test_it_finds_a_name_fragment_without_calling_it_exact(
    cs_agent: User, parcel: Shipment, other: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert result.shipments == [parcel]
    assert result.exact is None


def test_a_name_fragment_needs_three_characters(
    cs_agent: User, parcel: Shipment
) -> None:
    assert search(cs_agent, "Ok").shipments == []


def test_it_lists_every_name_match_newest_first(
    cs_agent: User, parcel: Shipment
) -> None:
    newer = ShipmentFactory(recipient_name="Chidi Okonkwo")
    assert search(cs_agent, "okonkwo").shipments == [newer, parcel]


@pytest.mark.parametrize("typed", ["", "   ", "\t\n"])
def test_an_empty_query_finds_nothing(
    cs_agent: User, parcel: Shipment, typed: str
) -> None:
    result = search(cs_agent, typed)
    assert (result.shipments, result.exact, result.truncated) == ([], None, False)
    assert result.query == ""


def test_an_order_number_shared_by_two_shipments_is_not_exact(cs_agent: User) -> None:
    first = ShipmentFactory(order_number="ORD-SPLIT-1")
    second = ShipmentFactory(order_number="ord-split-1")
    ShipmentFactory(order_number="ORD-SPLIT-10")
    result = search(cs_agent, "Ord-Split-1")
    assert set(result.shipments) == {first, second}
    assert result.exact is None


def test_it_stops_at_the_limit_and_says_so(cs_agent: User) -> None:
    for _ in range(3):
        ShipmentFactory(order_number="ORD-BULK")
    result = search(cs_agent, "ord-bulk", limit=2)
    assert len(result.shipments) == 2
    assert result.truncated is True
    assert result.exact is None
    assert search(cs_agent, "ord-bulk", limit=3).truncated is False


def test_search_is_one_query(
    cs_agent: User,
    parcel: Shipment,
    other: Shipment,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(1):
        result = search(cs_agent, "1Z999AA1")
        # Both are dispatched, so both have a carrier.
        assert [s.carrier.name for s in result.shipments] == ["UPS", "UPS"]  # type: ignore[union-attr]


# --- shipment_timeline -------------------------------------------------------


def test_the_timeline_marks_voided_events_and_keeps_time_order(
    supervisor: User, hub: Location, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    start = timezone.now() - timedelta(hours=1)
    with time_machine.travel(start, tick=False) as clock:
        shipment = dispatched_shipment()
        clock.move_to(start + timedelta(minutes=10))
        wrong = checkpoint_record(shipment=shipment, kind=K.DELIVERED, user=None)
        late = checkpoint_record(
            shipment=shipment,
            kind=K.ARRIVED_HUB,
            user=None,
            location=hub,
            occurred_at=start + timedelta(minutes=5),
        )
        clock.move_to(start + timedelta(minutes=20))
        correction = event_void(
            event=wrong, user=supervisor, reason="Scanned the wrong parcel"
        )

    with django_assert_num_queries(1):
        timeline = selectors.shipment_timeline(shipment=shipment)
        where = [entry.event.location for entry in timeline]

    assert [entry.event.kind for entry in timeline] == [
        K.CREATED,
        K.CHECK_PASSED,
        K.DISPATCHED,
        K.ARRIVED_HUB,  # the late scan, in time order
        K.DELIVERED,
        K.CORRECTION,
    ]
    assert [entry.event for entry in timeline if entry.voided] == [wrong]
    assert timeline[3].event == late
    assert timeline[5].event == correction
    assert where[3] == hub


# --- monitor_queryset --------------------------------------------------------


def dispatched_due(days: int, **kwargs: object) -> Shipment:
    return shipment_dispatch(
        shipment=ready_shipment(**kwargs),
        user=None,
        carrier=OwnFleetFactory(),
        tracking_number="",
        estimated_delivery=timezone.localdate() + timedelta(days=days),
    )


def overdue_shipment(days_late: int) -> Shipment:
    """Dispatched in the past with an ETA that has passed."""
    with time_machine.travel(timezone.now() - timedelta(days=days_late + 2)):
        return dispatched_due(1)


def closed_shipments(staff: User) -> list[Shipment]:
    delivered = dispatched_due(1)
    checkpoint_record(shipment=delivered, kind=K.DELIVERED, user=None)
    returned = dispatched_due(1)
    checkpoint_record(shipment=returned, kind=K.RETURNED, user=None)
    cancelled = services.shipment_cancel(
        shipment=ShipmentFactory(), user=staff, reason="Customer withdrew the order"
    )
    return [delivered, returned, cancelled]


def test_the_monitor_lists_open_shipments_by_eta_without_eta_last(
    staff: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    later = dispatched_due(5)
    soon = dispatched_due(1)
    soon_too = dispatched_due(1)  # same ETA: the earlier dispatch first
    stuck = dispatched_due(3)
    checkpoint_record(shipment=stuck, kind=K.EXCEPTION_REPORTED, user=None)
    late = overdue_shipment(days_late=2)
    waiting = ShipmentFactory()
    ready = ready_shipment()
    closed_shipments(staff)

    with django_assert_num_queries(1):
        rows = list(selectors.monitor_queryset())
        carriers = [row.carrier.code if row.carrier else "" for row in rows]

    assert rows == [late, soon, soon_too, stuck, later, waiting, ready]
    assert carriers[:5] == ["fleet"] * 5
    assert all(not row.is_closed for row in rows)


# --- dashboard_counts --------------------------------------------------------


def test_the_dashboard_counts_open_shipments_by_status_and_overdue(
    staff: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    ShipmentFactory()
    ready_shipment()
    dispatched_due(2)
    moving = dispatched_due(4)
    checkpoint_record(shipment=moving, kind=K.PICKED_UP, user=None)
    overdue_shipment(days_late=1)
    overdue_shipment(days_late=3)
    late_but_delivered = overdue_shipment(days_late=1)
    checkpoint_record(shipment=late_but_delivered, kind=K.DELIVERED, user=None)
    closed_shipments(staff)

    with django_assert_num_queries(2):
        counts = selectors.dashboard_counts()

    assert counts == {
        "by_status": {
            S.CREATED: 1,
            S.READY: 1,
            S.DISPATCHED: 3,
            S.IN_TRANSIT: 1,
        },
        "overdue": 2,
        "open": 6,
    }


def test_the_dashboard_is_all_zero_when_nothing_is_open(staff: User) -> None:
    closed_shipments(staff)
    assert selectors.dashboard_counts() == {"by_status": {}, "overdue": 0, "open": 0}
