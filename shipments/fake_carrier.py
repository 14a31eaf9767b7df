"""A local fake of the carriers' tracking APIs, for tests, the demo and the
benchmark: karrio's UPS, FedEx, USPS and DHL Express connectors talk to it as
they would to the carriers (`TRACKSOP_CARRIER_API_URLS`).

Each provider lives under its own prefix, answering the paths karrio calls
with the shapes of the carriers' documented samples (karrio's connector
tests; UPS Track API, FedEx Track API, USPS Tracking 3.0, DHL XML-PI
KnownTrackingRequest):

    /ups/security/v1/oauth/token          /ups/api/track/v1/details/<n>
    /fedex/oauth/token                    /fedex/track/v1/trackingnumbers
    /usps/oauth2/v3/token                 /usps/tracking/v3/tracking/<n>
    /dhl_express/XMLShippingServlet

So `TRACKSOP_CARRIER_API_URLS` is `{"ups": "http://127.0.0.1:P/ups", …}`
(`FakeCarrier.api_urls()`). Any credentials are accepted; tokens are
"fake-…" and any fake server accepts any of them.

Every tracking number gets a plausible journey derived from the number
(deterministic: origin, hub and destination, how far along it is), anchored
at the moment the server first hears of the number, so polling the same
number twice gives the same events and new ones appear as time passes:
label, picked up, departure, arrival and departure at a hub, arrival at the
destination, out for delivery, delivered. A number ending in "404" is
unknown to the carrier. "label_only" is a number the carrier knows with no
scan yet (FedEx: an empty scanEvents; DHL: a ShipmentInfo without events).

Control API (JSON bodies; also the `FakeCarrier` methods of the same names):

    POST /_fake/numbers/<n>  {"scenario": "unknown" | "delivered" | "exception"
                                           | "journey" | "label_only"}
                             or {"events": [{"kind": "picked_up", "hours_ago": 30,
                                 "place": {"code": "ATL", "city": "Atlanta",
                                           "region": "GA", "postcode": "30301",
                                           "country": "US", "offset": -5}}, …]}
        kinds: label, picked_up, arrived, departed, in_transit, out_for_delivery,
        delivered, attempted, exception, returned
    POST /_fake/mode         {"mode": "ok" | "wrong_credentials" | "rate_limited" |
                              "server_error" | "garbage" | "hang",
                              "provider": "ups" (default: all), "endpoint": "token" |
                              "track" (default: both), "retry_after": 7, "hang_s": 30}
    GET  /_fake/stats        {"requests": {"ups.token": 1, "ups.track": 3, …}}
    POST /_fake/reset        scripts, modes and counts forgotten

`python manage.py fake_carrier --port 8765 --delay-ms 100` runs it for the
demo and the benchmark; tests use `FakeCarrier()` as a context manager (the
`fake_carrier` fixture).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

PROVIDERS = ("ups", "fedex", "usps", "dhl_express")
MODES = ("ok", "wrong_credentials", "rate_limited", "server_error", "garbage", "hang")
KINDS = (
    "label",
    "picked_up",
    "arrived",
    "departed",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "attempted",
    "exception",
    "returned",
)


@dataclass(frozen=True)
class Place:
    code: str
    city: str
    region: str
    postcode: str
    country: str
    offset: float  # hours from UTC (no DST: it is a fake)


HUBS = (
    Place("ATL", "Atlanta", "GA", "30301", "US", -5),
    Place("LOU", "Louisville", "KY", "40201", "US", -5),
    Place("CHI", "Chicago", "IL", "60601", "US", -6),
    Place("DAL", "Dallas", "TX", "75201", "US", -6),
    Place("DEN", "Denver", "CO", "80201", "US", -7),
    Place("PHX", "Phoenix", "AZ", "85001", "US", -7),
    Place("LAX", "Los Angeles", "CA", "90001", "US", -8),
    Place("SEA", "Seattle", "WA", "98101", "US", -8),
    Place("NYC", "New York", "NY", "10001", "US", -5),
)
DHL_HUBS = (
    Place("BCN", "Barcelona", "", "", "Spain", 1),
    Place("LEJ", "Leipzig", "", "", "Germany", 1),
    Place("MIL", "Milan", "", "", "Italy", 1),
    Place("CDG", "Paris", "", "", "France", 1),
    Place("BRU", "Brussels", "", "", "Belgium", 1),
    Place("AMS", "Amsterdam", "", "", "Netherlands", 1),
)


@dataclass(frozen=True)
class Step:
    kind: str
    at: datetime  # UTC
    place: Place


# The carriers' own code, type and text for each kind of step.
UPS_STEPS = {
    "label": (
        "MP",
        "M",
        "Shipper created a label, UPS has not received the package yet.",
    ),
    "picked_up": ("PU", "P", "Pickup Scan"),
    "arrived": ("AR", "I", "Arrived at Facility"),
    "departed": ("DP", "I", "Departed from Facility"),
    "in_transit": ("IT", "I", "On the Way"),
    "out_for_delivery": ("OT", "I", "Out For Delivery Today"),
    "delivered": ("FS", "D", "DELIVERED"),
    "attempted": (
        "48",
        "X",
        "The receiver was not available for delivery. "
        "We'll make a second attempt the next business day.",
    ),
    "exception": ("DJ", "X", "Severe weather conditions have delayed delivery."),
    "returned": ("RS", "I", "Returned to shipper"),
}
FEDEX_STEPS = {
    "label": ("OC", "Shipment information sent to FedEx"),
    "picked_up": ("PU", "Picked up"),
    "arrived": ("AR", "Arrived at FedEx location"),
    "departed": ("DP", "Departed FedEx location"),
    "in_transit": ("IT", "In transit"),
    "out_for_delivery": ("OD", "On FedEx vehicle for delivery"),
    "delivered": ("DL", "Delivered"),
    "attempted": ("DE", "Delivery exception"),
    "exception": ("SE", "Shipment exception"),
    "returned": ("RS", "Return to shipper"),
}
USPS_STEPS = {
    "label": ("GX", "Shipping Label Created, USPS Awaiting Item"),
    "picked_up": ("03", "USPS in possession of item"),
    "arrived": ("A1", "Arrived at USPS Regional Facility"),
    "departed": ("T1", "Departed USPS Regional Facility"),
    "in_transit": ("TL", "In Transit to Next Facility"),
    "out_for_delivery": ("OF", "Out for Delivery"),
    "delivered": ("01", "Delivered, In/At Mailbox"),
    "attempted": ("02", "Notice Left (No Authorized Recipient Available)"),
    "exception": ("05", "Undeliverable as Addressed"),
    "returned": ("09", "Return to Sender"),
}
DHL_STEPS = {
    "label": ("SA", "Shipment information received"),
    "picked_up": ("PU", "Shipment picked up"),
    "arrived": ("AF", "Arrived at DHL facility"),
    "departed": ("DF", "Departed from DHL facility"),
    "in_transit": ("PL", "Processed at location"),
    "out_for_delivery": ("WC", "With delivery courier"),
    "delivered": ("OK", "Shipment delivered"),
    "attempted": ("NH", "Recipient not home"),
    "exception": ("OH", "Shipment on hold"),
    "returned": ("RT", "Returned to shipper"),
}

# Offsets (hours from the journey's start) of the default journey's steps.
JOURNEY = (
    ("label", -6.0, 0),
    ("picked_up", 0.0, 0),
    ("departed", 3.0, 0),
    ("arrived", 12.0, 1),
    ("departed", 16.0, 1),
    ("arrived", 28.0, 2),
    ("out_for_delivery", 40.0, 2),
    ("delivered", 46.5, 2),
)


def _digest(number: str) -> int:
    return int.from_bytes(hashlib.sha256(number.encode()).digest()[:8], "big")


@dataclass
class Script:
    scenario: str = "journey"
    events: list[dict[str, Any]] = field(default_factory=list)
    at: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0)
    )


@dataclass
class Mode:
    mode: str = "ok"
    endpoint: str = ""  # "token", "track" or "" (both)
    retry_after: float | None = 7
    hang_s: float = 30.0


class FakeCarrier:
    """The fake carriers' state and HTTP server. Thread-safe."""

    def __init__(self, port: int = 0, delay_ms: int = 0, host: str = "127.0.0.1"):
        self.delay_ms = delay_ms
        self._lock = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self._anchors: dict[str, datetime] = {}
        self._modes: dict[str, Mode] = {}
        self._counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def api_urls(self) -> dict[str, str]:
        return {p: f"{self.url}/{p}" for p in PROVIDERS}

    def start(self) -> FakeCarrier:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-carrier", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def stop_serving(self) -> None:
        """Close the socket after `serve_forever` returned (foreground use)."""
        self._server.server_close()

    def __enter__(self) -> FakeCarrier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control -------------------------------------------------------

    def script(
        self,
        number: str,
        scenario: str = "journey",
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        scenarios = ("journey", "unknown", "delivered", "exception", "label_only")
        if scenario not in (*scenarios, "events"):
            raise ValueError(f"Unknown scenario {scenario!r}")
        for e in events or []:
            if e.get("kind") not in KINDS:
                raise ValueError(f"Unknown event kind {e.get('kind')!r}")
        with self._lock:
            self._scripts[number] = Script(
                scenario="events" if events else scenario, events=list(events or [])
            )

    def set_mode(
        self,
        mode: str,
        provider: str = "",
        endpoint: str = "",
        retry_after: float | None = 7,
        hang_s: float = 30.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}")
        with self._lock:
            for p in [provider] if provider else list(PROVIDERS):
                self._modes[p] = Mode(mode, endpoint, retry_after, hang_s)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._anchors.clear()
            self._modes.clear()
            self._counts.clear()

    # --- journeys ------------------------------------------------------

    def steps(self, provider: str, number: str, now: datetime) -> list[Step] | None:
        """The steps the carrier has scanned by `now`, oldest first (None:
        the number is unknown)."""
        with self._lock:
            script = self._scripts.get(number)
            anchor = self._anchors.setdefault(number, now.replace(microsecond=0))
        if script is None and number.endswith("404"):
            return None
        if script is not None and script.scenario == "unknown":
            return None
        if script is not None and script.scenario == "label_only":
            return []  # known (a label was made), nothing scanned yet
        hubs = DHL_HUBS if provider == "dhl_express" else HUBS
        h = _digest(number)
        route = [
            hubs[h % len(hubs)],
            hubs[(h // 7) % len(hubs)],
            hubs[(h // 49) % len(hubs)],
        ]
        if route[1] == route[0]:
            route[1] = hubs[(h + 1) % len(hubs)]
        if route[2] in route[:2]:
            route[2] = next(p for p in hubs if p not in route[:2])
        if script is not None and script.scenario == "events":
            return sorted(
                (
                    Step(
                        e["kind"],
                        script.at - timedelta(hours=float(e.get("hours_ago", 0))),
                        Place(**e["place"]) if e.get("place") else route[0],
                    )
                    for e in script.events
                ),
                key=lambda s: s.at,
            )
        # How far along the journey the number is when first heard of.
        progress = 20 + h % 30
        if script is not None and script.scenario == "delivered":
            progress = 48
        if script is not None and script.scenario == "exception":
            progress = 31
        start = anchor - timedelta(hours=progress)
        steps = [
            Step(kind, start + timedelta(hours=offset), route[hub])
            for kind, offset, hub in JOURNEY
        ]
        if script is not None and script.scenario == "exception":
            steps = [
                s for s in steps if s.kind not in ("out_for_delivery", "delivered")
            ]
            steps.append(Step("exception", start + timedelta(hours=30), route[2]))
        return [s for s in steps if s.at <= now]

    def eta(self, number: str) -> datetime:
        with self._lock:
            anchor = self._anchors.get(number, datetime.now(UTC))
        progress = 20 + _digest(number) % 30
        return anchor - timedelta(hours=progress) + timedelta(hours=48)

    # --- HTTP ----------------------------------------------------------

    def mode_for(self, provider: str, endpoint: str) -> Mode:
        with self._lock:
            mode = self._modes.get(provider, Mode())
        if mode.endpoint and mode.endpoint != endpoint:
            return Mode()
        return mode

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1


def _local(at: datetime, place: Place) -> datetime:
    return at.astimezone(timezone(timedelta(hours=place.offset)))


def _offset(place: Place) -> str:
    minutes = int(place.offset * 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --- the providers' answers -------------------------------------------------


def ups_track(fake: FakeCarrier, number: str, now: datetime) -> tuple[int, Any]:
    steps = fake.steps("ups", number, now)
    if steps is None:
        # karrio's UPS sample of an unknown number (HTTP 200, a warning).
        return 200, {
            "trackResponse": {
                "shipment": [
                    {
                        "warnings": [
                            {
                                "code": "TW0001",
                                "message": "Tracking Information Not Found",
                            }
                        ]
                    }
                ]
            }
        }
    activity = []
    for s in reversed(steps):
        code, type_, text = UPS_STEPS[s.kind]
        local, gmt = _local(s.at, s.place), s.at.astimezone(UTC)
        activity.append(
            {
                "date": local.strftime("%Y%m%d"),
                "time": local.strftime("%H%M%S"),
                "gmtDate": gmt.strftime("%Y%m%d"),
                "gmtTime": gmt.strftime("%H:%M:%S"),
                "gmtOffset": _offset(s.place),
                "location": {
                    "address": {
                        "city": s.place.city,
                        "stateProvince": s.place.region,
                        "postalCode": s.place.postcode,
                        "country": s.place.country,
                        "countryCode": s.place.country,
                    },
                    "slic": s.place.code,
                },
                "status": {
                    "code": code,
                    "description": text,
                    "simplifiedTextDescription": text,
                    "statusCode": "003",
                    "type": type_,
                },
            }
        )
    delivered = any(s.kind == "delivered" for s in steps)
    latest = activity[0]["status"] if activity else {}
    dates = [{"date": fake.eta(number).strftime("%Y%m%d"), "type": "SDD"}]
    if delivered:
        dates.append({"date": str(activity[0]["date"]), "type": "DEL"})
    return 200, {
        "trackResponse": {
            "shipment": [
                {
                    "inquiryNumber": number,
                    "package": [
                        {
                            "trackingNumber": number,
                            "activity": activity,
                            "currentStatus": latest,
                            "deliveryDate": dates,
                            "packageAddress": [],
                            "service": {"code": "003", "description": "UPS Ground"},
                            "weight": {"unitOfMeasurement": "LBS", "weight": "2.00"},
                        }
                    ],
                    "userRelation": "SHIPPER",
                }
            ]
        }
    }


def fedex_track(
    fake: FakeCarrier, numbers: list[str], now: datetime
) -> tuple[int, Any]:
    results = []
    for number in numbers:
        steps = fake.steps("fedex", number, now)
        if steps is None:
            results.append(
                {
                    "trackingNumber": number,
                    "trackResults": [
                        {
                            "trackingNumberInfo": {
                                "trackingNumber": number,
                                "carrierCode": "",
                                "trackingNumberUniqueId": "",
                            },
                            "error": {
                                "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                                "message": "Tracking number cannot be found. "
                                "Please correct the tracking number and try again.",
                            },
                        }
                    ],
                }
            )
            continue
        scans = []
        for s in reversed(steps):
            code, text = FEDEX_STEPS[s.kind]
            scans.append(
                {
                    "date": _local(s.at, s.place).isoformat(),
                    "derivedStatus": text,
                    "scanLocation": {
                        "city": s.place.city,
                        "stateOrProvinceCode": s.place.region,
                        "postalCode": s.place.postcode,
                        "countryCode": s.place.country,
                        "residential": False,
                        "countryName": "United States",
                    },
                    "locationId": s.place.code,
                    "locationType": "FEDEX_FACILITY",
                    "exceptionDescription": (
                        "Customer not available or business closed"
                        if s.kind == "attempted"
                        else ""
                    ),
                    "eventDescription": text,
                    "eventType": code,
                    "derivedStatusCode": code,
                    "exceptionCode": "",
                }
            )
        latest = scans[0] if scans else {}
        eta = fake.eta(number)
        results.append(
            {
                "trackingNumber": number,
                "trackResults": [
                    {
                        "trackingNumberInfo": {
                            "trackingNumber": number,
                            "carrierCode": "FDXG",
                            "trackingNumberUniqueId": f"12024~{number}~FDEG",
                        },
                        "latestStatusDetail": {
                            "code": latest.get("eventType", "OC"),
                            "derivedCode": latest.get("eventType", "OC"),
                            "statusByLocale": latest.get("eventDescription", ""),
                            "description": latest.get("eventDescription", ""),
                            "scanLocation": latest.get("scanLocation", {}),
                        },
                        "serviceDetail": {
                            "description": "FedEx Ground",
                            "shortDescription": "FG",
                            "type": "FEDEX_GROUND",
                        },
                        "standardTransitTimeWindow": {
                            "window": {"ends": eta.isoformat()}
                        },
                        "estimatedDeliveryTimeWindow": {
                            "window": {
                                "begins": eta.isoformat(),
                                "ends": eta.isoformat(),
                            }
                        },
                        "scanEvents": scans,
                    }
                ],
            }
        )
    return 200, {
        "transactionId": str(uuid.uuid4()),
        "output": {"completeTrackResults": results},
    }


def usps_track(fake: FakeCarrier, number: str, now: datetime) -> tuple[int, Any]:
    steps = fake.steps("usps", number, now)
    if steps is None:
        return 404, {
            "apiVersion": "v3",
            "error": {
                "code": "404",
                "message": "Not Found",
                "errors": [
                    {
                        "status": "404",
                        "code": "1000",
                        "title": "Not Found",
                        "detail": "The tracking number may be incorrect or "
                        "the status update is not yet available.",
                    }
                ],
            },
        }
    events = []
    for s in reversed(steps):
        code, text = USPS_STEPS[s.kind]
        events.append(
            {
                "eventType": text,
                "eventTimestamp": _local(s.at, s.place).strftime("%Y-%m-%dT%H:%M:%S"),
                "GMTTimestamp": s.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "GMTOffset": _offset(s.place),
                "eventCountry": None,
                "eventCity": s.place.city.upper(),
                "eventState": s.place.region,
                "eventZIP": s.place.postcode,
                "firm": None,
                "name": None,
                "authorizedAgent": "false",
                "eventCode": code,
                "additionalProp": None,
            }
        )
    latest = events[0]["eventType"] if events else "Pre-Shipment"
    return 200, {
        "trackingNumber": number,
        "destinationCity": steps[-1].place.city.upper() if steps else "",
        "mailClass": "USPS Ground Advantage",
        "mailType": "DM",
        "status": latest,
        "statusCategory": latest,
        "expectedDeliveryTimeStamp": fake.eta(number).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trackingEvents": events,
    }


def dhl_track(fake: FakeCarrier, numbers: list[str], now: datetime) -> tuple[int, str]:
    from django.utils import timezone as dj_timezone

    local_zone = dj_timezone.get_default_timezone()
    infos = []
    for number in numbers:
        steps = fake.steps("dhl_express", number, now)
        if steps is None:
            infos.append(
                f"<AWBInfo><AWBNumber>{escape(number)}</AWBNumber><Status>"
                "<ActionStatus>No Shipments Found</ActionStatus><Condition>"
                "<ConditionCode>103</ConditionCode><ConditionData>No Shipments Found "
                f"for AWBNumber {escape(number)}</ConditionData></Condition>"
                "</Status></AWBInfo>"
            )
            continue
        events = []
        for s in steps:  # XML-PI lists them oldest first
            code, text = DHL_STEPS[s.kind]
            # XML-PI times carry no offset; the fake writes them in TIME_ZONE,
            # which is how the adapter reads them.
            local = s.at.astimezone(local_zone)
            where = f"{s.place.city} - {s.place.country}"
            signatory = "CAMPAGNA" if s.kind == "delivered" else ""  # who signed
            events.append(
                f"<ShipmentEvent><Date>{local:%Y-%m-%d}</Date><Time>{local:%H:%M:%S}</Time>"
                f"<ServiceEvent><EventCode>{code}</EventCode><Description>{escape(text)}"
                f"</Description></ServiceEvent><Signatory>{signatory}</Signatory>"
                "<ServiceArea><ServiceAreaCode>"
                f"{s.place.code}</ServiceAreaCode><Description>{escape(where)}</Description>"
                "</ServiceArea></ShipmentEvent>"
            )
        eta = fake.eta(number).astimezone(UTC)
        origin = steps[0].place if steps else DHL_HUBS[0]
        shipped = steps[0].at if steps else now
        infos.append(
            f"<AWBInfo><AWBNumber>{escape(number)}</AWBNumber><Status><ActionStatus>success"
            "</ActionStatus></Status><ShipmentInfo><OriginServiceArea><ServiceAreaCode>"
            f"{origin.code}</ServiceAreaCode><Description>{escape(origin.city)}"
            "</Description></OriginServiceArea><ShipperName>TrackSOP demo</ShipperName>"
            f"<ShipmentDate>{shipped:%Y-%m-%dT%H:%M:%S}</ShipmentDate><Pieces>1</Pieces>"
            "<Weight>0.74</Weight><WeightUnit>K</WeightUnit>"
            f"<EstDlvyDate>{eta:%Y-%m-%d %H:%M:%S} GMT+00:00</EstDlvyDate>"
            + "".join(events)
            + "</ShipmentInfo></AWBInfo>"
        )
    return 200, (
        '<?xml version="1.0" encoding="UTF-8"?>\n<req:TrackingResponse '
        'xmlns:req="http://www.dhl.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.dhl.com TrackingResponse.xsd"><Response>'
        f"<ServiceHeader><MessageTime>{now:%Y-%m-%dT%H:%M:%S}+00:00</MessageTime>"
        "<MessageReference>1234567890123456789012345678</MessageReference>"
        "<SiteID>TrackSOP</SiteID></ServiceHeader></Response>"
        + "".join(infos)
        + "</req:TrackingResponse>"
    )


def _dhl_error(code: str, text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<req:ShipmentTrackingErrorResponse '
        'xmlns:req="http://www.dhl.com"><Response><ServiceHeader><MessageTime>'
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}+00:00</MessageTime></ServiceHeader><Status>"
        f"<ActionStatus>Failure</ActionStatus><Condition><ConditionCode>{code}"
        f"</ConditionCode><ConditionData>{escape(text)}</ConditionData></Condition>"
        "</Status></Response></req:ShipmentTrackingErrorResponse>"
    )


AUTH_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10401", "message": "ClientId is Invalid"}]}
    },
    "fedex": {
        "transactionId": "fake",
        "errors": [
            {
                "code": "NOT.AUTHORIZED.ERROR",
                "message": "The given client credentials were not valid. "
                "Please modify your request and try again.",
            }
        ],
    },
    "usps": {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#page-45",
    },
}
RATE_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10429", "message": "Too Many Requests"}]}
    },
    "fedex": {
        "errors": [
            {
                "code": "TOO.MANY.REQUESTS",
                "message": "We have received too many requests in a short "
                "duration. Please wait a while to try again.",
            }
        ]
    },
    "usps": {"error": {"code": "429", "message": "Too Many Requests", "errors": []}},
}
SERVER_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10500", "message": "General system failure"}]}
    },
    "fedex": {
        "errors": [
            {
                "code": "INTERNAL.SERVER.ERROR",
                "message": "We encountered an unexpected error and are working to "
                "resolve the issue. We apologize for any inconvenience. Please "
                "check back at a later time.",
            }
        ]
    },
    "usps": {
        "error": {"code": "500", "message": "Internal Server Error", "errors": []}
    },
}


def _handler(fake: FakeCarrier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: 50,000 requests a benchmark

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_POST(self) -> None:
            self.handle_any("POST")

        def body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def send(
            self, status: int, body: Any, headers: dict[str, str] | None = None
        ) -> None:
            if isinstance(body, (dict, list)):
                data, kind = json.dumps(body).encode(), "application/json"
            elif isinstance(body, str) and body.lstrip().startswith("<?xml"):
                data, kind = body.encode(), "application/xml"
            else:
                data, kind = str(body).encode(), "text/html"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self, method: str) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.route(method, urlsplit(self.path))

        def route(self, method: str, url: Any) -> None:
            path = url.path
            if path.startswith("/_fake/"):
                return self.control(method, path)
            provider, _, rest = path.lstrip("/").partition("/")
            if provider not in PROVIDERS:
                return self.send(404, {"error": f"no such path {path}"})
            rest = "/" + rest
            body = self.body() if method == "POST" else b""
            endpoint = "token" if "token" in rest else "track"
            if provider == "fedex" and "trackingdocuments" in rest:
                endpoint = "document"
            fake.count(f"{provider}.{endpoint}")
            if fake.delay_ms:
                time.sleep(fake.delay_ms / 1000)
            mode = fake.mode_for(provider, endpoint)
            if mode.mode == "hang":
                time.sleep(mode.hang_s)
                return self.send(504, "")
            if mode.mode == "garbage":
                return self.send(200, "<html><body>Bad gateway \x00\x01 {not json")
            if mode.mode == "rate_limited":
                headers = (
                    {}
                    if mode.retry_after is None
                    else {"Retry-After": f"{mode.retry_after:g}"}
                )
                if provider == "dhl_express":
                    return self.send(429, "Too Many Requests", headers)
                return self.send(429, RATE_ERRORS[provider], headers)
            if mode.mode == "server_error":
                if provider == "dhl_express":
                    return self.send(500, _dhl_error("500", "Internal server error"))
                return self.send(500, SERVER_ERRORS[provider])
            if mode.mode == "wrong_credentials":
                if provider == "dhl_express":
                    return self.send(
                        200,
                        _dhl_error(
                            "100",
                            "Failed authentication: the SiteID or Password "
                            "is not valid.",
                        ),
                    )
                return self.send(401, AUTH_ERRORS[provider])
            now = datetime.now(UTC)
            if endpoint == "token":
                return self.token(provider)
            if provider != "dhl_express" and endpoint == "track":
                auth = self.headers.get("Authorization") or ""
                if not auth.startswith("Bearer fake-"):
                    error = AUTH_ERRORS[provider]
                    return self.send(401, error)
            if provider == "ups" and rest.startswith("/api/track/v1/details/"):
                number = rest.rsplit("/", 1)[-1]
                return self.send(*ups_track(fake, number, now))
            if provider == "fedex" and rest == "/track/v1/trackingnumbers":
                request = json.loads(body or b"{}")
                numbers = [
                    i["trackingNumberInfo"]["trackingNumber"]
                    for i in request.get("trackingInfo", [])
                ]
                return self.send(*fedex_track(fake, numbers, now))
            if provider == "fedex" and endpoint == "document":
                return self.send(
                    200, {"output": {"documentFormat": "PNG", "document": []}}
                )
            if provider == "usps" and rest.startswith("/tracking/v3/tracking/"):
                number = rest.rsplit("/", 1)[-1]
                return self.send(*usps_track(fake, number, now))
            if provider == "dhl_express" and rest == "/XMLShippingServlet":
                text = body.decode("utf-8", "replace")
                numbers = re.findall(r"<AWBNumber>\s*([^<\s]+)\s*</AWBNumber>", text)
                return self.send(*dhl_track(fake, numbers, now))
            return self.send(404, {"error": f"no such path {path}"})

        def token(self, provider: str) -> None:
            token = f"fake-{provider}-{uuid.uuid4().hex}"
            issued = str(int(time.time() * 1000))
            if provider == "ups":
                return self.send(
                    200,
                    {
                        "token_type": "Bearer",
                        "issued_at": issued,
                        "client_id": "fake",
                        "access_token": token,
                        "expires_in": "14399",
                        "status": "approved",
                    },
                )
            if provider == "fedex":
                return self.send(
                    200,
                    {
                        "access_token": token,
                        "token_type": "bearer",
                        "expires_in": 3599,
                        "scope": "CXS-TP",
                    },
                )
            return self.send(
                200,
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "issued_at": issued,
                    "expires_in": 28799,
                    "status": "approved",
                    "scope": "tracking",
                    "issuer": "api.usps.com",
                    "client_id": "fake",
                },
            )

        def control(self, method: str, path: str) -> None:
            try:
                data = json.loads(self.body() or b"{}") if method == "POST" else {}
                if method == "GET" and path == "/_fake/stats":
                    return self.send(200, {"requests": fake.stats()})
                if method == "POST" and path == "/_fake/reset":
                    fake.reset()
                    return self.send(200, {"ok": True})
                if method == "POST" and path == "/_fake/mode":
                    fake.set_mode(
                        str(data.get("mode", "ok")),
                        provider=str(data.get("provider", "")),
                        endpoint=str(data.get("endpoint", "")),
                        retry_after=data.get("retry_after", 7),
                        hang_s=float(data.get("hang_s", 30)),
                    )
                    return self.send(200, {"ok": True})
                found = re.fullmatch(r"/_fake/numbers/([^/]+)", path)
                if method == "POST" and found:
                    fake.script(
                        found.group(1),
                        scenario=str(data.get("scenario", "journey")),
                        events=data.get("events"),
                    )
                    return self.send(200, {"ok": True})
            except (ValueError, KeyError, TypeError) as exc:
                return self.send(400, {"error": str(exc)})
            return self.send(404, {"error": f"no such control {path}"})

    return Handler
