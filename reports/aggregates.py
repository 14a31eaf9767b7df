"""Monthly figures kept after a month's shipments are archived and purged."""

from __future__ import annotations

from datetime import date

from reports.metrics import headline_values
from reports.models import MonthlyAggregate
from reports.periods import Filters, month_of


def aggregate_month(month: date) -> MonthlyAggregate:
    """Store the month's headline figures (value and the count each is over)
    for all shipments; the retention purge calls it before it deletes."""
    period = month_of(month)
    values = headline_values(period, Filters())
    row, _ = MonthlyAggregate.objects.update_or_create(
        month=period.start,
        scope="all",
        defaults={"data": {k: {"value": v, "n": n} for k, (v, n) in values.items()}},
    )
    return row
