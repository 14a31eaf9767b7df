"""`make run`'s carrier tracking sync: UPS connected to the local fake carrier
(Procfile.dev's `carrier` process) and two UPS packages the beat syncs within
a minute of starting.

The account's credentials are the fake's (it accepts any);
TRACKSOP_CARRIER_API_URLS in `make run` points UPS at it. The two packages
were handed to UPS three days ago, before the fake's journey for their numbers
begins, so the carrier's scans follow the dispatch in their timelines.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from shipments import tracking_numbers as tn
from shipments.carriers.credentials import credentials_encrypt
from shipments.models import (
    Carrier,
    CarrierAccount,
    CarrierSync,
    Shipment,
    Source,
    TrackingEvent,
    TrackingProvider,
    new_shipment_code,
)
from shipments.status import EventKind, initial_state, next_state

K = EventKind

# The fake carrier takes any credentials; these only look like UPS's.
DEMO_CREDENTIALS = {
    "client_id": "tracksop-demo",
    "client_secret": "fake-carrier-accepts-anything",
}
DEMO_RECIPIENTS = [
    ("Grace Hopper", "Arlington", "22201"),
    ("Alan Turing", "Boston", "02108"),
]
# The fake's journeys start at most 49 hours before it first hears of a number.
HANDED_OVER = timedelta(days=3)


def demo_number(n: int) -> str:
    """A valid UPS 1Z number of the demo's own (no seeded number starts so)."""
    body = f"1ZTRKS0303{n:07d}"
    for check in "0123456789":
        try:
            return tn.validate(body + check, tn.Family.UPS).number
        except tn.InvalidTrackingNumber:
            continue
    raise CommandError(f"No check digit completes {body}")


class Command(BaseCommand):
    help = "Connect UPS to the local fake carrier and add two UPS packages to sync."

    def handle(self, *args: Any, **options: Any) -> None:
        ups = Carrier.objects.filter(code="ups").first()
        if ups is None:
            raise CommandError("Run seed_demo first: it creates the carriers.")
        account, created = CarrierAccount.objects.get_or_create(
            carrier=ups,
            defaults={
                "provider": TrackingProvider.UPS,
                "credentials": credentials_encrypt(DEMO_CREDENTIALS),
                "test_mode": True,
            },
        )
        codes = [self._package(ups, account, n) for n in range(len(DEMO_RECIPIENTS))]
        url = settings.TRACKSOP_CARRIER_API_URLS.get("ups", "")
        where = f"the fake carrier at {url}" if url else "UPS's own servers"
        state = "connected" if created else "already connected"
        self.stdout.write(
            f"  Carrier tracking sync: UPS {state} to {where}; "
            f"{' and '.join(codes)} sync within a minute of starting."
        )

    def _package(self, ups: Carrier, account: CarrierAccount, n: int) -> str:
        number = demo_number(n + 1)
        existing = Shipment.objects.filter(tracking_number=number).first()
        if existing is not None:  # a second `make run`
            return existing.shipment_id
        name, city, postcode = DEMO_RECIPIENTS[n]
        now = timezone.now()
        handed_over = now - HANDED_OVER
        # A history three days old, as seed_demo writes its year of them:
        # folded through the status machine (the services date events now).
        history = [
            (K.CREATED, handed_over - timedelta(hours=3)),
            (K.CHECK_PASSED, handed_over - timedelta(hours=2)),
            (K.DISPATCHED, handed_over),
        ]
        state = initial_state()
        after = []
        for kind, at in history:
            state = next_state(state, kind=kind, occurred_at=at)
            after.append(state.status)
        eta = (now + timedelta(days=1)).date()
        with transaction.atomic():
            shipment = Shipment.objects.create(
                shipment_id=new_shipment_code(),
                order_number=f"ORD-CARRIER-{n + 1}",
                sender_name="TrackSOP Demo Warehouse",
                sender_email="warehouse@tracksop.local",
                sender_address="1 Dock Road, Newark, NJ",
                recipient_name=name,
                recipient_email=f"{name.split()[0].lower()}@example.com",
                recipient_address=f"{100 + n} Main Street",
                recipient_postcode=postcode,
                recipient_city=city,
                recipient_country="US",
                weight_kg=Decimal("1.200"),
                length_cm=Decimal(30),
                width_cm=Decimal(20),
                height_cm=Decimal(10),
                contents="Books",
                checked_at=history[1][1],
                quality_ok=True,
                quantity_ok=True,
                carrier=ups,
                tracking_number=number,
                estimated_delivery=eta,
                dispatch_eta=eta,
                dispatched_at=handed_over,
                status=state.status,
                status_changed_at=state.since or handed_over,
                resume_status=state.resume,
                version=len(history),
                last_event_at=handed_over,
            )
            for (kind, at), status in zip(history, after, strict=True):
                TrackingEvent.objects.create(
                    shipment=shipment,
                    kind=kind,
                    occurred_at=at,
                    source=Source.SYSTEM,
                    integration="Demo",
                    status_after=status,
                )
            Shipment.objects.filter(pk=shipment.pk).update(created_at=history[0][1])
            # Due now: the beat's next run asks UPS (the others it finds
            # itself, their first polls spread over an interval).
            CarrierSync.objects.create(
                shipment=shipment, account=account, next_due_at=now
            )
        return shipment.shipment_id
