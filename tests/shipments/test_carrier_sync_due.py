"""The poller's beat: which shipments are due, how many each carrier account
may be asked about this minute, and that nothing is queued twice.

The batches it queues are read from the on-commit callbacks (no broker, no
carrier: the batch itself is tested against the fake carrier server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from shipments.carriers import due
from shipments.carriers.accounts import rate_take
from shipments.carriers.due import carrier_sync_due
from shipments.checkpoints import checkpoint_record
from shipments.models import CarrierAccount, CarrierSync, Shipment, TrackingProvider
from shipments.status import EventKind, ShipmentStatus
from tests.factories import CarrierFactory, dispatched_shipment, ready_shipment
from tests.shipments.carrier_sync_support import (
    connect,
    fedex_number,
    followed,
    shipments_with,
    sync_of,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> Iterator[None]:
    cache.clear()  # the per-minute request counters
    with time_machine.travel(NOW, tick=False):
        yield


Queued = list[tuple[int, list[int]]]


@pytest.fixture
def run_due(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> Callable[..., tuple[int, Queued]]:
    """Run the beat's service; (shipments queued, [(account, ids)] of the
    batch tasks it queued after commit)."""

    def run(now: datetime = NOW) -> tuple[int, Queued]:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            count = carrier_sync_due(now=now)
        batches = [
            (c.args[0], list(c.args[1]))  # type: ignore[attr-defined]  # the callbacks are partials
            for c in callbacks
            if getattr(c, "func", None) is due.batch_queue_now
        ]
        return count, batches

    return run


def test_shipments_seen_for_the_first_time_fall_due_spread_over_two_hours(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    shipments = shipments_with(ups, 30)

    run_due()

    dues = sorted(sync_of(s).next_due_at for s in shipments)
    assert len(set(dues)) == 30
    assert dues[0] >= NOW
    assert dues[-1] < NOW + timedelta(hours=2)
    # Spread, not bunched: the 30 cover most of the two hours.
    assert dues[-1] - dues[0] > timedelta(hours=1)


def test_only_dispatched_shipments_of_a_connected_carrier_are_followed(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    followed_one = shipments_with(ups)[0]
    fedex = CarrierFactory(code="fedex", name="FedEx", tracking_family="fedex")
    not_connected = dispatched_shipment(carrier=fedex, tracking_number=fedex_number(1))
    own_fleet = dispatched_shipment()
    not_dispatched = ready_shipment(carrier=ups.carrier)
    delivered = shipments_with(ups)[0]
    checkpoint_record(
        shipment=delivered, kind=EventKind.DELIVERED, user=None, occurred_at=NOW
    )
    off = connect(TrackingProvider.FEDEX, is_active=False)
    switched_off = shipments_with(off)[0]

    run_due()

    assert set(CarrierSync.objects.values_list("shipment_id", flat=True)) == {
        followed_one.pk
    }
    for shipment in (not_connected, own_fleet, not_dispatched, switched_off):
        assert not CarrierSync.objects.filter(shipment=shipment).exists()


def test_due_shipments_are_queued_in_tasks_of_whole_carrier_requests(
    run_due: Callable[..., tuple[int, Queued]], settings: Settings
) -> None:
    settings.TRACKSOP_CARRIER_SYNC = {
        **settings.TRACKSOP_CARRIER_SYNC,
        "requests_per_task": 2,
    }
    fedex = connect(TrackingProvider.FEDEX)  # 30 numbers a request
    due = followed(fedex, 70, due=NOW - timedelta(minutes=1))
    later = followed(fedex, 2, due=NOW + timedelta(minutes=5))

    count, batches = run_due()

    assert count == 70
    assert [len(ids) for _, ids in batches] == [60, 10]
    assert {a for a, _ in batches} == {fedex.pk}
    assert sorted(i for _, ids in batches for i in ids) == sorted(s.pk for s in due)
    for shipment in later:
        assert sync_of(shipment).queued_at is None


def test_a_queued_shipment_is_held_and_not_queued_again_while_in_flight(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    [shipment] = followed(ups, due=NOW - timedelta(minutes=1))

    assert run_due()[0] == 1
    sync = sync_of(shipment)
    assert sync.queued_at == NOW
    assert sync.next_due_at == NOW + timedelta(minutes=15)  # the lease
    assert run_due()[0] == 0
    assert run_due(NOW + timedelta(minutes=10))[0] == 0
    # Its task was lost: once the lease lapses it is due again.
    assert run_due(NOW + timedelta(minutes=16))[0] == 1


def test_an_account_is_asked_no_more_than_its_requests_a_minute(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect(requests_per_minute=3)  # one number a request
    shipments = followed(ups, 10, due=NOW - timedelta(minutes=1))

    assert run_due()[0] == 3
    # Three requests in flight: nothing more this minute, nor the next
    # while they are not recorded.
    assert run_due()[0] == 0
    assert run_due(NOW + timedelta(minutes=1))[0] == 0
    CarrierSync.objects.filter(shipment__in=shipments).update(queued_at=None)
    # The three were asked this minute (the counter every worker shares).
    assert rate_take(ups.pk, limit=3, wanted=3, now=NOW) == 3
    CarrierSync.objects.filter(shipment__in=shipments[:3]).update(
        next_due_at=NOW + timedelta(hours=2)
    )
    assert run_due()[0] == 0
    assert run_due(NOW + timedelta(minutes=1))[0] == 3


def test_requests_made_elsewhere_this_minute_count_against_the_limit(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    fedex = connect(TrackingProvider.FEDEX, requests_per_minute=5)
    followed(fedex, 40, due=NOW - timedelta(minutes=1))
    # Sync now pressed four times, on other workers.
    assert rate_take(fedex.pk, limit=5, wanted=4, now=NOW) == 4

    count, _ = run_due()

    assert count == 30  # one request of 30 numbers left this minute
    assert rate_take(fedex.pk, limit=5, wanted=2, now=NOW) == 1


def test_the_longest_due_go_first(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect(requests_per_minute=2)
    newer = followed(ups, 2, due=NOW - timedelta(minutes=1))
    older = followed(ups, 2, due=NOW - timedelta(hours=1))

    _, batches = run_due()

    assert sorted(i for _, ids in batches for i in ids) == sorted(s.pk for s in older)
    assert all(sync_of(s).queued_at is None for s in newer)


def test_an_account_backing_off_is_left_alone_until_the_back_off_ends(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect(backoff_until=NOW + timedelta(minutes=3))
    followed(ups, 2, due=NOW - timedelta(minutes=1))

    assert run_due()[0] == 0
    assert run_due(NOW + timedelta(minutes=3))[0] == 2


def test_a_failing_account_gets_one_request_per_run_to_see_if_it_works_again(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect(
        state=CarrierAccount.State.FAILING,
        failing_since=NOW - timedelta(hours=1),
        alerted_at=NOW - timedelta(hours=1),
    )
    followed(ups, 5, due=NOW - timedelta(minutes=1))

    count, batches = run_due()

    assert count == 1
    assert len(batches) == 1


def test_a_switched_off_account_is_not_polled(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    followed(ups, 2, due=NOW - timedelta(minutes=1))
    CarrierAccount.objects.filter(pk=ups.pk).update(is_active=False)

    assert run_due()[0] == 0


def test_a_shipment_staff_closed_meanwhile_is_no_longer_followed(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    [shipment] = followed(ups, due=NOW - timedelta(minutes=1))
    checkpoint_record(
        shipment=shipment,
        kind=EventKind.DELIVERED,
        user=None,
        occurred_at=NOW,
    )

    assert run_due()[0] == 0
    assert sync_of(shipment).is_done


def test_an_exception_held_shipment_is_still_followed(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    ups = connect()
    [shipment] = followed(ups, due=NOW - timedelta(minutes=1))
    Shipment.objects.filter(pk=shipment.pk).update(status=ShipmentStatus.EXCEPTION)

    assert run_due()[0] == 1


def _queries(run: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as queries:
        run()
    return len(queries)


def test_the_beat_costs_the_same_queries_for_ten_or_fifty_shipments(
    run_due: Callable[..., tuple[int, Queued]],
) -> None:
    fedex = connect(TrackingProvider.FEDEX)
    followed(fedex, 10, due=NOW - timedelta(minutes=1))
    shipments_with(fedex, 10)  # first seen
    few = _queries(lambda: run_due(NOW + timedelta(hours=3)))

    followed(fedex, 40, due=NOW - timedelta(minutes=1))
    shipments_with(fedex, 40)
    many = _queries(lambda: run_due(NOW + timedelta(hours=6)))

    assert many == few
