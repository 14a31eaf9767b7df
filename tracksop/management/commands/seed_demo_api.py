"""A demo API key and a curl line that posts a checkpoint, for `make run`.

Each run revokes the previous demo key and issues a new one (a key is shown
only once, so the printed one must be fresh).
"""

from __future__ import annotations

import shlex
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from shipments.models import Location, Shipment
from shipments.status import MOVING, ShipmentStatus
from tracksop.api_keys import api_key_issue
from tracksop.models import ApiKey, Integration, Scope

DEMO_INTEGRATION = "Demo shop"


class Command(BaseCommand):
    help = "Issue a fresh demo API key and print a curl line that uses it."

    def handle(self, *args: Any, **options: Any) -> None:
        integration, _ = Integration.objects.get_or_create(
            name=DEMO_INTEGRATION, defaults={"contact_email": "shop@example.com"}
        )
        ApiKey.objects.filter(integration=integration, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        _key, raw = api_key_issue(
            integration=integration, name="make run", scopes=Scope.values
        )
        base = settings.TRACKSOP_PUBLIC_URL.rstrip("/")
        self.stdout.write(f"  API reference: {base}/api/v1/docs/  demo key: {raw}")
        # On its way; or held by an exception, which still takes scans (a
        # small demo has every package delivered or held).
        on_its_way = Shipment.objects.filter(tracking_number__isnull=False)
        shipment = (
            on_its_way.filter(status__in=MOVING).order_by("-id").first()
            or on_its_way.filter(status=ShipmentStatus.EXCEPTION)
            .order_by("-id")
            .first()
        )
        if shipment is None:
            return
        hub = Location.objects.filter(kind=Location.Kind.HUB, is_active=True).first()
        scan = (
            f'{{"kind": "arrived_hub", "location": "{hub.code}"}}'
            if hub
            else '{"kind": "in_transit_scan"}'
        )
        command = [
            "curl",
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {raw}",
            "-H",
            "Content-Type: application/json",
            "-d",
            scan,
            f"{base}/api/v1/shipments/{shipment.shipment_id}/checkpoints/",
        ]
        self.stdout.write("  Post a checkpoint: " + shlex.join(command))
