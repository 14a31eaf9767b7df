"""bulk_set and bulk_insert: many rows, each with its own values, in one
statement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification
from shipments.models import Shipment, TrackingEvent
from tests.factories import LocationFactory, ShipmentFactory
from tracksop.bulk import bulk_insert, bulk_set

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_in_one_statement_and_nothing_else_changes() -> (
    None
):
    hub, old_hub = LocationFactory(), LocationFactory()
    first, second, untouched = ShipmentFactory.create_batch(3, current_location=old_hub)
    later = timezone.now() + timedelta(hours=3)
    first.order_number, first.current_location, first.last_event_at = "A-1", hub, later
    first.recipient_name = "Not saved"  # not among the fields: left as it was
    second.order_number, second.current_location = "B-2", None
    second.checked_at = later

    with CaptureQueriesContext(connection) as captured:
        changed = bulk_set(
            [first, second],
            ["order_number", "current_location", "last_event_at", "checked_at"],
        )

    assert changed == 2
    assert len(captured) == 1
    first_now, second_now, untouched_now = (
        Shipment.objects.get(pk=s.pk) for s in (first, second, untouched)
    )
    assert (first_now.order_number, first_now.current_location) == ("A-1", hub)
    assert first_now.last_event_at == later
    assert first_now.recipient_name != "Not saved"
    assert (second_now.order_number, second_now.current_location_id) == ("B-2", None)
    assert second_now.checked_at == later
    assert untouched_now.order_number == untouched.order_number
    assert untouched_now.version == untouched.version


def test_nothing_to_save_asks_nothing() -> None:
    with CaptureQueriesContext(connection) as captured:
        assert bulk_set([], ["status"]) == 0
    assert len(captured) == 0


def test_bulk_insert_writes_every_column_in_one_statement_and_sets_the_ids() -> None:
    shipment = ShipmentFactory()
    hub = LocationFactory()
    rows = [
        TrackingEvent(
            shipment=shipment,
            kind="note",
            occurred_at=timezone.now(),
            location=hub if n else None,
            source="api",
            notes=f"note {n}",
            status_after=shipment.status,
            data={"n": n, "nested": ["a", None]},
        )
        for n in range(3)
    ]
    outbox = Notification(
        shipment=shipment,
        kind="dispatched",
        channel="email",
        audience="recipient",
        idempotency_key="bulk-insert-test",
        body_html="<p>Hello</p>",
        mime=b"\x00raw bytes\xff",
        next_attempt_at=timezone.now(),
    )

    with CaptureQueriesContext(connection) as captured:
        bulk_insert(rows)
        bulk_insert([outbox])
        assert bulk_insert([]) == []

    assert len(captured) == 2
    assert all(row.pk for row in rows)
    stored = {
        e.pk: e for e in TrackingEvent.objects.filter(pk__in=[r.pk for r in rows])
    }
    for n, row in enumerate(rows):
        saved = stored[row.pk]
        assert saved.notes == f"note {n}"
        assert saved.location_id == (hub.pk if n else None)
        assert saved.data == {"n": n, "nested": ["a", None]}
        assert saved.recorded_at == row.recorded_at  # auto_now_add, as bulk_create
    saved_outbox = Notification.objects.get(pk=outbox.pk)
    assert bytes(saved_outbox.mime) == b"\x00raw bytes\xff"
    assert saved_outbox.body_html == "<p>Hello</p>"
    assert saved_outbox.created_at is not None
