"""bulk_set: many rows, each with its own values, in one UPDATE."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shipments.models import Shipment
from tests.factories import LocationFactory, ShipmentFactory
from tracksop.bulk import bulk_set

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
