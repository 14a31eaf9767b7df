"""Subscriptions to the shipments app's domain events (connected in apps.py)."""

from __future__ import annotations

from typing import Any

from notifications import outbox
from notifications.webhooks import outbox as webhook_outbox
from shipments.events import Recorded


def on_events_recorded(*, records: list[Recorded], **_: Any) -> None:
    # Inside the events' transaction: the outbox rows commit with them.
    outbox.notifications_for_events(records)


def on_events_recorded_webhooks(*, records: list[Recorded], **_: Any) -> None:
    # Likewise: a webhook exists exactly when its event does.
    webhook_outbox.webhooks_for_events(records)
