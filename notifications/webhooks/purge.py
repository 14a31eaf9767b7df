"""Deleting the webhook delivery log past its retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications.models import WEBHOOK_UNSENT, WebhookMessage

log = logging.getLogger(__name__)


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
