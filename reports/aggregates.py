"""Stored monthly figures: what a trend reads for a month that is over.

A month is *closed* `CLOSED_AFTER` days after its last day: by then its late
scans, exception resolutions and ratings are in. The first trend that needs
a closed month computes its headline figures once and stores them as a
`MonthlyAggregate`; every later report reads the row instead of the month's
rows. The retention purge stores them for every scope before it deletes a
month, so a 24-month trend still draws after the shipments are gone.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from reports.metrics import headline_values
from reports.models import MonthlyAggregate
from reports.periods import Filters, Period, month_of
from shipments.models import Carrier, Location, Shipment

CLOSED_AFTER = timedelta(days=31)

Values = dict[str, tuple[Any, int]]


def scope_of(filters: Filters) -> str:
    """The `MonthlyAggregate.scope` of a filter: "all", "carrier:<code>",
    "hub:<code>" or both joined with "+"."""
    parts = [f"carrier:{filters.carrier}"] if filters.carrier else []
    parts += [f"hub:{filters.hub}"] if filters.hub else []
    return "+".join(parts) or "all"


def is_closed(period: Period, today: date) -> bool:
    return period.kind == "monthly" and today >= period.end + CLOSED_AFTER


def store(period: Period, filters: Filters) -> MonthlyAggregate:
    """Compute one month's headline figures for one scope and keep them."""
    values = headline_values(period, filters)
    row, _ = MonthlyAggregate.objects.update_or_create(
        month=period.start,
        scope=scope_of(filters),
        defaults={"data": {k: {"value": v, "n": n} for k, (v, n) in values.items()}},
    )
    return row


def trend_values(period: Period, filters: Filters) -> Values:
    """A trend point: a closed month from its stored row (stored now if it
    is missing or was computed before the month closed), anything else
    computed from the rows."""
    if not is_closed(period, timezone.localdate()):
        return headline_values(period, filters)
    row = MonthlyAggregate.objects.filter(
        month=period.start, scope=scope_of(filters)
    ).first()
    if row is None or timezone.localdate(row.computed_at) < period.end + CLOSED_AFTER:
        row = store(period, filters)
    return {k: (v["value"], v["n"]) for k, v in row.data.items()}


def aggregate_month(month: date) -> list[MonthlyAggregate]:
    """Store the month's headline figures for all shipments and for each
    carrier and origin hub that had shipments in it; the retention purge
    calls it before it deletes the month."""
    period = month_of(month)
    start, end = period.bounds()
    shipped = Shipment.objects.filter(created_at__gte=start, created_at__lt=end)
    carriers = Carrier.objects.filter(pk__in=shipped.values("carrier_id")).values_list(
        "code", flat=True
    )
    hubs = Location.objects.filter(pk__in=shipped.values("origin_id")).values_list(
        "code", flat=True
    )
    scopes = [Filters()]
    scopes += [Filters(carrier=code) for code in carriers]
    scopes += [Filters(hub=code) for code in hubs]
    return [store(period, f) for f in scopes]
