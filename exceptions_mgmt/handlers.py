"""Subscriptions to the shipments app's domain events (connected in apps.py)."""

from __future__ import annotations

from typing import Any

from exceptions_mgmt import detection, services
from shipments.events import Recorded
from shipments.status import CLOSED, EventKind


def on_events_recorded(*, records: list[Recorded], **_: Any) -> None:
    # Delivered (or returned) while an exception was open: the package is no
    # longer held, so the exception closes with the record. One read for the
    # whole announcement (a batch of scans delivers hundreds).
    services.exceptions_close_with_shipments(
        closing=[
            (shipment, event.recorded_by)
            for event, shipment, previous_status in records
            if shipment.status in CLOSED and previous_status not in CLOSED
        ]
    )
    # A carrier said "exception" (its status table flags the event).
    carrier = [
        (event, shipment)
        for event, shipment, _previous in records
        if event.kind == EventKind.NOTE and event.data.get("carrier_exception")
    ]
    if carrier:
        detection.exceptions_report_from_carrier(reports=carrier)
    for event, _shipment, _previous in records:
        # A supervisor voided the event that reported an exception: there was
        # no problem, so the exception is void too.
        if (
            event.kind == EventKind.CORRECTION
            and event.voids_id is not None
            and event.data.get("voided_kind") == EventKind.EXCEPTION_REPORTED
        ):
            services.exceptions_void_with_report(
                report_event_ids=[event.voids_id],
                actor=event.recorded_by,
                reason=event.notes,
            )
