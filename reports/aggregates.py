"""Stored figures: what a trend reads for a week or month that is over.

A period is *closed* some days after its last day (`CLOSED_AFTER`: 7 for a
week, 31 for a month): by then its late scans, exception resolutions and
ratings are in. The first trend that needs a closed period computes its
headline figures once and stores them as a `PeriodAggregate`; every later
report reads the row instead of the period's rows. The retention purge
stores each month for every scope before it deletes it, so a 24-month trend
still draws after the shipments are gone.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from reports.headline import headline_values
from reports.models import PeriodAggregate
from reports.periods import Filters, Period, month_of
from shipments.models import Carrier, Location, Shipment

CLOSED_AFTER = {"weekly": timedelta(days=7), "monthly": timedelta(days=31)}

Values = dict[str, tuple[Any, int]]


def scope_of(filters: Filters) -> str:
    """The `PeriodAggregate.scope` of a filter: "all", "carrier:<code>",
    "hub:<code>" or both joined with "+"."""
    parts = [f"carrier:{filters.carrier}"] if filters.carrier else []
    parts += [f"hub:{filters.hub}"] if filters.hub else []
    return "+".join(parts) or "all"


def closes_on(period: Period) -> date | None:
    """The day a week or month is closed; None for a custom range."""
    after = CLOSED_AFTER.get(period.kind)
    return None if after is None else period.end + after


def store(period: Period, filters: Filters) -> PeriodAggregate:
    """Compute one period's headline figures for one scope and keep them."""
    values = headline_values(period, filters)
    row, _ = PeriodAggregate.objects.update_or_create(
        kind=period.kind,
        start=period.start,
        scope=scope_of(filters),
        defaults={"data": {k: {"value": v, "n": n} for k, (v, n) in values.items()}},
    )
    return row


def trend_values(period: Period, filters: Filters) -> Values:
    """A trend point: a closed week or month from its stored row (stored now
    if it is missing or was computed before the period closed), anything
    else computed from the rows."""
    closed = closes_on(period)
    if closed is None or timezone.localdate() < closed:
        return headline_values(period, filters)
    row = PeriodAggregate.objects.filter(
        kind=period.kind, start=period.start, scope=scope_of(filters)
    ).first()
    if row is None or timezone.localdate(row.computed_at) < closed:
        row = store(period, filters)
    return {k: (v["value"], v["n"]) for k, v in row.data.items()}


def aggregate_month(month: date) -> list[PeriodAggregate]:
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
