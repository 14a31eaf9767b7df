"""SMS backends: one small interface, chosen by TRACKSOP_SMS_BACKEND.

`send` returns the provider's message id, raises PermanentError when trying
again cannot help (a number the provider refuses, a customer who replied STOP)
and TemporaryError when it may (provider down, rate limited, timeout).
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)


class SendError(Exception):
    pass


class PermanentError(SendError):
    pass


class TemporaryError(SendError):
    pass


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str) -> str: ...


class ConsoleBackend:
    def send(self, *, to: str, body: str) -> str:
        message_id = f"console-{uuid.uuid4().hex}"
        sys.stdout.write(f"SMS to {to} ({message_id}):\n{body}\n{'-' * 40}\n")
        sys.stdout.flush()
        return message_id


class FileBackend:
    """One file per text in TRACKSOP_SMS_FILE_PATH, for trying it out."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or settings.TRACKSOP_SMS_FILE_PATH)

    def send(self, *, to: str, body: str) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        message_id = f"file-{uuid.uuid4().hex}"
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        (self.path / f"{stamp}-{message_id}.txt").write_text(
            f"To: {to}\nId: {message_id}\n\n{body}\n", encoding="utf-8"
        )
        return message_id


class TwilioBackend:
    """Twilio's Messages API through the `twilio` library."""

    # Twilio error codes that no retry can fix: invalid or unreachable 'To',
    # not an SMS-capable number, recipient opted out (replied STOP), blocked.
    PERMANENT_CODES = frozenset(
        {21211, 21408, 21610, 21612, 21614, 30003, 30005, 30006}
    )

    def __init__(self) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT),
        )
        self.client.api.base_url = settings.TWILIO_API_URL

    def send(self, *, to: str, body: str) -> str:
        from requests import RequestException
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender = settings.TWILIO_FROM
        origin = (
            {"messaging_service_sid": sender}
            if sender.startswith("MG")
            else {"from_": sender}
        )
        try:
            message = self.client.messages.create(to=to, body=body, **origin)
        except TwilioRestException as exc:
            detail = f"Twilio {exc.status} error {exc.code}: {exc.msg}"
            if exc.code in self.PERMANENT_CODES or (
                400 <= exc.status < 500 and exc.status not in (401, 408, 429)
            ):
                raise PermanentError(detail) from exc
            raise TemporaryError(detail) from exc
        except (RequestException, TwilioException, OSError) as exc:
            raise TemporaryError(f"Twilio unreachable: {exc}") from exc
        return str(message.sid)


_local = threading.local()


def get_backend() -> SmsBackend:
    """One backend per thread (the Twilio client keeps an HTTP session), made
    again when its settings change."""
    key = (
        settings.TRACKSOP_SMS_BACKEND,
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_API_URL,
        str(settings.TRACKSOP_SMS_FILE_PATH),
    )
    if getattr(_local, "key", None) != key:
        backends: dict[str, type[SmsBackend]] = {
            "console": ConsoleBackend,
            "file": FileBackend,
            "twilio": TwilioBackend,
        }
        _local.backend, _local.key = backends[key[0]](), key
    return _local.backend  # type: ignore[no-any-return]
