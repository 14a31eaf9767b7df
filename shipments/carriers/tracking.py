"""What the carrier tracking adapter answers, and how it fails: the contract
between `shipments.carriers.adapter` (the only code that knows karrio) and the
sync that calls it.

`adapter.client.track(connection, numbers)` answers, per number, what the
carrier knows (`Tracked`) or that it does not know the number (`NotFound`);
a failure of the whole request raises a `CarrierError` subclass. Events come
back as `shipments.carriers.status.CarrierEvent`, so the sync maps them
through the same tables as the push webhooks. The provider tables here
(batch sizes, credential names) need no karrio: the admin and the pages
read them without the `carriers` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shipments.carriers.status import CarrierEvent


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


def credentials_missing(provider: str, credentials: Mapping[str, Any]) -> list[str]:
    """The required credential names absent from `credentials`."""
    required, _ = CREDENTIAL_FIELDS.get(provider, ((), ()))
    return [name for name in required if not str(credentials.get(name) or "")]
