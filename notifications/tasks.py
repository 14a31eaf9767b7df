"""Thin tasks: take ids, call one service. Retries are scheduled from the row's
own backoff, so the database, not the broker, remembers what is due."""

from __future__ import annotations

import contextlib

from celery import shared_task
from django.conf import settings

from notifications import delivery
from notifications.webhooks import delivery as webhook_delivery
from notifications.webhooks import endpoints, purge


@shared_task(acks_late=True, ignore_result=True)
def notification_send(notification_id: int) -> None:
    retries = delivery.notification_deliver_batch(
        notification_id=notification_id, size=settings.TRACKSOP_NOTIFY_BATCH_SIZE
    )
    for pk, retry_in in retries.items():
        # Not inside a transaction; if the broker is down now, the sweeper
        # queues the row once its next_attempt_at has passed.
        with contextlib.suppress(Exception):
            notification_send.apply_async((pk,), countdown=retry_in)


@shared_task(ignore_result=True)
def notifications_sweep() -> int:
    return delivery.notifications_sweep()


@shared_task(acks_late=True, ignore_result=True)
def webhook_send(message_id: int, *more: int) -> None:
    """One message, or several of one endpoint in turn (see webhook_outbox.batches)."""
    retries = webhook_delivery.webhooks_deliver(message_ids=[message_id, *more])
    for pk, retry_in in retries.items():
        # Long waits are left to the sweeper: the database remembers them,
        # and the broker would hand a task held that long to a second worker.
        if retry_in <= settings.TRACKSOP_WEBHOOK_COUNTDOWN_MAX_SECONDS:
            with contextlib.suppress(Exception):
                webhook_send.apply_async((pk,), countdown=retry_in)


@shared_task(ignore_result=True)
def webhooks_sweep() -> int:
    return webhook_delivery.webhooks_sweep()


@shared_task(ignore_result=True)
def webhook_log_purge() -> int:
    return purge.webhook_log_purge()


@shared_task(acks_late=True, ignore_result=True)
def webhook_disabled_mail(endpoint_id: int) -> None:
    endpoints.webhook_disabled_mail_send(endpoint_id=endpoint_id)
