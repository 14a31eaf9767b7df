"""Subscriptions to the shipments app's domain events (connected in apps.py)."""

from __future__ import annotations

from typing import Any

from notifications import services


def on_event_recorded(
    *, event: Any, shipment: Any, previous_status: str, **_: Any
) -> None:
    # Inside the event's transaction: the outbox row commits with the event.
    services.notifications_for_event(
        event=event, shipment=shipment, previous_status=previous_status
    )
