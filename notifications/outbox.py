"""Writing the outbox: one Notification row per message, in the transaction
of the event that causes it, queued to the broker after commit.

Which rows an event calls for is decided by `rules.py`; sending them is
`delivery.py`'s. Here: rendering and storing rows (`write`, `render_row`,
`store`), queuing them (`queue_on_commit`, `queue_batched`, `queue_now`), the
rows of tracking events, staff alerts and report emails, and customers'
channel preferences (`preference_set`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from celery import current_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation

from notifications import gateways, rendering
from notifications.models import (
    Audience,
    Channel,
    Kind,
    Notification,
    Preference,
    Status,
    Subscription,
)
from notifications.rules import (
    address_problem,
    audiences,
    declined,
    enabled,
    milestone_for,
    party_address,
)
from notifications.sms import PermanentError
from shipments.events import Recorded
from shipments.models import Shipment, TrackingEvent
from tracksop.bulk import bulk_insert, bulk_set

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)


def write(**fields: Any) -> Notification:
    """Render and store one outbox row (see `render_row`)."""
    return store([render_row(**fields)])[0]


def render_row(
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


def store(rows: list[Notification]) -> list[Notification]:
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
        row.mime = gateways.email_bytes(gateways.email_for(row))
    except PermanentError as exc:
        row.status, row.last_error, row.next_attempt_at = Status.FAILED, str(exc), None
    except Exception:
        # Never the reason an event fails to save: the worker builds it.
        log.exception("Notification %s not built; the worker will", row.pk)
        return False
    return True


# The ids of the rows written inside queue_batched(), if that is where we are.
_batch: ContextVar[list[int] | None] = ContextVar("queue_batch", default=None)


def queue_on_commit(rows: Iterable[Notification]) -> None:
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
        for audience in audiences(kind, shipment):
            choice = choices.get((shipment.pk, audience), Preference.Choice.BOTH)
            rows += _party_rows(event, shipment, kind, audience, choice, seen)
        rows += _subscriber_rows(
            event, shipment, kind, subscriptions.get(shipment.pk, []), seen
        )
    # One INSERT for all of them.
    queue_on_commit(store(rows))
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
        if declined(choice, channel):
            reason = f"The {audience} turned off {Channel(channel).label} updates."
        else:
            reason = address_problem(channel, to)
        rows.append(
            render_row(
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
            render_row(
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
                render_row(
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
    queue_on_commit(store(rows))
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
    queue_on_commit(store(fresh))
    return fresh


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
