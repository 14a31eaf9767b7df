"""End to end: an event recorded through the shipments services → a webhook
message in the same transaction → a real Celery worker → a real HTTP
receiver, signed so that the `standardwebhooks` package verifies it."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from standardwebhooks import Webhook

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)
from notifications.tasks import webhooks_sweep
from notifications.webhooks import endpoints
from notifications.webhooks import outbox as webhook_outbox
from shipments import services
from shipments.checkpoints import checkpoint_record
from shipments.dispatch import shipment_check
from shipments.models import Location
from shipments.status import EventKind
from tests.factories import ShipmentFactory, dispatched_shipment
from tests.notifications.conftest import wait_for
from tests.notifications.webhook_receiver import WORKER_ENV, Receiver, receiver
from tracksop.models import Integration

__all__ = ["receiver"]

pytestmark = pytest.mark.django_db(transaction=True)


def _endpoint(url: str, types: list[str] | None = None) -> WebhookEndpoint:
    integration, _ = Integration.objects.get_or_create(
        name="Shop", defaults={"contact_email": "ops@shop.example"}
    )
    return endpoints.webhook_endpoint_create(
        integration=integration,
        url=url,
        event_types=types or list(WebhookEventType.values),
    )


def _all_delivered() -> bool:
    return not WebhookMessage.objects.exclude(status=WebhookStatus.DELIVERED).exists()


def test_events_reach_the_receiver_signed_with_the_endpoint_secret(
    receiver: Receiver, start_worker: Any, hub: Location
) -> None:
    endpoint = _endpoint(receiver.url)
    start_worker(**WORKER_ENV)

    shipment = dispatched_shipment(order_number="ORD-4242")
    checkpoint_record(
        shipment=shipment,
        kind=EventKind.PICKED_UP,
        user=None,
        location=hub,
        external_id="carrier-evt-1",
        notes="Driver said the box is dented",
    )

    # created; checked (created → ready); dispatched; picked up (a checkpoint
    # and a status change).
    wait_for(lambda: len(receiver.delivered()) >= 5, what="five webhooks")
    wait_for(_all_delivered, what="the messages to be marked delivered")
    verifier = Webhook(endpoint.secret)
    bodies = [verifier.verify(r.body, r.headers) for r in receiver.delivered()]
    assert sorted(b["type"] for b in bodies) == sorted(
        [
            "shipment.created",
            "shipment.status_changed",
            "shipment.status_changed",
            "shipment.status_changed",
            "checkpoint.recorded",
        ]
    )
    scan = next(b for b in bodies if b["type"] == "checkpoint.recorded")
    assert scan["data"]["shipment_id"] == shipment.shipment_id
    assert scan["data"]["order_number"] == "ORD-4242"
    assert scan["data"]["tracking_number"] == shipment.tracking_number
    assert scan["data"]["carrier_code"] == shipment.carrier.code  # type: ignore[union-attr]
    assert scan["data"]["status"] == "in_transit"
    assert scan["data"]["previous_status"] == "dispatched"
    assert scan["data"]["event"]["kind"] == "picked_up"
    assert scan["data"]["event"]["location_code"] == "chi"
    assert scan["data"]["event"]["location_city"] == "Chicago"
    assert scan["data"]["event"]["external_id"] == "carrier-evt-1"
    # What staff typed never leaves.
    assert not any("dented" in r.body.decode() for r in receiver.delivered())
    # One change, one sequence number; later changes, higher numbers.
    by_status = {
        b["data"]["status"]: b["data"]["sequence"]
        for b in bodies
        if b["type"] in ("shipment.created", "shipment.status_changed")
    }
    assert by_status["created"] < by_status["ready"] < by_status["dispatched"]
    assert by_status["dispatched"] < scan["data"]["sequence"]
    assert by_status["in_transit"] == scan["data"]["sequence"]
    # Once each, on the first attempt, each attempt in the log.
    assert set(receiver.ids().values()) == {1}
    assert all(r.path == "/hooks" for r in receiver.delivered())
    assert (
        WebhookAttempt.objects.filter(succeeded=True, response_status=200).count() == 5
    )


def test_a_receiver_down_for_a_while_gets_every_event_once_when_it_is_back(
    receiver: Receiver, start_worker: Any
) -> None:
    shipments = [ShipmentFactory() for _ in range(3)]
    _endpoint(receiver.url, [WebhookEventType.SHIPMENT_STATUS_CHANGED])
    start_worker(**WORKER_ENV)
    receiver.stop()

    for shipment in shipments:
        shipment_check(shipment=shipment, user=None, quality_ok=True, quantity_ok=True)
        services.shipment_cancel(
            shipment=shipment, user=None, reason="Customer changed their mind"
        )
    wait_for(
        lambda: WebhookAttempt.objects.filter(succeeded=False).count() >= 12,
        what="failed attempts while the receiver is down",
    )
    receiver.start()

    wait_for(_all_delivered, timeout=30, what="every message to be delivered")
    assert WebhookMessage.objects.count() == 6
    ids = receiver.ids()
    assert len(ids) == 6
    assert set(ids.values()) == {1}
    assert set(WebhookMessage.objects.values_list("message_id", flat=True)) == set(ids)
    errors = set(
        WebhookAttempt.objects.filter(succeeded=False).values_list("error", flat=True)
    )
    assert all("connect" in e.lower() for e in errors), errors
    # A receiver orders by sequence: per shipment, ready before cancelled.
    seen: dict[str, dict[str, int]] = defaultdict(dict)
    for request in receiver.delivered():
        data = json.loads(request.body)["data"]
        seen[data["shipment_id"]][data["status"]] = data["sequence"]
    assert all(s["ready"] < s["cancelled"] for s in seen.values())


def test_a_500_is_retried_until_the_receiver_accepts(
    receiver: Receiver, start_worker: Any
) -> None:
    _endpoint(receiver.url, [WebhookEventType.SHIPMENT_CREATED])
    receiver.answers = [500, 503]
    start_worker(**WORKER_ENV)

    ShipmentFactory()

    wait_for(_all_delivered, what="the message to be delivered")
    message = WebhookMessage.objects.get()
    assert message.attempts == 3
    log = list(
        WebhookAttempt.objects.filter(message=message)
        .order_by("number")
        .values_list("number", "response_status", "succeeded")
    )
    assert log == [(1, 500, False), (2, 503, False), (3, 200, True)]
    assert receiver.ids() == {message.message_id: 3}
    assert message.endpoint.failing_since is None


def test_the_sweeper_sends_a_message_whose_task_was_lost(
    receiver: Receiver, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint(receiver.url, [WebhookEventType.SHIPMENT_CREATED])
    start_worker(**WORKER_ENV, TRACKSOP_WEBHOOK_STALE_SECONDS="0")
    # The broker took nothing: the publish after commit was lost.
    monkeypatch.setattr(webhook_outbox, "queue_now", lambda ids: 0)
    ShipmentFactory()
    monkeypatch.undo()
    message = WebhookMessage.objects.get()
    assert message.status == WebhookStatus.PENDING
    assert receiver.delivered() == []

    webhooks_sweep.delay()

    wait_for(_all_delivered, what="the swept message to be delivered")
    assert receiver.ids() == {message.message_id: 1}
