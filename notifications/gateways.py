"""Leaving the process: hand one message to the mail server or SMS provider.

An email is built into bytes once, when its row is written (`email_bytes`),
and Django's SMTP backend sends those bytes as they are: building a message
with Python's email package costs more CPU than the rest of sending together,
and a worker's CPU (one process, one GIL) is what limits how fast it sends.
Other backends (console, file, an email API) get the EmailMessage built anew.

Each worker thread keeps its mail connection open between messages (a new
SMTP session per message costs more than the message), and reconnects once if
the server closed it while idle.
"""

from __future__ import annotations

import contextlib
import email.policy
import functools
import re
import smtplib
import threading
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.signals import setting_changed
from django.dispatch import receiver

from notifications import links, sms
from notifications.models import Audience, Notification
from notifications.sms import PermanentError, TemporaryError

_local = threading.local()


def _mailer() -> Any:
    # Any: whichever backend MAILERS names; send_email reaches SMTP's own
    # attributes only once sends_bytes() says it is Django's SMTP backend.
    connection = getattr(_local, "mailer", None)
    if connection is None:
        connection = mail.mailers.default
        _local.mailer = connection
    return connection


def _drop_mailer() -> None:
    connection = getattr(_local, "mailer", None)
    _local.mailer = None
    if connection is not None:
        # Already broken; a new one follows.
        with contextlib.suppress(Exception):
            connection.close()


# Python's email package folds a long URL in a header into RFC 2047 encoded
# words, which mail clients do not read as a List-Unsubscribe URL. Lines up to
# RFC 5322's hard limit of 998 characters keep such headers whole.
class _Message(EmailMultiAlternatives):
    def message(self, *, policy: Any = None) -> Any:
        # The SMTP backend asks for email.policy.SMTP: keep its CRLF line
        # endings, lift only the fold.
        return super().message(
            policy=(policy or email.policy.default).clone(max_line_length=998)
        )


@receiver(setting_changed)
def _settings_changed(*, setting: str, **_: Any) -> None:
    # Tests point MAILERS at another server: forget this thread's connection.
    if setting == "MAILERS":
        _drop_mailer()


def classify(exc: Exception) -> Exception:
    """The PermanentError or TemporaryError a mail backend's error stands for."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return PermanentError(
                f"The mail server refused the address: {exc.recipients}"
            )
        return TemporaryError(f"The mail server deferred the address: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"Mail server answered {exc.smtp_code}: {exc.smtp_error!r}"
        return PermanentError(text) if exc.smtp_code >= 500 else TemporaryError(text)
    # django-anymail's ESP errors, without importing an optional package.
    if type(exc).__name__ == "AnymailRecipientsRefused":
        return PermanentError(f"The email provider refused the address: {exc}")
    return TemporaryError(f"{type(exc).__name__}: {exc}".strip())


def message_id(notification_id: int) -> str:
    # The same on every attempt: a client that got a message twice (a worker
    # died after the server took it) shows it once.
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<notification-{notification_id}@{domain}>"


# An address prep_address would return unchanged: ASCII, a dot-atom local
# part, no display name. Most are; its parser costs a worker a tenth of a message.
_PLAIN_ADDRESS = re.compile(r"[\w+-]+(?:\.[\w+-]+)*@[\w-]+(?:\.[\w-]+)*", re.ASCII)


_MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>\r\n]+>)\r?$", re.MULTILINE)


@functools.lru_cache(maxsize=256)
def _prepared_address(address: str) -> str:
    return str(_mailer().prep_address(address))


def _envelope(address: str) -> str:
    """The addr-spec SMTP's MAIL FROM or RCPT TO takes, as Django's backend
    prepares it (IDNA domains; refuses CR/LF and more than one address)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return _prepared_address(address)


def email_message(
    *,
    notification_id: int,
    to: str,
    subject: str,
    text: str,
    html: str,
    unsubscribe_url: str = "",
) -> EmailMultiAlternatives:
    headers = {"Message-ID": message_id(notification_id)}
    if unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mail clients show their own button.
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    try:
        message = _Message(subject, text, to=[to], headers=headers)
        if html:
            message.attach_alternative(html, "text/html")
    except ValueError as exc:  # an address or header Python refuses to encode
        raise PermanentError(f"The message could not be built: {exc}") from exc
    return message


def email_for(row: Notification) -> EmailMultiAlternatives:
    """The email an outbox row stands for (needs its shipment's public token;
    a report's email carries its PDF, read from the report's storage)."""
    token = row.shipment.public_token if row.shipment is not None else ""
    unsubscribe = ""
    if row.audience == Audience.SUBSCRIBER:
        if row.subscription_id is not None:
            unsubscribe = links.stop_one_click_url(token, row.subscription_id)
    elif row.audience != Audience.STAFF:
        unsubscribe = links.unsubscribe_url(token, row.audience)
    message = email_message(
        notification_id=row.pk,
        to=row.to,
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        unsubscribe_url=unsubscribe,
    )
    report = row.report if row.report_id is not None else None
    if report is not None:
        with report.pdf.open("rb") as pdf:
            message.attach(report.pdf_filename, pdf.read(), "application/pdf")
    return message


def email_bytes(message: EmailMultiAlternatives) -> bytes:
    """The message as Django's SMTP backend puts it on the wire."""
    try:
        return bytes(message.message(policy=email.policy.SMTP).as_bytes())
    except ValueError as exc:
        raise PermanentError(f"The message could not be built: {exc}") from exc


def sends_bytes() -> bool:
    """Whether this thread's mailer is Django's own SMTP backend, which sends
    stored bytes; a subclass is not: it may sign or rewrite what it sends."""
    return type(_mailer()) is SmtpBackend


def send_email(
    *,
    notification_id: int,
    to: str,
    prepared: bytes,
    build: Callable[[], EmailMultiAlternatives],
) -> str:
    """Send one email; return its Message-ID. Django's own SMTP backend sends
    `prepared` (the stored bytes) or, when there are none, the bytes of
    `build()`; any other backend gets `build()` (see sends_bytes)."""
    message: EmailMultiAlternatives | None = None
    data = prepared
    if not sends_bytes():
        message = build()
    elif not data:
        data = email_bytes(build())
    for attempt in (1, 2):
        connection = _mailer()
        try:
            connection.open()
            if message is not None:
                connection.send_messages([message])
            else:
                # What SmtpBackend.send_messages does, minus building.
                connection.connection.sendmail(
                    _envelope(settings.DEFAULT_FROM_EMAIL),
                    [_envelope(to)],
                    data,
                )
                # The one it carries, should the sender's domain have changed.
                found = _MESSAGE_ID.search(data)
                if found:
                    return found.group(1).decode()
            return message_id(notification_id)
        except smtplib.SMTPServerDisconnected as exc:
            _drop_mailer()
            if attempt == 2:
                raise classify(exc) from exc
        except Exception as exc:
            _drop_mailer()
            raise classify(exc) from exc
    raise AssertionError("unreachable")


def send_sms(*, to: str, body: str) -> str:
    return sms.get_backend().send(to=to, body=body)
