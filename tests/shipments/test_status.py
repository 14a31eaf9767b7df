"""The status machine, transition by transition, then as properties of any log.

The table test reads TRANSITIONS and KIND_TARGET as the spec; the property tests
throw random event sequences (with out-of-order times) at `next_state` and, more
slowly, at the services, and check what must hold whatever the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipments.checkpoints import (
    OTHER_APP_KINDS,
    checkpoint_record,
    event_void,
    status_replay,
)
from shipments.models import Shipment, TrackingEvent
from shipments.status import (
    ALWAYS_ALLOWED,
    CHECKPOINT_KINDS,
    CLOSED,
    KIND_TARGET,
    MOVING,
    TRANSITIONS,
    EventKind,
    ShipmentStatus,
    State,
    TransitionRefused,
    initial_state,
    next_state,
)
from tests.factories import LocationFactory, dispatched_shipment

S = ShipmentStatus
K = EventKind

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def label(status: str) -> str:
    return str(S(status).label)


def state_at(status: str) -> State:
    """A realistic state for `status`, set at T0."""
    if status in MOVING:
        resume = status
    elif status in (S.EXCEPTION, S.DELIVERED, S.RETURNED):
        resume = S.IN_TRANSIT
    else:
        resume = S.CREATED
    return State(status=status, since=T0, resume=resume)


# --- the table ---------------------------------------------------------------


def test_the_table_covers_every_status_and_every_kind() -> None:
    assert set(TRANSITIONS) == set(S.values)
    assert all(set(targets) <= set(S.values) for targets in TRANSITIONS.values())
    assert set(KIND_TARGET) == set(K.values)
    assert {t for t in KIND_TARGET.values() if t is not None} <= set(S.values)
    assert set(CHECKPOINT_KINDS) <= set(K.values)


def test_a_closed_status_has_no_way_out() -> None:
    assert {S.DELIVERED, S.RETURNED, S.CANCELLED} == CLOSED
    for status in CLOSED:
        assert TRANSITIONS[status] == frozenset()


def test_only_a_ready_shipment_can_be_dispatched() -> None:
    assert [s for s, targets in TRANSITIONS.items() if S.DISPATCHED in targets] == [
        S.READY
    ]


PAIRS = [(status, kind) for status in S.values for kind in K.values]


@pytest.mark.parametrize(("status", "kind"), PAIRS, ids=[f"{s}+{k}" for s, k in PAIRS])
def test_each_status_takes_or_refuses_each_kind_as_the_table_says(
    status: str, kind: str
) -> None:
    before = state_at(status)
    target = KIND_TARGET[kind]
    if kind == K.CREATED:
        allowed = False  # a recorded shipment is never recorded again
    elif kind == K.EXCEPTION_RESOLVED:
        allowed = status == S.EXCEPTION
    elif target is None:
        allowed = status not in CLOSED or kind in ALWAYS_ALLOWED
    else:
        allowed = target in TRANSITIONS[status]

    if not allowed:
        with pytest.raises(TransitionRefused) as refused:
            next_state(before, kind=kind, occurred_at=LATER)
        message = str(refused.value)
        if kind == K.CREATED:
            assert "already been recorded" in message
        elif target is not None:
            assert (
                f"A shipment that is {label(status)} cannot become {label(target)}."
                == message
            )
        else:
            assert label(status) in message
        return

    after = next_state(before, kind=kind, occurred_at=LATER)
    if kind == K.EXCEPTION_RESOLVED:
        expected = State(status=before.resume, since=LATER, resume=before.resume)
    elif target is None:
        expected = before
    elif status == S.EXCEPTION and target in MOVING:
        # The exception holds the package; the scan only moves where it resumes.
        expected = State(status=S.EXCEPTION, since=T0, resume=target)
    else:
        resume = target if target in MOVING else before.resume
        expected = State(status=target, since=LATER, resume=resume)
    assert after == expected


@pytest.mark.parametrize(
    ("status", "kind", "becomes"),
    [
        (S.CREATED, K.CHECK_PASSED, S.READY),
        (S.CREATED, K.CHECK_FAILED, S.CREATED),
        (S.READY, K.CHECK_FAILED, S.CREATED),
        (S.READY, K.DISPATCHED, S.DISPATCHED),
        (S.READY, K.CANCELLED, S.CANCELLED),
        (S.DISPATCHED, K.PICKED_UP, S.IN_TRANSIT),
        (S.DISPATCHED, K.DELIVERED, S.DELIVERED),
        (S.IN_TRANSIT, K.OUT_FOR_DELIVERY, S.OUT_FOR_DELIVERY),
        (S.OUT_FOR_DELIVERY, K.DELIVERY_ATTEMPTED, S.IN_TRANSIT),
        (S.OUT_FOR_DELIVERY, K.AVAILABLE_FOR_PICKUP, S.AVAILABLE_FOR_PICKUP),
        (S.AVAILABLE_FOR_PICKUP, K.RETURNED, S.RETURNED),
        (S.IN_TRANSIT, K.EXCEPTION_REPORTED, S.EXCEPTION),
        (S.EXCEPTION, K.EXCEPTION_RESOLVED, S.IN_TRANSIT),
        (S.EXCEPTION, K.DELIVERED, S.DELIVERED),
        (S.DELIVERED, K.NOTE, S.DELIVERED),
        (S.CANCELLED, K.CORRECTION, S.CANCELLED),
    ],
)
def test_it_allows_the_moves_of_the_procedure(
    status: str, kind: str, becomes: str
) -> None:
    assert next_state(state_at(status), kind=kind, occurred_at=LATER).status == becomes


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (S.CREATED, K.DISPATCHED, "Created cannot become Dispatched"),
        (S.IN_TRANSIT, K.DISPATCHED, "In transit cannot become Dispatched"),
        (S.EXCEPTION, K.DISPATCHED, "Exception cannot become Dispatched"),
        (S.DELIVERED, K.OUT_FOR_DELIVERY, "Delivered cannot become Out for delivery"),
        (S.DISPATCHED, K.CANCELLED, "Dispatched cannot become Cancelled"),
        (S.READY, K.EXCEPTION_REPORTED, "Ready for dispatch cannot become Exception"),
        (S.CANCELLED, K.PICKED_UP, "Cancelled cannot become In transit"),
        (S.RETURNED, K.ETA_CHANGED, "Returned to sender; its record is closed"),
        (S.IN_TRANSIT, K.EXCEPTION_RESOLVED, "no open exception"),
    ],
)
def test_it_refuses_moves_that_make_no_sense(
    status: str, kind: str, message: str
) -> None:
    with pytest.raises(TransitionRefused, match=message):
        next_state(state_at(status), kind=kind, occurred_at=LATER)


# --- time order --------------------------------------------------------------


def test_a_late_movement_scan_is_timeline_only() -> None:
    before = state_at(S.OUT_FOR_DELIVERY)
    after = next_state(before, kind=K.ARRIVED_HUB, occurred_at=T0 - timedelta(hours=2))
    assert after == before


def test_a_late_scan_after_delivery_is_timeline_only() -> None:
    before = state_at(S.DELIVERED)
    after = next_state(before, kind=K.IN_TRANSIT_SCAN, occurred_at=T0 - timedelta(1))
    assert after == before


def test_it_refuses_a_delivery_dated_before_the_current_status() -> None:
    with pytest.raises(
        TransitionRefused,
        match="“Delivered” cannot be dated before the shipment became Out for",
    ):
        next_state(
            state_at(S.OUT_FOR_DELIVERY),
            kind=K.DELIVERED,
            occurred_at=T0 - timedelta(minutes=1),
        )


def test_it_refuses_a_resolution_dated_before_the_exception() -> None:
    with pytest.raises(TransitionRefused, match="before the shipment became Exception"):
        next_state(
            state_at(S.EXCEPTION),
            kind=K.EXCEPTION_RESOLVED,
            occurred_at=T0 - timedelta(minutes=1),
        )


def test_an_event_at_the_same_instant_is_not_late() -> None:
    after = next_state(state_at(S.IN_TRANSIT), kind=K.DELIVERED, occurred_at=T0)
    assert after.status == S.DELIVERED


def test_the_resolution_returns_to_where_the_scans_left_the_package() -> None:
    state = state_at(S.IN_TRANSIT)
    state = next_state(state, kind=K.EXCEPTION_REPORTED, occurred_at=LATER)
    state = next_state(
        state, kind=K.OUT_FOR_DELIVERY, occurred_at=LATER + timedelta(hours=1)
    )
    assert (state.status, state.resume) == (S.EXCEPTION, S.OUT_FOR_DELIVERY)
    state = next_state(
        state, kind=K.EXCEPTION_RESOLVED, occurred_at=LATER + timedelta(hours=2)
    )
    assert state == State(
        status=S.OUT_FOR_DELIVERY,
        since=LATER + timedelta(hours=2),
        resume=S.OUT_FOR_DELIVERY,
    )


def test_it_records_a_shipment_once() -> None:
    state = next_state(initial_state(), kind=K.CREATED, occurred_at=T0)
    assert state == State(status=S.CREATED, since=T0, resume=S.CREATED)
    with pytest.raises(TransitionRefused, match="already been recorded"):
        next_state(state, kind=K.CREATED, occurred_at=LATER)


# --- properties of any log ---------------------------------------------------

# The kinds that move the status, listed twice so that they come up more often.
MOVERS = [k for k, target in KIND_TARGET.items() if target is not None] + [
    K.EXCEPTION_RESOLVED
]
# (kind, minutes after the previous event): negative steps make late events.
event_steps = st.lists(
    st.tuples(
        st.sampled_from(MOVERS) | st.sampled_from(K.values),
        st.integers(min_value=-180, max_value=240),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(start=st.sampled_from(S.values), steps=event_steps)
def test_any_sequence_keeps_the_machine_invariants(
    start: str, steps: list[tuple[str, int]]
) -> None:
    state = state_at(start)
    clock = T0
    dispatches_left = 1 if start in (S.CREATED, S.READY) else 0
    moved_on = start not in (S.CREATED, S.READY, S.DISPATCHED)
    for kind, minutes in steps:
        clock += timedelta(minutes=minutes)
        before = state
        try:
            state = next_state(before, kind=kind, occurred_at=clock)
        except TransitionRefused:
            continue  # refused events are not logged

        if kind == K.DISPATCHED:
            dispatches_left -= 1
            assert dispatches_left >= 0, "dispatched twice"
        if before.status in CLOSED:
            assert state.status == before.status
        if before.since is not None and clock < before.since:
            assert state == before, "a late event changed the state"
        if state.status != before.status:
            resolution = kind == K.EXCEPTION_RESOLVED and before.status == S.EXCEPTION
            assert state.status in TRANSITIONS[before.status] or (
                resolution and state.status in MOVING
            ), f"{before.status} -> {state.status} is not in the table"
        # A state has a `since` once it has seen an event: None >= x fails loudly.
        assert before.since is None or state.since >= before.since  # type: ignore[operator]

        if state.status in MOVING:
            assert state.resume == state.status
        if state.status == S.EXCEPTION:
            assert state.resume in MOVING
        # Once the package has gone past dispatch it never goes back to it.
        moved_on = moved_on or bool(
            {state.status, state.resume} & (MOVING - {S.DISPATCHED})
        )
        if moved_on:
            assert S.DISPATCHED not in (state.status, state.resume)


# --- the same, through the services and the database -------------------------

DB_KINDS = sorted(set(CHECKPOINT_KINDS) | set(OTHER_APP_KINDS))


@dataclass(frozen=True)
class Scan:
    kind: str
    seconds: int  # after dispatch; negative is a late scan
    location: int | None


@dataclass(frozen=True)
class Void:
    pick: int  # which of the voidable events


db_steps = st.lists(
    st.one_of(
        st.builds(
            Scan,
            kind=st.sampled_from(DB_KINDS),
            seconds=st.integers(min_value=-120, max_value=240),
            location=st.none() | st.integers(min_value=0, max_value=1),
        ),
        st.builds(Void, pick=st.integers(min_value=0, max_value=50)),
    ),
    max_size=12,
)


def derived(shipment: Shipment) -> tuple[object, ...]:
    return (
        shipment.status,
        shipment.resume_status,
        shipment.status_changed_at,
        shipment.delivered_at,
        shipment.last_event_at,
        shipment.current_location_id,
    )


def replayed(shipment: Shipment) -> tuple[object, ...]:
    """What `status_replay` derives from the log, without keeping its write."""
    with transaction.atomic():
        copy = Shipment.objects.get(pk=shipment.pk)
        status_replay(copy)
        transaction.set_rollback(True)
    return derived(copy)


def folded(shipment: Shipment) -> str:
    """The status by folding `next_state` over the live log in recorded order."""
    state = initial_state()
    for event in shipment.events.filter(voided_by__isnull=True).order_by("id"):
        if event.kind == K.CORRECTION:
            continue
        try:
            state = next_state(state, kind=event.kind, occurred_at=event.occurred_at)
        except TransitionRefused:
            continue
    return state.status


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(steps=db_steps)
def test_the_stored_status_is_always_the_replay_of_the_log(
    steps: list[Scan | Void],
) -> None:
    hubs = [LocationFactory(code="prop-a"), LocationFactory(code="prop-b")]
    shipment = dispatched_shipment()
    start = shipment.status_changed_at
    for step in steps:
        before = Shipment.objects.get(pk=shipment.pk)
        count = TrackingEvent.objects.filter(shipment=shipment).count()
        try:
            if isinstance(step, Scan):
                checkpoint_record(
                    shipment=shipment,
                    kind=step.kind,
                    user=None,
                    occurred_at=start + timedelta(seconds=step.seconds),
                    location=None if step.location is None else hubs[step.location],
                )
            else:
                voidable = list(
                    shipment.events.exclude(kind__in=[K.CREATED, K.CORRECTION])
                    .filter(voided_by__isnull=True)
                    .order_by("id")
                )
                if not voidable:
                    continue
                event_void(
                    event=voidable[step.pick % len(voidable)],
                    user=None,  # type: ignore[arg-type]
                    reason="Scanned the wrong parcel",
                )
        except TransitionRefused:
            after = Shipment.objects.get(pk=shipment.pk)
            assert derived(after) == derived(before)
            assert after.version == before.version
            assert TrackingEvent.objects.filter(shipment=shipment).count() == count
            continue
        stored = Shipment.objects.get(pk=shipment.pk)
        assert stored.version == before.version + 1
        assert stored.status == folded(stored)
        assert derived(stored) == replayed(stored)
