"""Carriers push their events to /api/v1/carriers/<code>/webhook/: verified on
the raw body, stored once, processed by a real Celery worker into the
timeline through the carrier status table."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from exceptions_mgmt.models import DeliveryException
from notifications.models import Notification
from shipments import carrier_services
from shipments.carrier_formats import generic_signature
from shipments.carriers.status import (
    GENERIC,
    UPS_CODES,
    UPS_TYPES,
    CarrierLocation,
    Places,
    Rule,
    status_rule,
)
from shipments.models import (
    Carrier,
    CarrierWebhook,
    PushFormat,
    Shipment,
    Source,
    TrackingEvent,
)
from shipments.status import CHECKPOINT_KINDS, EventKind, ShipmentStatus
from shipments.tracking_numbers import s10_generate
from tests.factories import CarrierFactory, LocationFactory, dispatched_shipment
from tests.notifications.conftest import start_worker, wait_for

__all__ = ["start_worker"]

SECRET = "whsec-acme-0123456789abcdef"
UPS_CREDENTIAL = "ups-subscription-credential-42"
GENERIC_URL = "/api/v1/carriers/acme/webhook/"
UPS_URL = "/api/v1/carriers/ups/webhook/"


@pytest.fixture(autouse=True)
def secrets(settings: Settings) -> None:
    settings.TRACKSOP_CARRIER_WEBHOOK_SECRETS = {
        "acme": SECRET,
        "ups": UPS_CREDENTIAL,
    }


@pytest.fixture
def acme(db: None) -> Carrier:
    return CarrierFactory(
        code="acme",
        name="Acme Express",
        tracking_family="s10",
        push_format=PushFormat.GENERIC,
    )


@pytest.fixture
def ups(db: None) -> Carrier:
    return CarrierFactory(push_format=PushFormat.UPS_TRACK_ALERT)


_serial = iter(range(10_000_000, 99_999_999, 7919))


def acme_shipment(acme: Carrier, *, hours_ago: float = 2) -> Shipment:
    """Dispatched a while ago, so the carrier's scans since are in order."""
    number = s10_generate(prefix="EE", serial=next(_serial), country="DE")
    with time_machine.travel(timezone.now() - timedelta(hours=hours_ago)):
        return dispatched_shipment(carrier=acme, tracking_number=number)


def signed(body: bytes, *, secret: str = SECRET, at: datetime | None = None) -> str:
    stamp = int((at or timezone.now()).timestamp())
    return f"t={stamp},v1={generic_signature(secret, stamp, body)}"


def post_generic(
    client: Client, body: bytes, *, signature: str | None = None, **headers: str
) -> Any:
    if signature is None:
        signature = signed(body)
    if signature:
        headers["TrackSOP-Signature"] = signature
    return client.post(
        GENERIC_URL, data=body, content_type="application/json", headers=headers
    )


def push(push_id: str, *events: dict[str, Any]) -> bytes:
    return json.dumps({"id": push_id, "events": list(events)}).encode()


def event(
    shipment: Shipment, event_id: str, status: str, minutes_ago: float, **extra: Any
) -> dict[str, Any]:
    return {
        "tracking_number": shipment.tracking_number,
        "event_id": event_id,
        "status": status,
        "occurred_at": (timezone.now() - timedelta(minutes=minutes_ago)).isoformat(),
        **extra,
    }


def assert_problem(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert words in body["detail"], body


def assert_nothing_stored() -> None:
    assert not CarrierWebhook.objects.exists()
    assert not TrackingEvent.objects.filter(source=Source.WEBHOOK).exists()


# --- the request: verify, store, answer ------------------------------------


def test_a_signed_push_is_stored_raw_and_answered_at_once(
    client: Client,
    acme: Carrier,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    shipment = acme_shipment(acme)
    body = push("push-1", event(shipment, "ev-1", "in_transit", 30))
    with django_capture_on_commit_callbacks() as queued:
        response = post_generic(client, body)
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    webhook = CarrierWebhook.objects.get()
    assert bytes(webhook.body) == body
    assert webhook.provider_event_id == "push-1"
    assert webhook.status == CarrierWebhook.Status.RECEIVED
    assert "TrackSOP-Signature" in webhook.headers
    assert len(queued) == 1  # the processing task, after commit
    # Nothing is in the timeline until the worker has processed it.
    assert not shipment.events.filter(source=Source.WEBHOOK).exists()


def test_a_replayed_push_answers_duplicate_and_queues_nothing(
    client: Client,
    acme: Carrier,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    shipment = acme_shipment(acme)
    body = push("push-1", event(shipment, "ev-1", "in_transit", 30))
    assert post_generic(client, body).status_code == 202
    with django_capture_on_commit_callbacks() as queued:
        # Re-signed with a fresh timestamp: the same push all the same.
        again = post_generic(client, body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert CarrierWebhook.objects.count() == 1
    assert queued == []


def test_it_refuses_a_forged_signature_and_stores_nothing(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    body = push("push-1", event(shipment, "ev-1", "delivered", 5))
    response = post_generic(client, body, signature=signed(body, secret="guess"))
    assert_problem(response, 401, "does not match")
    tampered = body.replace(b"delivered", b"returned_x")
    response = post_generic(client, tampered, signature=signed(body))
    assert_problem(response, 401, "does not match")
    assert_nothing_stored()


def test_it_refuses_a_stale_signature_and_stores_nothing(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    body = push("push-1", event(shipment, "ev-1", "in_transit", 30))
    old = timezone.now() - timedelta(seconds=301)
    response = post_generic(client, body, signature=signed(body, at=old))
    assert_problem(response, 401, "seconds old")
    ahead = timezone.now() + timedelta(minutes=10)
    response = post_generic(client, body, signature=signed(body, at=ahead))
    assert_problem(response, 401, "in the future")
    assert_nothing_stored()


@pytest.mark.parametrize(
    "header",
    ["", "v1=abc", "t=123", "t=soon,v1=abc", "sha256=abc"],
    ids=["missing", "no-time", "no-signature", "bad-time", "other-scheme"],
)
def test_it_refuses_a_missing_or_malformed_signature_header(
    client: Client, acme: Carrier, header: str
) -> None:
    response = post_generic(client, push("p", {}), signature=header)
    assert_problem(response, 401, "TrackSOP-Signature")
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"id": "p", "events": [', "Malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'["a list"]', "JSON object"),
        (b'{"id": "p", "events": [{"status": NaN}]}', "Malformed JSON"),
    ],
    ids=["truncated", "binary", "list", "nan"],
)
def test_it_refuses_malformed_json_even_when_signed(
    client: Client, acme: Carrier, body: bytes, words: str
) -> None:
    assert_problem(post_generic(client, body), 400, words)
    assert_nothing_stored()


def test_it_refuses_a_push_with_bad_fields_and_names_them(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    naive = event(shipment, "ev-1", "in_transit", 5)
    naive["occurred_at"] = "2026-01-02T03:04:05"
    response = post_generic(client, push("p", naive, {"status": 7}))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "UTC offset" in errors["events.0.occurred_at"][0]
    assert "events.1.tracking_number" in errors
    empty = post_generic(client, push("p"))
    assert empty.status_code == 400
    assert "events" in empty.json()["errors"]
    assert_nothing_stored()


def test_it_refuses_a_huge_body_with_413(
    client: Client, acme: Carrier, settings: Settings
) -> None:
    settings.TRACKSOP_API_MAX_BODY = 2_000
    body = push("p", {"description": "x" * 3_000})
    assert_problem(post_generic(client, body), 413, "limit is 2000")
    assert_nothing_stored()


def test_an_unknown_or_inactive_carrier_is_a_404(client: Client, acme: Carrier) -> None:
    body = push("p", {})
    response = client.post(
        "/api/v1/carriers/nobody/webhook/",
        data=body,
        content_type="application/json",
        headers={"TrackSOP-Signature": signed(body)},
    )
    assert_problem(response, 404, "No active carrier")
    Carrier.objects.filter(pk=acme.pk).update(is_active=False)
    assert_problem(post_generic(client, body), 404, "No active carrier")
    assert_nothing_stored()


def test_a_carrier_without_a_secret_refuses_every_push_and_logs_it(
    client: Client, acme: Carrier, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TRACKSOP_CARRIER_WEBHOOK_SECRETS = {}
    body = push("p", {})
    with caplog.at_level(logging.WARNING, logger="shipments.carrier_webhooks"):
        response = post_generic(client, body, signature=signed(body, secret=""))
    assert_problem(response, 403, "no webhook secret")
    assert "acme" in caplog.text
    assert "TRACKSOP_CARRIER_WEBHOOK_SECRETS" in caplog.text
    assert_nothing_stored()


def test_it_answers_only_post(client: Client, acme: Carrier) -> None:
    assert_problem(client.get(GENERIC_URL), 405, "GET")


# --- processing: the mapping table and the ingest path ---------------------


def process_all() -> list[CarrierWebhook]:
    for pk in CarrierWebhook.objects.order_by("id").values_list("pk", flat=True):
        carrier_services.carrier_webhook_process(webhook_id=pk)
    return list(CarrierWebhook.objects.order_by("id"))


def test_a_carrier_event_id_seen_before_is_a_duplicate_not_a_second_event(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    post_generic(client, push("push-1", event(shipment, "ev-1", "in_transit", 30)))
    post_generic(
        client,
        push(
            "push-2",
            event(shipment, "ev-1", "in_transit", 30),
            event(shipment, "ev-2", "out_for_delivery", 10),
        ),
    )
    first, second = process_all()
    assert [o["status"] for o in first.outcome] == ["created"]
    assert [o["status"] for o in second.outcome] == ["duplicate", "created"]
    assert second.outcome[0]["event"] == first.outcome[0]["event"]
    assert shipment.events.filter(external_id="ev-1").count() == 1
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.OUT_FOR_DELIVERY


def test_an_event_for_a_delivered_package_is_kept_as_refused_status_unchanged(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    post_generic(client, push("push-1", event(shipment, "ev-1", "delivered", 20)))
    post_generic(client, push("push-2", event(shipment, "ev-2", "out_for_delivery", 5)))
    first, second = process_all()
    assert first.outcome[0]["status"] == "created"
    refused = second.outcome[0]
    assert refused["status"] == "refused"
    assert "Delivered" in refused["reason"]
    assert second.status == CarrierWebhook.Status.PROCESSED
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.DELIVERED
    assert not shipment.events.filter(external_id="ev-2").exists()


def test_unknown_tracking_numbers_and_ignored_statuses_are_reported_per_event(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    stranger = {**event(shipment, "ev-9", "in_transit", 5), "tracking_number": "X1"}
    post_generic(
        client,
        push(
            "push-1",
            event(shipment, "ev-1", "label_created", 60),
            stranger,
            event(shipment, "ev-2", "teleported", 4, description="Beamed up"),
        ),
    )
    (webhook,) = process_all()
    statuses = [o["status"] for o in webhook.outcome]
    assert statuses == ["ignored", "refused", "created"]
    assert "No shipment" in webhook.outcome[1]["reason"]
    # A status the table does not know yet is kept as a note, status alone.
    note = shipment.events.get(external_id="ev-2")
    assert note.kind == EventKind.NOTE
    assert note.data["carrier_status_unknown"] is True
    assert note.notes == "Beamed up"


# --- a real worker ------------------------------------------------------------


@pytest.fixture
def worker(start_worker: Callable[..., Any]) -> Any:
    return start_worker()


def processed(count: int) -> Callable[[], bool]:
    return lambda: (
        CarrierWebhook.objects.filter(status=CarrierWebhook.Status.PROCESSED).count()
        >= count
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_turns_a_push_into_timeline_events_with_the_carriers_text(
    client: Client, worker: Any
) -> None:
    acme = CarrierFactory(
        code="acme", name="Acme Express", tracking_family="s10", push_format="generic"
    )
    hub = LocationFactory(code="chi-hub", city="Chicago", country="US")
    shipment = acme_shipment(acme)
    body = push(
        "push-1",
        event(
            shipment,
            "ev-1",
            "picked_up",
            90,
            location={"city": "Springfield", "country": "US"},
            description="Picked up by driver",
        ),
        event(
            shipment,
            "ev-2",
            "arrived_hub",
            60,
            location={"code": "CHI-HUB"},
            description="Arrived at Acme Chicago",
        ),
        event(
            shipment,
            "ev-3",
            "departed_hub",
            30,
            location={"name": "Acme Gary", "city": "Gary"},
            description="Departed Acme Gary",
        ),
    )
    assert post_generic(client, body).status_code == 202
    wait_for(processed(1), timeout=60, what="the worker to process the push")

    webhook = CarrierWebhook.objects.get()
    assert [o["status"] for o in webhook.outcome] == ["created"] * 3
    assert webhook.processed_at is not None
    events = list(shipment.events.filter(source=Source.WEBHOOK).order_by("occurred_at"))
    assert [e.kind for e in events] == [
        EventKind.PICKED_UP,
        EventKind.ARRIVED_HUB,
        # An unknown hub: the unlocated scan with the same status.
        EventKind.IN_TRANSIT_SCAN,
    ]
    assert [e.data["carrier_text"] for e in events] == [
        "Picked up by driver",
        "Arrived at Acme Chicago",
        "Departed Acme Gary",
    ]
    assert events[0].location is None
    assert events[0].data["carrier_location"] == "Springfield, US"
    assert events[1].location == hub
    assert events[2].data["carrier_location"] == "Acme Gary, Gary"
    assert {e.integration for e in events} == {"Acme Express"}
    assert {e.external_id for e in events} == {"ev-1", "ev-2", "ev-3"}
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.IN_TRANSIT
    assert shipment.current_location == hub

    # The same push again (a replay, freshly signed) processes nothing.
    again = post_generic(client, body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert CarrierWebhook.objects.count() == 1
    assert shipment.events.filter(source=Source.WEBHOOK).count() == 3


# --- UPS Track Alert ------------------------------------------------------------

# UPS's documented Track Alert messages (UPSTrackAlert.yaml, webhooks:
# TrackingEvent, examples 6 and 7), verbatim.
UPS_OUT_FOR_DELIVERY = {
    "trackingNumber": "1Z204W4R0308071865",
    "localActivityDate": "20240423",
    "localActivityTime": "091519",
    "activityLocation": {
        "city": "Charlotte",
        "stateProvince": "NC",
        "postalCode": "",
        "country": "US",
    },
    "activityStatus": {
        "type": "I",
        "code": "OT",
        "description": "Out for Delivery",
        "descriptionCode": "021",
    },
    "scheduledDeliveryDate": "20240423",
    "actualDeliveryDate": "",
    "actualDeliveryTime": "",
    "gmtActivityDate": "20240423",
    "gmtActivityTime": "131519",
    "deliveryStartTime": "",
    "deliveryEndTime": "",
    "deliveryTimeDescription": "end of day",
}
UPS_DELIVERED = {
    "trackingNumber": "1Z204W4R0308071865",
    "localActivityDate": "20240423",
    "localActivityTime": "095004",
    "activityLocation": {
        "city": "CHARLOTTE",
        "stateProvince": "NC",
        "postalCode": "28209",
        "country": "US",
    },
    "activityStatus": {
        "type": "D",
        "code": "FS",
        "description": "Delivered",
        "descriptionCode": "011",
    },
    "scheduledDeliveryDate": "",
    "actualDeliveryDate": "20240423",
    "actualDeliveryTime": "095004",
    "gmtActivityDate": "20240423",
    "gmtActivityTime": "135004",
    "deliveryStartTime": "",
    "deliveryEndTime": "",
    "deliveryTimeDescription": "",
}
# Example 2 ("UPS has your package"), verbatim but for its tracking number,
# whose check digit is wrong in the documentation (1ZABCXYZ0112346789).
UPS_ORIGIN_SCAN = {
    "activityLocation": {
        "city": "Hickory",
        "country": "US",
        "postalCode": "",
        "stateProvince": "NC",
    },
    "activityStatus": {
        "code": "OR",
        "description": "On the Way",
        "descriptionCode": "005",
        "type": "I",
    },
    "actualDeliveryDate": "",
    "actualDeliveryTime": "",
    "deliveryEndTime": "",
    "deliveryPhoto": "",
    "deliveryStartTime": "",
    "deliveryTimeDescription": "end of day",
    "gmtActivityDate": "20240423",
    "gmtActivityTime": "012901",
    "localActivityDate": "20240422",
    "localActivityTime": "212901",
    "scheduledDeliveryDate": "20240423",
    "trackingNumber": "1Z204W4R0308071865",
}


def post_ups(client: Client, message: dict[str, Any], **headers: str) -> Any:
    headers.setdefault("credential", UPS_CREDENTIAL)
    headers.setdefault("User-Agent", "UPSPubSubTrackingService")
    if not headers["credential"]:
        del headers["credential"]
    return client.post(
        UPS_URL,
        data=json.dumps(message),
        content_type="application/json",
        headers=headers,
    )


def ups_shipment(ups: Carrier) -> Shipment:
    # Dispatched the day before UPS's sample scans.
    with time_machine.travel(datetime(2024, 4, 22, 12, 0, tzinfo=UTC)):
        return dispatched_shipment(carrier=ups, tracking_number="1Z204W4R0308071865")


def test_a_ups_push_needs_the_subscriptions_credential(
    client: Client, ups: Carrier
) -> None:
    assert_problem(post_ups(client, UPS_DELIVERED, credential=""), 401, "missing")
    response = post_ups(client, UPS_DELIVERED, credential="not-it")
    assert_problem(response, 401, "does not match")
    assert_nothing_stored()
    response = post_ups(client, UPS_DELIVERED)
    assert response.status_code == 200  # what UPS's spec asks for
    webhook = CarrierWebhook.objects.get()
    assert "credential" not in {h.lower() for h in webhook.headers}
    assert webhook.headers["User-Agent"] == "UPSPubSubTrackingService"


def test_a_ups_message_resent_is_a_duplicate(client: Client, ups: Carrier) -> None:
    assert post_ups(client, UPS_DELIVERED).json()["status"] == "accepted"
    assert post_ups(client, UPS_DELIVERED).json()["status"] == "duplicate"
    assert post_ups(client, UPS_OUT_FOR_DELIVERY).json()["status"] == "accepted"
    assert CarrierWebhook.objects.count() == 2


def test_a_ups_message_without_gmt_time_is_refused(
    client: Client, ups: Carrier
) -> None:
    message = {**UPS_DELIVERED, "gmtActivityDate": "2024-04-23"}
    response = post_ups(client, message)
    assert response.status_code == 400
    assert "gmtActivityDate" in response.json()["errors"]
    assert_nothing_stored()


@pytest.mark.django_db(transaction=True)
def test_a_worker_follows_a_ups_package_from_ups_samples_to_delivered(
    client: Client, worker: Any
) -> None:
    ups = CarrierFactory(push_format=PushFormat.UPS_TRACK_ALERT)
    charlotte = LocationFactory(code="clt", city="Charlotte", country="US")
    shipment = ups_shipment(ups)
    for message in (UPS_ORIGIN_SCAN, UPS_OUT_FOR_DELIVERY, UPS_DELIVERED):
        assert post_ups(client, message).status_code == 200
        # One at a time: the carrier sends them as they happen.
        wait_for(
            processed(CarrierWebhook.objects.count()),
            timeout=60,
            what="the worker to process the UPS message",
        )
    events = list(shipment.events.filter(source=Source.WEBHOOK).order_by("occurred_at"))
    assert [e.kind for e in events] == [
        EventKind.PICKED_UP,
        EventKind.OUT_FOR_DELIVERY,
        EventKind.DELIVERED,
    ]
    assert [e.data["carrier_text"] for e in events] == [
        "On the Way",
        "Out for Delivery",
        "Delivered",
    ]
    assert [e.data["carrier_status"] for e in events] == ["OR", "OT", "FS"]
    assert events[0].location is None  # Hickory is not one of our locations
    assert events[0].data["carrier_location"] == "Hickory, NC, US"
    assert events[2].location == charlotte  # matched by city
    assert events[2].occurred_at == datetime(2024, 4, 23, 13, 50, 4, tzinfo=UTC)
    assert {e.integration for e in events} == {"UPS"}
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.DELIVERED
    assert shipment.delivered_at == datetime(2024, 4, 23, 13, 50, 4, tzinfo=UTC)


# --- nothing lost, nothing 5xx ------------------------------------------------


def test_the_sweeper_queues_a_push_whose_task_was_lost(
    client: Client,
    acme: Carrier,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    shipment = acme_shipment(acme)
    post_generic(client, push("push-1", event(shipment, "ev-1", "in_transit", 30)))
    (webhook,) = CarrierWebhook.objects.all()
    now = timezone.now()
    with django_capture_on_commit_callbacks() as queued:
        assert carrier_services.carrier_webhooks_sweep(now=now) == 0  # just arrived
    assert queued == []
    # The broker was down when it arrived, or a worker died holding it.
    CarrierWebhook.objects.filter(pk=webhook.pk).update(
        status=CarrierWebhook.Status.PROCESSING, claimed_at=now - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks() as queued:
        assert (
            carrier_services.carrier_webhooks_sweep(now=now + timedelta(hours=1)) == 1
        )
    assert len(queued) == 1
    (done,) = process_all()
    assert done.status == CarrierWebhook.Status.PROCESSED
    assert done.attempts == 1


def test_processing_twice_or_after_done_changes_nothing(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    post_generic(client, push("push-1", event(shipment, "ev-1", "in_transit", 30)))
    (webhook,) = process_all()
    assert carrier_services.carrier_webhook_process(webhook_id=webhook.pk) is None
    assert carrier_services.carrier_webhook_process(webhook_id=0) is None
    assert shipment.events.filter(source=Source.WEBHOOK).count() == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENT_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "tracking_number": JSON,
        "event_id": JSON,
        "status": JSON,
        "occurred_at": JSON | st.just("2026-01-01T00:00:00+00:00"),
        "location": JSON,
        "description": JSON,
    },
)


@hypothesis_settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.fixed_dictionaries(
        {}, optional={"id": JSON, "events": st.lists(EVENT_FIELDS, max_size=3) | JSON}
    )
)
def test_no_signed_body_answers_5xx(
    client: Client, acme: Carrier, body: dict[str, Any]
) -> None:
    response = post_generic(client, json.dumps(body).encode())
    assert response.status_code < 500, response.content
    for pk in CarrierWebhook.objects.values_list("pk", flat=True):
        carrier_services.carrier_webhook_process(webhook_id=pk)
    assert not CarrierWebhook.objects.filter(
        status=CarrierWebhook.Status.FAILED
    ).exists()


# --- the mapping table ---------------------------------------------------------


def test_every_mapped_kind_is_one_the_ingest_accepts() -> None:
    for table in (GENERIC, UPS_CODES, UPS_TYPES):
        for rule in table.values():
            assert rule.kind is None or rule.kind in CHECKPOINT_KINDS


def test_ups_statuses_map_by_code_then_by_type() -> None:
    ups = PushFormat.UPS_TRACK_ALERT
    assert status_rule(ups, code="OT", status_type="I") == Rule(
        EventKind.OUT_FOR_DELIVERY
    )
    assert status_rule(ups, code="ZZ", status_type="D") == Rule(EventKind.DELIVERED)
    exception = status_rule(ups, code="ZZ", status_type="X")
    assert exception is not None
    assert exception.carrier_exception
    assert status_rule(ups, code="ZZ", status_type="Q") is None


def test_a_place_becomes_a_location_only_when_one_matches(db: None) -> None:
    LocationFactory(code="chi-hub", city="Chicago", country="US")
    LocationFactory(code="spr-1", city="Springfield", country="US")
    LocationFactory(code="spr-2", city="Springfield", country="US")
    places = Places.load()
    assert places.code_for(CarrierLocation(code="CHI-HUB")) == "chi-hub"
    assert places.code_for(CarrierLocation(city="chicago")) == "chi-hub"
    assert places.code_for(CarrierLocation(city="Chicago", country="CA")) == ""
    assert places.code_for(CarrierLocation(city="Springfield")) == ""
    assert places.code_for(CarrierLocation(code="nope", city="Gary")) == ""


def test_a_carrier_exception_opens_one_exception_in_the_queue(
    client: Client, acme: Carrier
) -> None:
    shipment = acme_shipment(acme)
    said = "Held at depot: consignee premises closed"
    post_generic(
        client,
        push("push-1", event(shipment, "ev-1", "exception", 20, description=said)),
    )
    post_generic(
        client,
        push("push-2", event(shipment, "ev-2", "exception", 10, description="Again")),
    )
    process_all()
    [opened] = DeliveryException.objects.filter(shipment=shipment)
    assert opened.cause == "carrier_delay"
    reported = shipment.events.get(kind=EventKind.EXCEPTION_REPORTED)
    assert reported.source == Source.WEBHOOK
    assert said in opened.description
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.EXCEPTION
    # The customer hears the listed cause, never the carrier's words.
    told = Notification.objects.filter(event=reported)
    assert told.count() == 2  # email and SMS
    assert all(said not in n.body_text and said not in n.subject for n in told)


# --- UPS type U: a new delivery date ------------------------------------------


def ups_update(new_date: date, *, minutes_ago: float) -> dict[str, Any]:
    """A Track Alert of type U ("Update"): UPS moved the delivery date."""
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return {
        **UPS_ORIGIN_SCAN,
        "activityStatus": {
            "code": "",
            "description": "Delivery date updated",
            "descriptionCode": "",
            "type": "U",
        },
        "gmtActivityDate": f"{at:%Y%m%d}",
        "gmtActivityTime": f"{at:%H%M%S}",
        "scheduledDeliveryDate": f"{new_date:%Y%m%d}",
    }


def recent_ups_shipment(ups: Carrier) -> Shipment:
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        return dispatched_shipment(carrier=ups, tracking_number="1Z204W4R0308071865")


def test_a_ups_update_moves_the_eta_and_tells_the_customer_of_the_delay(
    client: Client, ups: Carrier
) -> None:
    shipment = recent_ups_shipment(ups)
    eta = shipment.estimated_delivery
    assert eta is not None
    later = eta + timedelta(days=2)

    assert post_ups(client, ups_update(later, minutes_ago=5)).status_code == 200
    (webhook,) = process_all()

    shipment.refresh_from_db()
    assert shipment.estimated_delivery == later
    change = shipment.events.get(kind=EventKind.ETA_CHANGED)
    assert (change.source, change.integration) == (Source.WEBHOOK, "UPS")
    assert change.data["to"] == later.isoformat()
    assert [o["status"] for o in webhook.outcome] == ["created"]
    assert webhook.outcome[0]["kind"] == EventKind.ETA_CHANGED
    assert Notification.objects.filter(shipment=shipment, kind="delay").exists()
    # No checkpoint: a date update is not a scan.
    assert not shipment.events.filter(kind__in=CHECKPOINT_KINDS).exists()


def test_the_same_ups_update_twice_changes_the_eta_once(
    client: Client, ups: Carrier
) -> None:
    shipment = recent_ups_shipment(ups)
    assert shipment.estimated_delivery is not None
    later = shipment.estimated_delivery + timedelta(days=1)
    post_ups(client, ups_update(later, minutes_ago=5))
    # Another message (another time) with the same date.
    post_ups(client, ups_update(later, minutes_ago=4))

    first, second = process_all()

    assert [o["status"] for o in first.outcome] == ["created"]
    assert [o["status"] for o in second.outcome] == ["duplicate"]
    assert shipment.events.filter(kind=EventKind.ETA_CHANGED).count() == 1


def test_an_older_ups_update_arriving_late_is_ignored(
    client: Client, ups: Carrier
) -> None:
    shipment = recent_ups_shipment(ups)
    eta = shipment.estimated_delivery
    assert eta is not None
    scan = {
        **UPS_ORIGIN_SCAN,
        "gmtActivityDate": f"{timezone.now() - timedelta(minutes=10):%Y%m%d}",
        "gmtActivityTime": f"{timezone.now() - timedelta(minutes=10):%H%M%S}",
    }
    post_ups(client, scan)
    process_all()
    # Sent before the scan, delivered after it.
    post_ups(client, ups_update(eta + timedelta(days=4), minutes_ago=30))

    webhook = process_all()[-1]

    assert webhook.outcome[0]["status"] == "ignored"
    assert "newer" in webhook.outcome[0]["reason"]
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == eta


@pytest.mark.parametrize(
    ("scheduled", "reason"),
    [("", "YYYYMMDD"), ("20261399", "YYYYMMDD"), ("19990101", "")],
)
def test_a_ups_update_with_a_bad_date_is_refused_and_the_eta_kept(
    client: Client, ups: Carrier, scheduled: str, reason: str
) -> None:
    shipment = recent_ups_shipment(ups)
    eta = shipment.estimated_delivery
    message = {**ups_update(timezone.localdate(), minutes_ago=5)}
    message["scheduledDeliveryDate"] = scheduled
    assert post_ups(client, message).status_code == 200

    (webhook,) = process_all()

    assert webhook.outcome[0]["status"] == "refused"
    assert reason in webhook.outcome[0]["reason"]
    assert webhook.outcome[0]["reason"]
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == eta
    assert not shipment.events.filter(kind=EventKind.ETA_CHANGED).exists()


def test_a_ups_update_for_an_unknown_number_is_refused(
    client: Client, ups: Carrier
) -> None:
    post_ups(
        client, ups_update(timezone.localdate() + timedelta(days=2), minutes_ago=5)
    )

    (webhook,) = process_all()

    assert webhook.outcome[0]["status"] == "refused"
    assert webhook.outcome[0]["reason"] == "No shipment has this tracking number."


def test_of_two_ups_updates_the_later_announced_date_wins_whatever_arrives_last(
    client: Client, ups: Carrier
) -> None:
    shipment = recent_ups_shipment(ups)
    eta = shipment.estimated_delivery
    assert eta is not None
    post_ups(client, ups_update(eta + timedelta(days=3), minutes_ago=5))
    process_all()
    post_ups(client, ups_update(eta + timedelta(days=1), minutes_ago=30))

    older = process_all()[-1]

    assert older.outcome[0]["status"] == "ignored"
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == eta + timedelta(days=3)
