"""Showing stored times that may lie at the edge of the calendar.

A time near 0001-01-01 or 9999-12-31 (a row from before the bounds of
`shipments.bounds`, or typed straight into the database) cannot be converted
to every zone: Python raises OverflowError. A page must still answer, so such
a time is shown in UTC instead.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from django.utils import timezone


def localtime(value: datetime, zone: tzinfo | None = None) -> datetime:
    """`timezone.localtime`, or the value as stored when the zone has no room."""
    try:
        return timezone.localtime(value, zone)
    except OverflowError:
        return value


def localdate(value: datetime, zone: tzinfo | None = None) -> date:
    return localtime(value, zone).date()
