"""Thin tasks: take ids, call one service. Retries are scheduled from the row's
own backoff, so the database, not the broker, remembers what is due."""

from __future__ import annotations

import contextlib

from celery import shared_task

from notifications import services


@shared_task(acks_late=True, ignore_result=True)
def notification_send(notification_id: int) -> None:
    retry_in = services.notification_deliver(notification_id=notification_id)
    if retry_in is not None:
        # Not inside a transaction; if the broker is down now, the sweeper
        # queues the row once its next_attempt_at has passed.
        with contextlib.suppress(Exception):
            notification_send.apply_async((notification_id,), countdown=retry_in)


@shared_task(ignore_result=True)
def notifications_sweep() -> int:
    return services.notifications_sweep()
