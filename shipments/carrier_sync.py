"""Carrier tracking sync: poll the carriers' tracking APIs for every
undelivered shipment of a connected carrier (issue 14).

Contract (the pieces other modules call; bodies land with the sync):
- `carrier_sync_due(now=None) -> int`: the beat's service; queues batches of
  the shipments that are due, per account, within its rate limit.
- `carrier_sync_batch(account_id=…, shipment_ids=…, now=None) -> list[CarrierSync]`:
  the task's service; asks the carrier, records events, ETA changes and
  results; one shipment's failure never stops the batch.
- `carrier_sync_shipment(shipment=…, now=None) -> CarrierSync`: *Sync now* on
  the shipment page; raises `SyncRefused` (message for staff) when the
  shipment has no connected carrier account or nothing to follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shipments.models import CarrierSync, Shipment


class SyncRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def carrier_sync_due(*, now: datetime | None = None) -> int:
    raise NotImplementedError


def carrier_sync_batch(
    *, account_id: int, shipment_ids: Sequence[int], now: datetime | None = None
) -> list[CarrierSync]:
    raise NotImplementedError


def carrier_sync_shipment(
    *, shipment: Shipment, now: datetime | None = None
) -> CarrierSync:
    raise NotImplementedError
