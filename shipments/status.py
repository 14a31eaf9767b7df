"""The shipment status machine: the one table of allowed transitions.

Status is derived from the event log: every event kind maps to the status it
moves the shipment to (or to none), and `next_status` decides whether that move
is allowed. `checkpoints.checkpoint_record` uses it for each new event
and `checkpoints.status_replay` folds the whole log with it after a correction,
so the stored status and the log can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from django.db import models
from django.utils.translation import gettext_lazy as _

from tracksop.errors import Refused


class ShipmentStatus(models.TextChoices):
    CREATED = "created", _("Created")
    READY = "ready", _("Ready for dispatch")
    DISPATCHED = "dispatched", _("Dispatched")
    IN_TRANSIT = "in_transit", _("In transit")
    OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
    AVAILABLE_FOR_PICKUP = "available_for_pickup", _("Available for pickup")
    EXCEPTION = "exception", _("Exception")
    DELIVERED = "delivered", _("Delivered")
    RETURNED = "returned", _("Returned to sender")
    CANCELLED = "cancelled", _("Cancelled")


class EventKind(models.TextChoices):
    CREATED = "created", _("Shipment recorded")
    CHECK_PASSED = "check_passed", _("Quality and quantity check passed")
    CHECK_FAILED = "check_failed", _("Quality and quantity check failed")
    DISPATCHED = "dispatched", _("Dispatched")
    PICKED_UP = "picked_up", _("Picked up")
    ARRIVED_HUB = "arrived_hub", _("Arrived at hub")
    DEPARTED_HUB = "departed_hub", _("Departed hub")
    IN_TRANSIT_SCAN = "in_transit_scan", _("In transit scan")
    OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
    DELIVERY_ATTEMPTED = "delivery_attempted", _("Delivery attempted")
    AVAILABLE_FOR_PICKUP = "available_for_pickup", _("Available for pickup")
    DELIVERED = "delivered", _("Delivered")
    RETURNED = "returned", _("Returned to sender")
    EXCEPTION_REPORTED = "exception_reported", _("Exception reported")
    EXCEPTION_RESOLVED = "exception_resolved", _("Exception resolved")
    EXCEPTION_UPDATED = "exception_updated", _("Exception updated")
    ETA_CHANGED = "eta_changed", _("Estimated delivery changed")
    NOTE = "note", _("Note")
    CANCELLED = "cancelled", _("Cancelled")
    DETAILS_CHANGED = "details_changed", _("Details corrected")
    CORRECTION = "correction", _("Correction (voids an earlier event)")


S = ShipmentStatus
K = EventKind

CLOSED = frozenset({S.DELIVERED, S.RETURNED, S.CANCELLED})
# Sorted so that queries (and the partial index built from it) match exactly.
OPEN = tuple(sorted(set(ShipmentStatus.values) - CLOSED))
MOVING = frozenset(
    {S.DISPATCHED, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.AVAILABLE_FOR_PICKUP}
)

# Every allowed status change. A status missing from a set cannot follow the key.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.CREATED: frozenset({S.CREATED, S.READY, S.CANCELLED}),
    S.READY: frozenset({S.CREATED, S.DISPATCHED, S.CANCELLED}),
    S.DISPATCHED: MOVING - {S.DISPATCHED} | {S.EXCEPTION, S.DELIVERED, S.RETURNED},
    S.IN_TRANSIT: MOVING - {S.DISPATCHED} | {S.EXCEPTION, S.DELIVERED, S.RETURNED},
    S.OUT_FOR_DELIVERY: MOVING - {S.DISPATCHED}
    | {S.EXCEPTION, S.DELIVERED, S.RETURNED},
    S.AVAILABLE_FOR_PICKUP: MOVING - {S.DISPATCHED}
    | {S.EXCEPTION, S.DELIVERED, S.RETURNED},
    # An open exception holds the package: movement scans are logged and
    # remembered, and its resolution returns it to where the scans left it.
    # Dispatch happens once: the resolution may return to DISPATCHED, a new
    # DISPATCHED event may not.
    S.EXCEPTION: MOVING - {S.DISPATCHED} | {S.EXCEPTION, S.DELIVERED, S.RETURNED},
    S.DELIVERED: frozenset(),
    S.RETURNED: frozenset(),
    S.CANCELLED: frozenset(),
}

# The status each kind of event moves the shipment to; None leaves it alone.
KIND_TARGET: dict[str, str | None] = {
    K.CREATED: S.CREATED,
    K.CHECK_PASSED: S.READY,
    K.CHECK_FAILED: S.CREATED,
    K.DISPATCHED: S.DISPATCHED,
    K.PICKED_UP: S.IN_TRANSIT,
    K.ARRIVED_HUB: S.IN_TRANSIT,
    K.DEPARTED_HUB: S.IN_TRANSIT,
    K.IN_TRANSIT_SCAN: S.IN_TRANSIT,
    K.OUT_FOR_DELIVERY: S.OUT_FOR_DELIVERY,
    K.DELIVERY_ATTEMPTED: S.IN_TRANSIT,
    K.AVAILABLE_FOR_PICKUP: S.AVAILABLE_FOR_PICKUP,
    K.DELIVERED: S.DELIVERED,
    K.RETURNED: S.RETURNED,
    K.EXCEPTION_REPORTED: S.EXCEPTION,
    K.EXCEPTION_RESOLVED: None,  # resolution: see `resolved_status`
    K.EXCEPTION_UPDATED: None,
    K.ETA_CHANGED: None,
    K.NOTE: None,
    K.CANCELLED: S.CANCELLED,
    K.DETAILS_CHANGED: None,
    K.CORRECTION: None,
}

# Kinds staff pick on the checkpoint and bulk-scan forms.
CHECKPOINT_KINDS = (
    K.PICKED_UP,
    K.ARRIVED_HUB,
    K.DEPARTED_HUB,
    K.IN_TRANSIT_SCAN,
    K.OUT_FOR_DELIVERY,
    K.DELIVERY_ATTEMPTED,
    K.AVAILABLE_FOR_PICKUP,
    K.DELIVERED,
    K.RETURNED,
    K.NOTE,
)
# Kinds that may still be logged on a closed record.
ALWAYS_ALLOWED = frozenset({K.NOTE, K.CORRECTION})


class TransitionRefused(Refused):
    """A move the status machine forbids; the message names both states."""


@dataclass(frozen=True)
class State:
    """What the fold over the log carries: the status, the time of the event
    that set it, and the last movement status (where an exception returns to)."""

    status: str
    since: datetime | None
    resume: str


def initial_state() -> State:
    return State(status=S.CREATED, since=None, resume=S.CREATED)


def _label(status: str) -> str:
    return str(ShipmentStatus(status).label)


def _refuse_late(state: State, kind: str) -> NoReturn:
    raise TransitionRefused(
        f"“{EventKind(kind).label}” cannot be dated before the shipment "
        f"became {_label(state.status)}."
    )


def next_state(state: State, *, kind: str, occurred_at: datetime) -> State:
    """Apply one event; raise TransitionRefused if the machine forbids it.

    An event older than the one that set the current status is a late scan:
    it joins the timeline but never moves the status backwards.
    """
    target = KIND_TARGET[kind]
    if kind == K.CREATED:
        if state.since is not None:
            raise TransitionRefused("The shipment has already been recorded.")
        return State(status=S.CREATED, since=occurred_at, resume=S.CREATED)
    if kind == K.EXCEPTION_RESOLVED:
        if state.status != S.EXCEPTION:
            raise TransitionRefused(
                f"There is no open exception to resolve: the shipment is "
                f"{_label(state.status)}."
            )
        if state.since is not None and occurred_at < state.since:
            _refuse_late(state, kind)
        return State(status=state.resume, since=occurred_at, resume=state.resume)
    if target is None:
        if state.status in CLOSED and kind not in ALWAYS_ALLOWED:
            raise TransitionRefused(
                f"The shipment is {_label(state.status)}; its record is closed "
                f"and cannot take “{EventKind(kind).label}”."
            )
        return state
    is_late = state.since is not None and occurred_at < state.since
    if is_late and target in MOVING - {S.DISPATCHED} and state.resume in MOVING:
        return state  # a late carrier scan: timeline only
    if is_late:
        _refuse_late(state, kind)
    if target not in TRANSITIONS[state.status]:
        raise TransitionRefused(
            f"A shipment that is {_label(state.status)} cannot become {_label(target)}."
        )
    if state.status == S.EXCEPTION and target in MOVING:
        return State(status=S.EXCEPTION, since=state.since, resume=target)
    resume = target if target in MOVING else state.resume
    return State(status=target, since=occurred_at, resume=resume)
