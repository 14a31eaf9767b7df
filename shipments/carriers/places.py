"""Carrier places become Locations, so carrier scans locate the package.

A carrier event names a place (its facility code, city, country). The sync
resolves it, before the events are recorded, to a Location code: a known one
(`status.Places.code_for`: the facility code, or the only Location in
that city), else one made now under a derived code ("ups-louisville-us"), a
hub, or a depot for last-mile scans, with the place's time zone when it can
tell. Later scans at the same place find it by that code or city.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils.text import slugify

from shipments.carriers.status import CarrierEvent, CarrierLocation, Places, status_rule
from shipments.models import CarrierAccount, Location
from shipments.status import EventKind

# Kinds whose place is a last-mile depot rather than a sorting hub.
LAST_MILE = frozenset(
    {
        EventKind.OUT_FOR_DELIVERY,
        EventKind.DELIVERY_ATTEMPTED,
        EventKind.AVAILABLE_FOR_PICKUP,
        EventKind.DELIVERED,
    }
)


@cache
def _zones_by_country() -> dict[str, list[str]]:
    """IANA zones per country from the system's zone1970.tab (or zone.tab),
    empty without one. A zone shared by several countries counts for the
    first it lists (Europe/Zurich is Switzerland's, not Germany's), except
    for a country that has no zone of its own (Denmark: Europe/Berlin)."""
    own: dict[str, list[str]] = {}
    shared: dict[str, list[str]] = {}
    for name in ("zone1970.tab", "zone.tab"):
        path = Path("/usr/share/zoneinfo") / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            columns = line.split("\t")
            if line.startswith("#") or len(columns) < 3:
                continue
            countries = [c.strip().upper() for c in columns[0].split(",")]
            own.setdefault(countries[0], []).append(columns[2])
            for country in countries[1:]:
                shared.setdefault(country, []).append(columns[2])
        if own:
            break
    return {c: own.get(c) or shared[c] for c in {*own, *shared}}


def _offset(value: object) -> timedelta | None:
    """A UTC offset given as minutes or "+HH:MM"/"-HHMM" (None if neither)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(minutes=value)
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", str(value or "").strip())
    if match is None:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


@cache
def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_for(
    place: CarrierLocation,
    *,
    occurred_at: datetime,
    hint: str = "",
    utc_offset: object = None,
    home: str = "UTC",
) -> str:
    """The time zone of a carrier place, as far as it can be told: the
    carrier's own when it names one; the country's when it has only one;
    the country's zone with the local offset the carrier gave for the event;
    the company's own zone (`home`) when the place is in its country; else
    UTC (an administrator can correct it on the Location)."""
    if hint and _valid_zone(hint):
        return hint
    candidates = [
        z for z in _zones_by_country().get(place.country.upper(), []) if _valid_zone(z)
    ]
    if len(candidates) == 1:
        return candidates[0]
    offset = _offset(utc_offset)
    if offset is not None:
        for name in candidates:
            if occurred_at.astimezone(ZoneInfo(name)).utcoffset() == offset:
                return name
    if home in candidates:
        return home
    return "UTC"


def place_code(provider: str, place: CarrierLocation) -> str:
    """The code of the Location made for a carrier place the company has
    none for: "<provider>-<city>-<country>", slugified, at most 32."""
    slug = slugify(f"{provider.replace('_', '-')}-{place.city}-{place.country}")
    return slug[:32].strip("-")


def _new_location(
    code: str, event: CarrierEvent, *, account: CarrierAccount
) -> Location:
    place = event.location
    rule = status_rule(
        account.provider,
        code=event.code,
        status_type=event.status_type,
        normalized=event.normalized_status,
    )
    last_mile = rule is not None and rule.kind in LAST_MILE
    return Location(
        code=code,
        name=(place.name or f"{account.carrier.name} {place.city.title()}")[:100],
        kind=Location.Kind.DEPOT if last_mile else Location.Kind.HUB,
        city=place.city.strip()[:100],
        country=place.country.upper() if len(place.country) == 2 else "",
        timezone=zone_for(
            place,
            occurred_at=event.occurred_at,
            hint=str(event.extra.get("timezone", "")),
            utc_offset=event.extra.get("utc_offset"),
            home=str(settings.TIME_ZONE),
        ),
    )


def events_locate(
    events: Sequence[CarrierEvent], *, account: CarrierAccount
) -> list[CarrierEvent]:
    """The events, each naming the Location of its place by code: a known
    one (facility code, or the only one in its city), else one created now
    (a hub, or a depot for last-mile scans), so that this scan and later ones
    locate the package. A place without a city stays unlocated (its text is
    kept in the event's data)."""
    places = Places.load()
    wanted: dict[str, Location] = {}
    resolved: list[tuple[CarrierEvent, str]] = []
    for event in events:
        place = event.location
        code = places.code_for(place) if (place.code or place.city) else ""
        if not code and place.city.strip():
            derived = place_code(account.provider, place)
            code = places.by_code.get(derived.upper(), "") or derived
            if derived.upper() not in places.by_code and derived not in wanted:
                wanted[derived] = _new_location(derived, event, account=account)
        resolved.append((event, code))
    if wanted:
        # Two workers meeting the same new place: the unique code keeps one.
        Location.objects.bulk_create(list(wanted.values()), ignore_conflicts=True)
    located = []
    for event, code in resolved:
        if code and code.upper() != event.location.code.upper():
            extra = dict(event.extra)
            if event.location.code:
                extra["carrier_facility"] = event.location.code
            event = dataclasses.replace(
                event,
                location=dataclasses.replace(event.location, code=code),
                extra=extra,
            )
        located.append(event)
    return located
