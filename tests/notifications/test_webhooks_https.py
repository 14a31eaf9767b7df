"""Webhooks to an HTTPS receiver: the certificate is checked against the
endpoint's name, with the machine's trusted authorities (`SSL_CERT_FILE`
points OpenSSL at a test authority here), and a receiver whose certificate
does not check out gets nothing, as a failed attempt that is retried. The
attempts run in this process (`webhook_deliver`, what the worker's task
calls) against a real local TLS server."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import delivery, endpoints
from tests.factories import ShipmentFactory
from tests.notifications.conftest import free_port
from tests.notifications.webhook_receiver import Receiver
from tracksop.models import Integration

pytestmark = pytest.mark.django_db


@dataclass
class Authority:
    """A certificate authority of our own, and leaf certificates it signs."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    folder: Path

    @classmethod
    def create(cls, folder: Path, name: str = "TrackSOP test CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, folder)

    @property
    def bundle(self) -> Path:
        path = self.folder / f"{id(self)}-ca.pem"
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def server_context(self, names: Sequence[x509.GeneralName]) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for `names`."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver")])
        cert = (
            _builder(subject, self.cert.subject, key)
            .add_extension(x509.SubjectAlternativeName(list(names)), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()
                ),
                False,
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = self.folder / f"{id(cert)}-leaf.pem"
        chain.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        return context


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    # Certificates valid around the real clock: OpenSSL checks them against it.
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
    )


LOOPBACK = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path)


@pytest.fixture
def trusted(authority: Authority, monkeypatch: pytest.MonkeyPatch) -> Authority:
    """The test authority is the one the machine trusts."""
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return authority


@pytest.fixture
def local(settings: Any) -> None:
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True
    settings.TRACKSOP_WEBHOOK_READ_TIMEOUT = 2
    settings.TRACKSOP_WEBHOOK_CONNECT_TIMEOUT = 2


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(tls: ssl.SSLContext) -> Receiver:
        receiver = Receiver(port=free_port(), tls=tls)
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def _endpoint(url: str) -> WebhookEndpoint:
    integration = Integration.objects.create(
        name="Shop", contact_email="ops@shop.example"
    )
    return endpoints.webhook_endpoint_create(
        integration=integration,
        url=url,
        event_types=[WebhookEventType.SHIPMENT_CREATED],
    )


def _deliver_one() -> tuple[WebhookMessage, float | None]:
    ShipmentFactory()
    message = WebhookMessage.objects.get()
    retry_in = delivery.webhook_deliver(message_id=message.pk)
    message.refresh_from_db()
    return message, retry_in


@pytest.mark.usefixtures("local")
def test_a_receiver_with_a_trusted_certificate_gets_the_signed_webhook(
    trusted: Authority, serve: Any
) -> None:
    receiver = serve(trusted.server_context(LOOPBACK))
    endpoint = _endpoint(receiver.url)
    assert receiver.url.startswith("https://")

    message, retry_in = _deliver_one()

    assert retry_in is None
    assert message.status == WebhookStatus.DELIVERED
    [request] = receiver.delivered()
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "shipment.created"
    attempt = WebhookAttempt.objects.get()
    assert (attempt.succeeded, attempt.response_status) == (True, 200)


@pytest.mark.usefixtures("local")
def test_a_certificate_from_an_unknown_authority_is_refused_and_retried(
    trusted: Authority, authority: Authority, serve: Any, tmp_path: Path
) -> None:
    stranger = Authority.create(tmp_path, name="Somebody else's CA")
    receiver = serve(stranger.server_context(LOOPBACK))
    _endpoint(receiver.url)

    message, retry_in = _deliver_one()

    assert retry_in is not None  # the schedule's next try
    assert message.status == WebhookStatus.PENDING
    assert receiver.delivered() == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.succeeded is False
    assert attempt.response_status is None
    assert attempt.error.startswith("TLS failed:")
    assert "certificate verify failed" in attempt.error


@pytest.mark.usefixtures("local")
def test_a_certificate_for_another_name_is_refused(
    trusted: Authority, serve: Any
) -> None:
    # Signed by the trusted authority, but for shop.example, not 127.0.0.1.
    receiver = serve(trusted.server_context([x509.DNSName("shop.example")]))
    _endpoint(receiver.url)

    message, _ = _deliver_one()

    assert message.status == WebhookStatus.PENDING
    assert receiver.delivered() == []
    error = WebhookAttempt.objects.get().error
    assert error.startswith("TLS failed:")
    assert "127.0.0.1" in error or "mismatch" in error.lower(), error
