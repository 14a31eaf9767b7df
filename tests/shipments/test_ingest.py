"""Batch ingest of checkpoints: the bulk path against the one-by-one path.

`checkpoints_ingest` applies a whole batch in memory and writes it in a few
statements; `checkpoints_ingest_one_by_one` goes through `checkpoint_record`
per item. Given the same shipments and the same items, both must leave the
same statuses, timelines, shipment fields, outbox rows and exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt.models import Cause, DeliveryException, ExceptionChange
from notifications.models import Notification
from shipments.checkpoints import checkpoint_record
from shipments.ingest import (
    INGEST_LIMIT,
    CheckpointIn,
    IngestResult,
    checkpoints_ingest,
    checkpoints_ingest_one_by_one,
)
from shipments.models import Shipment, TrackingEvent
from shipments.public import tracking_page
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    LocationFactory,
    OwnFleetFactory,
    ShipmentFactory,
    dispatched_shipment,
)
from tests.helpers import race

S = ShipmentStatus
K = EventKind
Ingest = Callable[..., list[IngestResult]]
BOTH = pytest.mark.parametrize(
    "ingest", [checkpoints_ingest, checkpoints_ingest_one_by_one], ids=["bulk", "one"]
)


def _world() -> list[Shipment]:
    """Five shipments, as the scenario needs them: three dispatched, one
    dispatched with an open exception, one only recorded."""
    fleet = OwnFleetFactory()
    for code in ("hub-a", "hub-b", "hub-c"):
        LocationFactory(code=code)
    shipments = [dispatched_shipment(carrier=fleet) for _ in range(4)]
    exception_reporting.exception_report(
        shipment=shipments[1],
        user=None,
        cause=Cause.WEATHER,
        expected_resolution=timezone.now() + timedelta(days=1),
    )
    shipments.append(ShipmentFactory())
    return shipments


def _scenario(shipments: Sequence[Shipment], now: datetime) -> list[list[CheckpointIn]]:
    a, b, c, d, e = (s.shipment_id for s in shipments)
    number_c = shipments[2].tracking_number or ""

    def at(hours: float) -> datetime:
        return now - timedelta(hours=hours)

    first = [
        # a: a normal day, a late scan between, delivered, then more scans.
        CheckpointIn(a, K.ARRIVED_HUB, at(5), "hub-a", external_id="a-1"),
        CheckpointIn(a, K.DEPARTED_HUB, at(4), "hub-a", external_id="a-2"),
        CheckpointIn(a, K.OUT_FOR_DELIVERY, at(2), "hub-b", external_id="a-3"),
        CheckpointIn(a, K.ARRIVED_HUB, at(3), "hub-c", notes="late scan"),
        # Refused items in the middle: nothing else is stopped.
        CheckpointIn("SH-NOBODY", K.ARRIVED_HUB, at(1), "hub-a"),
        CheckpointIn(a, "teleported", at(1)),
        CheckpointIn(a, K.ARRIVED_HUB, at(1), "hub-nowhere"),
        CheckpointIn(a, K.ARRIVED_HUB, now + timedelta(hours=2), "hub-a"),
        CheckpointIn(a, K.ARRIVED_HUB, now - timedelta(days=60), "hub-a"),
        CheckpointIn(a, K.NOTE, at(1), notes="bad\x00byte"),
        CheckpointIn(a, K.NOTE, at(1), notes="x" * 5000),
        CheckpointIn(a, K.NOTE, at(1), external_id="e" * 101),
        CheckpointIn(a, K.NOTE, at(1), data={"v": float("nan")}),
        CheckpointIn("SH-\x00", K.NOTE, at(1)),
        CheckpointIn(a, K.DELIVERED, at(1), "hub-b", external_id="a-4"),
        CheckpointIn(a, K.ARRIVED_HUB, at(0.5), "hub-a"),  # after delivery
        CheckpointIn(a, K.NOTE, at(0.4), notes="left with neighbour"),
        # b: delivered while an exception is open closes it.
        CheckpointIn(b, K.DELIVERED, at(1), "hub-b", external_id="b-1"),
        # c, by tracking number: one scan, then an older one (late).
        CheckpointIn(number_c.lower(), K.ARRIVED_HUB, at(2), "hub-a"),
        CheckpointIn(c, K.IN_TRANSIT_SCAN, at(6), "hub-c"),
        # d: the same carrier event twice in one batch.
        CheckpointIn(d, K.PICKED_UP, at(3), "hub-a", external_id="d-1"),
        CheckpointIn(d, K.PICKED_UP, at(3), "hub-a", external_id="d-1"),
        CheckpointIn(d, K.OUT_FOR_DELIVERY, at(1), external_id="d-2"),
        # e is not dispatched: the machine refuses a pickup.
        CheckpointIn(e, K.PICKED_UP, at(1), "hub-a"),
    ]
    second = [
        # Re-delivered carrier events and more scans, later the same day.
        CheckpointIn(d, K.PICKED_UP, at(3), "hub-a", external_id="d-1"),
        CheckpointIn(a, K.DELIVERED, at(1), "hub-b", external_id="a-4"),
        CheckpointIn(c, K.ARRIVED_HUB, at(4), "hub-b", external_id="c-1"),
        CheckpointIn(c, K.OUT_FOR_DELIVERY, at(0.5), "hub-c", external_id="c-2"),
        CheckpointIn(d, K.DELIVERED, at(0.2), "hub-c", external_id="d-3"),
    ]
    return [first, second]


def _snapshot(
    shipments: Sequence[Shipment], results: list[list[IngestResult]]
) -> tuple[Any, ...]:
    """Everything both paths must agree on, with ids made comparable: a
    shipment by its place in the world, an event by its place in the log."""
    index = {s.pk: n for n, s in enumerate(shipments)}
    position = {
        pk: (index[shipment], n)
        for shipment in index
        for n, pk in enumerate(
            TrackingEvent.objects.filter(shipment_id=shipment)
            .order_by("id")
            .values_list("pk", flat=True)
        )
    }
    codes = {s.shipment_id: n for n, s in enumerate(shipments)}
    outcome = [
        [
            (
                r.status,
                codes.get(r.shipment_id),
                position.get(r.event_id or 0),
                r.reason,
                dict(r.errors),
            )
            for r in batch
        ]
        for batch in results
    ]
    state = []
    for shipment in Shipment.objects.filter(pk__in=index).order_by("pk"):
        state.append(
            (
                shipment.status,
                shipment.status_changed_at,
                shipment.resume_status,
                shipment.delivered_at,
                shipment.last_event_at,
                shipment.current_location_id,
                shipment.origin_id,
                shipment.version,
            )
        )
    timelines = [
        [
            (
                *row[:-1],
                {
                    k: v
                    for k, v in row[-1].items()
                    if k not in ("tracking_number", "exception")
                },
            )
            for row in TrackingEvent.objects.filter(shipment=s).values_list(
                "kind",
                "occurred_at",
                "location__code",
                "notes",
                "external_id",
                "status_after",
                "source",
                "integration",
                "data",
            )
        ]
        for s in shipments
    ]
    outbox = sorted(
        (
            index[n.shipment_id],  # type: ignore[index]  # filtered by shipment below
            position.get(n.event_id or 0),
            n.kind,
            n.channel,
            n.audience,
            n.status,
            n.last_error,
            bool(n.mime),
        )
        for n in Notification.objects.filter(shipment_id__in=index)
    )
    exceptions = [
        (index[x.shipment_id], x.status, x.resolution_notes)
        for x in DeliveryException.objects.filter(shipment_id__in=index).order_by("pk")
    ]
    changes = list(
        ExceptionChange.objects.filter(exception__shipment_id__in=index)
        .order_by("pk")
        .values_list("action", "data")
    )
    return outcome, state, timelines, outbox, exceptions, changes


def _run(ingest: Ingest, start: datetime) -> tuple[Any, ...]:
    with time_machine.travel(start, tick=False) as clock:
        shipments = _world()
        clock.move_to(start + timedelta(days=1))
        first, second = _scenario(shipments, timezone.now())
        results = [ingest(first, integration="scanner-7")]
        clock.move_to(start + timedelta(days=1, minutes=1))
        results.append(ingest(second, integration="scanner-7"))
        return _snapshot(shipments, results)


@pytest.mark.django_db
def test_the_batch_leaves_what_one_by_one_leaves() -> None:
    start = timezone.now().replace(microsecond=0) - timedelta(days=2)
    one = _run(checkpoints_ingest_one_by_one, start)
    bulk = _run(checkpoints_ingest, start)
    names = ("results", "shipments", "timelines", "outbox", "exceptions", "changes")
    for name, expected, got in zip(names, one, bulk, strict=True):
        assert got == expected, name
    # And the scenario says what it should (so agreeing is not agreeing on junk).
    outcome, state, _, outbox, exceptions, _ = bulk
    assert [r[0] for r in outcome[0]].count("created") == 11
    assert outcome[0][21][0] == "duplicate"  # d-1 again in the same batch
    assert outcome[0][21][2] == outcome[0][20][2]
    assert [r[0] for r in outcome[1]] == ["duplicate", "duplicate", *["created"] * 3]
    assert state[0][0] == S.DELIVERED
    assert state[1][0] == S.DELIVERED
    assert exceptions[0][1] == "resolved"
    assert outbox, "milestones write outbox rows"


@pytest.mark.django_db
@BOTH
def test_each_refusal_says_why_at_its_field(ingest: Ingest) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipments = _world()
        clock.shift(timedelta(days=1))
        first, _ = _scenario(shipments, timezone.now())
        results = ingest(first)
    refused = {n: r for n, r in enumerate(results) if r.status == "refused"}
    assert set(refused) == {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 23}
    assert list(refused[4].errors) == ["reference"]
    assert list(refused[5].errors) == ["kind"]
    assert "hub-nowhere" in refused[6].errors["location"][0]
    assert "future" in refused[7].errors["occurred_at"][0]
    assert "before the shipment existed" in refused[8].reason
    assert "NUL" in refused[9].errors["notes"][0]
    assert "2,000 characters" in refused[10].errors["notes"][0]
    assert "100 characters" in refused[11].errors["external_id"][0]
    assert "NaN" in refused[12].errors["data"][0]
    assert "NUL" in refused[13].errors["reference"][0]
    assert "Delivered cannot become" in refused[15].reason
    assert not refused[15].errors
    assert "Created cannot become In transit" in refused[23].reason


@pytest.mark.django_db
@BOTH
def test_more_than_the_limit_is_refused_as_a_whole(ingest: Ingest) -> None:
    shipment = dispatched_shipment()
    items = [
        CheckpointIn(shipment.shipment_id, K.NOTE, timezone.now(), notes=str(n))
        for n in range(INGEST_LIMIT + 1)
    ]
    with pytest.raises(ValidationError, match="at most 1000"):
        ingest(items)
    assert not shipment.events.filter(kind=K.NOTE).exists()


def _day(shipments: Sequence[Shipment], now: datetime) -> list[CheckpointIn]:
    """Five located scans per shipment, ending in delivery."""
    kinds = [K.PICKED_UP, K.ARRIVED_HUB, K.DEPARTED_HUB, K.OUT_FOR_DELIVERY]
    items = []
    for n, s in enumerate(shipments):
        for step, kind in enumerate([*kinds, K.DELIVERED]):
            items.append(
                CheckpointIn(
                    s.tracking_number or "",
                    kind,
                    now + timedelta(seconds=30 * step),
                    "hub-a",
                    external_id=f"{n}-{step}",
                )
            )
    return items


@pytest.mark.django_db
def test_a_batch_costs_the_same_queries_at_10_and_500_items(
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    LocationFactory(code="hub-a")
    fleet = OwnFleetFactory()
    shipments = [dispatched_shipment(carrier=fleet) for _ in range(102)]
    now = timezone.now()
    # The bound: references (2), locations, the savepoint and its release,
    # locks, known ids, the insert, the update, the outbox (3 reads, an
    # insert, the emails), the webhook endpoints (none here), the exceptions
    # to close.
    with django_assert_max_num_queries(16):
        small = checkpoints_ingest(_day(shipments[:2], now))
    with django_assert_max_num_queries(16):
        large = checkpoints_ingest(_day(shipments[2:], now))
    assert [r.status for r in small + large] == ["created"] * 510
    assert Shipment.objects.filter(status=S.DELIVERED).count() == 102
    # Each shipment was told of every milestone, once.
    assert Notification.objects.filter(kind="delivered").count() == 102 * 2


@pytest.mark.django_db(transaction=True)
def test_two_batches_over_the_same_shipments_at_once() -> None:
    LocationFactory(code="hub-a")
    fleet = OwnFleetFactory()
    shipments = [dispatched_shipment(carrier=fleet) for _ in range(20)]
    items = _day(shipments, timezone.now())
    # The same carrier events, in opposite orders: a lock taken per item in
    # the order given would deadlock; the batch locks in primary-key order.
    outcomes = race(
        lambda: checkpoints_ingest(items),
        lambda: checkpoints_ingest(items[::-1]),
    )
    assert all(isinstance(o, list) for o in outcomes), outcomes
    first, second = outcomes[0], outcomes[1][::-1]
    for mine, theirs in zip(first, second, strict=True):
        assert {mine.status, theirs.status} <= {"created", "duplicate"}
        assert mine.event_id == theirs.event_id
    assert TrackingEvent.objects.exclude(external_id="").count() == len(items)
    statuses = set(Shipment.objects.values_list("status", flat=True))
    assert statuses == {S.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_a_refused_batch_item_leaves_a_concurrent_single_scan_alone() -> None:
    shipment = dispatched_shipment()
    now = timezone.now()
    outcomes = race(
        lambda: checkpoints_ingest(
            [
                CheckpointIn(shipment.shipment_id, K.ARRIVED_HUB, now, "nowhere"),
                CheckpointIn(shipment.shipment_id, K.PICKED_UP, now, external_id="p"),
            ]
        ),
        lambda: checkpoint_record(
            shipment=shipment.pk,
            kind=K.PICKED_UP,
            user=None,
            occurred_at=now,
            external_id="p",
        ),
    )
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert shipment.events.filter(external_id="p").count() == 1
    assert outcomes[0][0].status == "refused"
    assert outcomes[0][1].event_id == outcomes[1].pk


@pytest.mark.django_db
def test_the_public_pages_of_a_batch_show_its_scans(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    fleet = OwnFleetFactory()
    shipments = [dispatched_shipment(carrier=fleet) for _ in range(2)]
    before = {
        s.pk: tracking_page(token=s.public_token, language="en") for s in shipments
    }
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        checkpoints_ingest(
            [CheckpointIn(s.shipment_id, K.DELIVERED, now) for s in shipments]
        )
    for s in shipments:
        page = tracking_page(token=s.public_token, language="en")
        assert page is not None
        assert page.etag != before[s.pk].etag  # type: ignore[union-attr]
        assert "Delivered" in page.body
