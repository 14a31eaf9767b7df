"""Data for the carrier sync tests: connected carrier accounts and the
shipments they follow, with tracking numbers valid for each carrier."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shipments.carriers.credentials import credentials_encrypt
from shipments.carriers.tracking import CREDENTIAL_FIELDS
from shipments.models import CarrierAccount, CarrierSync, Shipment, TrackingProvider
from tests.factories import CarrierFactory, dispatched_shipment

CARRIERS = {
    TrackingProvider.UPS: ("ups", "UPS", "ups"),
    TrackingProvider.FEDEX: ("fedex", "FedEx", "fedex"),
    TrackingProvider.USPS: ("usps", "USPS", "usps"),
    TrackingProvider.DHL_EXPRESS: ("dhl", "DHL Express", "dhl_express"),
}


def ups_number(serial: int) -> str:
    """A UPS 1Z number with a right check digit (UPS's own algorithm)."""
    body = f"1Z999AA1{serial:09d}"

    def value(char: str) -> int:
        return int(char) if char.isdigit() else (ord(char) - 63) % 10

    total = sum(value(ch) * (2 if i % 2 else 1) for i, ch in enumerate(body[2:]))
    return body + str((10 - total % 10) % 10)


def fedex_number(serial: int) -> str:
    """A 12-digit FedEx Express number with a right check digit."""
    body = f"7{serial:010d}"
    weights = (3, 1, 7)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(body))
    return body + str(total % 11 % 10)


def dhl_number(serial: int) -> str:
    """A 10-digit DHL Express waybill (check digit: the rest mod 7)."""
    body = f"{3000000 + serial:09d}"
    return body + str(int(body) % 7)


NUMBERS = {
    TrackingProvider.UPS: ups_number,
    TrackingProvider.FEDEX: fedex_number,
    TrackingProvider.DHL_EXPRESS: dhl_number,
}


def connect(provider: str = TrackingProvider.UPS, **fields: Any) -> CarrierAccount:
    """The carrier, and the company's API account with it."""
    code, name, family = CARRIERS[TrackingProvider(provider)]
    carrier = CarrierFactory(
        code=code,
        name=name,
        tracking_family=family,
        tracking_url_template="https://carrier.example/track?n={number}",
    )
    values: dict[str, Any] = {
        "credentials": credentials_encrypt(
            dict.fromkeys(CREDENTIAL_FIELDS[provider][0], "tracksop-test-value")
        ),
        **fields,
    }
    return CarrierAccount.objects.create(carrier=carrier, provider=provider, **values)


_serial = iter(range(1000, 10**6))


def shipments_with(
    account: CarrierAccount, count: int = 1, **fields: Any
) -> list[Shipment]:
    """Dispatched shipments carried by the account's carrier."""
    number = NUMBERS[TrackingProvider(account.provider)]
    return [
        dispatched_shipment(
            carrier=account.carrier, tracking_number=number(next(_serial)), **fields
        )
        for _ in range(count)
    ]


def followed(
    account: CarrierAccount, count: int = 1, *, due: datetime, **fields: Any
) -> list[Shipment]:
    """Shipments whose sync rows exist and are due at `due`."""
    shipments = shipments_with(account, count, **fields)
    CarrierSync.objects.bulk_create(
        [CarrierSync(shipment=s, account=account, next_due_at=due) for s in shipments]
    )
    return shipments


def sync_of(shipment: Shipment) -> CarrierSync:
    return CarrierSync.objects.get(shipment=shipment)
