"""The weekly and monthly schedules: which period is due, and who gets it.

A schedule's run covers the previous complete period and is released at 06:00
company time on the Monday (weekly) or the 1st (monthly). The beat asks every
few minutes; the unique constraint on (schedule, period) makes a second beat
or a restart a no-op, and a failed run is tried again by the next beat.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from reports.periods import Period, iso_week, month_of

RELEASE = time(6, 0)
# Failed runs of one period after which the schedule stops trying it.
MAX_TRIES = 3


@dataclass(frozen=True)
class Recipient:
    name: str
    address: str


def due_period(kind: str, now: datetime) -> Period | None:
    """The previous complete week or month, once its release time has passed
    (06:00 company time on the Monday or the 1st); else None."""
    local = now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
    today = local.date()
    if kind == "weekly":
        period = iso_week(today - timedelta(days=7))
        released = period.end + timedelta(days=1)
    else:
        period = month_of(today.replace(day=1) - timedelta(days=1))
        released = period.end + timedelta(days=1)
    release_at = datetime.combine(released, RELEASE, tzinfo=local.tzinfo)
    if today > released or local >= release_at:
        return period
    # Before 06:00 on release day: the period before is the latest released.
    return due_period(kind, release_at - timedelta(days=1, minutes=1))


def address_lines(text: str) -> tuple[list[str], list[str]]:
    """The schedule's extra addresses, one per line: (valid, invalid)."""
    valid, invalid = [], []
    for line in text.splitlines():
        address = line.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            invalid.append(address)
        else:
            valid.append(address.lower())
    return valid, invalid


def recipients(users: list[tuple[str, str]], addresses_text: str) -> list[Recipient]:
    """Users (name, email) of the schedule's roles and its extra addresses,
    each address once; users without an email are left out."""
    seen: set[str] = set()
    found = []
    for name, email in users:
        address = (email or "").strip().lower()
        if address and address not in seen:
            seen.add(address)
            found.append(Recipient(name, address))
    for address in address_lines(addresses_text)[0]:
        if address not in seen:
            seen.add(address)
            found.append(Recipient("", address))
    return found
