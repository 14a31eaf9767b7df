"""Dispatched shipments in bulk for the benchmarks that need them as the
services would leave them, without the services' cost: bench/api.py,
bench/webhooks.py and bench/carrier_sync.py.

Each benchmark says how its shipments are numbered (`Codes`: a serial number
to a shipment ID, an order number and a tracking number), when they were
dispatched, their ETA, which contact details the recipient gave (what
decides the notifications their events write), and whether their history
(created, checked, dispatched) is in the event log. The rest of a row is the
same for all: one warehouse, one recipient address, a box of books.
(bench/db.py's `prepare` seeds the search and exceptions scales with
`seed_demo` instead: a realistic mix of statuses, not all dispatched.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from itertools import batched

from shipments.models import Carrier, Shipment, TrackingEvent

# A serial number → (shipment ID, order number, tracking number).
Codes = Callable[[int], tuple[str, str, str]]

# The events a dispatched shipment's log starts with, and the status each
# leaves.
HISTORY = (
    ("created", "created"),
    ("check_passed", "ready"),
    ("dispatched", "dispatched"),
)


def own_fleet() -> Carrier:
    """The company's own fleet (S10 tracking numbers), made once."""
    fleet, _ = Carrier.objects.get_or_create(
        code="bench-fleet",
        defaults={
            "name": "Bench fleet",
            "tracking_family": "s10",
            "is_own_fleet": True,
        },
    )
    return fleet


def dispatched_shipments(
    serials: Iterable[int],
    *,
    carrier: Carrier,
    codes: Codes,
    dispatched_at: datetime,
    eta: date,
    email: bool = True,
    phone: bool = False,
    history: bool = False,
    batch_size: int = 5000,
) -> list[tuple[int, str]]:
    """Insert one dispatched shipment per serial number, `batch_size` rows a
    statement; (pk, shipment ID) of each, in serial order. `email`, `phone`:
    whether the recipient gave them; `history`: write the created, checked
    and dispatched events too."""
    made: list[tuple[int, str]] = []
    for chunk in batched(serials, batch_size):
        rows = [
            _shipment(
                n,
                carrier=carrier,
                codes=codes(n),
                dispatched_at=dispatched_at,
                eta=eta,
                email=email,
                phone=phone,
            )
            for n in chunk
        ]
        Shipment.objects.bulk_create(rows)
        if history:
            TrackingEvent.objects.bulk_create(
                TrackingEvent(
                    shipment=s,
                    kind=kind,
                    occurred_at=dispatched_at,
                    source="import",
                    status_after=status,
                )
                for s in rows
                for kind, status in HISTORY
            )
        made += [(s.pk, s.shipment_id) for s in rows]
    return made


def _shipment(
    n: int,
    *,
    carrier: Carrier,
    codes: tuple[str, str, str],
    dispatched_at: datetime,
    eta: date,
    email: bool,
    phone: bool,
) -> Shipment:
    shipment_id, order_number, tracking_number = codes
    return Shipment(
        shipment_id=shipment_id,
        order_number=order_number,
        sender_name="TrackSOP Bench Warehouse",
        sender_address="1 Dock Road, Newark, NJ",
        recipient_name=f"Customer {n}",
        recipient_email=f"customer{n}@example.net" if email else "",
        recipient_phone=f"+1202555{n % 10000:04d}" if phone else "",
        recipient_address=f"{n % 999 + 1} Main Street",
        recipient_postcode="10001",
        recipient_city="New York",
        recipient_country="US",
        weight_kg=Decimal("1.250"),
        length_cm=Decimal(30),
        width_cm=Decimal(20),
        height_cm=Decimal(10),
        contents="Books",
        carrier=carrier,
        tracking_number=tracking_number,
        estimated_delivery=eta,
        dispatch_eta=eta,
        dispatched_at=dispatched_at,
        status="dispatched",
        status_changed_at=dispatched_at,
        resume_status="dispatched",
        last_event_at=dispatched_at,
        # Created, checked, dispatched: the version the services leave.
        version=3,
    )
