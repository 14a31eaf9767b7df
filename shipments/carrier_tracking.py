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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shipments.carrier_status import CarrierEvent


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


# The most tracking numbers one `track` call sends a provider.
BATCH_SIZE: dict[str, int] = {"ups": 1, "fedex": 30, "usps": 1, "dhl_express": 10}


def track(
    connection: Connection, numbers: Sequence[str]
) -> dict[str, Tracked | NotFound]:
    """One answer per number asked (at most BATCH_SIZE[provider])."""
    raise NotImplementedError
