"""The webhook management API through DRF's test client, on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings
from rest_framework.test import APIClient

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import delivery, endpoints
from tests.factories import ShipmentFactory
from tracksop.api_keys import api_key_issue
from tracksop.models import Integration

pytestmark = pytest.mark.django_db

BASE = "/api/v1/webhooks/"
NEW = {
    "url": "https://shop.example/hooks",
    "description": "Order system",
    "event_types": ["shipment.created", "shipment.delivered"],
}


def _client(integration: Integration, scopes: list[str] | None = None) -> APIClient:
    _, raw = api_key_issue(
        integration=integration, name="hooks", scopes=scopes or ["webhooks:manage"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def shop() -> Integration:
    return Integration.objects.create(name="Shop", contact_email="ops@shop.example")


@pytest.fixture
def api(shop: Integration) -> APIClient:
    return _client(shop)


def _create(api: APIClient, **changes: Any) -> Any:
    return api.post(BASE, {**NEW, **changes}, format="json")


def test_an_integration_adds_an_endpoint_and_gets_its_secret_once(
    api: APIClient,
) -> None:
    response = _create(api)

    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("ep_")
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["shipment.created", "shipment.delivered"]
    assert body["is_active"] is True
    listed = api.get(BASE).json()
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"{BASE}{body['id']}/").json()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"url": "ftp://shop.example/in"}, "url", "Use an http:// or https:// URL"),
        ({"url": "not a url"}, "url", "Enter a valid URL."),
        ({"event_types": []}, "event_types", "This list may not be empty."),
        ({"event_types": ["shipment.lost"]}, "event_types.0", "is not a valid choice"),
        ({"event_types": "shipment.created"}, "event_types", "Expected a list"),
        ({"url": "https://x.example/" + "a" * 2000}, "url", "no more than 2000"),
    ],
)
def test_bad_endpoints_are_refused_at_their_field(
    api: APIClient, changes: dict[str, Any], field: str, message: str
) -> None:
    response = _create(api, **changes)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert message in " ".join(errors[field]), errors
    assert WebhookEndpoint.objects.count() == 0


def test_malformed_json_is_a_400(api: APIClient) -> None:
    response = api.post(BASE, b"{nope", content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_an_endpoint_is_changed_and_deleted(api: APIClient) -> None:
    code = _create(api).json()["id"]

    response = api.patch(
        f"{BASE}{code}/",
        {
            "url": "https://shop.example/v2/hooks",
            "event_types": ["checkpoint.recorded"],
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["url"] == "https://shop.example/v2/hooks"
    assert response.json()["event_types"] == ["checkpoint.recorded"]
    assert response.json()["description"] == "Order system"
    bad = api.patch(f"{BASE}{code}/", {"url": "file:///etc/passwd"}, format="json")
    assert bad.status_code == 400
    assert WebhookEndpoint.objects.get().url == "https://shop.example/v2/hooks"
    ShipmentFactory()  # no message: not subscribed any more
    api.patch(f"{BASE}{code}/", {"event_types": ["shipment.created"]}, format="json")
    ShipmentFactory()
    assert WebhookMessage.objects.count() == 1

    assert api.delete(f"{BASE}{code}/").status_code == 204

    assert WebhookEndpoint.objects.count() == 0
    assert WebhookMessage.objects.count() == 0
    assert api.get(f"{BASE}{code}/").status_code == 404


def test_rotating_returns_the_new_secret_and_when_the_old_one_stops(
    api: APIClient,
) -> None:
    created = _create(api).json()

    response = api.post(f"{BASE}{created['id']}/rotate-secret/")

    assert response.status_code == 200
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None
    endpoint = WebhookEndpoint.objects.get()
    assert delivery.signing_secrets(endpoint) == [body["secret"], created["secret"]]


def test_the_delivery_log_lists_messages_with_their_attempts_and_replays(
    api: APIClient, settings: Settings
) -> None:
    code = _create(api).json()["id"]
    ShipmentFactory()
    message = WebhookMessage.objects.get()
    # An attempt that found nobody listening (a closed local port).
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True
    WebhookEndpoint.objects.update(url="http://127.0.0.1:9/hooks")
    delivery.webhook_deliver(message_id=message.pk)

    listed = api.get(f"{BASE}{code}/messages/").json()
    assert [m["id"] for m in listed["results"]] == [message.message_id]
    assert listed["results"][0]["payload"]["type"] == "shipment.created"
    assert listed["results"][0]["status"] == "pending"
    assert api.get(f"{BASE}{code}/messages/?status=delivered").json()["results"] == []
    bad = api.get(f"{BASE}{code}/messages/?status=lost")
    assert bad.status_code == 400
    assert "status" in bad.json()["errors"]
    detail = api.get(f"{BASE}{code}/messages/{message.message_id}/").json()
    [attempt] = detail["attempt_log"]
    assert attempt["number"] == 1
    assert attempt["succeeded"] is False
    assert "connect" in attempt["error"].lower()
    assert attempt["request_headers"]["webhook-id"] == message.message_id

    WebhookMessage.objects.update(status=WebhookStatus.FAILED, next_attempt_at=None)
    response = api.post(f"{BASE}{code}/messages/{message.message_id}/replay/")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert WebhookAttempt.objects.count() == 1  # the worker makes the attempt


def test_a_test_event_is_queued(api: APIClient) -> None:
    code = _create(api).json()["id"]

    response = api.post(f"{BASE}{code}/test/")

    assert response.status_code == 202
    assert response.json()["type"] == "webhook.test"
    assert WebhookMessage.objects.get().event_type == "webhook.test"


def test_a_disabled_endpoint_is_enabled_again(api: APIClient) -> None:
    code = _create(api).json()["id"]
    endpoints.webhook_endpoint_disable(
        endpoint=WebhookEndpoint.objects.get(), reason="410 Gone", notify=False
    )
    refused = api.post(f"{BASE}{code}/test/")
    assert refused.status_code == 400
    assert "enable it first" in refused.json()["detail"]

    response = api.post(f"{BASE}{code}/enable/")

    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert response.json()["disabled_reason"] == ""


def test_another_integrations_endpoints_are_not_found(
    api: APIClient, shop: Integration
) -> None:
    theirs = endpoints.webhook_endpoint_create(
        integration=Integration.objects.create(name="Rival"),
        url="https://rival.example/hooks",
        event_types=["shipment.created"],
    )
    ShipmentFactory()
    message = WebhookMessage.objects.get()
    base = f"{BASE}{theirs.code}/"

    calls = [
        api.get(base),
        api.patch(base, {"url": "https://evil.example/"}, format="json"),
        api.delete(base),
        api.post(f"{base}rotate-secret/"),
        api.post(f"{base}enable/"),
        api.post(f"{base}test/"),
        api.get(f"{base}messages/"),
        api.get(f"{base}messages/{message.message_id}/"),
        api.post(f"{base}messages/{message.message_id}/replay/"),
    ]

    assert [c.status_code for c in calls] == [404] * len(calls)
    assert api.get(BASE).json() == []
    theirs.refresh_from_db()
    assert theirs.url == "https://rival.example/hooks"
    assert WebhookMessage.objects.count() == 1


def test_a_key_without_the_scope_is_refused(shop: Integration) -> None:
    api = _client(shop, ["shipments:read"])

    for response in (api.get(BASE), api.head(BASE), _create(api)):
        assert response.status_code == 403
    assert "webhooks:manage" in api.get(BASE).json()["detail"]


def test_no_key_is_a_401() -> None:
    assert APIClient().get(BASE).status_code == 401


@pytest.mark.parametrize("n", [2, 20])
def test_the_delivery_log_costs_the_same_queries_however_long(
    api: APIClient, n: int
) -> None:
    code = _create(api).json()["id"]
    for _ in range(n):
        ShipmentFactory()

    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"{BASE}{code}/messages/")

    assert len(response.json()["results"]) == n
    # The key, its last use (at most once a minute), the endpoint, the page.
    assert len(queries) <= 4, [q["sql"] for q in queries]
