"""The webhook outbox: the message rows events cause, written in their
transaction and queued on commit; test messages and replays."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from notifications.models import (
    WEBHOOK_TEST_TYPE,
    WebhookEndpoint,
    WebhookMessage,
    WebhookStatus,
)
from notifications.webhooks import events
from shipments.events import Recorded
from shipments.models import Carrier, Location, Shipment, TrackingEvent

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def webhooks_for_events(records: Sequence[Recorded]) -> list[WebhookMessage]:
    """The messages events cause, written in their transaction, in a fixed
    number of queries however many events: the active endpoints, carriers and
    locations not loaded yet (at most one query each), the keys already
    written, and one INSERT."""
    typed = [
        (record, types)
        for record in records
        if (
            types := events.event_types_for(
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
        body = events.encode(
            events.payload_for(
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
        if field.is_cached(shipment):
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
        if field.is_cached(event):
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
    payload = events.sample_payload(url=endpoint.url)
    with transaction.atomic():
        row = WebhookMessage.objects.create(
            endpoint=endpoint,
            event_type=WEBHOOK_TEST_TYPE,
            message_id=_message_id(),
            idempotency_key=f"test:{uuid.uuid4().hex}",
            payload=events.encode(payload),
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
