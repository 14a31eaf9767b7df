"""Subscriptions to the shipments app's domain events (connected in apps.py)."""

from __future__ import annotations

from typing import Any

from exceptions_mgmt import services
from shipments.events import Recorded
from shipments.status import CLOSED


def on_events_recorded(*, records: list[Recorded], **_: Any) -> None:
    # Delivered (or returned) while an exception was open: the package is
    # no longer held, so the exception closes with the record.
    for event, shipment, previous_status in records:
        if shipment.status in CLOSED and previous_status not in CLOSED:
            services.exceptions_close_with_shipment(
                shipment=shipment, actor=event.recorded_by
            )
