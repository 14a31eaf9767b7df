"""The webhook outbox: which messages an event writes, in its transaction,
with what payload, in how many queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt.models import Cause
from notifications.models import WebhookEndpoint, WebhookEventType, WebhookMessage
from notifications.webhooks import endpoints
from notifications.webhooks import outbox as webhook_outbox
from shipments import services
from shipments.checkpoints import Checkpoint, checkpoint_record, checkpoints_append
from shipments.events import Recorded, events_recorded
from shipments.models import Shipment
from shipments.status import EventKind
from tests.factories import ShipmentFactory, UserFactory, dispatched_shipment
from tracksop.models import Integration

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

T = WebhookEventType


@pytest.fixture
def integration() -> Integration:
    return Integration.objects.create(name="Shop", contact_email="ops@shop.example")


def _endpoint(
    integration: Integration, types: list[str] | None = None, n: int = 1
) -> WebhookEndpoint:
    return endpoints.webhook_endpoint_create(
        integration=integration,
        url=f"https://hooks{n}.shop.example/in",
        event_types=types or list(T.values),
    )


def _types(event_pk: int) -> list[str]:
    return sorted(
        WebhookMessage.objects.filter(event_id=event_pk).values_list(
            "event_type", flat=True
        )
    )


def _payload(event_pk: int, event_type: str) -> dict[str, Any]:
    row = WebhookMessage.objects.get(event_id=event_pk, event_type=event_type)
    payload: dict[str, Any] = json.loads(row.payload)
    return payload


def test_a_delivery_scan_is_a_checkpoint_a_status_change_and_a_delivery(
    integration: Integration,
) -> None:
    _endpoint(integration)
    shipment = dispatched_shipment()

    event = checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)

    assert _types(event.pk) == sorted(
        [T.CHECKPOINT_RECORDED, T.SHIPMENT_STATUS_CHANGED, T.SHIPMENT_DELIVERED]
    )
    body = _payload(event.pk, T.SHIPMENT_DELIVERED)
    assert body["type"] == "shipment.delivered"
    assert body["data"]["status"] == "delivered"
    assert body["data"]["previous_status"] == "dispatched"
    assert body["data"]["event"]["occurred_at"].endswith("Z")
    assert body["timestamp"].endswith("Z")


def test_an_endpoint_gets_only_the_types_it_subscribed_to(
    integration: Integration,
) -> None:
    only_delivered = _endpoint(integration, [T.SHIPMENT_DELIVERED], n=1)
    everything = _endpoint(integration, n=2)
    shipment = dispatched_shipment()

    event = checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)

    mine = WebhookMessage.objects.filter(endpoint=only_delivered)
    assert list(mine.values_list("event_type", flat=True)) == [T.SHIPMENT_DELIVERED]
    assert (
        WebhookMessage.objects.filter(endpoint=everything, event_id=event.pk).count()
        == 3
    )


def test_exceptions_are_opened_and_resolved_without_what_staff_typed(
    integration: Integration,
) -> None:
    _endpoint(integration)
    shipment = dispatched_shipment()
    supervisor = UserFactory()
    expected = timezone.now() + timedelta(hours=6)

    exception = exception_reporting.exception_report(
        shipment=shipment,
        user=None,
        cause=Cause.WEATHER,
        expected_resolution=expected,
        description="Snowed in at the depot, call Bob on 555-0100",
    )
    opened = shipment.events.get(kind=EventKind.EXCEPTION_REPORTED)
    exception_services.exception_resolve(
        exception=exception, user=supervisor, notes="Bob drove it over himself"
    )
    resolved = shipment.events.get(kind=EventKind.EXCEPTION_RESOLVED)

    assert _types(opened.pk) == [T.EXCEPTION_OPENED, T.SHIPMENT_STATUS_CHANGED]
    assert _types(resolved.pk) == [T.EXCEPTION_RESOLVED, T.SHIPMENT_STATUS_CHANGED]
    body = _payload(opened.pk, T.EXCEPTION_OPENED)
    assert body["data"]["status"] == "exception"
    assert body["data"]["exception"] == {
        "cause_code": "weather",
        "severity": "medium",
        "expected_resolution": expected.isoformat(),
    }
    assert _payload(resolved.pk, T.EXCEPTION_RESOLVED)["data"]["status"] == (
        "dispatched"
    )
    everything = "".join(WebhookMessage.objects.values_list("payload", flat=True))
    assert "Bob" not in everything
    assert "555-0100" not in everything


def test_an_eta_change_tells_the_old_and_the_new_date_but_not_the_reason(
    integration: Integration,
) -> None:
    _endpoint(integration)
    shipment = dispatched_shipment()
    before = shipment.estimated_delivery
    assert before is not None
    later = before + timedelta(days=2)

    event = services.shipment_eta_change(
        shipment=shipment,
        user=None,
        estimated_delivery=later,
        reason="Truck broke down near Gary",
    )

    assert event is not None
    assert _types(event.pk) == [T.SHIPMENT_ETA_CHANGED]
    data = _payload(event.pk, T.SHIPMENT_ETA_CHANGED)["data"]
    assert data["estimated_delivery"] == later.isoformat()
    assert data["previous_estimated_delivery"] == before.isoformat()
    assert "Gary" not in WebhookMessage.objects.get(event_id=event.pk).payload


def test_no_personal_data_of_the_recipient_is_sent(integration: Integration) -> None:
    _endpoint(integration)
    shipment = dispatched_shipment(
        recipient_name="Jane Roe", recipient_email="jane@example.net"
    )

    everything = "".join(WebhookMessage.objects.values_list("payload", flat=True))

    for private in ("Jane Roe", "jane@example.net", shipment.recipient_address):
        assert private not in everything


def test_an_event_rolled_back_leaves_no_webhook(integration: Integration) -> None:
    _endpoint(integration)
    shipment = dispatched_shipment()
    before = WebhookMessage.objects.count()

    def scan_then_fail() -> None:
        with transaction.atomic():
            checkpoint_record(shipment=shipment, kind=EventKind.PICKED_UP, user=None)
            assert WebhookMessage.objects.count() == before + 2
            raise RuntimeError("the request failed after the scan")

    with pytest.raises(RuntimeError):
        scan_then_fail()

    assert WebhookMessage.objects.count() == before


@pytest.fixture
def announced() -> Iterator[list[Recorded]]:
    """The records of every announcement while the test runs."""
    seen: list[Recorded] = []

    def keep(*, records: list[Recorded], **_: Any) -> None:
        seen.extend(records)

    events_recorded.connect(keep, dispatch_uid="test.webhooks.keep")
    yield seen
    events_recorded.disconnect(dispatch_uid="test.webhooks.keep")


def test_handling_the_same_events_twice_writes_each_message_once(
    integration: Integration, announced: list[Recorded]
) -> None:
    _endpoint(integration)
    dispatched_shipment()
    count = WebhookMessage.objects.count()

    assert webhook_outbox.webhooks_for_events(announced) == []

    assert WebhookMessage.objects.count() == count


def _scan_all(shipments: list[Shipment]) -> None:
    with transaction.atomic():
        # Locked without their carriers, as a sweep locks them.
        locked = list(
            Shipment.objects.select_for_update()
            .filter(pk__in=[s.pk for s in shipments])
            .order_by("pk")
        )
        checkpoints_append(
            [Checkpoint(shipment=s) for s in locked],
            kind=EventKind.IN_TRANSIT_SCAN,
            user=None,
            occurred_at=timezone.now(),
        )


@pytest.mark.parametrize("n", [3, 30])
def test_a_batch_of_events_costs_the_same_few_queries_however_large(
    integration: Integration, announced: list[Recorded], n: int
) -> None:
    _endpoint(integration, n=1)
    _endpoint(integration, n=2)
    shipments = [dispatched_shipment() for _ in range(n)]
    announced.clear()
    _scan_all(shipments)
    assert len(announced) == n
    written = WebhookMessage.objects.filter(
        event_id__in=[r.event.pk for r in announced]
    )
    assert written.count() == n * 2 * 2  # checkpoint + status change, 2 endpoints
    written.delete()

    with CaptureQueriesContext(connection) as queries:
        rows = webhook_outbox.webhooks_for_events(announced)

    assert len(rows) == n * 2 * 2
    # Endpoints, carriers (not loaded with the shipments), keys already
    # written, one INSERT.
    assert len(queries) == 4, [q["sql"] for q in queries]


def test_no_endpoint_costs_one_query(announced: list[Recorded]) -> None:
    ShipmentFactory()

    with CaptureQueriesContext(connection) as queries:
        assert webhook_outbox.webhooks_for_events(announced) == []

    assert len(queries) == 1
