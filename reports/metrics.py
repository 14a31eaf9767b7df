"""Report metrics: plain data for a period and filters. No formatting here:
the templates format (units: count, pct 0-100, per_100, hours, days,
rating, text).

The database selects and counts the period's rows; durations and percentiles
are taken from the few columns each metric reads. Every definition is the
docstring of the function that computes it, and `reports.sections.definitions()`
hands the same text to the report's appendix (and README.md repeats it).

The shape `report_data` returns (JSON):
  version, period {kind,start,end}, filters {carrier,hub}, generated_at,
  min_cell, headline [item], changed_most [{label,text}],
  sections [{key,title,tables [{key,title,columns [{key,label,unit}],
  rows [dict]}], charts [{key,title,type,unit,labels,series [{name,values}]}]}],
  definitions [{term,text}].
  An item: key,label,value,unit,n,too_few,previous,year_ago,change,
  change_unit (pt|pct),better (up|down),series [{label,start,value}].
  A rate over fewer than TRACKSOP_REPORT_MIN_CELL shipments is
  {"too_few": true, "n": n} in a table, and too_few=true in an item.
"""

from __future__ import annotations

import math
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, Expression, Min, OuterRef, Q, QuerySet

from exceptions_mgmt.models import DeliveryException, ExceptionStatus
from reports.calendar import business_days_between, company_days_off
from reports.periods import Filters, Period
from shipments.models import Carrier, Feedback, Location, Shipment, TrackingEvent
from shipments.status import CLOSED, OPEN, EventKind

ATTEMPT_KINDS = (EventKind.DELIVERY_ATTEMPTED, EventKind.DELIVERED)
CLOSING_KINDS = (EventKind.DELIVERED, EventKind.RETURNED, EventKind.CANCELLED)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The value below which `share` of the values lie, interpolated between
    the two nearest ranks (PostgreSQL's percentile_cont); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def cell(part: int, whole: int) -> float | dict[str, Any] | None:
    """A rate for a table: "too few" below the minimum cell size."""
    if 0 < whole < settings.TRACKSOP_REPORT_MIN_CELL:
        return {"too_few": True, "n": whole}
    return rate(part, whole)


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _local_date(moment: datetime) -> date:
    """The company-time day of an aware moment (timezone.localdate's result
    without its per-call checks: it runs for every delivery)."""
    return moment.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()


def scoped(filters: Filters) -> QuerySet[Shipment]:
    shipments = Shipment.objects.all()
    if filters.carrier:
        shipments = shipments.filter(carrier__code=filters.carrier)
    if filters.hub:
        shipments = shipments.filter(origin__code=filters.hub)
    return shipments


def standing() -> Expression:
    """An event not voided by a correction. Phrased so the database reads
    only the corrections (a few rows), not every event, to find the voided."""
    corrections = TrackingEvent.objects.filter(
        voids__isnull=False, voids_id=OuterRef("pk")
    )
    return ~Exists(corrections)


def belongs(filters: Filters) -> Q:
    """The filters on a row that has a `shipment`: a join, never a semi-join
    over every shipment, so an unfiltered report reads the period's rows only."""
    found = Q()
    if filters.carrier:
        found &= Q(shipment__carrier__code=filters.carrier)
    if filters.hub:
        found &= Q(shipment__origin__code=filters.hub)
    return found


# --- Volume ---------------------------------------------------------------


def volume(period: Period, filters: Filters) -> dict[str, int]:
    """Volume: shipments recorded (created), handed to a carrier (dispatched),
    delivered, returned and cancelled in the period, by the time of that step
    in company time; open = not delivered, returned or cancelled at the
    period's end (recorded before it)."""
    start, end = period.bounds()
    shipments = scoped(filters)
    in_period = {"gte": start, "lt": end}

    def between(field: str) -> int:
        return shipments.filter(
            **{f"{field}__{op}": v for op, v in in_period.items()}
        ).count()

    closed_kinds = {
        "returned": EventKind.RETURNED,
        "cancelled": EventKind.CANCELLED,
    }
    counts = {
        "created": between("created_at"),
        "dispatched": between("dispatched_at"),
        "delivered": between("delivered_at"),
    }
    events = TrackingEvent.objects.filter(
        standing(),
        belongs(filters),
        occurred_at__gte=start,
        occurred_at__lt=end,
    )
    for name, kind in closed_kinds.items():
        counts[name] = events.filter(kind=kind).values("shipment").distinct().count()
    counts["open_at_end"] = open_at(end, filters)
    return counts


def open_at(end: datetime, filters: Filters) -> int:
    """Shipments recorded before `end` and not delivered, returned or
    cancelled by then: those open now, plus those whose first closing event
    (not voided) came at or after `end`. Counted that way it reads the rows
    since `end`, not the whole history."""
    recorded = scoped(filters).filter(created_at__lt=end)
    # status IN OPEN, as the partial index shipment_open_eta says: it holds
    # only the open shipments, a few per cent of the table.
    still_open = recorded.filter(status__in=OPEN).count()
    closing = TrackingEvent.objects.filter(standing(), kind__in=CLOSING_KINDS)
    closed_earlier = closing.filter(shipment=OuterRef("shipment"), occurred_at__lt=end)
    closed_since = (
        closing.filter(
            belongs(filters),
            occurred_at__gte=end,
            shipment__created_at__lt=end,
            shipment__status__in=sorted(CLOSED),
        )
        .exclude(Exists(closed_earlier))
        .values("shipment")
        .distinct()
        .count()
    )
    return still_open + closed_since


# --- Delivery performance -------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """One shipment delivered in the period, with what its metrics read."""

    pk: int
    carrier: str
    hub: str
    destination: str
    created_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime
    dispatch_eta: date | None
    first_attempt_at: datetime | None
    attempts: int
    ready_at: datetime | None

    @cached_property
    def late_days(self) -> int | None:
        """`lateness`, worked out once however many breakdowns read it."""
        return lateness(self)


def delivered_rows(period: Period, filters: Filters) -> list[Delivered]:
    start, end = period.bounds()
    shipments = scoped(filters).filter(delivered_at__gte=start, delivered_at__lt=end)
    # Codes from the two small tables, not joined into every delivered row.
    carriers = dict(Carrier.objects.values_list("pk", "code"))
    places = dict(Location.objects.values_list("pk", "code"))
    rows = list(
        shipments.values_list(
            "pk",
            "carrier_id",
            "origin_id",
            "recipient_country",
            "recipient_postcode",
            "created_at",
            "dispatched_at",
            "delivered_at",
            "dispatch_eta",
        )
    )
    # Per shipment, in the database: its first attempt (or delivery), when
    # it was ready, and how many attempts failed before delivery.
    events = (
        TrackingEvent.objects.filter(
            standing(),
            belongs(filters),
            shipment__delivered_at__gte=start,
            shipment__delivered_at__lt=end,
            kind__in=[*ATTEMPT_KINDS, EventKind.CHECK_PASSED],
        )
        .order_by()
        .values("shipment_id")
        .annotate(
            first_attempt=Min("occurred_at", filter=Q(kind__in=ATTEMPT_KINDS)),
            ready=Min("occurred_at", filter=Q(kind=EventKind.CHECK_PASSED)),
            attempts=Count("pk", filter=Q(kind=EventKind.DELIVERY_ATTEMPTED)),
        )
        .values_list("shipment_id", "first_attempt", "ready", "attempts")
    )
    first_attempt: dict[int, datetime] = {}
    ready: dict[int, datetime] = {}
    attempts: dict[int, int] = {}
    for shipment, attempted, checked, failed in events:
        first_attempt[shipment], ready[shipment] = attempted, checked
        attempts[shipment] = failed
    return [
        Delivered(
            pk=r[0],
            carrier=carriers.get(r[1], ""),
            hub=places.get(r[2], ""),
            destination=destination(r[3], r[4]),
            created_at=r[5],
            dispatched_at=r[6],
            delivered_at=r[7] or r[5],
            dispatch_eta=r[8],
            first_attempt_at=first_attempt.get(r[0]),
            attempts=attempts.get(r[0], 0),
            ready_at=ready.get(r[0]),
        )
        for r in rows
    ]


def destination(country: str, postcode: str) -> str:
    """The destination cell: country and the first part of the postcode
    (before a space or dash, at most three characters), e.g. "GB SW1"."""
    first = postcode.strip().upper().replace("-", " ").split(" ")[0][:3]
    return f"{country.upper()} {first}".strip()


def lateness(row: Delivered) -> int | None:
    """Days between the ETA given at dispatch and the first delivery attempt
    (or delivery), in company-time calendar days: negative is early, 0 on
    time; None without an ETA at dispatch."""
    if row.dispatch_eta is None:
        return None
    reached = row.first_attempt_at or row.delivered_at
    return (_local_date(reached) - row.dispatch_eta).days


def lateness_bucket(days: int) -> str:
    if days < 0:
        return "early"
    if days == 0:
        return "on_time"
    if days <= 2:
        return f"late_{days}"
    return "late_3_5" if days <= 5 else "late_over_5"


BUCKETS = ("early", "on_time", "late_1", "late_2", "late_3_5", "late_over_5")
BUCKET_LABELS = {
    "early": "Early",
    "on_time": "On the day",
    "late_1": "1 day late",
    "late_2": "2 days late",
    "late_3_5": "3-5 days late",
    "late_over_5": "More than 5 days late",
}


def punctuality(rows: Sequence[Delivered]) -> dict[str, Any]:
    """The part of Delivery performance a breakdown shows: on time against
    the ETA at dispatch, first attempt, transit hours (see `delivery`)."""
    with_eta = [r for r in rows if r.dispatch_eta is not None]
    late = [r.late_days for r in with_eta]
    buckets = Counter(lateness_bucket(d) for d in late if d is not None)
    on_time = sum(1 for d in late if d is not None and d <= 0)
    first_attempt = sum(1 for r in rows if r.attempts == 0)
    hours = [_hours(r.delivered_at - r.dispatched_at) for r in rows if r.dispatched_at]
    return {
        "delivered": len(rows),
        "with_eta": len(with_eta),
        "on_time": on_time,
        "on_time_rate": rate(on_time, len(with_eta)),
        "first_attempt": first_attempt,
        "first_attempt_rate": rate(first_attempt, len(rows)),
        "eta_coverage": rate(len(with_eta), len(rows)),
        "buckets": {b: buckets.get(b, 0) for b in BUCKETS},
        "transit_hours": {q: percentile(hours, s) for q, s in QUANTILES},
    }


def delivery(rows: Sequence[Delivered]) -> dict[str, Any]:
    """Delivery performance of the shipments delivered in the period.
    On-time rate: share of those with an ETA at dispatch whose first delivery
    attempt (or delivery) fell on or before that ETA (a later ETA change does
    not count). First-attempt rate: share delivered with no failed attempt
    before. ETA coverage: share that had an ETA at dispatch. Transit time:
    dispatch to delivery, in hours and in business days (weekends and
    holidays off), p50/p90/p95. Warehouse lead time: recorded to dispatched,
    and check passed (ready) to dispatched, in hours, p50/p90."""
    transit = [
        (r.dispatched_at, r.delivered_at) for r in rows if r.dispatched_at is not None
    ]
    off: frozenset[date] = frozenset()
    if transit:
        off = company_days_off(
            _local_date(min(t[0] for t in transit)),
            _local_date(max(t[1] for t in transit)),
        )
    business = [business_days_between(a, b, off) for a, b in transit]
    lead = [_hours(r.dispatched_at - r.created_at) for r in rows if r.dispatched_at]
    ready = [
        _hours(r.dispatched_at - r.ready_at)
        for r in rows
        if r.dispatched_at and r.ready_at
    ]
    return {
        **punctuality(rows),
        "transit_business_days": {q: percentile(business, s) for q, s in QUANTILES},
        "lead_hours": {q: percentile(lead, s) for q, s in QUANTILES[:2]},
        "ready_hours": {q: percentile(ready, s) for q, s in QUANTILES[:2]},
    }


QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95))


def delivery_by(
    rows: Sequence[Delivered], key: Callable[[Delivered], str]
) -> list[dict[str, Any]]:
    groups: dict[str, list[Delivered]] = defaultdict(list)
    for row in rows:
        groups[key(row) or "-"].append(row)
    table = []
    for name in sorted(groups):
        found = punctuality(groups[name])
        table.append(
            {
                "name": name,
                "delivered": found["delivered"],
                "on_time_rate": cell(found["on_time"], found["with_eta"]),
                "first_attempt_rate": cell(found["first_attempt"], found["delivered"]),
                "transit_p50": found["transit_hours"]["p50"],
                "transit_p90": found["transit_hours"]["p90"],
            }
        )
    return table


# --- Exceptions -----------------------------------------------------------


def exceptions(period: Period, filters: Filters, shipments: int) -> dict[str, Any]:
    """Exceptions reported in the period: count and rate per 100 shipments
    dispatched in the period, by cause and severity; time to acknowledge
    (reported to first taken on) and to resolve (reported to resolved), in
    hours, p50/p90; share of resolved ones resolved by their expected time;
    how many went up to level 1 (supervisors) and level 2 (managers); and the
    backlog: unresolved at the period's end, with the age of the oldest.
    Void reports (no problem after all) are left out."""
    start, end = period.bounds()
    reported = DeliveryException.objects.filter(
        belongs(filters), reported_at__gte=start, reported_at__lt=end
    ).exclude(status=ExceptionStatus.VOID)
    rows = list(
        reported.values_list(
            "cause",
            "severity",
            "reported_at",
            "acknowledged_at",
            "resolved_at",
            "expected_resolution",
            "escalation_level",
        )
    )
    ack = [_hours(r[3] - r[2]) for r in rows if r[3]]
    resolve = [_hours(r[4] - r[2]) for r in rows if r[4]]
    in_time = sum(1 for r in rows if r[4] and r[4] <= r[5])
    backlog = list(
        DeliveryException.objects.filter(belongs(filters), reported_at__lt=end)
        .exclude(status=ExceptionStatus.VOID)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=end))
        .values_list("reported_at", flat=True)
    )
    return {
        "count": len(rows),
        "per_100": None if not shipments else 100.0 * len(rows) / shipments,
        "by_cause": dict(Counter(r[0] for r in rows)),
        "by_severity": dict(Counter(r[1] for r in rows)),
        "ack_hours": {q: percentile(ack, s) for q, s in QUANTILES[:2]},
        "resolve_hours": {q: percentile(resolve, s) for q, s in QUANTILES[:2]},
        "resolved": len(resolve),
        "resolved_in_time_rate": rate(in_time, len(resolve)),
        "level_1": sum(1 for r in rows if r[6] >= 1),
        "level_2": sum(1 for r in rows if r[6] >= 2),
        "backlog": len(backlog),
        "backlog_oldest_days": (
            None if not backlog else (end - min(backlog)).total_seconds() / 86400
        ),
    }


# --- Feedback -------------------------------------------------------------


def feedback(period: Period, filters: Filters, delivered: int) -> dict[str, Any]:
    """Feedback on shipments delivered in the period: response rate (rated
    over delivered), average rating, CSAT (share of 4 and 5 among those who
    rated; a delivery nobody rated never counts as satisfied), the 1-5
    distribution, and the five lowest-rated with their comments."""
    start, end = period.bounds()
    rated = Feedback.objects.filter(
        belongs(filters),
        shipment__delivered_at__gte=start,
        shipment__delivered_at__lt=end,
    )
    ratings = list(rated.values_list("rating", flat=True))
    lowest = list(
        rated.filter(rating__lte=3)
        .order_by("rating", "created_at")
        .values_list("shipment__shipment_id", "rating", "comment")[:5]
    )
    return {
        "rated": len(ratings),
        "response_rate": rate(len(ratings), delivered),
        "average": (sum(ratings) / len(ratings)) if ratings else None,
        "csat": rate(sum(1 for r in ratings if r >= 4), len(ratings)),
        "distribution": {str(n): ratings.count(n) for n in range(1, 6)},
        "lowest": [{"shipment": s, "rating": r, "comment": c} for s, r, c in lowest],
    }
