"""Domain events of the shipments app: the one place other apps listen to.

`event_recorded` is sent inside the transaction that wrote the event, so a
receiver that writes (an outbox row, an exception) commits or rolls back with
it. Receivers that leave the process must defer with `transaction.on_commit`.
Receivers connect in their AppConfig.ready(); shipments imports none of them.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction
from django.dispatch import Signal

from shipments.public import tracking_page_forget

if TYPE_CHECKING:
    from shipments.models import Shipment, TrackingEvent

# kwargs: event (TrackingEvent), shipment (Shipment, locked), previous_status (str)
event_recorded = Signal()


def publish_event_recorded(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> None:
    # Robust: a cache that is down must not fail the request after its commit.
    transaction.on_commit(
        partial(tracking_page_forget, shipment.public_token), robust=True
    )
    event_recorded.send(
        sender=type(event),
        event=event,
        shipment=shipment,
        previous_status=previous_status,
    )
