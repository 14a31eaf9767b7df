"""Report periods: company-time calendar days, both ends inclusive.

Pure functions; `bounds` turns a period into the aware datetimes a query uses.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings


@dataclass(frozen=True)
class Period:
    kind: str  # ReportKind value
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes at midnight, company time."""
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        return (
            datetime.combine(self.start, time.min, tzinfo=tz),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz),
        )


@dataclass(frozen=True)
class Filters:
    carrier: str = ""  # Carrier.code
    hub: str = ""  # Location.code of the origin hub

    def key(self) -> str:
        return f"{self.carrier}:{self.hub}"


def iso_week(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period("weekly", monday, monday + timedelta(days=6))


def month_of(day: date) -> Period:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period("monthly", first, following - timedelta(days=1))


def previous(period: Period) -> Period:
    """The period just before: last week, last month, or as long a range."""
    if period.kind == "weekly":
        return iso_week(period.start - timedelta(days=1))
    if period.kind == "monthly":
        return month_of(period.start - timedelta(days=1))
    length = timedelta(days=period.days)
    return Period(period.kind, period.start - length, period.end - length)


def year_before(period: Period) -> Period:
    """The same period a year earlier (the same ISO week number for weeks)."""
    if period.kind == "weekly":
        return iso_week(period.start - timedelta(weeks=52))
    if period.kind == "monthly":
        return month_of(_shift_year(period.start))
    return Period(period.kind, _shift_year(period.start), _shift_year(period.end))


def _shift_year(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
