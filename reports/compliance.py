"""Procedure compliance: were the steps the procedure asks for logged, and in
time? Plain figures for a period and filters, as in `reports.metrics`; each
definition is the docstring of the function that computes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Q

from exceptions_mgmt.models import Cause, DeliveryException, ExceptionStatus
from reports.metrics import Delivered, belongs, rate, standing
from reports.periods import Filters, Period
from shipments.models import Location, TrackingEvent
from shipments.status import CHECKPOINT_KINDS, EventKind

# No "late entry" notion exists elsewhere in the app (a "late scan" in
# shipments.status is about order, not delay): the procedure asks for events
# to be logged as they happen, and two hours leaves room for a shift's batch.
LATE_ENTRY_HOURS = 2
HUB_KINDS = (EventKind.ARRIVED_HUB, EventKind.DEPARTED_HUB)
# The checkpoints staff and carrier feeds log; a note is not a checkpoint.
LOGGED_KINDS = tuple(k for k in CHECKPOINT_KINDS if k != EventKind.NOTE)


def checkpoints(
    period: Period, filters: Filters, rows: Sequence[Delivered]
) -> dict[str, Any]:
    """Key checkpoints: of the shipments delivered in the period (those of
    Delivery performance), the share with a "picked up" event, with at least
    one hub scan (arrived at or departed a hub, at a location of kind Hub), with
    an "out for delivery" event, and with all three. Events voided by a
    correction do not count; an event counts whenever it happened."""
    start, end = period.bounds()
    delivered = len(rows)
    # Per shipment, whether it has each step; then the shipments counted,
    # all in the database (a month at 1M shipments is ~300,000 such events).
    hub = Q(kind__in=HUB_KINDS, location__kind=Location.Kind.HUB)
    pickup = Q(kind=EventKind.PICKED_UP)
    out = Q(kind=EventKind.OUT_FOR_DELIVERY)
    per_shipment = (
        TrackingEvent.objects.filter(
            standing(),
            belongs(filters),
            shipment__delivered_at__gte=start,
            shipment__delivered_at__lt=end,
            kind__in=[EventKind.PICKED_UP, EventKind.OUT_FOR_DELIVERY, *HUB_KINDS],
        )
        .order_by()
        .values("shipment_id")
        .annotate(
            has_pickup=Count("pk", filter=pickup),
            has_hub=Count("pk", filter=hub),
            has_out=Count("pk", filter=out),
        )
    )
    counts = per_shipment.aggregate(
        pickup=Count("shipment_id", filter=Q(has_pickup__gt=0)),
        hub_scan=Count("shipment_id", filter=Q(has_hub__gt=0)),
        out_for_delivery=Count("shipment_id", filter=Q(has_out__gt=0)),
        all_three=Count(
            "shipment_id", filter=Q(has_pickup__gt=0, has_hub__gt=0, has_out__gt=0)
        ),
    )
    return {
        "delivered": delivered,
        **counts,
        **{f"{name}_rate": rate(n, delivered) for name, n in counts.items()},
    }


def stalls(period: Period, filters: Filters) -> int:
    """Stalls detected: exceptions the detection sweep raised in the period for
    a package in transit with no scan for TRACKSOP_STALL_HOURS (cause "No scan
    for too long"), void ones left out."""
    start, end = period.bounds()
    return (
        DeliveryException.objects.filter(
            belongs(filters),
            cause=Cause.NO_SCAN,
            reported_at__gte=start,
            reported_at__lt=end,
        )
        .exclude(status=ExceptionStatus.VOID)
        .count()
    )


def late_entries(period: Period, filters: Filters) -> dict[str, Any]:
    """Events logged late: of the checkpoint events (pickup, hub, in-transit,
    out-for-delivery, attempt, pickup point, delivered, returned; notes left
    out) that happened in the period, those recorded more than
    LATE_ENTRY_HOURS (2) hours after the time they happened, and their share.
    Events voided by a correction do not count."""
    start, end = period.bounds()
    events = TrackingEvent.objects.filter(
        standing(),
        belongs(filters),
        kind__in=LOGGED_KINDS,
        occurred_at__gte=start,
        occurred_at__lt=end,
    )
    late_entry = Q(recorded_at__gt=F("occurred_at") + timedelta(hours=LATE_ENTRY_HOURS))
    found = events.aggregate(total=Count("pk"), late=Count("pk", filter=late_entry))
    total, late = found["total"], found["late"]
    return {"events": total, "late": late, "late_rate": rate(late, total)}


def compliance(
    period: Period, filters: Filters, rows: Sequence[Delivered]
) -> dict[str, Any]:
    """Procedure compliance: key checkpoints of the deliveries, stalls detected
    and events logged late (see each)."""
    return {
        **checkpoints(period, filters, rows),
        "stalls": stalls(period, filters),
        **late_entries(period, filters),
    }
