"""The shipments endpoints, through DRF's test client on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from shipments.models import Location, Shipment, Source
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    ShipmentFactory,
    dispatched_shipment,
    ready_shipment,
)

pytestmark = pytest.mark.django_db

NEW = {
    "order_number": "WEB-1001",
    "sender_name": "Acme Warehouse",
    "sender_email": "dispatch@acme.example",
    "sender_address": "1 Dock Road, Newark",
    "recipient_name": "Ada Lovelace",
    "recipient_email": "ada@example.net",
    "recipient_phone": "+1 202 555 0142",
    "recipient_address": "742 Evergreen Terrace",
    "recipient_postcode": "62704",
    "recipient_city": "Springfield",
    "recipient_country": "us",
    "weight_kg": 2.5,
    "length_cm": 30,
    "width_cm": 20,
    "height_cm": 10,
    "contents": "Books",
}


def problem(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


def test_a_shop_creates_a_shipment_with_a_generated_id(api: APIClient) -> None:
    response = api.post("/api/v1/shipments/", NEW, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shipment_id"].startswith("SH-")
    assert body["status"] == "created"
    assert body["recipient_phone"] == "+12025550142"
    assert body["recipient_country"] == "US"
    assert response["Location"] == f"/api/v1/shipments/{body['shipment_id']}/"
    created = Shipment.objects.get(shipment_id=body["shipment_id"])
    event = created.events.get()
    assert event.source == Source.API
    assert event.integration.startswith("Test shop (API key ")


def test_create_gives_the_forms_field_messages(api: APIClient) -> None:
    bad = {**NEW, "recipient_phone": "12", "recipient_country": "USA", "weight_kg": 0}
    response = api.post("/api/v1/shipments/", bad, format="json")
    assert response.status_code == 400
    body = problem(response)
    assert set(body["errors"]) == {"recipient_phone", "recipient_country", "weight_kg"}
    assert "more than zero" in body["errors"]["weight_kg"][0]
    assert not Shipment.objects.exists()


def test_a_duplicate_shipment_id_is_a_field_error(api: APIClient) -> None:
    ShipmentFactory(shipment_id="SH-SHOP0001")
    response = api.post(
        "/api/v1/shipments/", {**NEW, "shipment_id": "sh-shop0001"}, format="json"
    )
    assert response.status_code == 400
    assert "already exists" in problem(response)["errors"]["shipment_id"][0]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"order_number": 5, "weight_kg": "heavy"}',
        '{"order_number": "A\\u0000B"}',
    ],
)
def test_malformed_bodies_are_400_problems(api: APIClient, body: str) -> None:
    response = api.post("/api/v1/shipments/", body, content_type="application/json")
    assert response.status_code == 400
    problem(response)
    assert not Shipment.objects.exists()


def test_a_shipment_is_read_by_shipment_id_or_tracking_number(api: APIClient) -> None:
    shipment = dispatched_shipment()
    by_id = api.get(f"/api/v1/shipments/{shipment.shipment_id.lower()}/")
    by_number = api.get(f"/api/v1/shipments/{shipment.tracking_number}/")
    assert by_id.status_code == by_number.status_code == 200
    assert by_id.json() == by_number.json()
    assert by_id.json()["carrier"] == "fleet"
    assert problem(api.get("/api/v1/shipments/SH-NOPE0000/"))["status"] == 404


def test_the_list_filters_and_pages_with_a_cursor(
    api: APIClient, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    CarrierFactory()
    for _ in range(3):
        dispatched_shipment()
    ShipmentFactory()
    with django_assert_max_num_queries(6):
        page = api.get("/api/v1/shipments/?status=dispatched&limit=2").json()
    assert len(page["results"]) == 2
    assert all(s["status"] == "dispatched" for s in page["results"])
    rest = api.get(page["next"]).json()
    assert len(rest["results"]) == 1
    assert rest["next"] is None
    assert api.get("/api/v1/shipments/?carrier=ups").json()["results"] == []
    assert len(api.get("/api/v1/shipments/?carrier=fleet").json()["results"]) == 3
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    assert (
        api.get("/api/v1/shipments/", {"updated_since": later}).json()["results"] == []
    )
    assert api.get("/api/v1/shipments/?status=lost").status_code == 400
    assert api.get("/api/v1/shipments/?updated_since=yesterday").status_code == 400


def test_update_changes_details_before_dispatch_only(api: APIClient) -> None:
    shipment = ShipmentFactory()
    response = api.patch(
        f"/api/v1/shipments/{shipment.shipment_id}/",
        {"recipient_city": "Shelbyville"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["recipient_city"] == "Shelbyville"
    assert shipment.events.filter(kind=EventKind.DETAILS_CHANGED).count() == 1
    stale = api.patch(
        f"/api/v1/shipments/{shipment.shipment_id}/",
        {"recipient_city": "Ogdenville", "version": 1},
        format="json",
    )
    assert problem(stale)["status"] == 409
    moving = dispatched_shipment()
    refused = api.patch(
        f"/api/v1/shipments/{moving.shipment_id}/",
        {"recipient_city": "Ogdenville"},
        format="json",
    )
    assert problem(refused)["status"] == 403


def test_check_then_dispatch_detects_the_carrier(api: APIClient) -> None:
    CarrierFactory()
    shipment = ShipmentFactory()
    early = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/dispatch/",
        {"tracking_number": "1Z999AA10123456784", "estimated_delivery": _in(3)},
        format="json",
    )
    assert problem(early)["status"] == 409
    checked = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/check/",
        {"quality_ok": True, "quantity_ok": True},
        format="json",
    )
    assert checked.json()["status"] == "ready"
    response = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/dispatch/",
        {"tracking_number": "1Z999AA10123456784", "estimated_delivery": _in(3)},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["carrier"] == "ups"
    assert response.json()["status"] == "dispatched"


def test_dispatch_refuses_a_bad_number_and_an_absurd_date(api: APIClient) -> None:
    CarrierFactory()
    shipment = ready_shipment()
    response = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/dispatch/",
        {"carrier": "ups", "tracking_number": "1Z999", "estimated_delivery": _in(3)},
        format="json",
    )
    assert "tracking_number" in problem(response)["errors"]
    absurd = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/dispatch/",
        {"carrier": "ups", "estimated_delivery": "2999-01-01"},
        format="json",
    )
    assert "estimated_delivery" in problem(absurd)["errors"]
    unknown = api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/dispatch/",
        {"carrier": "nope", "estimated_delivery": _in(2)},
        format="json",
    )
    assert problem(unknown)["errors"]["carrier"]
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.READY


def test_cancel_needs_a_reason(api: APIClient) -> None:
    shipment = ShipmentFactory()
    url = f"/api/v1/shipments/{shipment.shipment_id}/cancel/"
    assert problem(api.post(url, {}, format="json"))["errors"]["reason"]
    done = api.post(url, {"reason": "Order withdrawn"}, format="json")
    assert done.json()["status"] == "cancelled"
    assert problem(api.post(url, {"reason": "again"}, format="json"))["status"] == 409


def test_one_checkpoint_then_its_redelivery(api: APIClient, hub: Location) -> None:
    shipment = dispatched_shipment()
    url = f"/api/v1/shipments/{shipment.shipment_id}/checkpoints/"
    scan = {"kind": "arrived_hub", "location": hub.code, "external_id": "scan-1"}
    first = api.post(url, scan, format="json")
    assert first.status_code == 201, first.content
    again = api.post(url, scan, format="json")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert shipment.events.filter(external_id="scan-1").count() == 1
    no_hub = api.post(
        url, {"kind": "arrived_hub", "location": "nowhere"}, format="json"
    )
    assert problem(no_hub)["errors"]["location"]


def test_a_scan_after_delivery_is_a_conflict(api: APIClient) -> None:
    shipment = dispatched_shipment()
    url = f"/api/v1/shipments/{shipment.shipment_id}/checkpoints/"
    assert api.post(url, {"kind": "delivered"}, format="json").status_code == 201
    late = api.post(url, {"kind": "out_for_delivery"}, format="json")
    assert problem(late)["status"] == 409
    assert "Delivered" in problem(late)["detail"]


def test_a_batch_saves_the_good_items_and_reports_each_bad_one(
    api: APIClient, hub: Location
) -> None:
    a, b = dispatched_shipment(), dispatched_shipment()
    now = timezone.now()
    batch = [
        {"reference": a.shipment_id, "kind": "picked_up", "external_id": "e1"},
        {"reference": "SH-NOPE0000", "kind": "picked_up"},
        {"reference": b.tracking_number, "kind": "arrived_hub", "location": hub.code},
        {"reference": a.shipment_id, "kind": "teleported"},
        "not an object",
        {"reference": a.shipment_id, "kind": "picked_up", "external_id": "e1"},
        {
            "reference": b.shipment_id,
            "kind": "in_transit_scan",
            "occurred_at": (now + timedelta(days=30)).isoformat(),
        },
    ]
    response = api.post("/api/v1/checkpoints/", {"checkpoints": batch}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [
        "created",
        "refused",
        "created",
        "refused",
        "refused",
        "duplicate",
        "refused",
    ]
    assert [r["index"] for r in body["results"]] == list(range(7))
    assert (body["created"], body["duplicate"], body["refused"]) == (2, 1, 4)
    assert body["results"][3]["errors"]["kind"]
    assert body["results"][6]["errors"]["occurred_at"]
    assert a.events.filter(kind="picked_up").count() == 1


def test_a_batch_of_1001_is_refused_whole(api: APIClient) -> None:
    shipment = dispatched_shipment()
    items = [{"reference": shipment.shipment_id, "kind": "note", "notes": "x"}] * 1001
    response = api.post("/api/v1/checkpoints/", {"checkpoints": items}, format="json")
    assert problem(response)["status"] == 400
    assert shipment.events.filter(kind="note").count() == 0


def test_tracking_shows_only_what_the_public_page_shows(
    api: APIClient, hub: Location
) -> None:
    shipment = dispatched_shipment(recipient_name="Ada Lovelace")
    api.post(
        f"/api/v1/shipments/{shipment.shipment_id}/checkpoints/",
        {"kind": "arrived_hub", "location": hub.code, "notes": "Staff: dented box"},
        format="json",
    )
    response = api.get(f"/api/v1/shipments/{shipment.shipment_id}/tracking/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Ada" not in text
    assert "dented" not in text
    assert "Evergreen" not in text
    body = response.json()
    assert body["status"] == "in_transit"
    assert body["checkpoints"][0]["place"] == "Chicago, US"
    assert shipment.public_token in body["public_url"]


def _in(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()
