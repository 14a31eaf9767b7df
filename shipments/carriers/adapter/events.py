"""A karrio tracking answer, read back into `CarrierEvent`s with their true
times and places, and the `Tracked` of one number.

karrio's event timestamps are the carrier's *local* time labelled UTC for
UPS, FedEx, USPS and DHL alike, and its locations are one joined string; the
carriers' raw answers (kept by the tracer, `wire.Exchange`) have the offset
or the UTC time and the place's parts, which are read instead (`TIMES` says
what each provider gives). When a raw answer does not line up with karrio's
events, karrio's own values are used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

from shipments.carriers.adapter.wire import Exchange
from shipments.carriers.status import CarrierEvent, CarrierLocation
from shipments.carriers.tracking import Tracked

# What each provider's answer says of an event's time (karrio's `timestamp`
# is always the local time marked "Z", so it is never used as is):
TIMES = {
    "ups": "activity date+time local, gmtDate+gmtTime UTC, gmtOffset",
    "fedex": "scanEvents[].date ISO 8601 with the scan's UTC offset",
    "usps": "eventTimestamp local, GMTTimestamp UTC, GMTOffset",
    # XML-PI gives no offset: the local time is read in TIME_ZONE.
    "dhl_express": "ShipmentEvent Date+Time local, no offset",
}


@functools.cache
def _country_codes() -> dict[str, str]:
    units = importlib.import_module("karrio.core.units")
    return {c.value.upper(): c.name for c in units.Country}


def _country(value: str) -> str:
    value = (value or "").strip()
    if len(value) == 2:
        return value.upper()
    return _country_codes().get(value.upper(), "") if value else ""


def event_id(provider: str, number: str, code: str, when: datetime, place: str) -> str:
    """A stable id for a carrier event (karrio has none): the same event
    polled twice gets the same id, so the timeline dedupes it."""
    key = "|".join([provider, number, code, when.astimezone(UTC).isoformat(), place])
    return f"{provider}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _local_zone() -> ZoneInfo:
    return ZoneInfo(getattr(settings, "TIME_ZONE", None) or "UTC")


def _parse_offset(value: str) -> timedelta | None:
    found = re.fullmatch(r"\s*([+-])(\d{1,2}):?(\d{2})\s*", value or "")
    if not found:
        return None
    sign = -1 if found.group(1) == "-" else 1
    return sign * timedelta(hours=int(found.group(2)), minutes=int(found.group(3)))


def _karrio_local(event: Any) -> datetime | None:
    """karrio's date and (local, minutes) time, read in TIME_ZONE."""
    try:
        day = date.fromisoformat(str(event.date))
    except (TypeError, ValueError):
        return None
    clock = time()
    found = re.match(r"(\d{1,2}):(\d{2})", str(event.time or ""))
    if found:
        clock = time(int(found.group(1)) % 24, int(found.group(2)))
    return datetime.combine(day, clock, tzinfo=_local_zone())


def _ymd_hms(day: str, clock: str) -> tuple[date, time] | None:
    day, clock = (day or "").strip(), (clock or "").strip().replace(":", "")
    if not re.fullmatch(r"\d{8}", day.replace("-", "")):
        return None
    d = day.replace("-", "")
    clock = (clock + "000000")[:6] if clock.isdigit() else "000000"
    return (
        date(int(d[:4]), int(d[4:6]), int(d[6:8])),
        time(int(clock[:2]) % 24, int(clock[2:4]), int(clock[4:6])),
    )


@dataclass
class RawEvent:
    """What karrio drops from one raw event: its true time and its place."""

    when: datetime | None = None
    location: CarrierLocation | None = None
    status_type: str = ""  # UPS's status type letter (I, D, X, M…)
    description: str = ""  # when karrio's adds to the carrier's own text


def _ups_raw(number: str, exchanges: Sequence[Exchange]) -> list[RawEvent]:
    for ex in exchanges:
        data = ex.json()
        if not isinstance(data, dict) or "trackResponse" not in data:
            continue
        if number not in ex.url:
            continue
        try:
            activity = data["trackResponse"]["shipment"][0]["package"][0]["activity"]
        except (KeyError, IndexError, TypeError):
            return []
        out = []
        for a in activity:
            raw = RawEvent(status_type=str((a.get("status") or {}).get("type") or ""))
            utc = _ymd_hms(a.get("gmtDate", ""), a.get("gmtTime", ""))
            local = _ymd_hms(a.get("date", ""), a.get("time", ""))
            offset = _parse_offset(a.get("gmtOffset", ""))
            if utc:
                raw.when = datetime.combine(*utc, tzinfo=UTC)
            elif local and offset is not None:
                raw.when = datetime.combine(*local, tzinfo=UTC) - offset
            address = (a.get("location") or {}).get("address") or {}
            if address or (a.get("location") or {}).get("slic"):
                raw.location = CarrierLocation(
                    code=str((a.get("location") or {}).get("slic") or ""),
                    city=str(address.get("city") or ""),
                    region=str(address.get("stateProvince") or ""),
                    postcode=str(address.get("postalCode") or ""),
                    country=_country(
                        str(address.get("countryCode") or address.get("country") or "")
                    ),
                )
            out.append(raw)
        return out
    return []


def _ups_eta(number: str, exchanges: Sequence[Exchange]) -> date | None:
    """UPS's scheduled (SDD) or rescheduled (RDD) delivery date: karrio
    reads only the delivered date (DEL)."""
    for ex in exchanges:
        data = ex.json()
        if not isinstance(data, dict) or number not in ex.url:
            continue
        try:
            dates = data["trackResponse"]["shipment"][0]["package"][0]["deliveryDate"]
        except (KeyError, IndexError, TypeError):
            return None
        by_type = {str(d.get("type")): str(d.get("date") or "") for d in dates or []}
        for kind in ("RDD", "SDD"):
            found = _ymd_hms(by_type.get(kind, ""), "")
            if found:
                return found[0]
    return None


def _fedex_raw(
    number: str, codes: list[str], exchanges: Sequence[Exchange]
) -> list[RawEvent]:
    for ex in exchanges:
        data = ex.json()
        if not isinstance(data, dict) or "output" not in data:
            continue
        results = (data.get("output") or {}).get("completeTrackResults") or []
        for result in results:
            if str(result.get("trackingNumber", "")) != number:
                continue
            for track in result.get("trackResults") or []:
                scans = track.get("scanEvents") or []
                if [str(s.get("eventType")) for s in scans] != codes:
                    continue
                out = []
                for s in scans:
                    raw = RawEvent()
                    try:
                        when = datetime.fromisoformat(str(s.get("date", "")))
                        if when.tzinfo is not None:
                            raw.when = when.astimezone(UTC)
                    except ValueError:
                        pass
                    loc = s.get("scanLocation") or {}
                    raw.location = CarrierLocation(
                        code=str(s.get("locationId") or ""),
                        city=str(loc.get("city") or ""),
                        region=str(loc.get("stateOrProvinceCode") or ""),
                        postcode=str(loc.get("postalCode") or ""),
                        country=_country(str(loc.get("countryCode") or "")),
                    )
                    out.append(raw)
                return out
    return []


def _usps_raw(number: str, exchanges: Sequence[Exchange]) -> list[RawEvent]:
    for ex in exchanges:
        data = ex.json()
        if not isinstance(data, dict) or number not in ex.url:
            continue
        out = []
        for e in data.get("trackingEvents") or []:
            raw = RawEvent()
            gmt = str(e.get("GMTTimestamp") or "")
            try:
                if gmt:
                    when = datetime.fromisoformat(gmt.replace("Z", "+00:00"))
                    raw.when = when if when.tzinfo else when.replace(tzinfo=UTC)
                else:
                    offset = _parse_offset(str(e.get("GMTOffset") or ""))
                    local = datetime.fromisoformat(str(e.get("eventTimestamp") or ""))
                    if offset is not None:
                        raw.when = local.replace(tzinfo=UTC) - offset
            except ValueError:
                pass
            city = str(e.get("eventCity") or "")
            state = str(e.get("eventState") or "")
            # USPS names its plants ("QUEENS NY DISTRIBUTION CENTER") in the
            # city field, with no state: a facility, not a city.
            facility = not state and "DISTRIBUTION CENTER" in city.upper()
            raw.location = CarrierLocation(
                name=city if facility else "",
                city="" if facility else city,
                region=state,
                postcode=str(e.get("eventZIP") or ""),
                country=_country(str(e.get("eventCountry") or ""))
                or ("US" if city else ""),
            )
            out.append(raw)
        return out
    return []


def _dhl_raw(number: str, exchanges: Sequence[Exchange]) -> list[RawEvent]:
    lib = importlib.import_module("karrio.lib")
    for ex in exchanges:
        text = ex.text()
        if "<AWBInfo" not in text:
            continue
        try:
            root = lib.to_element(text)
        except Exception:
            return []
        for info in lib.find_element("AWBInfo", root):
            if (info.findtext("AWBNumber") or "").strip() != number:
                continue
            out = []
            # karrio lists DHL's events newest first: the raw ones, reversed.
            for e in reversed(lib.find_element("ShipmentEvent", info)):
                area = e.find("ServiceArea")
                code = (
                    area.findtext("ServiceAreaCode") if area is not None else ""
                ) or ""
                described = (
                    area.findtext("Description") if area is not None else ""
                ) or ""
                city, _, country = described.partition(" - ")
                when = None
                day_time = _ymd_hms(e.findtext("Date") or "", e.findtext("Time") or "")
                if day_time:
                    when = datetime.combine(*day_time, tzinfo=_local_zone())
                service = e.find("ServiceEvent")
                text = service.findtext("Description") if service is not None else ""
                out.append(
                    RawEvent(
                        when=when,
                        # karrio appends the Signatory (who signed: a name).
                        description=" ".join((text or "").split()),
                        location=CarrierLocation(
                            code=code.strip(),
                            city=city.strip().title(),
                            country=_country(country.strip()),
                        ),
                    )
                )
            return out
    return []


def _raw_events(
    provider: str, number: str, events: Sequence[Any], exchanges: Sequence[Exchange]
) -> list[RawEvent]:
    if provider == "ups":
        raw = _ups_raw(number, exchanges)
    elif provider == "fedex":
        raw = _fedex_raw(number, [str(e.code) for e in events], exchanges)
    elif provider == "usps":
        raw = _usps_raw(number, exchanges)
    else:
        raw = _dhl_raw(number, exchanges)
    return raw if len(raw) == len(events) else [RawEvent() for _ in events]


def _location_from_text(text: str) -> CarrierLocation:
    """karrio's "City, Region, Postcode, Country" when the raw one is lost."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        return CarrierLocation()
    country = _country(parts[-1]) if len(parts) > 1 else ""
    if country:
        parts = parts[:-1]
    postcode = next((p for p in parts[1:] if any(ch.isdigit() for ch in p)), "")
    rest = [p for p in parts[1:] if p != postcode]
    return CarrierLocation(
        city=parts[0],
        region=rest[0] if rest else "",
        postcode=postcode,
        country=country,
    )


def _event(
    provider: str, number: str, event: Any, raw: RawEvent
) -> CarrierEvent | None:
    when = raw.when or _karrio_local(event)
    if when is None:
        return None
    place = raw.location or _location_from_text(str(event.location or ""))
    code = str(event.code or "").strip()
    extra: dict[str, Any] = {}
    if event.reason:
        extra["carrier_reason"] = str(event.reason)
    return CarrierEvent(
        tracking_number=number,
        event_id=event_id(provider, number, code, when, place.text)[:100],
        code=code,
        occurred_at=when.astimezone(UTC),
        status_type=raw.status_type,
        normalized_status=str(event.status or ""),
        description=raw.description or str(event.description or "").strip(),
        location=place,
        extra=extra,
    )


def tracked(
    provider: str, number: str, details: Any, exchanges: Sequence[Exchange]
) -> Tracked:
    karrio_events = list(details.events or [])
    raws = _raw_events(provider, number, karrio_events, exchanges)
    events = [
        e
        for e in (
            _event(provider, number, ke, raw)
            for ke, raw in zip(karrio_events, raws, strict=True)
        )
        if e is not None
    ]
    events.sort(key=lambda e: e.occurred_at)
    eta = _ups_eta(number, exchanges) if provider == "ups" else None
    if eta is None and details.estimated_delivery:
        try:
            eta = date.fromisoformat(str(details.estimated_delivery)[:10])
        except ValueError:
            eta = None
    info = details.info
    extra = {
        k: str(v)
        for k, v in {
            "service": getattr(info, "shipment_service", None),
            "tracking_link": getattr(info, "carrier_tracking_link", None),
        }.items()
        if v
    }
    return Tracked(
        tracking_number=number,
        events=events,
        estimated_delivery=eta,
        delivered=bool(details.delivered),
        carrier_status=str(details.status or ""),
        extra=extra,
    )
