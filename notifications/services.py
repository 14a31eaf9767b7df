"""The write path of notifications: the outbox, delivery, retries, resends.

Rows are written inside the transaction of the event that causes them and
queued on commit. `notification_deliver` claims a row with a conditional
update, so a task delivered twice (Celery is at-least-once) or a row queued by
both the commit hook and the sweeper is sent once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, cast

import phonenumbers
from celery import current_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone, translation

from notifications import gateways, links, rendering
from notifications.models import (
    UNSENT,
    Audience,
    Channel,
    Kind,
    Notification,
    Preference,
    Status,
    Subscription,
)
from notifications.sms import PermanentError, SendError
from shipments.events import Recorded
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tracksop.bulk import bulk_insert, bulk_set

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.core.mail import EmailMultiAlternatives

log = logging.getLogger(__name__)

# The status an event must move the shipment into to count as a milestone.
_MILESTONE_STATUS: dict[str, str] = {
    ShipmentStatus.OUT_FOR_DELIVERY: Kind.OUT_FOR_DELIVERY,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: Kind.AVAILABLE_FOR_PICKUP,
    ShipmentStatus.DELIVERED: Kind.DELIVERED,
}


def milestone_for(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> str | None:
    """The kind of message an event calls for, or None. Late and repeated
    scans that do not move the status tell the customer nothing new."""
    kind = event.kind
    if kind == EventKind.CORRECTION:
        # A supervisor fixing the record: the status it returns to is one the
        # customer already heard of, and a voided mistake (an exception that
        # never was) must not read as news, least of all as "resolved".
        return None
    if kind == EventKind.DISPATCHED:
        return Kind.DISPATCHED
    if kind == EventKind.EXCEPTION_REPORTED:
        # Found by the late-shipment sweep: to the customer it is a delay.
        return Kind.DELAY if event.data.get("detected") else Kind.EXCEPTION
    if kind == EventKind.EXCEPTION_UPDATED:
        return Kind.EXCEPTION
    if kind == EventKind.EXCEPTION_RESOLVED:
        return Kind.EXCEPTION_RESOLVED
    if kind == EventKind.ETA_CHANGED:
        old, new = event.data.get("from") or "", event.data.get("to") or ""
        return Kind.DELAY if old and new and new > old else None
    if shipment.status == previous_status:
        return None
    if (
        shipment.status == ShipmentStatus.IN_TRANSIT
        and previous_status == ShipmentStatus.DISPATCHED
    ):
        return Kind.IN_TRANSIT
    return _MILESTONE_STATUS.get(shipment.status)


def enabled(kind: str) -> bool:
    return kind in settings.TRACKSOP_NOTIFY_KINDS


def party_address(shipment: Shipment, audience: str, channel: str) -> str:
    """The address a party of the shipment has for a channel (may be empty)."""
    prefix = "recipient" if audience == Audience.RECIPIENT else "sender"
    if channel == Channel.EMAIL:
        return str(getattr(shipment, f"{prefix}_email") or "").strip()
    phone = getattr(shipment, f"{prefix}_phone")
    return str(phone.as_e164 if hasattr(phone, "as_e164") else phone or "").strip()


def address_problem(channel: str, address: str, *, where: str = "the shipment") -> str:
    """Why a message cannot go to this address; empty when it can."""
    if channel == Channel.EMAIL:
        if not address:
            return f"No email address on {where}."
        try:
            validate_email(address)
        except ValidationError:
            return f"The email address {address!r} is not valid."
        return ""
    if not address:
        return f"No phone number on {where}."
    try:
        number = phonenumbers.parse(address, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return f"The phone number {address!r} is not a phone number."
    if not phonenumbers.is_valid_number(number):
        return f"The phone number {address!r} is not valid."
    return ""


def preference_for(shipment: Shipment | int, audience: str) -> str:
    pk = shipment if isinstance(shipment, int) else shipment.pk
    return (
        Preference.objects.filter(shipment_id=pk, audience=audience)
        .values_list("channels", flat=True)
        .first()
        or Preference.Choice.BOTH
    )


def _declined(choice: str, channel: str) -> bool:
    return choice not in (Preference.Choice.BOTH, channel)


def _write(**fields: Any) -> Notification:
    """Render and store one outbox row (see `_render_row`)."""
    return _store([_render_row(**fields)])[0]


def _render_row(
    *,
    shipment: Shipment,
    kind: str,
    channel: str,
    audience: str,
    to: str,
    key: str,
    context: dict[str, Any],
    event: TrackingEvent | None = None,
    suppressed: str = "",
    requested_by: User | None = None,
    subscription: Subscription | None = None,
    language: str | None = None,
) -> Notification:
    """One rendered outbox row, not yet stored, in `language` (else the active
    one). A template that fails marks the row failed instead of raising: the
    event that caused it must still save."""
    row = Notification(
        shipment=shipment,
        event=event,
        kind=kind,
        channel=channel,
        audience=audience,
        to=to[:254],
        idempotency_key=key,
        requested_by=requested_by,
        subscription=subscription,
        next_attempt_at=timezone.now(),
    )
    missing = rendering.missing_for(kind, context)
    if missing:
        suppressed = (
            suppressed or "Not sent: the message needs the " + ", ".join(missing) + "."
        )
    try:
        with translation.override(language) if language else nullcontext():
            text = rendering.render(kind, channel, context)
        row.subject, row.body_text, row.body_html = text.subject, text.text, text.html
    except rendering.TemplateFailed as exc:
        log.exception("Notification %s not rendered", key)
        row.status, row.last_error, row.next_attempt_at = Status.FAILED, str(exc), None
    if suppressed and row.status == Status.PENDING:
        row.status, row.last_error, row.next_attempt_at = (
            Status.SUPPRESSED,
            suppressed,
            None,
        )
    return row


def _store(rows: list[Notification]) -> list[Notification]:
    """Insert rendered rows in one statement, and their emails' bytes in one
    more (up to TRACKSOP_NOTIFY_PREBUILD_MAX of them). Not in a task (the
    exceptions sweep): the workers that send would build emails all the
    same, so they do when sending, and the task stays short. (current_task
    is a proxy, false outside a task.)"""
    bulk_insert(rows)
    emails = [
        r for r in rows if r.channel == Channel.EMAIL and r.status == Status.PENDING
    ]
    # Nor for a large batch (the API's 1,000 checkpoints): there the request
    # is the bottleneck and several workers share the building.
    if not current_task and len(emails) <= settings.TRACKSOP_NOTIFY_PREBUILD_MAX:
        built = [row for row in emails if _prepare_email(row)]
        bulk_set(built, ["mime", "status", "last_error", "next_attempt_at"])
    return rows


def _prepare_email(row: Notification) -> bool:
    """Put the email's bytes on its row (the caller stores them), built by the
    writer (a web request) rather than by a worker: building costs more CPU
    than the rest of sending together, and workers' CPU limits how fast they
    send (bench/notifications.py). The record then holds exactly what the mail
    server got. After the insert: the Message-ID is made of the row's id.
    False if it could not be built; the worker will try."""
    try:
        row.mime = gateways.email_bytes(_email(row))
    except PermanentError as exc:
        row.status, row.last_error, row.next_attempt_at = Status.FAILED, str(exc), None
    except Exception:
        # Never the reason an event fails to save: the worker builds it.
        log.exception("Notification %s not built; the worker will", row.pk)
        return False
    return True


# The ids of the rows written inside queue_batched(), if that is where we are.
_batch: ContextVar[list[int] | None] = ContextVar("queue_batch", default=None)


def _queue_on_commit(rows: Iterable[Notification]) -> None:
    ids = [row.pk for row in rows if row.status == Status.PENDING]
    if not ids:
        return
    batch = _batch.get()
    if batch is None:
        transaction.on_commit(partial(queue_now, ids))
    else:
        # The ids join the batch at commit. A savepoint rolled back drops
        # this hook with it, so a row that was never committed is not queued.
        transaction.on_commit(partial(batch.extend, ids))


@contextmanager
def queue_batched() -> Iterator[None]:
    """Rows queued inside the block go to the broker together after commit,
    in one publish instead of one per call (a sweep writes hundreds). Use it
    inside the transaction that writes the rows."""
    batch: list[int] = []
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    # Registered after the rows' hooks, so it runs once they have all joined.
    transaction.on_commit(partial(queue_now, batch))


def queue_now(ids: Sequence[int]) -> int:
    """Hand ids to the broker; return how many it took. Called after commit:
    a broker that is down leaves the rows pending for the sweeper, and the
    request or task that wrote them carries on."""
    from notifications.tasks import notification_send

    if not ids:
        return 0
    try:
        with notification_send.app.producer_or_acquire() as producer:
            # Kombu >= 5.7 pipelines the publishes to Redis: one round trip
            # per thousand messages instead of one each. Elsewhere one each.
            batch = getattr(producer, "batch", None)
            with batch() if batch is not None else nullcontext():
                for pk in ids:
                    notification_send.apply_async((pk,), producer=producer)
    except Exception:
        # How many a failed pipeline delivered is unknown: the sweeper queues
        # them all again and the claim sends each once.
        log.warning(
            "Broker unavailable; %d notification(s) wait for the sweeper",
            len(ids),
            exc_info=True,
        )
        return 0
    return len(ids)


def notifications_for_event(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> list[Notification]:
    """The outbox rows one event causes, written in its transaction."""
    return notifications_for_events([Recorded(event, shipment, previous_status)])


def notifications_for_events(records: Sequence[Recorded]) -> list[Notification]:
    """The outbox rows events cause, written in their transaction: one query
    each for earlier rows, preferences and subscriptions, and one INSERT,
    however many events (a sweep writes fifty at a time)."""
    due = []
    for event, shipment, previous_status in records:
        kind = milestone_for(
            event=event, shipment=shipment, previous_status=previous_status
        )
        if kind is not None and enabled(kind):
            due.append((event, shipment, kind))
    if not due:
        return []
    # Keys already written for these events: handling an event twice is a no-op.
    seen = set(
        Notification.objects.filter(
            event__in=[event.pk for event, _, _ in due]
        ).values_list("idempotency_key", flat=True)
    )
    shipment_ids = {shipment.pk for _, shipment, _ in due}
    choices = {
        (shipment_id, audience): channels
        for shipment_id, audience, channels in Preference.objects.filter(
            shipment_id__in=shipment_ids
        ).values_list("shipment_id", "audience", "channels")
    }
    subscriptions: dict[int, list[Subscription]] = {}
    for subscription in Subscription.objects.filter(
        shipment_id__in=shipment_ids,
        confirmed_at__isnull=False,
        stopped_at__isnull=True,
    ).order_by("pk"):
        subscriptions.setdefault(subscription.shipment_id, []).append(subscription)
    rows: list[Notification] = []
    for event, shipment, kind in due:
        audiences = [Audience.RECIPIENT]
        if kind == Kind.DISPATCHED and shipment.notify_sender:
            audiences.append(Audience.SENDER)
        for audience in audiences:
            choice = choices.get((shipment.pk, audience), Preference.Choice.BOTH)
            rows += _party_rows(event, shipment, kind, audience, choice, seen)
        rows += _subscriber_rows(
            event, shipment, kind, subscriptions.get(shipment.pk, []), seen
        )
    # One INSERT for all of them.
    _queue_on_commit(_store(rows))
    return rows


def _party_rows(
    event: TrackingEvent,
    shipment: Shipment,
    kind: str,
    audience: str,
    choice: str,
    seen: set[str],
) -> list[Notification]:
    """One unsaved row per channel for the recipient or the sender."""
    rows = []
    language = rendering.message_language(shipment, None)
    with translation.override(language):
        context = rendering.message_context(
            shipment=shipment, audience=audience, event=event
        )
    for channel in Channel:
        to = party_address(shipment, audience, channel)
        # One message per address: a sender who is also the recipient
        # gets one email, not two.
        key = f"event:{event.pk}:{channel}:{to.lower() or audience}"
        if key in seen:
            continue
        seen.add(key)
        if _declined(choice, channel):
            reason = f"The {audience} turned off {Channel(channel).label} updates."
        else:
            reason = address_problem(channel, to)
        rows.append(
            _render_row(
                shipment=shipment,
                kind=kind,
                channel=channel,
                audience=audience,
                to=to,
                key=key,
                context=context,
                event=event,
                suppressed=reason,
                language=language,
            )
        )
    return rows


def _subscriber_rows(
    event: TrackingEvent,
    shipment: Shipment,
    kind: str,
    subscriptions: list[Subscription],
    seen: set[str],
) -> list[Notification]:
    """One unsaved row per confirmed, unstopped address added on the tracking
    page, on its own channel. Same key scheme as the parties': an address that
    is also the recipient's was written above and gets one message."""
    rows = []
    for subscription in subscriptions:
        key = f"event:{event.pk}:{subscription.channel}:{subscription.address.lower()}"
        if key in seen:
            continue
        seen.add(key)
        language = rendering.message_language(shipment, subscription)
        with translation.override(language):
            context = rendering.message_context(
                shipment=shipment,
                audience=Audience.SUBSCRIBER,
                event=event,
                subscription=subscription,
            )
        rows.append(
            _render_row(
                shipment=shipment,
                kind=kind,
                channel=subscription.channel,
                audience=Audience.SUBSCRIBER,
                to=subscription.address,
                key=key,
                context=context,
                event=event,
                subscription=subscription,
                suppressed=address_problem(subscription.channel, subscription.address),
                language=language,
            )
        )
    return rows


@dataclass(frozen=True)
class StaffAlert:
    """One occasion to email staff about a shipment (see `staff_alerts_queue`).
    `key` names it (e.g. "escalation:<exception>:<level>")."""

    shipment: Shipment
    users: Sequence[User]
    key: str
    context: dict[str, Any]
    kind: str = Kind.ESCALATION


def staff_alert_queue(
    *,
    shipment: Shipment,
    users: Iterable[User],
    key: str,
    context: dict[str, Any],
    kind: str = Kind.ESCALATION,
) -> list[Notification]:
    """Email staff (supervisors, managers) about a shipment through the outbox."""
    return staff_alerts_queue([StaffAlert(shipment, list(users), key, context, kind)])


def staff_alerts_queue(alerts: Sequence[StaffAlert]) -> list[Notification]:
    """Email staff about shipments through the outbox: one query for the rows
    written before (running it twice for the same occasion writes nothing
    new) and one INSERT, however many alerts. Call inside the transaction
    that records the occasions."""
    keys = {
        (n, user.pk): f"{alert.key}:user:{user.pk}"
        for n, alert in enumerate(alerts)
        for user in alert.users
    }
    written = set(
        Notification.objects.filter(idempotency_key__in=keys.values()).values_list(
            "idempotency_key", flat=True
        )
    )
    rows = []
    for n, alert in enumerate(alerts):
        base = rendering.message_context(
            shipment=alert.shipment, audience=Audience.STAFF
        )
        for user in alert.users:
            row_key = keys[n, user.pk]
            if row_key in written:
                continue
            written.add(row_key)
            to = (user.email or "").strip()
            rows.append(
                _render_row(
                    shipment=alert.shipment,
                    kind=alert.kind,
                    channel=Channel.EMAIL,
                    audience=Audience.STAFF,
                    to=to,
                    key=row_key,
                    context={
                        **base,
                        **alert.context,
                        "name": user.get_full_name() or user.username,
                    },
                    suppressed=address_problem(
                        Channel.EMAIL, to, where="the user's account"
                    )
                    if enabled(alert.kind)
                    else ("Staff alerts of this kind are turned off."),
                )
            )
    _queue_on_commit(_store(rows))
    return rows


@dataclass(frozen=True)
class ReportEmail:
    """A finished report's email to one address (see `report_emails_queue`)."""

    to: str
    subject: str
    text: str
    html: str


def report_emails_queue(
    report: Any, emails: Sequence[ReportEmail]
) -> list[Notification]:
    """Email a finished report (a reports.ReportRun) with its PDF attached,
    through the outbox: retried, recorded, once per report and address."""
    rows = [
        Notification(
            report=report,
            kind=Kind.REPORT,
            channel=Channel.EMAIL,
            audience=Audience.STAFF,
            to=email.to[:254],
            subject=email.subject[:255],
            body_text=email.text,
            body_html=email.html,
            idempotency_key=f"report:{report.pk}:{email.to.lower()}",
            next_attempt_at=timezone.now(),
        )
        for email in emails
    ]
    for row in rows:
        problem = address_problem(Channel.EMAIL, row.to, where="the schedule")
        if problem:
            row.status, row.last_error, row.next_attempt_at = (
                Status.SUPPRESSED,
                problem,
                None,
            )
    written = set(
        Notification.objects.filter(
            idempotency_key__in=[r.idempotency_key for r in rows]
        ).values_list("idempotency_key", flat=True)
    )
    fresh = [r for r in rows if r.idempotency_key not in written]
    _queue_on_commit(_store(fresh))
    return fresh


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter: about BASE·2^(n-1), capped, ±50%."""
    ceiling = min(
        settings.TRACKSOP_NOTIFY_RETRY_MAX_SECONDS,
        settings.TRACKSOP_NOTIFY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311


# What sending reads of a claimed row; the rest stays deferred.
_CLAIMED = frozenset(
    [
        "id",
        "kind",
        "channel",
        "audience",
        "to",
        "subject",
        "body_text",
        "body_html",
        "attempts",
        "shipment_id",
        "subscription_id",
        "report_id",
        "mime",
    ]
)


@cache
def _claim_sql(*, others: bool = False) -> tuple[str, tuple[str, ...]]:
    """One statement (UPDATE ... RETURNING, PostgreSQL and SQLite alike) for
    what took the ORM three: the conditional claim, the row, and the party's
    preference. Their query building cost a worker about as much CPU as the
    email itself (see bench/notifications.py). Returns the SQL and the columns
    it returns, in the model's field order, as Model.from_db wants them.

    With `others`, it claims up to a number of due emails instead of one row,
    newest first: the tasks of the oldest are at the head of the queue, about
    to claim their own rows."""
    q = connection.ops.quote_name
    notification, shipment, preference = (
        q(model._meta.db_table) for model in (Notification, Shipment, Preference)
    )
    columns = tuple(
        f.attname for f in Notification._meta.concrete_fields if f.attname in _CLAIMED
    )
    due, where = "", "id = %s AND status = %s AND next_attempt_at <= %s"
    if others:
        # Claims at once share the rows instead of waiting for each other.
        skip = (
            " FOR UPDATE SKIP LOCKED"
            if connection.features.has_select_for_update_skip_locked
            else ""
        )
        # Materialized: as a subquery the planner may run it again for each
        # row it updates, and each run locks other rows, past the limit.
        # Identifiers from model metadata, never from input (and below).
        due = f"""WITH due AS MATERIALIZED (
            SELECT id FROM {notification}
            WHERE status = %s AND next_attempt_at <= %s AND channel = %s
            ORDER BY next_attempt_at DESC, id DESC LIMIT %s{skip}
        )"""  # noqa: S608
        where = "id IN (SELECT id FROM due) AND status = %s"
    sql = f"""{due}
        UPDATE {notification}
        SET status = %s, attempts = attempts + 1, next_attempt_at = %s
        WHERE {where}
        RETURNING {", ".join(q(c) for c in columns)},
            (SELECT public_token FROM {shipment}
             WHERE {shipment}.id = {notification}.shipment_id),
            (SELECT channels FROM {preference}
             WHERE {preference}.shipment_id = {notification}.shipment_id
             AND {preference}.audience = {notification}.audience)
    """  # noqa: S608
    return sql, columns


def _claim_times() -> tuple[Any, Any]:
    """Now and the end of a claim made now, as the database takes them."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.TRACKSOP_NOTIFY_LEASE_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    return adapt(now), adapt(lease)


def _claimed(
    values: Sequence[Any], columns: tuple[str, ...]
) -> tuple[Notification, str]:
    """The row (only the fields sending needs, with its shipment's public
    token) and its party's choice, from a row the claim returned."""
    *fields, token, choice = values
    row = Notification.from_db(connection.alias, columns, fields)
    row.shipment = Shipment.from_db(
        connection.alias, ("id", "public_token"), (row.shipment_id, token)
    )
    return row, choice or Preference.Choice.BOTH


def _claim(pk: int) -> tuple[Notification, str] | None:
    """Claim the row if it is due and nobody has it."""
    now, lease = _claim_times()
    sql, columns = _claim_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [Status.SENDING.value, lease, pk, Status.PENDING.value, now]
        )
        claimed = cursor.fetchone()
    return None if claimed is None else _claimed(claimed, columns)


def _claim_due_emails(limit: int) -> list[tuple[Notification, str]]:
    """Claim up to `limit` due emails nobody has, in id order."""
    now, lease = _claim_times()
    sql, columns = _claim_sql(others=True)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                *(Status.PENDING.value, now, Channel.EMAIL.value, limit),
                *(Status.SENDING.value, lease),
                Status.PENDING.value,
            ],
        )
        claimed = cursor.fetchall()
    return sorted((_claimed(c, columns) for c in claimed), key=lambda c: c[0].pk)


def _finish(row: Notification, **fields: Any) -> bool:
    """Record the outcome unless the claim lapsed and another worker took it.
    The UPDATE the ORM would write, without its query building (a worker's
    CPU is the limit on sending; see _claim_sql)."""
    q = connection.ops.quote_name
    meta = Notification._meta
    columns = [cast("Field[Any, Any]", meta.get_field(name)) for name in fields]
    values = [f.get_db_prep_save(fields[f.name], connection) for f in columns]
    # Identifiers from model metadata, never from input.
    sql = (
        f"UPDATE {q(meta.db_table)} SET "  # noqa: S608
        + ", ".join(f"{q(cast(str, f.column))} = %s" for f in columns)
        + " WHERE id = %s AND status = %s AND attempts = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, row.pk, Status.SENDING.value, row.attempts])
        return cursor.rowcount > 0


def _email(row: Notification) -> EmailMultiAlternatives:
    """The email a row stands for (needs its shipment's public token)."""
    token = row.shipment.public_token if row.shipment is not None else ""
    unsubscribe = ""
    if row.audience == Audience.SUBSCRIBER:
        if row.subscription_id is not None:
            unsubscribe = links.stop_one_click_url(token, row.subscription_id)
    elif row.audience != Audience.STAFF:
        unsubscribe = links.unsubscribe_url(token, row.audience)
    message = gateways.email_message(
        notification_id=row.pk,
        to=row.to,
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        unsubscribe_url=unsubscribe,
    )
    report = row.report if row.report_id is not None else None
    if report is not None:
        # A report's email carries its PDF, read from the report's storage.
        with report.pdf.open("rb") as pdf:
            message.attach(report.pdf_filename, pdf.read(), "application/pdf")
    return message


def _send(row: Notification) -> str:
    if row.channel == Channel.SMS:
        return gateways.send_sms(to=row.to, body=row.body_text)
    if not row.mime and gateways.sends_bytes():
        # Written by a task, or by a path that does not build (a resend):
        # built once, now, and kept, so that a retry sends the same bytes and
        # the record holds what was sent.
        row.mime = gateways.email_bytes(_email(row))
        Notification.objects.filter(
            pk=row.pk, status=Status.SENDING, attempts=row.attempts
        ).update(mime=row.mime)
    return gateways.send_email(
        notification_id=row.pk,
        to=row.to,
        prepared=bytes(row.mime),
        build=partial(_email, row),
    )


def notification_deliver(*, notification_id: int) -> float | None:
    """Send one pending message. Returns seconds until the next attempt when a
    temporary failure leaves it pending, else None (sent, failed, suppressed,
    or not ours to send: gone, done, not yet due, or claimed by another)."""
    claimed = _claim(notification_id)
    return None if claimed is None else _deliver(*claimed)


# Rows a batch in this process took from other rows' tasks (see
# notification_deliver_batch), so those tasks return without a query. A mark
# is dropped when its row is left pending: its retry task must claim it.
# Bounded: a task that went to another process never comes for its mark, and
# a task whose mark is gone claims nothing (the row is taken or done).
_taken: dict[int, None] = {}
_taken_lock = threading.Lock()
_TAKEN_LIMIT = 50_000


def _take(ids: Iterable[int]) -> None:
    with _taken_lock:
        _taken.update(dict.fromkeys(ids))
        while len(_taken) > _TAKEN_LIMIT:
            del _taken[next(iter(_taken))]


def _untake(ids: Iterable[int]) -> bool:
    """Drop the marks; whether there was any."""
    found = False
    with _taken_lock:
        for pk in ids:
            found = _taken.pop(pk, False) is None or found
    return found


def notification_deliver_batch(*, notification_id: int, size: int) -> dict[int, float]:
    """What a task does: send the row `notification_id` names and, while the
    mail connection is open, up to size - 1 other emails that are due, each
    claimed, re-checked and recorded on its own as notification_deliver does.
    Under a backlog a worker then spends its CPU on sending rather than on
    claiming (bench/notifications.py). Returns the seconds until the next
    attempt of each row left pending; the caller queues those retries."""
    if _untake([notification_id]):
        return {}  # a batch here has it
    claimed = _claim(notification_id)
    if claimed is None:
        return {}
    batch = [claimed]
    if size > 1 and claimed[0].channel == Channel.EMAIL:
        batch += _claim_due_emails(size - 1)
        _take(row.pk for row, _ in batch[1:])
    # Past this, the rest would be sent after their claim may have lapsed and
    # another worker taken them: they go back, untried, their attempt undone.
    deadline = time.monotonic() + settings.TRACKSOP_NOTIFY_LEASE_SECONDS / 2
    retries: dict[int, float] = {}
    try:
        for n, (row, choice) in enumerate(batch):
            if n and time.monotonic() > deadline:
                for rest, _ in batch[n:]:
                    retries[rest.pk] = wait = retry_delay(rest.attempts)
                    _finish(
                        rest,
                        status=Status.PENDING,
                        attempts=rest.attempts - 1,
                        next_attempt_at=timezone.now() + timedelta(seconds=wait),
                    )
                break
            delay = _deliver(row, choice)
            if delay is not None:
                retries[row.pk] = delay
    except BaseException:
        _untake(row.pk for row, _ in batch)
        raise
    _untake(retries)
    return retries


def _deliver(row: Notification, choice: str) -> float | None:
    """Send a claimed row and record the outcome, as notification_deliver."""
    if row.audience != Audience.STAFF and _declined(choice, row.channel):
        # Honoured at once: the customer turned this channel off after the
        # message was written but before it went.
        _finish(
            row,
            status=Status.SUPPRESSED,
            next_attempt_at=None,
            last_error=f"The {row.audience} turned off these updates before sending.",
        )
        return None
    if (
        row.audience == Audience.SUBSCRIBER
        and row.subscription_id is not None
        and Subscription.objects.filter(
            pk=row.subscription_id, stopped_at__isnull=False
        ).exists()
    ):
        # Likewise for an address added on the tracking page and stopped since.
        _finish(
            row,
            status=Status.SUPPRESSED,
            next_attempt_at=None,
            last_error="The subscriber stopped these updates before sending.",
        )
        return None
    try:
        provider_id = _send(row)
    except PermanentError as exc:
        _finish(row, status=Status.FAILED, next_attempt_at=None, last_error=str(exc))
        return None
    except Exception as exc:  # temporary: SendError, timeouts, anything unforeseen
        error = (
            str(exc) if isinstance(exc, SendError) else f"{type(exc).__name__}: {exc}"
        )
        if row.attempts >= settings.TRACKSOP_NOTIFY_MAX_ATTEMPTS:
            _finish(
                row,
                status=Status.FAILED,
                next_attempt_at=None,
                last_error=f"Gave up after {row.attempts} attempts. {error}",
            )
            return None
        delay = retry_delay(row.attempts)
        _finish(
            row,
            status=Status.PENDING,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=error,
        )
        return delay
    _finish(
        row,
        status=Status.SENT,
        sent_at=timezone.now(),
        next_attempt_at=None,
        provider_message_id=provider_id[:255],
        last_error="",
    )
    return None


def notifications_sweep(*, limit: int = 1000) -> int:
    """Queue what is due and nobody is sending: rows left pending while the
    broker was down, and rows whose worker died mid-send (lapsed claim).
    Returns how many were queued. Safe to run anywhere, any number of times."""
    now = timezone.now()
    lapsed = Notification.objects.filter(status=Status.SENDING, next_attempt_at__lt=now)
    # A message whose worker keeps dying on it fails rather than loops.
    lapsed.filter(attempts__gte=settings.TRACKSOP_NOTIFY_MAX_ATTEMPTS).update(
        status=Status.FAILED,
        next_attempt_at=None,
        last_error="The worker stopped while sending, too many times.",
    )
    stale = now - timedelta(seconds=settings.TRACKSOP_NOTIFY_STALE_SECONDS)
    # Dated back past the stale time, so this very sweep queues them.
    lapsed.update(
        status=Status.PENDING,
        next_attempt_at=stale,
        last_error="The worker stopped while sending; it will be sent again.",
    )
    with transaction.atomic():
        # SKIP LOCKED: two sweepers at once share the rows instead of both
        # queuing them (harmless, the claim decides, but wasteful).
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, next_attempt_at__lte=stale)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        # Push them forward so the next sweep does not queue them again
        # while they wait in the broker.
        Notification.objects.filter(pk__in=ids).update(next_attempt_at=now)
    return queue_now(ids)


def notification_resend(*, notification: Notification, user: User) -> Notification:
    """Send a message again, as a new row, to the party's current address.
    A failed original leaves the failed list."""
    original = Notification.objects.select_related("shipment").get(pk=notification.pk)
    if original.status in UNSENT:
        raise ValidationError("This message is still being sent. Wait for it first.")
    shipment = original.shipment
    if original.audience == Audience.STAFF:
        to = original.to
    elif original.audience == Audience.SUBSCRIBER:
        # Only to an address still confirmed; a code is asked for anew.
        subscription = original.subscription
        if original.kind == Kind.SUBSCRIPTION_CONFIRM:
            raise ValidationError(
                "A confirmation code is not sent again: the customer asks "
                "for a new one on the tracking page."
            )
        if subscription is None or not subscription.is_active:
            raise ValidationError("The subscriber stopped these updates.")
        to = subscription.address
    elif shipment is None:
        raise ValidationError("Only staff messages are about no shipment.")
    else:
        if _declined(preference_for(shipment, original.audience), original.channel):
            raise ValidationError(
                f"The {original.audience} turned off "
                f"{Channel(original.channel).label} updates for this shipment."
            )
        to = party_address(shipment, original.audience, original.channel)
    problem = address_problem(original.channel, to)
    if problem:
        raise ValidationError(f"Cannot resend. {problem}")
    with transaction.atomic():
        row = Notification.objects.create(
            shipment=shipment,
            report_id=original.report_id,
            kind=original.kind,
            channel=original.channel,
            audience=original.audience,
            to=to,
            subject=original.subject,
            body_text=original.body_text,
            body_html=original.body_html,
            idempotency_key=f"resend:{original.pk}:{uuid.uuid4().hex}",
            resend_of=original,
            subscription_id=original.subscription_id,
            requested_by=user,
            next_attempt_at=timezone.now(),
        )
        if original.status == Status.FAILED:
            Notification.objects.filter(pk=original.pk, superseded_at=None).update(
                superseded_at=timezone.now()
            )
        _queue_on_commit([row])
    return row


def preference_set(
    *, shipment: Shipment, audience: str, channels: str, user: User | None = None
) -> Preference:
    if audience not in (Audience.RECIPIENT, Audience.SENDER):
        raise ValidationError("Only customers have preferences.")
    if channels not in Preference.Choice.values:
        raise ValidationError({"channels": "Choose email, SMS, both or none."})
    preference, _ = Preference.objects.update_or_create(
        shipment=shipment,
        audience=audience,
        defaults={
            "channels": channels,
            "updated_by": user if user is not None and user.is_authenticated else None,
        },
    )
    return preference
