"""What one attempt does with each kind of answer, against a real local HTTP
receiver: timeouts, redirects, 410, retries until the schedule ends, key
rotation, the SSRF guard, and an endpoint failing for days. The attempts run
in this process (`webhook_deliver`, what the worker's task calls), so the
clock can be moved."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from pytest_django import Settings
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import delivery, endpoints, transport
from notifications.webhooks import outbox as webhook_outbox
from tests.factories import ShipmentFactory
from tests.helpers import race
from tests.notifications.conftest import SmtpSink, free_port
from tests.notifications.webhook_receiver import Receiver, receiver
from tracksop.models import Integration

__all__ = ["receiver"]

pytestmark = pytest.mark.django_db

CREATED = [WebhookEventType.SHIPMENT_CREATED]


@pytest.fixture
def integration(db: None) -> Integration:
    return Integration.objects.create(name="Shop", contact_email="ops@shop.example")


@pytest.fixture
def local(settings: Settings) -> None:
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True
    settings.TRACKSOP_WEBHOOK_READ_TIMEOUT = 0.5
    settings.TRACKSOP_WEBHOOK_CONNECT_TIMEOUT = 0.5


def _endpoint(integration: Integration, url: str) -> WebhookEndpoint:
    return endpoints.webhook_endpoint_create(
        integration=integration, url=url, event_types=CREATED
    )


def _message() -> WebhookMessage:
    ShipmentFactory()
    message = WebhookMessage.objects.order_by("-pk").first()
    assert message is not None
    return message


def _attempt(message: WebhookMessage) -> float | None:
    return delivery.webhook_deliver(message_id=message.pk)


def _last_attempt() -> WebhookAttempt:
    attempt = WebhookAttempt.objects.order_by("-pk").first()
    assert attempt is not None
    return attempt


@pytest.mark.usefixtures("local")
def test_a_receiver_that_hangs_times_out_and_the_message_waits_for_its_retry(
    receiver: Receiver, integration: Integration
) -> None:
    _endpoint(integration, receiver.url)
    receiver.hang = 2
    message = _message()

    retry_in = _attempt(message)

    assert retry_in is not None
    assert 4.5 <= retry_in <= 5.5  # 5 s, jittered
    message.refresh_from_db()
    assert message.status == WebhookStatus.PENDING
    assert message.attempts == 1
    assert message.next_attempt_at > timezone.now()  # type: ignore[operator]
    attempt = _last_attempt()
    assert attempt.error == "No answer within 0.5 s."
    assert attempt.response_status is None
    assert 400 <= attempt.duration_ms < 2000


@pytest.mark.usefixtures("local")
def test_a_redirect_counts_as_a_failure_and_is_not_followed(
    receiver: Receiver, integration: Integration
) -> None:
    elsewhere = Receiver(port=free_port())
    elsewhere.start()
    try:
        receiver.answers = [307]
        receiver.redirect_to = elsewhere.url
        _endpoint(integration, receiver.url)
        message = _message()

        assert _attempt(message) is not None

        assert elsewhere.delivered() == []
        attempt = _last_attempt()
        assert attempt.response_status == 307
        assert not attempt.succeeded
        assert "redirects are not followed" in attempt.error
        assert elsewhere.url in attempt.error
        message.refresh_from_db()
        assert message.status == WebhookStatus.PENDING
    finally:
        elsewhere.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("local", "eager_tasks")
def test_a_410_disables_the_endpoint_at_once_and_tells_its_owner(
    receiver: Receiver,
    integration: Integration,
    settings: Settings,
    smtp_sink: SmtpSink,
) -> None:
    settings.MAILERS = _smtp(smtp_sink)
    receiver.answers = [410]
    endpoint = _endpoint(integration, receiver.url)
    message = _message()  # its task runs at once (eager) and is told 410

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason
    message.refresh_from_db()
    assert message.status == WebhookStatus.FAILED
    [mail] = smtp_sink.to("ops@shop.example")
    assert receiver.url in mail["Subject"]
    # Nothing more is written for it.
    ShipmentFactory()
    assert WebhookMessage.objects.count() == 1


@pytest.mark.usefixtures("local")
def test_a_message_fails_for_good_after_the_last_retry_of_the_schedule(
    receiver: Receiver, integration: Integration, settings: Settings
) -> None:
    settings.TRACKSOP_WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]
    receiver.answers = [500] * 10
    _endpoint(integration, receiver.url)
    message = _message()

    delays = [_attempt(message) for _ in range(4)]

    assert delays[:3] == [0, 0, 0]
    assert delays[3] is None
    message.refresh_from_db()
    assert message.status == WebhookStatus.FAILED
    assert message.last_error == "Gave up after 4 attempts. The receiver answered 500."
    assert len(receiver.delivered()) == 4
    # Nothing is left for a task or the sweeper to send.
    assert _attempt(message) is None
    assert len(receiver.delivered()) == 4


@pytest.mark.usefixtures("local")
def test_a_message_for_a_disabled_endpoint_is_not_sent(
    receiver: Receiver, integration: Integration
) -> None:
    endpoint = _endpoint(integration, receiver.url)
    message = _message()
    endpoints.webhook_endpoint_disable(endpoint=endpoint, reason="Paused", notify=False)

    assert _attempt(message) is None

    assert receiver.delivered() == []
    message.refresh_from_db()
    assert message.status == WebhookStatus.FAILED
    assert message.attempts == 0
    assert "endpoint disabled" in message.last_error


@pytest.mark.usefixtures("local")
def test_during_a_rotation_both_secrets_sign_and_each_verifies(
    receiver: Receiver, integration: Integration
) -> None:
    endpoint = _endpoint(integration, receiver.url)
    old = endpoint.secret
    endpoint = endpoints.webhook_secret_rotate(endpoint=endpoint)
    assert endpoint.secret != old
    assert endpoint.secret.startswith("whsec_")

    _attempt(_message())

    [request] = receiver.delivered()
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, endpoint.secret):
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "shipment.created"

    # After the overlap only the new secret signs.
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        _attempt(_message())
    later = receiver.delivered()[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        _verify_ignoring_age(old, later)
    assert _verify_ignoring_age(endpoint.secret, later)


def _verify_ignoring_age(secret: str, request: Any) -> Any:
    # The message was signed 25 hours ahead of the real clock.
    with time_machine.travel(int(request.headers["webhook-timestamp"]), tick=False):
        return Webhook(secret).verify(request.body, request.headers)


# --- The SSRF guard -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hooks", "127.0.0.1 is a loopback address"),
        ("http://[::1]:{port}/hooks", "::1 is a loopback address"),
        ("http://localhost:{port}/hooks", "loopback address"),
        ("http://10.1.2.3/hooks", "10.1.2.3 is a private address"),
        ("http://192.168.0.10/hooks", "is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "carries 127.0.0.1"),
        ("http://0.0.0.0:{port}/", "is an unspecified address"),
    ],
)
def test_webhooks_to_addresses_inside_the_network_are_refused(
    receiver: Receiver, integration: Integration, url: str, reason: str
) -> None:
    _endpoint(integration, url.format(port=receiver.port))
    message = _message()

    _attempt(message)

    assert receiver.delivered() == []
    attempt = _last_attempt()
    assert attempt.response_status is None
    assert "Webhooks go only to public addresses" in attempt.error
    assert reason in attempt.error


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.251",
        "240.0.0.1",
        "0.0.0.0",  # noqa: S104
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",  # 6to4 around 10.0.0.1
    ],
)
def test_the_guard_refuses_every_non_public_address(address: str) -> None:
    assert transport.address_refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07::1"])
def test_the_guard_lets_public_addresses_through(address: str) -> None:
    assert transport.address_refusal(ipaddress.ip_address(address)) == ""


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hooks", "file:///etc/passwd", "gopher://example.com/"]
)
def test_an_endpoint_must_be_an_http_or_https_url(
    integration: Integration, url: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        endpoints.webhook_endpoint_create(
            integration=integration, url=url, event_types=CREATED
        )
    assert "url" in caught.value.message_dict
    assert WebhookEndpoint.objects.count() == 0


def test_an_endpoint_needs_known_event_types(integration: Integration) -> None:
    with pytest.raises(ValidationError) as caught:
        endpoints.webhook_endpoint_create(
            integration=integration,
            url="https://shop.example/hooks",
            event_types=["shipment.teleported"],
        )
    assert caught.value.message_dict["event_types"] == [
        "Unknown event type: shipment.teleported."
    ]


# --- An endpoint failing for days ---------------------------------------------


def _smtp(sink: SmtpSink) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": sink.port, "timeout": 5},
        }
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("local", "eager_tasks")
def test_an_endpoint_failing_for_five_days_is_disabled_and_its_owner_emailed_once(
    receiver: Receiver,
    integration: Integration,
    settings: Settings,
    smtp_sink: SmtpSink,
) -> None:
    settings.MAILERS = _smtp(smtp_sink)
    receiver.answers = [500] * 100
    endpoint = _endpoint(integration, receiver.url)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = _message()  # its task ran at once (eager) and failed
    endpoint.refresh_from_db()
    assert endpoint.failing_since == start
    assert endpoint.is_active

    with time_machine.travel(start + timedelta(days=4, hours=23), tick=False):
        second = _message()
        endpoint.refresh_from_db()
        assert endpoint.is_active
    assert smtp_sink.messages == []

    with time_machine.travel(start + timedelta(days=5, minutes=1), tick=False):
        _attempt(first)  # due again; fails once more
        endpoint.refresh_from_db()
        assert not endpoint.is_active
        assert "since" in endpoint.disabled_reason
        assert "The receiver answered 500." in endpoint.disabled_reason
        _attempt(second)  # no request: the endpoint is disabled
        delivery.webhooks_sweep()
        delivery.webhooks_sweep()

    assert len(receiver.delivered()) == 3
    [mail] = smtp_sink.messages
    assert mail["To"] == "ops@shop.example"
    assert receiver.url in mail["Subject"]
    body = mail.get_body()
    assert body is not None
    assert "enable the endpoint" in body.get_content()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == WebhookStatus.FAILED
    # New events write nothing for it until it is enabled again.
    ShipmentFactory()
    assert WebhookMessage.objects.count() == 2
    endpoints.webhook_endpoint_enable(endpoint=endpoint)
    receiver.answers = []
    ShipmentFactory()
    assert WebhookMessage.objects.count() == 3
    assert WebhookMessage.objects.order_by("-pk")[0].status == WebhookStatus.DELIVERED


def test_a_success_ends_the_failing_spell(
    receiver: Receiver, integration: Integration, settings: Settings
) -> None:
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True
    receiver.answers = [500]
    endpoint = _endpoint(integration, receiver.url)
    message = _message()
    _attempt(message)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None

    with time_machine.travel(timezone.now() + timedelta(seconds=10), tick=False):
        _attempt(message)

    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    message.refresh_from_db()
    assert message.status == WebhookStatus.DELIVERED


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("local")
def test_two_tasks_for_one_message_at_once_make_one_request(
    receiver: Receiver, integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint(integration, receiver.url)
    monkeypatch.setattr(webhook_outbox, "queue_now", lambda groups: 0)  # no worker here
    message = _message()
    receiver.hang = 0.3  # both are in flight together

    outcomes = race(*[lambda: _attempt(message)] * 4)

    assert outcomes == [None] * 4
    assert len(receiver.delivered()) == 1
    message.refresh_from_db()
    assert message.status == WebhookStatus.DELIVERED
    assert message.attempts == 1
    assert WebhookAttempt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("local")
def test_the_plain_orm_path_of_other_databases_gives_the_same_outcome(
    receiver: Receiver, integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run`'s SQLite has no UPDATE ... FROM ... RETURNING with jsonb or
    a writing CTE: the worker claims and records through the ORM there."""
    monkeypatch.setattr(delivery, "fast_sql", lambda: False)
    receiver.answers = [500]
    endpoint = _endpoint(integration, receiver.url)
    message = _message()

    assert _attempt(message) is not None
    message.refresh_from_db()
    assert (message.status, message.attempts) == (WebhookStatus.PENDING, 1)
    assert _last_attempt().response_status == 500
    assert _attempt(message) is None  # not due yet: nobody claims it

    with time_machine.travel(timezone.now() + timedelta(seconds=10), tick=False):
        assert _attempt(message) is None
    message.refresh_from_db()
    assert message.status == WebhookStatus.DELIVERED
    assert message.delivered_at is not None
    assert WebhookAttempt.objects.filter(message=message).count() == 2
    assert _last_attempt().succeeded
    # The failed try and the successful one: the same message both times.
    assert {r.headers["webhook-id"] for r in receiver.delivered()} == {
        message.message_id
    }
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
