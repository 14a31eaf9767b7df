"""Carriers' tracking APIs, through karrio's SDK (the `carriers` extra).

The one module that talks to karrio: `track` asks a carrier about some
tracking numbers and answers, per number, what the carrier knows
(`Tracked`) or that it does not know the number (`NotFound`); a failure of
the whole request raises a `CarrierError` subclass. Events come back as
`shipments.carrier_status.CarrierEvent`, so the sync maps them through the
same tables as the push webhooks.

`TRACKSOP_CARRIER_API_URLS` (a dict provider → base URL) points a provider's
requests elsewhere than the carrier's servers: the local fake carrier of
tests, the demo and the benchmark (`shipments.fake_carrier`).

How karrio is used, and what it does not do for us:

- One karrio gateway per `track` call (`karrio.gateway[provider].create`),
  with a `lib.Cache` backed by the Django cache: the OAuth tokens karrio
  fetches are shared by every worker process, under a hashed key (karrio's
  own key has the client secret in it).
- karrio's HTTP helper swallows status codes (it hands the error body to the
  carrier's parser) and its proxies set no timeout. We wrap the `urlopen` its
  helper calls, once: the wrapper applies `TRACKSOP_CARRIER_TIMEOUT` and adds
  the status to the response headers karrio records in its tracer, so each
  call's own tracer tells us what every request got (401, 429 + Retry-After,
  5xx, nothing at all, a body we cannot read).
- karrio's event timestamps are the carrier's *local* time labelled UTC for
  UPS, FedEx, USPS and DHL alike; the carriers' raw answers (kept by the
  tracer) have the offset or the UTC time, which we read instead (see
  `TIMES` below for what each provider gives).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import re
import urllib.error
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache as django_cache

from shipments.carrier_status import CarrierEvent, CarrierLocation

logger = logging.getLogger(__name__)


class CarrierError(Exception):
    """The carrier's request failed as a whole; `message` is for staff."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CarrierAuthFailed(CarrierError):
    """The carrier refused our credentials."""


class CarrierRateLimited(CarrierError):
    """429: try again after `retry_after` seconds (None: the carrier did not say)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CarrierUnavailable(CarrierError):
    """5xx, a timeout, a refused connection, or an answer we cannot read."""


class KarrioMissing(CarrierError):
    """The `carriers` extra is not installed."""


@dataclass(frozen=True)
class Connection:
    """What `track` needs of a `CarrierAccount` (no model, no database)."""

    account_id: int
    provider: str  # a TrackingProvider value
    credentials: Mapping[str, Any]
    test_mode: bool = True


@dataclass(frozen=True)
class Tracked:
    tracking_number: str
    events: Sequence[CarrierEvent]  # oldest first
    estimated_delivery: date | None = None
    delivered: bool = False
    carrier_status: str = ""  # karrio's normalized status of the package
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotFound:
    tracking_number: str
    message: str
    # The carrier answered for the number, but karrio could not read it (the
    # rest of the batch was): retried like an unknown number.
    unreadable: bool = False


# The most tracking numbers one `track` call sends a provider.
BATCH_SIZE: dict[str, int] = {"ups": 1, "fedex": 30, "usps": 1, "dhl_express": 10}

# The credentials each provider's karrio settings need (required, optional):
# what an administrator types as the account's JSON.
CREDENTIAL_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ups": (("client_id", "client_secret"), ("account_number",)),
    # FedEx's Track API has its own project keys, apart from Ship/Rate's.
    "fedex": (("track_api_key", "track_secret_key"), ("account_number",)),
    "usps": (("client_id", "client_secret"), ("account_number",)),
    "dhl_express": (("site_id", "password"), ("account_number",)),
}

PROVIDER_NAMES = {"ups": "UPS", "fedex": "FedEx", "usps": "USPS", "dhl_express": "DHL"}

# What each provider's answer says of an event's time (karrio's `timestamp`
# is always the local time marked "Z", so it is never used as is):
TIMES = {
    "ups": "activity date+time local, gmtDate+gmtTime UTC, gmtOffset",
    "fedex": "scanEvents[].date ISO 8601 with the scan's UTC offset",
    "usps": "eventTimestamp local, GMTTimestamp UTC, GMTOffset",
    # XML-PI gives no offset: the local time is read in TIME_ZONE.
    "dhl_express": "ShipmentEvent Date+Time local, no offset",
}

# Header the urlopen wrapper adds so karrio's tracer records the status.
STATUS_HEADER = "X-Tracksop-Http-Status"


def credentials_missing(provider: str, credentials: Mapping[str, Any]) -> list[str]:
    """The required credential names absent from `credentials`."""
    required, _ = CREDENTIAL_FIELDS.get(provider, ((), ()))
    return [name for name in required if not str(credentials.get(name) or "")]


# --- karrio, imported lazily ------------------------------------------------


@functools.cache
def karrio_sdk() -> Any:
    """karrio's SDK module (import once: the app runs without the extra)."""
    try:
        from loguru import logger

        # karrio logs every request at INFO through loguru, and its schema
        # library warns of every field karrio's schemas lack (UPS's gmtDate…):
        # the sync records each result, which is what matters.
        logger.disable("karrio")
        logging.getLogger("jstruct").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # karrio imports PyPDF2, which warns that it is deprecated.
            warnings.simplefilter("ignore", DeprecationWarning)
            sdk = importlib.import_module("karrio.sdk")
            helpers = importlib.import_module("karrio.core.utils.helpers")
    except ImportError as exc:
        raise KarrioMissing(
            "Carrier tracking needs the 'carriers' extra (karrio and its "
            "connectors): install it with `uv sync --extra carriers`."
        ) from exc
    urlopen = getattr(helpers, "urlopen")  # noqa: B009 - karrio has no stubs
    if not getattr(urlopen, "tracksop", False):
        setattr(helpers, "urlopen", _wrap_urlopen(urlopen))  # noqa: B010
    return sdk


def karrio_warm_up() -> None:
    """Load karrio's carrier plugins now. The first gateway a process asks
    for makes karrio load them all: seconds of CPU (over 10 on a busy
    2-core machine), which would otherwise fall inside the first request's
    wait (Sync now's in the web process, the first batch's in a worker)."""
    sdk = karrio_sdk()
    for provider in CREDENTIAL_FIELDS:
        sdk.gateway[provider]


def _wrap_urlopen(urlopen: Callable[..., Any]) -> Callable[..., Any]:
    def tracksop_urlopen(request: Any, timeout: float | None = None, **kw: Any) -> Any:
        wait = timeout or float(getattr(settings, "TRACKSOP_CARRIER_TIMEOUT", 10))
        try:
            response = urlopen(request, timeout=wait, **kw)
        except urllib.error.HTTPError as exc:
            if exc.headers is not None:
                exc.headers[STATUS_HEADER] = str(exc.code)
            raise
        except TimeoutError as exc:
            raise TimeoutError(f"no answer within {wait:g} s") from exc
        except urllib.error.URLError as exc:
            raise ConnectionError(f"cannot connect: {exc.reason}") from exc
        if getattr(response, "headers", None) is not None:
            response.headers[STATUS_HEADER] = str(response.status)
        return response

    tracksop_urlopen.tracksop = True  # type: ignore[attr-defined]
    return tracksop_urlopen


@functools.cache
def _settings_class(provider: str, base_url: str) -> Any:
    base = importlib.import_module(f"karrio.mappers.{provider}.settings").Settings
    if not base_url:
        return base
    url = base_url.rstrip("/")
    return type(base.__name__, (base,), {"server_url": property(lambda _self: url)})


def api_urls() -> dict[str, str]:
    value = getattr(settings, "TRACKSOP_CARRIER_API_URLS", {}) or {}
    return {str(k): str(v) for k, v in dict(value).items() if v}


class DjangoTokenCache:
    """karrio's system cache over the Django cache (Redis in production), so
    every worker uses the same OAuth tokens. Keys are hashed: karrio's hold
    the client secret."""

    prefix = "carrier-token:"

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Any:
        self.keys.add(key)
        try:
            return django_cache.get(self.key(key))
        except Exception:
            logger.warning("Carrier token cache unreadable", exc_info=True)
            return None

    def set(self, key: str, value: Any, timeout: int = 86400, **kwargs: Any) -> None:
        self.keys.add(key)
        try:
            django_cache.set(self.key(key), value, timeout=timeout)
        except Exception:
            logger.warning("Carrier token cache unwritable", exc_info=True)

    def forget(self) -> None:
        """Drop the tokens this call used (the carrier refused one)."""
        with contextlib.suppress(Exception):
            django_cache.delete_many([self.key(k) for k in self.keys])


def _gateway(connection: Connection, token_cache: DjangoTokenCache) -> Any:
    sdk = karrio_sdk()
    lib = importlib.import_module("karrio.lib")
    provider = connection.provider
    if provider not in CREDENTIAL_FIELDS:
        raise CarrierError(f"Unknown tracking provider {provider!r}.")
    missing = credentials_missing(provider, connection.credentials)
    if missing:
        raise CarrierAuthFailed(
            f"The {PROVIDER_NAMES[provider]} credentials need "
            + ", ".join(missing)
            + "."
        )
    required, optional = CREDENTIAL_FIELDS[provider]
    values = {
        k: str(v)
        for k, v in connection.credentials.items()
        if k in required or k in optional
    }
    cls = _settings_class(provider, api_urls().get(provider, ""))
    karrio_settings = cls(
        **values,
        test_mode=connection.test_mode,
        carrier_id=provider,
        id=str(connection.account_id),
    )
    return sdk.gateway[provider].create(
        karrio_settings,
        cache=lib.Cache(cache=token_cache),
        tracer=importlib.import_module("karrio.core.utils").Tracer(),
    )


# --- what went over the wire ------------------------------------------------


@dataclass
class Exchange:
    """One HTTP request karrio made, and what came back (from its tracer)."""

    url: str
    answered: bool = False
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    parsed: tuple[Any] | None = None

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return str(value)
        return ""

    @property
    def is_token(self) -> bool:
        return "oauth" in self.url.lower() or "/security/" in self.url.lower()

    def text(self) -> str:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body)
        return "" if self.body is None else str(self.body)

    def json(self) -> Any:
        """The body as JSON (None when it is not), parsed once."""
        if isinstance(self.body, (dict, list)):
            return self.body
        if self.parsed is None:
            try:
                self.parsed = (json.loads(self.text()),)
            except ValueError:
                self.parsed = (None,)
        return self.parsed[0]


def _exchanges(gateway: Any) -> list[Exchange]:
    by_id: dict[str, Exchange] = {}
    for record in gateway.tracer.records:
        data = record.data if isinstance(record.data, dict) else {}
        exchange = by_id.setdefault(str(data.get("request_id", "")), Exchange(url=""))
        if record.key == "request":
            exchange.url = str(data.get("url", ""))
        elif record.key in ("response", "error"):
            exchange.answered = True
            exchange.headers = dict(data.get("response_headers") or {})
            exchange.body = data.get(record.key)
            status = exchange.header(STATUS_HEADER)
            exchange.status = int(status) if status.isdigit() else None
    return [ex for ex in by_id.values() if ex.url]


def _retry_after(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _text_of(messages: Iterable[Any], fallback: str = "") -> str:
    parts = []
    for m in messages:
        text = str(m.message or "").strip()
        if text:
            parts.append(f"{text} ({m.code})" if m.code else text)
    return "; ".join(dict.fromkeys(parts))[:500] or fallback


def _body_message(exchange: Exchange) -> str:
    """The carrier's own words in an error body, whatever its format."""
    data = exchange.json()
    if isinstance(data, dict):
        errors = (
            (data.get("response") or {}).get("errors")  # UPS
            or data.get("errors")  # FedEx
            or (
                (data.get("error") or {}).get("errors")
                if isinstance(data.get("error"), dict)
                else None
            )
        )
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(
                first.get("message") or first.get("detail") or first.get("title") or ""
            )
        if isinstance(data.get("error"), dict):
            return str(data["error"].get("message") or "")
        if data.get("error_description") or data.get("error"):
            return str(data.get("error_description") or data.get("error"))
    if data is None:
        found = re.search(
            r"<ConditionData>(.*?)</ConditionData>", exchange.text(), re.S
        )
        if found:
            return " ".join(found.group(1).split())
    return ""


def _readable(provider: str, exchange: Exchange) -> bool:
    text = exchange.text().strip()
    if exchange.body is not None and not isinstance(exchange.body, (str, dict, list)):
        return False
    if text == "undecoded bytes...":
        # karrio traces a body its decoder turned into a dict this way, and
        # an undecodable one too: its parser's messages tell which.
        return True
    if not text:
        return False
    if provider == "dhl_express":
        return text.startswith("<") and (
            "TrackingResponse" in text or "ErrorResponse" in text
        )
    return exchange.json() is not None


def _classify(
    provider: str, exchanges: Sequence[Exchange], messages: Sequence[Any]
) -> None:
    """Raise the CarrierError the request as a whole got, if any."""
    name = PROVIDER_NAMES[provider]
    for ex in exchanges:
        if not ex.answered:
            detail = next(
                (
                    str(m.message)
                    for m in messages
                    if re.search(r"no answer within|cannot connect", str(m.message))
                ),
                "no answer (timed out or connection refused)",
            )
            raise CarrierUnavailable(f"{name} did not answer: {detail}.")
        status = ex.status or 0
        said = _body_message(ex) or _text_of(messages)
        if status in (401, 403) or (
            ex.is_token and 400 <= status < 500 and status != 429
        ):
            raise CarrierAuthFailed(
                said or f"{name} refused the credentials ({status})."
            )
        if status == 429:
            raise CarrierRateLimited(
                f"{name} asked us to slow down" + (f": {said}" if said else "."),
                retry_after=_retry_after(ex.header("Retry-After")),
            )
        if status >= 500:
            raise CarrierUnavailable(
                f"{name} answered {status}" + (f": {said}" if said else ".")
            )
        if 200 <= status < 300 and not _readable(provider, ex):
            raise CarrierUnavailable(f"{name} answered something unreadable.")
    if provider == "dhl_express":
        # XML-PI answers every failure with 200 and an error document.
        for ex in exchanges:
            text = ex.text()
            if "ErrorResponse" in text[:400]:
                said = _body_message(ex)
                if re.search(r"auth|password|site ?id|login|credential", said, re.I):
                    raise CarrierAuthFailed(said)
                raise CarrierUnavailable(f"{name} refused the request: {said}")


# --- events -----------------------------------------------------------------


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


def _tracked(
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


# --- not found --------------------------------------------------------------

NOT_FOUND_CODES: dict[str, set[str]] = {
    # Track API: "Tracking Information Not Found", "Invalid inquiry number".
    "ups": {"TW0001", "TV1002", "TW0002", "TV1001"},
    "fedex": {
        "TRACKING.TRACKINGNUMBER.NOTFOUND",
        "TRACKING.TRACKINGNUMBER.INVALID",
        "TRACKING.TRACKINGNUMBER.EMPTY",
    },
    "usps": set(),  # any 4xx answer for the number
    "dhl_express": {"103"},  # "No Shipments Found for AWBNumber …"
}


def _normal(number: str) -> str:
    return re.sub(r"\s+", "", number).upper()


def _answers(
    provider: str,
    numbers: Sequence[str],
    details: Sequence[Any],
    messages: Sequence[Any],
    exchanges: Sequence[Exchange],
) -> dict[str, Tracked | NotFound]:
    asked = {_normal(n): n for n in numbers}
    out: dict[str, Tracked | NotFound] = {}
    for d in details:
        number = asked.get(_normal(str(d.tracking_number or "")))
        if number is None and len(numbers) == 1:
            number = numbers[0]  # the carrier spelled it its way
        if number is not None and number not in out:
            out[number] = _tracked(provider, number, d, exchanges)
    internal = [m for m in messages if str(m.code or "").startswith("SHIPPING_SDK")]
    if internal and not out:
        # karrio failed on the answer (or before it): not the number's fault.
        raise CarrierUnavailable(
            f"{PROVIDER_NAMES[provider]}'s answer could not be read: "
            + _text_of(internal)
        )
    unattributed = []
    for m in messages:
        if m in internal:
            continue
        number = asked.get(_normal(str((m.details or {}).get("tracking_number") or "")))
        code = str(m.code or "")
        if number is None:
            found = re.search(r"AWBNumber (\S+)", str(m.message or ""))
            number = asked.get(_normal(found.group(1))) if found else None
        if number is None and len(numbers) == 1:
            number = numbers[0]
        if number is None:
            if (m.level or "error") == "error" and code not in NOT_FOUND_CODES[
                provider
            ]:
                unattributed.append(m)
            continue
        if number in out:
            continue
        # What the carrier says of one number when it has no details for it:
        # it does not know it (or not by that number).
        if code in NOT_FOUND_CODES[provider] or (m.level or "error") in (
            "error",
            "warning",
        ):
            out[number] = NotFound(
                number, _text_of([m], "The carrier does not know it.")
            )
    for number in numbers:
        if number in out:
            continue
        if provider == "dhl_express" and any(str(m.code) == "103" for m in messages):
            out[number] = NotFound(
                number, _text_of([m for m in messages if str(m.code) == "103"])
            )
        elif internal or unattributed:
            raise CarrierUnavailable(
                f"{PROVIDER_NAMES[provider]} refused the request: "
                + _text_of(internal or unattributed)
            )
        else:
            # Known to the carrier, nothing scanned yet (a label only).
            out[number] = Tracked(tracking_number=number, events=[])
    return out


def _slice(provider: str, exchanges: Sequence[Exchange], number: str) -> str | None:
    """The batch's raw answer with only `number` in it."""
    lib = importlib.import_module("karrio.lib")
    for ex in exchanges:
        if provider == "fedex" and ex.url.endswith("/track/v1/trackingnumbers"):
            data = ex.json()
            if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
                return None
            results = data["output"].get("completeTrackResults") or []
            mine = [r for r in results if str(r.get("trackingNumber")) == number]
            output = {**data["output"], "completeTrackResults": mine}
            return json.dumps({**data, "output": output})
        if provider == "dhl_express" and "<AWBInfo" in ex.text():
            etree = importlib.import_module("lxml.etree")
            root = lib.to_element(ex.text())
            for info in lib.find_element("AWBInfo", root):
                if (info.findtext("AWBNumber") or "").strip() != number:
                    info.getparent().remove(info)
            return str(etree.tostring(root, encoding="unicode"))
    return None


def _without_events(provider: str, text: str) -> bool:
    """Whether one number's answer says the carrier knows it but has scanned
    nothing yet (a label only), which karrio cannot parse."""
    if provider == "fedex":
        data = json.loads(text)
        results = data["output"]["completeTrackResults"]
        tracks = [t for r in results for t in r.get("trackResults") or []]
        return bool(tracks) and all(
            "error" not in t and not t.get("scanEvents") for t in tracks
        )
    return "<ShipmentInfo" in text and "<ShipmentEvent" not in text


def _parse_each(
    gateway: Any, provider: str, numbers: Sequence[str], exchanges: Sequence[Exchange]
) -> dict[str, Tracked | NotFound] | None:
    lib = importlib.import_module("karrio.lib")
    decoder = lib.to_element if provider == "dhl_express" else lib.to_dict
    out: dict[str, Tracked | NotFound] = {}
    for number in numbers:
        text = _slice(provider, exchanges, number)
        if text is None:
            return None
        try:
            details, messages = gateway.mapper.parse_tracking_response(
                lib.Deserializable(text, decoder)
            )
            out.update(
                _answers(
                    provider,
                    [number],
                    list(details or []),
                    list(messages or []),
                    exchanges,
                )
            )
        except Exception as exc:
            if _without_events(provider, text):
                out[number] = Tracked(tracking_number=number, events=[])
                continue
            logger.warning("karrio cannot read %s's answer for %s", provider, number)
            out[number] = NotFound(
                number,
                f"{PROVIDER_NAMES[provider]}'s answer for this number cannot be "
                f"read: {exc}",
                unreadable=True,
            )
    return out


def _fetch(
    connection: Connection, numbers: Sequence[str], *, retry: bool = True
) -> dict[str, Tracked | NotFound]:
    sdk = karrio_sdk()
    models = importlib.import_module("karrio.core.models")
    token_cache = DjangoTokenCache()
    gateway = _gateway(connection, token_cache)
    try:
        details, messages = (
            sdk.Tracking.fetch(models.TrackingRequest(tracking_numbers=list(numbers)))
            .from_(gateway)
            .parse()
        )
    except Exception as exc:
        raise CarrierUnavailable(
            f"{PROVIDER_NAMES[connection.provider]}: {exc}"
        ) from exc
    details, messages = list(details or []), list(messages or [])
    exchanges = _exchanges(gateway)
    if len(numbers) > 1 and any(
        str(m.code or "").startswith("SHIPPING_SDK") for m in messages
    ):
        # karrio's parser fails on a whole batch for one odd number (FedEx:
        # an empty scanEvents; DHL: a ShipmentInfo without events): read the
        # numbers one by one from the same answer.
        _classify(connection.provider, exchanges, [])
        one_by_one = _parse_each(gateway, connection.provider, numbers, exchanges)
        if one_by_one is not None:
            return one_by_one
    try:
        _classify(connection.provider, exchanges, messages)
    except CarrierAuthFailed:
        token_cache.forget()
        if retry and exchanges and not any(ex.is_token for ex in exchanges):
            # A cached token the carrier no longer takes (revoked, or its
            # clock differs from ours): once more, with a new one, before the
            # account is said to be failing.
            return _fetch(connection, numbers, retry=False)
        raise
    return _answers(connection.provider, numbers, details, messages, exchanges)


def track(
    connection: Connection, numbers: Sequence[str]
) -> dict[str, Tracked | NotFound]:
    """One answer per number asked (at most BATCH_SIZE[provider] a request:
    more are sent in several)."""
    numbers = list(dict.fromkeys(n.strip() for n in numbers if n and n.strip()))
    if not numbers:
        return {}
    if connection.provider not in CREDENTIAL_FIELDS:
        raise CarrierError(f"Unknown tracking provider {connection.provider!r}.")
    size = BATCH_SIZE[connection.provider]
    out: dict[str, Tracked | NotFound] = {}
    for start in range(0, len(numbers), size):
        try:
            out.update(_fetch(connection, numbers[start : start + size]))
        except CarrierError:
            raise
        except Exception as exc:
            # karrio's (or our reading of it): never past this function.
            logger.exception("Carrier tracking failed on %s", connection.provider)
            raise CarrierUnavailable(
                f"{PROVIDER_NAMES[connection.provider]}: {exc}"
            ) from exc
    return out
