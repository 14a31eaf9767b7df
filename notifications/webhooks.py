"""The write path of outbound webhooks: outbox, delivery, retries, management.

A message row per (event, endpoint, type) is written in the event's own
transaction (the `events_recorded` receiver), so a webhook exists exactly
when its event does, and queued on commit. `webhook_deliver` claims the row
with a conditional update: a task delivered twice, or queued by both the
commit hook and the sweeper, makes one request. Retries are scheduled from
the row's `next_attempt_at`; short ones also wait in the broker, long ones
only in the database, where the sweeper finds them.

Delivery is at least once (a receiver that times out after acting on a
message gets it again, with the same webhook-id) and not in order: a retry
can be overtaken by a later message. Each message carries the shipment's
`sequence`, which grows with every committed change of the shipment.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications import webhook_events, webhook_signing, webhook_transport
from notifications.models import (
    WEBHOOK_TEST_TYPE,
    WEBHOOK_UNSENT,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookStatus,
)
from shipments.events import Recorded
from shipments.models import Carrier, Location, Shipment, TrackingEvent

if TYPE_CHECKING:
    from tracksop.models import Integration

log = logging.getLogger(__name__)

USER_AGENT = "TrackSOP-Webhooks/1"


# --- Configuration ----------------------------------------------------------


def _clean(endpoint: WebhookEndpoint) -> None:
    try:
        endpoint.full_clean(exclude=["integration"])
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc


def webhook_endpoint_create(
    *,
    integration: Integration,
    url: str,
    event_types: Sequence[str],
    description: str = "",
) -> WebhookEndpoint:
    """A new endpoint with a new secret (shown to whoever created it)."""
    endpoint = WebhookEndpoint(
        integration=integration,
        url=url.strip(),
        event_types=sorted(set(event_types)),
        description=description,
        secret=webhook_signing.secret_new(),
    )
    _clean(endpoint)
    endpoint.save()
    return endpoint


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if url is not None:
            locked.url = url.strip()
        if event_types is not None:
            locked.event_types = sorted(set(event_types))
        if description is not None:
            locked.description = description
        _clean(locked)
        locked.save()
    return locked


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint with its delivery log. Its unsent messages go with it."""
    with transaction.atomic():
        WebhookAttempt.objects.filter(endpoint=endpoint).delete()
        WebhookMessage.objects.filter(endpoint=endpoint).delete()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, overlap: timedelta | None = None
) -> WebhookEndpoint:
    """A new secret; the old one still signs (a second signature) until the
    overlap ends, so receivers can switch without losing a message."""
    if overlap is None:
        overlap = timedelta(hours=settings.TRACKSOP_WEBHOOK_ROTATION_OVERLAP_HOURS)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = timezone.now() + overlap
        locked.secret = webhook_signing.secret_new()
        locked.save()
    return locked


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Back on: new events are sent again (earlier ones by replay)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=True,
        disabled_at=None,
        disabled_reason="",
        contact_notified_at=None,
        failing_since=None,
        updated_at=timezone.now(),
    )
    endpoint.refresh_from_db()
    return endpoint


def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint | int, reason: str, notify: bool = True
) -> bool:
    """Stop sending to an endpoint; its integration's contact is emailed once,
    after commit. False if it was already disabled."""
    pk = endpoint if isinstance(endpoint, int) else endpoint.pk
    now = timezone.now()
    with transaction.atomic():
        changed = WebhookEndpoint.objects.filter(pk=pk, is_active=True).update(
            is_active=False,
            disabled_at=now,
            disabled_reason=reason[:300],
            # Nobody to tell about one switched off on purpose.
            contact_notified_at=None if notify else now,
            updated_at=now,
        )
        if changed and notify:
            transaction.on_commit(partial(_queue_disabled_mail, pk))
    return bool(changed)


def _queue_disabled_mail(endpoint_id: int) -> None:
    from notifications.tasks import webhook_disabled_mail

    try:
        webhook_disabled_mail.delay(endpoint_id)
    except Exception:
        log.warning("Broker unavailable; the sweeper mails about %s", endpoint_id)


def webhook_disabled_mail_send(*, endpoint_id: int) -> bool:
    """Tell the integration's contact that an endpoint was disabled, once: the
    row stays locked while the mail goes, so two tasks cannot both send, and
    a mail server that is down leaves it for the sweeper."""
    with transaction.atomic():
        endpoint = (
            WebhookEndpoint.objects.select_for_update(of=("self",))
            .select_related("integration")
            .filter(pk=endpoint_id, is_active=False, contact_notified_at=None)
            .first()
        )
        if endpoint is None:
            return False
        to = endpoint.integration.contact_email
        if to:
            mail.send_mail(
                subject=f"Webhook endpoint disabled: {endpoint.url}"[:200],
                message=(
                    f"TrackSOP stopped sending webhooks to {endpoint.url} for "
                    f"{endpoint.integration.name}.\n\n"
                    f"Why: {endpoint.disabled_reason}\n\n"
                    "Events from now on are not sent to it. Once the receiver "
                    "works, ask your TrackSOP administrator to enable the endpoint "
                    "(or enable it through the API) and replay the messages you "
                    "missed from its delivery log.\n"
                ),
                from_email=None,
                recipient_list=[to],
            )
        endpoint.contact_notified_at = timezone.now()
        endpoint.save(update_fields=["contact_notified_at"])
    return bool(to)


# --- The outbox ---------------------------------------------------------------


def webhooks_for_events(records: Sequence[Recorded]) -> list[WebhookMessage]:
    """The messages events cause, written in their transaction, in a fixed
    number of queries however many events: the active endpoints, carriers and
    locations not loaded yet (at most one query each), the keys already
    written, and one INSERT."""
    typed = [
        (record, types)
        for record in records
        if (
            types := webhook_events.event_types_for(
                event=record.event,
                shipment=record.shipment,
                previous_status=record.previous_status,
            )
        )
    ]
    if not typed:
        return []
    endpoints = list(
        WebhookEndpoint.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "event_types")
    )
    due = [
        (record, event_type, [pk for pk, wanted in endpoints if event_type in wanted])
        for record, types in typed
        for event_type in types
    ]
    due = [(record, event_type, pks) for record, event_type, pks in due if pks]
    if not due:
        return []
    carriers = _carrier_codes([record.shipment for record, _, _ in due])
    locations = _locations([record.event for record, _, _ in due])
    seen = set(
        WebhookMessage.objects.filter(
            event__in={record.event.pk for record, _, _ in due}
        ).values_list("idempotency_key", flat=True)
    )
    rows: list[WebhookMessage] = []
    now = timezone.now()
    for record, event_type, pks in due:
        event, shipment, previous = record
        body = webhook_events.encode(
            webhook_events.payload_for(
                event_type=event_type,
                event=event,
                shipment=shipment,
                previous_status=previous,
                carrier_code=carriers.get(shipment.carrier_id or 0),
                location=locations.get(event.location_id or 0),
            )
        )
        for pk in pks:
            key = f"event:{event.pk}:{event_type}:{pk}"
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                WebhookMessage(
                    endpoint_id=pk,
                    event=event,
                    shipment_code=shipment.shipment_id,
                    event_type=event_type,
                    message_id=_message_id(),
                    idempotency_key=key,
                    payload=body,
                    next_attempt_at=now,
                )
            )
    WebhookMessage.objects.bulk_create(rows)
    transaction.on_commit(
        partial(queue_now, batches((row.endpoint_id, row.pk) for row in rows))
    )
    return rows


def _message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _carrier_codes(shipments: Sequence[Shipment]) -> dict[int, str]:
    field = Shipment._meta.get_field("carrier")
    codes: dict[int, str] = {}
    missing: set[int] = set()
    for shipment in shipments:
        if shipment.carrier_id is None:
            continue
        if field.is_cached(shipment):  # type: ignore[union-attr]
            codes[shipment.carrier_id] = shipment.carrier.code  # type: ignore[union-attr]
        else:
            missing.add(shipment.carrier_id)
    if missing - codes.keys():
        codes.update(
            Carrier.objects.filter(pk__in=missing - codes.keys()).values_list(
                "pk", "code"
            )
        )
    return codes


def _locations(events: Sequence[TrackingEvent]) -> dict[int, Location]:
    field = TrackingEvent._meta.get_field("location")
    found: dict[int, Location] = {}
    missing: set[int] = set()
    for event in events:
        if event.location_id is None:
            continue
        if field.is_cached(event):  # type: ignore[union-attr]
            found[event.location_id] = event.location  # type: ignore[assignment]
        else:
            missing.add(event.location_id)
    if missing - found.keys():
        found.update(
            (location.pk, location)
            for location in Location.objects.filter(pk__in=missing - found.keys()).only(
                "pk", "code", "city"
            )
        )
    return found


def batches(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """(endpoint id, message id) pairs as lists of message ids, one endpoint
    each and at most TRACKSOP_WEBHOOK_BATCH_SIZE long: one task sends a list
    in turn. A task costs the worker more CPU than the attempt it makes, and
    a slow receiver holds up only its own messages."""
    size = settings.TRACKSOP_WEBHOOK_BATCH_SIZE
    by_endpoint: dict[int, list[int]] = {}
    for endpoint_id, pk in sorted(pairs):
        by_endpoint.setdefault(endpoint_id, []).append(pk)
    return [
        ids[start : start + size]
        for ids in by_endpoint.values()
        for start in range(0, len(ids), size)
    ]


def queue_now(groups: Sequence[Sequence[int]]) -> int:
    """Hand lists of message ids (see `batches`) to the broker after commit,
    in one pipelined publish; return how many messages it took. A broker
    that is down leaves them pending for the sweeper."""
    from notifications.tasks import webhook_send

    groups = [group for group in groups if group]
    if not groups:
        return 0
    try:
        with webhook_send.app.producer_or_acquire() as producer:
            batch = getattr(producer, "batch", None)
            with batch() if batch is not None else nullcontext():
                for group in groups:
                    webhook_send.apply_async(tuple(group), producer=producer)
    except Exception:
        log.warning(
            "Broker unavailable; %d webhook(s) wait for the sweeper",
            sum(len(g) for g in groups),
            exc_info=True,
        )
        return 0
    return sum(len(g) for g in groups)


def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookMessage:
    """Queue a `webhook.test` message to an endpoint (its delivery log shows
    how it went)."""
    if not endpoint.is_active:
        raise ValidationError("The endpoint is disabled: enable it first.")
    payload = webhook_events.sample_payload(url=endpoint.url)
    with transaction.atomic():
        row = WebhookMessage.objects.create(
            endpoint=endpoint,
            event_type=WEBHOOK_TEST_TYPE,
            message_id=_message_id(),
            idempotency_key=f"test:{uuid.uuid4().hex}",
            payload=webhook_events.encode(payload),
            next_attempt_at=timezone.now(),
        )
        transaction.on_commit(partial(queue_now, [[row.pk]]))
    return row


def webhook_message_replay(*, message: WebhookMessage) -> WebhookMessage:
    """Send a stored message again, as a new attempt with the same webhook-id
    and body (receivers de-duplicate on the id). A failure goes on along the
    retry schedule from where the message was."""
    with transaction.atomic():
        locked = (
            WebhookMessage.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(pk=message.pk)
        )
        if not locked.endpoint.is_active:
            raise ValidationError("The endpoint is disabled: enable it first.")
        if locked.status == WebhookStatus.SENDING:
            raise ValidationError("This message is being sent right now.")
        locked.status = WebhookStatus.PENDING
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["status", "next_attempt_at"])
        transaction.on_commit(partial(queue_now, [[locked.pk]]))
    return locked


# --- Delivery -----------------------------------------------------------------


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
    answer: webhook_transport.Answer | None,
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
        "webhook-signature": webhook_signing.signature_header(
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
    answer: webhook_transport.Answer | None = None
    error = ""
    try:
        answer = webhook_transport.post(
            endpoint.url,
            body=body,
            headers=headers,
            connect_timeout=settings.TRACKSOP_WEBHOOK_CONNECT_TIMEOUT,
            read_timeout=settings.TRACKSOP_WEBHOOK_READ_TIMEOUT,
            allow_private=settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE,
        )
    except (webhook_transport.Refused, webhook_transport.SendFailed) as exc:
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


def _answer_error(answer: webhook_transport.Answer) -> str:
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
    answer: webhook_transport.Answer | None,
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
        _queue_disabled_mail(endpoint_id)
    return queue_now(batches(due))


def webhook_log_purge(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete the delivery log (messages and their attempts) of webhooks
    finished more than TRACKSOP_WEBHOOK_LOG_DAYS ago; unsent ones are kept
    whatever their age. Returns how many messages went.

    Walks the table from its oldest row in id order (ids grow with
    `created_at`), so it needs no index of its own and each batch is a short
    transaction."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TRACKSOP_WEBHOOK_LOG_DAYS)
    deleted, after = 0, 0
    while True:
        rows = list(
            WebhookMessage.objects.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "created_at", "status")[:batch_size]
        )
        old = [(pk, status) for pk, created_at, status in rows if created_at < cutoff]
        finished = [pk for pk, status in old if status not in WEBHOOK_UNSENT]
        if finished:
            with transaction.atomic():
                # Rechecked: a replay may have made one pending meanwhile.
                WebhookMessage.objects.filter(pk__in=finished).exclude(
                    status__in=WEBHOOK_UNSENT
                ).delete()
            deleted += len(finished)
        if len(old) < len(rows) or len(rows) < batch_size:
            break  # reached the rows younger than the cut-off, or the end
        after = rows[-1][0]
    if deleted:
        log.info("Purged %d webhook messages older than %s", deleted, cutoff)
    return deleted
