"""The sane range of a checkpoint's time and of an estimated delivery date.

Pure rules, used by the forms (a message at the field) and by the services
(the same refusal for the API, bulk scans and webhooks). A time outside the
range is a typing slip (year 0001) or a broken scanner clock, and once stored
it would reach every page and every customer message.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone


def earliest_event_time(created_at: datetime) -> datetime:
    """A carrier may scan a label before the shipment reached us, not long before."""
    return created_at - timedelta(days=settings.TRACKSOP_PAST_TOLERANCE_DAYS)


def latest_event_time(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.TRACKSOP_FUTURE_TOLERANCE_MINUTES)


def _stamp(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def event_time_error(
    occurred_at: datetime, *, created_at: datetime | None, now: datetime
) -> str | None:
    """Why `occurred_at` cannot be a checkpoint's time, or None.
    `created_at` is None when the shipment is not known yet (only the future
    side is checked then)."""
    if occurred_at > latest_event_time(now):
        return "This time is in the future. Enter when it happened."
    if created_at is not None and occurred_at < earliest_event_time(created_at):
        return (
            f"This time is before the shipment existed: enter a time on or after "
            f"{_stamp(earliest_event_time(created_at))} "
            f"({settings.TRACKSOP_PAST_TOLERANCE_DAYS} days before it was recorded)."
        )
    return None


def latest_eta(today: date) -> date:
    return today + timedelta(days=settings.TRACKSOP_MAX_ETA_DAYS)


def eta_error(
    estimated_delivery: date, *, created_at: datetime | None, today: date
) -> str | None:
    """Why `estimated_delivery` cannot be a shipment's ETA, or None."""
    if estimated_delivery < today:
        return "The estimated delivery date is in the past."
    if created_at is not None and estimated_delivery < timezone.localdate(created_at):
        return (
            "The estimated delivery date is before the shipment was recorded "
            f"({timezone.localdate(created_at):%Y-%m-%d})."
        )
    if estimated_delivery > latest_eta(today):
        return (
            f"The estimated delivery date is too far ahead: enter a date on or "
            f"before {latest_eta(today):%Y-%m-%d} "
            f"(at most {settings.TRACKSOP_MAX_ETA_DAYS} days from today)."
        )
    return None
