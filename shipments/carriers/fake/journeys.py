"""The fake carrier's journeys: where a tracking number's package goes and
when, as the fake's carriers scan it (pure: no HTTP, no state).

Every number gets a plausible journey derived from the number (origin, hub
and destination, how far along it is), anchored at the moment the fake
first hears of it: label, picked up, departure, arrival and departure at a
hub, arrival at the destination, out for delivery, delivered. A `Script`
replaces it by a scenario or by listed events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

PROVIDERS = ("ups", "fedex", "usps", "dhl_express")
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


def digest(number: str) -> int:
    return int.from_bytes(hashlib.sha256(number.encode()).digest()[:8], "big")


@dataclass
class Script:
    scenario: str = "journey"
    events: list[dict[str, Any]] = field(default_factory=list)
    at: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0)
    )


class Journeys(Protocol):
    """What the providers' answers ask of the fake (`FakeCarrier`)."""

    def steps(self, provider: str, number: str, now: datetime) -> list[Step] | None:
        """The steps scanned by `now`, oldest first (None: unknown number)."""

    def eta(self, number: str) -> datetime:
        """When the package is due, by its journey."""


def _route(provider: str, h: int) -> list[Place]:
    """Origin, hub and destination: three different places, by number."""
    hubs = DHL_HUBS if provider == "dhl_express" else HUBS
    route = [
        hubs[h % len(hubs)],
        hubs[(h // 7) % len(hubs)],
        hubs[(h // 49) % len(hubs)],
    ]
    if route[1] == route[0]:
        route[1] = hubs[(h + 1) % len(hubs)]
    if route[2] in route[:2]:
        route[2] = next(p for p in hubs if p not in route[:2])
    return route


def journey(
    provider: str,
    number: str,
    *,
    script: Script | None,
    anchor: datetime,
    now: datetime,
) -> list[Step] | None:
    """The steps the carrier has scanned by `now`, oldest first (None: the
    number is unknown)."""
    scenario = script.scenario if script is not None else ""
    if scenario == "unknown" or (script is None and number.endswith("404")):
        return None
    if scenario == "label_only":
        return []  # known (a label was made), nothing scanned yet
    h = digest(number)
    route = _route(provider, h)
    if script is not None and scenario == "events":
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
    progress = {"delivered": 48, "exception": 31}.get(scenario, 20 + h % 30)
    start = anchor - timedelta(hours=progress)
    steps = [
        Step(kind, start + timedelta(hours=offset), route[hub])
        for kind, offset, hub in JOURNEY
    ]
    if scenario == "exception":
        steps = [s for s in steps if s.kind not in ("out_for_delivery", "delivered")]
        steps.append(Step("exception", start + timedelta(hours=30), route[2]))
    return [s for s in steps if s.at <= now]


def eta(number: str, anchor: datetime) -> datetime:
    """The journey's delivery time (its default progress, whatever the
    script)."""
    progress = 20 + digest(number) % 30
    return anchor - timedelta(hours=progress) + timedelta(hours=48)
