"""Delivering the outbox: claim a row, send it, record the outcome, retry
later or give up; the sweeper that queues what was left behind; resending.

A row is claimed with a conditional update, so a task delivered twice (Celery
is at-least-once) or a row queued by both the commit hook and the sweeper is
sent once. How a row is claimed, sent and recorded is a `sending.Path` (the
fast one unless TRACKSOP_NOTIFY_PATH says "orm"); what is decided here is the
same for both: whether the customer still wants it, and what an error means.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from notifications import selectors, sending
from notifications.models import (
    UNSENT,
    Audience,
    Channel,
    Kind,
    Notification,
    Status,
    Subscription,
)
from notifications.outbox import queue_now, queue_on_commit
from notifications.rules import address_problem, declined, party_address, retry_delay
from notifications.sms import PermanentError, SendError

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def notification_deliver(
    *, notification_id: int, path: sending.Path | None = None
) -> float | None:
    """Send one pending message. Returns seconds until the next attempt when a
    temporary failure leaves it pending, else None (sent, failed, suppressed,
    or not ours to send: gone, done, not yet due, or claimed by another)."""
    path = path or sending.current()
    claimed = path.claim(notification_id)
    return None if claimed is None else _deliver(path, *claimed)


def notification_deliver_batch(
    *, notification_id: int, size: int, path: sending.Path | None = None
) -> dict[int, float]:
    """What a task does: send the row `notification_id` names and, while the
    mail connection is open, up to size - 1 other emails that are due, each
    claimed, re-checked and recorded on its own as notification_deliver does.
    Under a backlog a worker then spends its CPU on sending rather than on
    claiming (bench/notifications.py). Returns the seconds until the next
    attempt of each row left pending; the caller queues those retries."""
    path = path or sending.current()
    if path.untake([notification_id]):
        return {}  # a batch here has it
    claimed = path.claim(notification_id)
    if claimed is None:
        return {}
    batch = [claimed]
    if size > 1 and claimed[0].channel == Channel.EMAIL:
        batch += path.claim_due_emails(size - 1)
        path.take(row.pk for row, _ in batch[1:])
    # Past this, the rest would be sent after their claim may have lapsed and
    # another worker taken them: they go back, untried, their attempt undone.
    deadline = time.monotonic() + settings.TRACKSOP_NOTIFY_LEASE_SECONDS / 2
    retries: dict[int, float] = {}
    try:
        for n, (row, choice) in enumerate(batch):
            if n and time.monotonic() > deadline:
                retries.update(_put_back(path, [rest for rest, _ in batch[n:]]))
                break
            delay = _deliver(path, row, choice)
            if delay is not None:
                retries[row.pk] = delay
    except BaseException:
        path.untake(row.pk for row, _ in batch)
        raise
    path.untake(retries)
    return retries


def _put_back(path: sending.Path, rows: list[Notification]) -> dict[int, float]:
    """Return claimed rows untried, their attempt undone, due a little later."""
    retries = {}
    for row in rows:
        retries[row.pk] = wait = retry_delay(row.attempts)
        path.finish(
            row,
            status=Status.PENDING,
            attempts=row.attempts - 1,
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
        )
    return retries


def _unwanted(row: Notification, choice: str) -> str:
    """Why a claimed row is no longer to be sent; empty if it is."""
    if row.audience != Audience.STAFF and declined(choice, row.channel):
        # Honoured at once: the customer turned this channel off after the
        # message was written but before it went.
        return f"The {row.audience} turned off these updates before sending."
    if (
        row.audience == Audience.SUBSCRIBER
        and row.subscription_id is not None
        and Subscription.objects.filter(
            pk=row.subscription_id, stopped_at__isnull=False
        ).exists()
    ):
        # Likewise for an address added on the tracking page and stopped since.
        return "The subscriber stopped these updates before sending."
    return ""


def _deliver(path: sending.Path, row: Notification, choice: str) -> float | None:
    """Send a claimed row and record the outcome, as notification_deliver."""
    unwanted = _unwanted(row, choice)
    if unwanted:
        path.finish(
            row, status=Status.SUPPRESSED, next_attempt_at=None, last_error=unwanted
        )
        return None
    try:
        provider_id = path.send(row)
    except PermanentError as exc:
        path.finish(
            row, status=Status.FAILED, next_attempt_at=None, last_error=str(exc)
        )
        return None
    except Exception as exc:  # temporary: SendError, timeouts, anything unforeseen
        error = (
            str(exc) if isinstance(exc, SendError) else f"{type(exc).__name__}: {exc}"
        )
        if row.attempts >= settings.TRACKSOP_NOTIFY_MAX_ATTEMPTS:
            path.finish(
                row,
                status=Status.FAILED,
                next_attempt_at=None,
                last_error=f"Gave up after {row.attempts} attempts. {error}",
            )
            return None
        delay = retry_delay(row.attempts)
        path.finish(
            row,
            status=Status.PENDING,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=error,
        )
        return delay
    path.finish(
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
        if declined(
            selectors.preference_for(shipment, original.audience), original.channel
        ):
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
        queue_on_commit([row])
    return row
