"""The webhook delivery log is kept for TRACKSOP_WEBHOOK_LOG_DAYS, then purged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from pytest_django import Settings

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import endpoints, purge
from notifications.webhooks import outbox as webhook_outbox
from tracksop.models import Integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint() -> WebhookEndpoint:
    integration = Integration.objects.create(name="Shop")
    return endpoints.webhook_endpoint_create(
        integration=integration,
        url="https://shop.example/hooks",
        event_types=[WebhookEventType.SHIPMENT_CREATED],
    )


def _message(endpoint: WebhookEndpoint, *, at: datetime, status: str) -> WebhookMessage:
    with time_machine.travel(at, tick=False):
        message = webhook_outbox.webhook_test_send(endpoint=endpoint)
        unsent = status in (WebhookStatus.PENDING, WebhookStatus.SENDING)
        WebhookMessage.objects.filter(pk=message.pk).update(
            status=status, next_attempt_at=at if unsent else None
        )
        WebhookAttempt.objects.create(
            message=message, endpoint=endpoint, number=1, url=endpoint.url
        )
    return message


def test_finished_messages_older_than_the_keeping_time_go_with_their_attempts(
    endpoint: WebhookEndpoint, settings: Settings
) -> None:
    now = timezone.now()
    _message(endpoint, at=now - timedelta(days=31), status="delivered")
    _message(endpoint, at=now - timedelta(days=40), status="failed")
    old_pending = _message(endpoint, at=now - timedelta(days=45), status="pending")
    recent = _message(endpoint, at=now - timedelta(days=29), status="delivered")

    assert purge.webhook_log_purge(now=now, batch_size=2) == 2

    kept = set(WebhookMessage.objects.values_list("pk", flat=True))
    assert kept == {old_pending.pk, recent.pk}
    assert set(WebhookAttempt.objects.values_list("message_id", flat=True)) == kept


def test_the_keeping_time_is_a_setting(
    endpoint: WebhookEndpoint, settings: Settings
) -> None:
    now = timezone.now()
    _message(endpoint, at=now - timedelta(days=8), status="delivered")
    assert purge.webhook_log_purge(now=now) == 0
    settings.TRACKSOP_WEBHOOK_LOG_DAYS = 7
    assert purge.webhook_log_purge(now=now) == 1
    assert not WebhookMessage.objects.exists()
