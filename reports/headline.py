"""The headline figures of a report and their trends: each figure of the
period beside the previous period, the same period a year before and the
twelve periods up to this one, and the three that moved most.

The figures themselves are defined and computed in reports/metrics.py;
`reports.aggregates` stores closed periods' headline values so that a trend
reads them instead of computing twelve periods again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from reports.metrics import delivered_rows, delivery, exceptions, feedback, scoped
from reports.periods import Filters, Period, month_of, previous, year_before

SERIES_LENGTH = 12

HEADLINE = (
    # key, label, unit, better
    ("on_time_rate", "On-time rate", "pct", "up"),
    ("delivered", "Delivered", "count", "up"),
    ("transit_p50", "Transit time (median)", "hours", "down"),
    ("exceptions_per_100", "Exceptions per 100 shipments", "per_100", "down"),
    ("first_attempt_rate", "First-attempt delivery", "pct", "up"),
    ("csat", "Customer satisfaction (CSAT)", "pct", "up"),
)


def headline_figures(
    found: dict[str, Any], dispatched: int, exc: dict[str, Any], fb: dict[str, Any]
) -> dict[str, tuple[Any, int]]:
    """The headline figures, value and the count each is over, from a
    period's delivery, exception and feedback figures."""
    delivered = found["delivered"]
    return {
        "on_time_rate": (found["on_time_rate"], found["with_eta"]),
        "delivered": (delivered, delivered),
        "transit_p50": (found["transit_hours"]["p50"], delivered),
        "exceptions_per_100": (exc["per_100"], dispatched),
        "first_attempt_rate": (found["first_attempt_rate"], delivered),
        "csat": (fb["csat"], fb["rated"]),
    }


def headline_values(period: Period, filters: Filters) -> dict[str, tuple[Any, int]]:
    """The headline figures of one period: value and the count it is over."""
    start, end = period.bounds()
    rows = delivered_rows(period, filters)
    dispatched = (
        scoped(filters).filter(dispatched_at__gte=start, dispatched_at__lt=end).count()
    )
    return headline_figures(
        delivery(rows),
        dispatched,
        exceptions(period, filters, dispatched),
        feedback(period, filters, len(rows)),
    )


def change(now: float | None, before: float | None, unit: str) -> float | None:
    """Points for rates, per cent of the earlier value for the rest."""
    if now is None or before is None:
        return None
    if unit == "pct":
        return now - before
    return None if before == 0 else 100.0 * (now - before) / before


def series_periods(period: Period) -> list[Period]:
    """The 12 periods ending with this one (weeks, or months otherwise)."""
    found = [period if period.kind in ("weekly", "monthly") else month_of(period.end)]
    while len(found) < SERIES_LENGTH:
        found.append(previous(found[-1]))
    return list(reversed(found))


def headline(
    period: Period,
    filters: Filters,
    values: Callable[[Period, Filters], dict[str, tuple[Any, int]]] = headline_values,
    current: dict[str, tuple[Any, int]] | None = None,
) -> list[dict[str, Any]]:
    """The headline items; `values` gives the figures of the previous,
    year-ago and series periods (`reports.aggregates.trend_values` reads
    closed periods from their stored rows), `current` those of the period
    when the caller has them already."""
    current = current or headline_values(period, filters)
    before = values(previous(period), filters)
    year = values(year_before(period), filters)
    series = [
        (p, values(p, filters) if p != period else current)
        for p in series_periods(period)
    ]
    items = []
    for key, label, unit, better in HEADLINE:
        value, n = current[key]
        too_few = unit == "pct" and 0 < n < settings.TRACKSOP_REPORT_MIN_CELL
        items.append(
            {
                "key": key,
                "label": label,
                "value": None if too_few else value,
                "unit": unit,
                "n": n,
                "too_few": too_few,
                "previous": before[key][0],
                "year_ago": year[key][0],
                "change": None if too_few else change(value, before[key][0], unit),
                "change_unit": "pts" if unit == "pct" else "pct",
                "better": better,
                "series": [
                    {
                        "label": p.start.strftime(
                            "%d %b" if p.kind == "weekly" else "%b %Y"
                        ),
                        "start": p.start.isoformat(),
                        "value": values[key][0],
                    }
                    for p, values in series
                ],
            }
        )
    return items


def changed_most(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three headline figures that moved most against the previous period
    (points for rates, per cent otherwise), largest first."""
    moved = [i for i in items if i["change"] is not None and i["change"] != 0]
    moved.sort(key=lambda i: abs(i["change"]), reverse=True)
    found = []
    for item in moved[:3]:
        direction = "up" if item["change"] > 0 else "down"
        better = direction == item["better"]
        amount = (
            f"{abs(item['change']):.1f} points"
            if item["unit"] == "pct"
            else f"{abs(item['change']):.0f}%"
        )
        found.append(
            {
                **{k: v for k, v in item.items() if k != "series"},
                "text": f"{direction} {amount} on the previous period "
                f"({'better' if better else 'worse'})",
            }
        )
    return found
