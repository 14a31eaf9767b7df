"""Configuring webhook endpoints: create, change, delete, rotate the secret,
enable, disable (and tell the integration's contact, once)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from notifications.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from notifications.webhooks import signing

if TYPE_CHECKING:
    from tracksop.models import Integration

log = logging.getLogger(__name__)


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
        secret=signing.secret_new(),
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
        locked.secret = signing.secret_new()
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
            transaction.on_commit(partial(queue_disabled_mail, pk))
    return bool(changed)


def queue_disabled_mail(endpoint_id: int) -> None:
    """Hand the mail about a disabled endpoint to the broker (the sweeper
    tries again if it is down)."""
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
