"""Domain events of the shipments app: the one place other apps listen to.

`events_recorded` is sent inside the transaction that wrote the events, so a
receiver that writes (an outbox row, an exception) commits or rolls back with
them. Receivers that leave the process must defer with `transaction.on_commit`.
Receivers connect in their AppConfig.ready(); shipments imports none of them.

One announcement carries every event a service wrote in one go: one for a
scan, fifty for a chunk of the exceptions sweep. Receivers handle the list
with a fixed number of queries, which is what keeps a sweep's cost per row low.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from django.db import transaction
from django.dispatch import Signal

from shipments.public import tracking_page_forget, tracking_pages_forget

if TYPE_CHECKING:
    from shipments.models import Shipment, TrackingEvent


class Recorded(NamedTuple):
    event: TrackingEvent
    shipment: Shipment  # locked, already saved with the event applied
    previous_status: str


# kwargs: records (a list of Recorded, at least one)
events_recorded = Signal()


def publish_events_recorded(records: Sequence[Recorded]) -> None:
    if not records:
        return
    tokens = list(dict.fromkeys(record.shipment.public_token for record in records))
    # Robust: a cache that is down must not fail the request after its commit.
    if len(tokens) == 1:
        transaction.on_commit(partial(tracking_page_forget, tokens[0]), robust=True)
    else:
        # A batch of scans: one round trip to the cache for all its shipments.
        transaction.on_commit(partial(tracking_pages_forget, tokens), robust=True)
    events_recorded.send(sender=type(records[0].event), records=list(records))


def publish_event_recorded(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> None:
    publish_events_recorded([Recorded(event, shipment, previous_status)])
