"""Webhook endpoints and their delivery log in the Django admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from pytest_django import Settings
from standardwebhooks import Webhook

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import delivery, endpoints
from tests.factories import ShipmentFactory, UserFactory
from tests.notifications.webhook_receiver import Receiver, receiver
from tracksop import roles
from tracksop.models import Integration

__all__ = ["receiver"]

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:notifications_webhookendpoint_changelist")
LOG = reverse("admin:notifications_webhookmessage_changelist")


@pytest.fixture
def integration() -> Integration:
    return Integration.objects.create(name="Shop", contact_email="ops@shop.example")


@pytest.fixture
def local(settings: Settings) -> None:
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True


def _endpoint(integration: Integration, url: str) -> WebhookEndpoint:
    return endpoints.webhook_endpoint_create(
        integration=integration,
        url=url,
        event_types=[WebhookEventType.SHIPMENT_CREATED],
    )


def _messages_shown(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_adding_an_endpoint_shows_its_signing_secret(
    admin_client: Client, integration: Integration
) -> None:
    response = admin_client.post(
        reverse("admin:notifications_webhookendpoint_add"),
        {
            "integration": integration.pk,
            "url": "https://shop.example/hooks",
            "description": "Order system",
            "event_types": ["shipment.created", "shipment.delivered"],
        },
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.event_types == ["shipment.created", "shipment.delivered"]
    assert any(endpoint.secret in m for m in _messages_shown(response))
    page = admin_client.get(
        reverse("admin:notifications_webhookendpoint_change", args=[endpoint.pk])
    )
    assert endpoint.secret in page.content.decode()


def test_an_endpoint_that_is_not_http_is_refused_at_its_field(
    admin_client: Client, integration: Integration
) -> None:
    response = admin_client.post(
        reverse("admin:notifications_webhookendpoint_add"),
        {
            "integration": integration.pk,
            "url": "ftp://shop.example/hooks",
            "event_types": ["shipment.created"],
        },
    )

    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.count() == 0


def test_rotating_keeps_the_old_secret_signing_for_a_while(
    admin_client: Client, integration: Integration
) -> None:
    endpoint = _endpoint(integration, "https://shop.example/hooks")
    old = endpoint.secret

    response = admin_client.post(
        ENDPOINTS,
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
        follow=True,
    )

    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.previous_secret == old
    assert delivery.signing_secrets(endpoint) == [endpoint.secret, old]
    assert any(endpoint.secret in m for m in _messages_shown(response))


def test_a_disabled_endpoint_is_enabled_again(
    admin_client: Client, integration: Integration
) -> None:
    endpoint = _endpoint(integration, "https://shop.example/hooks")
    endpoints.webhook_endpoint_disable(endpoint=endpoint, reason="410", notify=False)

    admin_client.post(
        ENDPOINTS, {"action": "enable", "_selected_action": [endpoint.pk]}
    )

    endpoint.refresh_from_db()
    assert endpoint.is_active
    assert endpoint.disabled_reason == ""


@pytest.mark.usefixtures("local")
def test_replay_sends_the_stored_message_again_under_its_own_id(
    admin_client: Client, integration: Integration, receiver: Receiver
) -> None:
    endpoint = _endpoint(integration, receiver.url)
    ShipmentFactory()
    message = WebhookMessage.objects.get()
    delivery.webhook_deliver(message_id=message.pk)

    response = admin_client.get(f"{LOG}?endpoint__id__exact={endpoint.pk}")
    assert response.status_code == 200
    assert message.shipment_code in response.content.decode()
    admin_client.post(LOG, {"action": "replay", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.status == WebhookStatus.PENDING
    delivery.webhook_deliver(message_id=message.pk)

    first, second = receiver.delivered()
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert list(
        WebhookAttempt.objects.filter(message=message)
        .order_by("number")
        .values_list("number", "succeeded")
    ) == [(1, True), (2, True)]
    page = admin_client.get(
        reverse("admin:notifications_webhookmessage_change", args=[message.pk])
    )
    assert page.status_code == 200
    assert "webhook-signature" in page.content.decode()


@pytest.mark.usefixtures("local")
def test_a_test_event_reaches_the_receiver_signed(
    admin_client: Client, integration: Integration, receiver: Receiver
) -> None:
    endpoint = _endpoint(integration, receiver.url)

    admin_client.post(
        ENDPOINTS, {"action": "send_test_event", "_selected_action": [endpoint.pk]}
    )
    message = WebhookMessage.objects.get(event_type="webhook.test")
    delivery.webhook_deliver(message_id=message.pk)

    [request] = receiver.delivered()
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "webhook.test"


def test_a_disabled_endpoint_gets_no_test_event_or_replay(
    admin_client: Client, integration: Integration
) -> None:
    endpoint = _endpoint(integration, "https://shop.example/hooks")
    ShipmentFactory()
    message = WebhookMessage.objects.get()
    endpoints.webhook_endpoint_disable(endpoint=endpoint, reason="410", notify=False)

    response = admin_client.post(
        ENDPOINTS,
        {"action": "send_test_event", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    assert any("enable it first" in m for m in _messages_shown(response))
    response = admin_client.post(
        LOG, {"action": "replay", "_selected_action": [message.pk]}, follow=True
    )
    assert any("enable it first" in m for m in _messages_shown(response))
    assert WebhookMessage.objects.count() == 1


@pytest.mark.parametrize("role", [roles.SUPERVISOR, roles.MANAGER])
def test_only_administrators_manage_webhooks(client: Client, role: str) -> None:
    user: User = UserFactory(role=role, is_staff=True)
    client.force_login(user)

    assert client.get(ENDPOINTS).status_code == 403
    assert client.get(LOG).status_code == 403
