"""Business days: weekends, the country's public holidays
(TRACKSOP_HOLIDAY_COUNTRY / _SUBDIVISION, `holidays` package) and the admin's
`Holiday` rows are days off. Pure functions once the days off are given.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import holidays
from django.conf import settings


def days_off(first: date, last: date, extra: Iterable[date] = ()) -> frozenset[date]:
    """Public holidays between first and last (inclusive), plus `extra`."""
    years = range(first.year, last.year + 1)
    country = holidays.country_holidays(
        settings.TRACKSOP_HOLIDAY_COUNTRY,
        subdiv=settings.TRACKSOP_HOLIDAY_SUBDIVISION or None,
        years=years,
    )
    return frozenset(d for d in country if first <= d <= last) | frozenset(extra)


def company_days_off(first: date, last: date) -> frozenset[date]:
    """Public holidays and the admin's Holiday rows between first and last."""
    from reports.models import Holiday

    extra = Holiday.objects.filter(date__gte=first, date__lte=last).values_list(
        "date", flat=True
    )
    return days_off(first, last, extra)


def business_days_between(
    start: datetime, end: datetime, off: frozenset[date]
) -> float:
    """Business days from start to end in company time: whole business days
    between the two calendar days, plus the parts of the first and last days
    that are business days. Weekends and `off` days count as zero."""
    if end <= start:
        return 0.0
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    a, b = start.astimezone(tz), end.astimezone(tz)
    total = 0.0
    day = a.date()
    while day <= b.date():
        if day.weekday() < 5 and day not in off:
            day_start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
            day_end = datetime.combine(
                day + timedelta(days=1), datetime.min.time(), tzinfo=tz
            )
            lo, hi = max(a, day_start), min(b, day_end)
            total += (hi - lo).total_seconds() / (day_end - day_start).total_seconds()
        day += timedelta(days=1)
    return total
