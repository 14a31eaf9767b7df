"""Delivering webhooks: claim a due message, sign and POST it, log the
attempt and record the outcome, retry along the schedule or give up (and
disable an endpoint that is gone or has failed for days); the sweeper.

On PostgreSQL the claim and the record are one statement each (`fast_sql`),
since a worker's CPU and round trips limit delivery; elsewhere the ORM does
the same in more statements.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications.models import (
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import outbox, signing, transport
from notifications.webhooks.endpoints import (
    queue_disabled_mail,
    webhook_endpoint_disable,
)

if TYPE_CHECKING:
    pass

USER_AGENT = "TrackSOP-Webhooks/1"


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, jittered
    by up to 10% so that a receiver back from an outage is not hit by every
    retry in the same second; None when the schedule is used up."""
    schedule = settings.TRACKSOP_WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    return float(schedule[attempts - 1] * random.uniform(0.9, 1.1))  # noqa: S311


# Appended to the worker's two statements per attempt: their commit returns
# before the WAL reaches the disk (about 2 ms less each on this kind of
# machine). Safe for delivery bookkeeping only: what a database crash can lose
# is the last moments' claims and outcomes, whose messages are then sent once
# more, which the at-least-once contract allows and receivers de-duplicate by
# webhook-id. The outbox row itself is written in the event's durable commit.
# (In the WHERE clause: a single autocommit statement has no SET LOCAL.)
_UNHURRIED = "set_config('synchronous_commit', 'off', true) IS NOT NULL"


def _in_field_order(model: type[Any], names: set[str]) -> tuple[str, ...]:
    # Model.from_db takes a subset of the columns in the model's field order.
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in names)


_MESSAGE_COLUMNS = _in_field_order(
    WebhookMessage, {"id", "message_id", "payload", "attempts", "endpoint_id"}
)
_ENDPOINT_COLUMNS = _in_field_order(
    WebhookEndpoint,
    {
        "id",
        "url",
        "secret",
        "previous_secret",
        "previous_secret_expires_at",
        "is_active",
        "disabled_reason",
        "failing_since",
    },
)


@cache
def _claim_sql() -> str:
    """Claim a due message and read it with its endpoint in one statement
    (the worker's CPU and round trips are what limit delivery)."""
    q = connection.ops.quote_name
    m, e = q(WebhookMessage._meta.db_table), q(WebhookEndpoint._meta.db_table)
    returning = [f"{m}.{q(c)}" for c in _MESSAGE_COLUMNS] + [
        f"{e}.{q(c)}" for c in _ENDPOINT_COLUMNS
    ]
    # Identifiers from model metadata, never from input.
    return (
        f"UPDATE {m} SET status = %s, attempts = {m}.attempts + 1, "  # noqa: S608
        f"next_attempt_at = %s FROM {e} "
        f"WHERE {m}.id = %s AND {m}.status = %s AND {m}.next_attempt_at <= %s "
        f"AND {e}.id = {m}.endpoint_id AND {_UNHURRIED} "
        "RETURNING " + ", ".join(returning)
    )


def fast_sql() -> bool:
    """PostgreSQL takes the two-statement path above; other databases (the
    SQLite of `make run`) the plain ORM one, with the same outcome."""
    return connection.vendor == "postgresql"


def _claim(pk: int) -> WebhookMessage | None:
    """Claim the message if it is due and nobody has it."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.TRACKSOP_WEBHOOK_LEASE_SECONDS)
    if not fast_sql():
        claimed = WebhookMessage.objects.filter(
            pk=pk, status=WebhookStatus.PENDING, next_attempt_at__lte=now
        ).update(
            status=WebhookStatus.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=lease,
        )
        if not claimed:
            return None
        return WebhookMessage.objects.select_related("endpoint").get(pk=pk)
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [WebhookStatus.SENDING.value, lease, pk, WebhookStatus.PENDING.value, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_MESSAGE_COLUMNS)
    message = WebhookMessage.from_db(connection.alias, _MESSAGE_COLUMNS, row[:split])
    message.endpoint = WebhookEndpoint.from_db(
        connection.alias, _ENDPOINT_COLUMNS, row[split:]
    )
    return message


def _finish(message: WebhookMessage, **fields: Any) -> bool:
    """Record the outcome unless the claim lapsed and another worker took it."""
    return bool(
        WebhookMessage.objects.filter(
            pk=message.pk, status=WebhookStatus.SENDING, attempts=message.attempts
        ).update(**fields)
    )


_ATTEMPT_COLUMNS = (
    "message_id",
    "endpoint_id",
    "number",
    "url",
    "request_headers",
    "response_status",
    "response_excerpt",
    "duration_ms",
    "error",
    "succeeded",
    "created_at",
)


@cache
def _record_sql() -> str:
    """Log the attempt and record the message's outcome in one statement,
    unless the claim lapsed meanwhile (the attempt is logged all the same).
    An earlier delivery's time stays when a replay fails."""
    q = connection.ops.quote_name
    a, m = q(WebhookAttempt._meta.db_table), q(WebhookMessage._meta.db_table)
    values = ", ".join(
        "%s::jsonb" if c == "request_headers" else "%s" for c in _ATTEMPT_COLUMNS
    )
    # Identifiers from model metadata, never from input.
    return (
        f"WITH logged AS (INSERT INTO {a} "  # noqa: S608
        f"({', '.join(q(c) for c in _ATTEMPT_COLUMNS)}) VALUES ({values})) "
        f"UPDATE {m} SET status = %s, next_attempt_at = %s, last_error = %s, "
        "delivered_at = COALESCE(%s, delivered_at) "
        f"WHERE id = %s AND status = %s AND attempts = %s AND {_UNHURRIED}"
    )


@dataclass(frozen=True)
class Outcome:
    status: str
    next_attempt_at: datetime | None = None
    last_error: str = ""
    delivered_at: datetime | None = None


def _record(
    message: WebhookMessage,
    *,
    headers: dict[str, str],
    answer: transport.Answer | None,
    duration_ms: int,
    error: str,
    outcome: Outcome,
) -> None:
    attempt: list[Any] = [
        message.pk,
        message.endpoint_id,
        message.attempts,
        message.endpoint.url,
        json.dumps(headers),
        answer.status if answer is not None else None,
        answer.excerpt[:500] if answer is not None else "",
        duration_ms,
        error,
        outcome.status == WebhookStatus.DELIVERED,
        timezone.now(),
    ]
    if not fast_sql():
        with transaction.atomic():
            WebhookAttempt.objects.create(
                **dict(zip(_ATTEMPT_COLUMNS, attempt, strict=True))
                | {"request_headers": headers}
            )
            WebhookMessage.objects.filter(
                pk=message.pk,
                status=WebhookStatus.SENDING,
                attempts=message.attempts,
            ).update(
                status=outcome.status,
                next_attempt_at=outcome.next_attempt_at,
                last_error=outcome.last_error,
                # An earlier delivery's time stays when a replay fails.
                **(
                    {"delivered_at": outcome.delivered_at}
                    if outcome.delivered_at is not None
                    else {}
                ),
            )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _record_sql(),
            [
                *attempt,
                outcome.status,
                outcome.next_attempt_at,
                outcome.last_error,
                outcome.delivered_at,
                message.pk,
                WebhookStatus.SENDING.value,
                message.attempts,
            ],
        )


def signing_secrets(endpoint: WebhookEndpoint) -> list[str]:
    current = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > timezone.now():
        current.append(endpoint.previous_secret)
    return current


def request_headers(
    endpoint: WebhookEndpoint, message: WebhookMessage, body: bytes
) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            secrets=signing_secrets(endpoint),
            msg_id=message.message_id,
            timestamp=timestamp,
            body=body,
        ),
    }


def webhook_deliver(*, message_id: int) -> float | None:
    """Make one attempt at a due message. Returns seconds until the next
    attempt when it failed and will be retried, else None (delivered, failed
    for good, or not ours: gone, done, not due, claimed by another)."""
    message = _claim(message_id)
    if message is None:
        return None
    endpoint = message.endpoint
    if not endpoint.is_active:
        _finish(
            message,
            status=WebhookStatus.FAILED,
            next_attempt_at=None,
            attempts=F("attempts") - 1,
            last_error=f"Not sent: endpoint disabled. {endpoint.disabled_reason}",
        )
        return None
    body = message.payload.encode()
    headers = request_headers(endpoint, message, body)
    started = time.monotonic()
    answer: transport.Answer | None = None
    error = ""
    try:
        answer = transport.post(
            endpoint.url,
            body=body,
            headers=headers,
            connect_timeout=settings.TRACKSOP_WEBHOOK_CONNECT_TIMEOUT,
            read_timeout=settings.TRACKSOP_WEBHOOK_READ_TIMEOUT,
            allow_private=settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE,
        )
    except (transport.Refused, transport.SendFailed) as exc:
        error = str(exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    now = timezone.now()
    succeeded = answer is not None and 200 <= answer.status < 300
    if answer is not None and not succeeded:
        error = _answer_error(answer)
    delay: float | None = None
    if succeeded:
        outcome = Outcome(WebhookStatus.DELIVERED, delivered_at=now)
        if endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    else:
        outcome, delay = _after_failure(message, endpoint, answer, error, now)
    _record(
        message,
        headers=headers,
        answer=answer,
        duration_ms=duration_ms,
        error=error,
        outcome=outcome,
    )
    return delay


def webhooks_deliver(*, message_ids: Sequence[int]) -> dict[int, float]:
    """Attempt each message in turn (as `webhook_deliver`); returns the delay
    of each that will be retried."""
    retries: dict[int, float] = {}
    for pk in message_ids:
        delay = webhook_deliver(message_id=pk)
        if delay is not None:
            retries[pk] = delay
    return retries


def _answer_error(answer: transport.Answer) -> str:
    if 300 <= answer.status < 400:
        return (
            f"The receiver answered {answer.status} (a redirect to "
            f"{answer.location or 'nowhere'}); redirects are not followed: "
            "configure the final URL."
        )
    return f"The receiver answered {answer.status}."


def _after_failure(
    message: WebhookMessage,
    endpoint: WebhookEndpoint,
    answer: transport.Answer | None,
    error: str,
    now: datetime,
) -> tuple[Outcome, float | None]:
    """What a failed attempt leaves: the endpoint disabled when it says it is
    gone (410) or has failed for days; the message waiting for its retry, or
    failed for good. Returns the outcome and the retry's delay, if any."""
    if answer is not None and answer.status == 410:
        webhook_endpoint_disable(
            endpoint=endpoint.pk,
            reason="The receiver answered 410 Gone: it asked for no more webhooks.",
        )
        return Outcome(WebhookStatus.FAILED, last_error=error), None
    failing_since = endpoint.failing_since
    if failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since=None).update(
            failing_since=now
        )
        failing_since = now
    limit = timedelta(hours=settings.TRACKSOP_WEBHOOK_DISABLE_AFTER_HOURS)
    if now - failing_since >= limit:
        webhook_endpoint_disable(
            endpoint=endpoint.pk,
            reason=(
                f"Every attempt failed since {failing_since:%Y-%m-%d %H:%M} UTC "
                f"({limit.days} days). Last error: {error}"
            ),
        )
        return Outcome(WebhookStatus.FAILED, last_error=error), None
    delay = retry_delay(message.attempts)
    if delay is None:
        failed = f"Gave up after {message.attempts} attempts. {error}"
        return Outcome(WebhookStatus.FAILED, last_error=failed), None
    retry_at = now + timedelta(seconds=delay)
    return Outcome(
        WebhookStatus.PENDING, next_attempt_at=retry_at, last_error=error
    ), delay


def webhooks_sweep(*, limit: int = 1000) -> int:
    """Queue what is due and nobody is sending: rows whose task was lost
    (broker down, worker died), long retries that wait only here, and mails
    about disabled endpoints not sent yet. Returns how many messages it
    queued. Safe to run anywhere, any number of times."""
    now = timezone.now()
    # A claim that lapsed: the worker died mid-attempt. Dated back past the
    # stale time, so this very sweep queues them.
    stale = now - timedelta(seconds=settings.TRACKSOP_WEBHOOK_STALE_SECONDS)
    WebhookMessage.objects.filter(
        status=WebhookStatus.SENDING, next_attempt_at__lt=now
    ).update(
        status=WebhookStatus.PENDING,
        next_attempt_at=stale,
        last_error="The worker stopped while sending; it will be sent again.",
    )
    with transaction.atomic():
        due = list(
            WebhookMessage.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookStatus.PENDING, next_attempt_at__lte=stale)
            .order_by("next_attempt_at", "id")
            .values_list("endpoint_id", "id")[:limit]
        )
        # Forward to now: the next sweep does not queue them again while
        # they wait in the broker, but does if they are lost once more.
        WebhookMessage.objects.filter(pk__in=[pk for _, pk in due]).update(
            next_attempt_at=now
        )
    for endpoint_id in WebhookEndpoint.objects.filter(
        is_active=False, contact_notified_at=None
    ).values_list("pk", flat=True):
        queue_disabled_mail(endpoint_id)
    return outbox.queue_now(outbox.batches(due))
