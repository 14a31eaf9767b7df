"""Carrier pushes: store them, then turn their events into checkpoints.

`carrier_webhook_receive` stores a verified push once per provider event id
and queues its processing after commit; `carrier_webhook_process` (the task's
service) claims the row and records what became of each carrier event;
`carrier_events_ingest` is the path any carrier feed takes into the timeline
(the mapping table in `shipments.carriers.status`, then `checkpoints_ingest`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from shipments.carrier_formats import Push, kept_headers, parse
from shipments.carriers.status import (
    CarrierEvent,
    Places,
    carrier_checkpoint,
    delivery_date_update,
)
from shipments.ingest import INGEST_LIMIT, CheckpointIn, checkpoints_ingest
from shipments.models import Carrier, CarrierWebhook, Shipment, Source, TrackingEvent
from shipments.selectors import shipments_by_codes
from shipments.services import shipment_eta_change
from shipments.status import EventKind, TransitionRefused

log = logging.getLogger(__name__)

# A push still waiting this long after it arrived lost its task (broker down).
STALE_AFTER = timedelta(minutes=1)
# A claim older than this belongs to a worker that died mid-way.
CLAIM_LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5


def _queue_on_commit(webhook_id: int) -> None:
    from shipments.tasks import carrier_webhook_process_task

    # robust: a broker that is down leaves the row for the sweeper, and the
    # carrier still gets its 2xx for a push that is safely stored.
    transaction.on_commit(
        partial(carrier_webhook_process_task.delay, webhook_id), robust=True
    )


def carrier_webhook_receive(
    *,
    carrier: Carrier,
    push: Push,
    body: bytes,
    headers: Mapping[str, str],
) -> tuple[CarrierWebhook, bool]:
    """Store a verified push; (row, False) when this event id is already
    stored (a replay: nothing is queued again)."""
    try:
        with transaction.atomic():
            webhook = CarrierWebhook.objects.create(
                carrier=carrier,
                format=carrier.push_format,
                provider_event_id=push.event_id,
                body=body,
                headers=kept_headers(headers),
                received_at=timezone.now(),
            )
            _queue_on_commit(webhook.pk)
    except IntegrityError:
        existing = CarrierWebhook.objects.get(
            carrier=carrier, provider_event_id=push.event_id
        )
        return existing, False
    return webhook, True


def _result(carrier_event: CarrierEvent, /, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": carrier_event.event_id,
        "tracking_number": carrier_event.tracking_number,
        "carrier_status": carrier_event.code or carrier_event.status_type,
        **fields,
    }


def carrier_events_ingest(
    *,
    push_format: str,
    events: Sequence[CarrierEvent],
    source: str = Source.WEBHOOK,
    integration: str = "",
) -> list[dict[str, Any]]:
    """Map each carrier event and record it; one outcome per event, in order:
    created / duplicate / refused (with the reason) / ignored."""
    outcome: list[dict[str, Any] | None] = [None] * len(events)
    wanted: list[tuple[int, CheckpointIn]] = []
    places = Places.load()
    for index, event in enumerate(events):
        update = delivery_date_update(push_format, event)
        if update is not None:
            outcome[index] = _eta_update(
                event, update, source=source, integration=integration
            )
            continue
        checkpoint, why = carrier_checkpoint(push_format, event, places=places)
        if checkpoint is None:
            outcome[index] = _result(event, status="ignored", reason=why)
        else:
            wanted.append((index, checkpoint))
    for start in range(0, len(wanted), INGEST_LIMIT):
        chunk = wanted[start : start + INGEST_LIMIT]
        results = checkpoints_ingest(
            [c for _, c in chunk], source=source, integration=integration
        )
        for (index, checkpoint), result in zip(chunk, results, strict=True):
            outcome[index] = _result(
                events[index],
                status=result.status,
                kind=checkpoint.kind,
                shipment_id=result.shipment_id,
                event=result.event_id,
                reason=result.reason,
            )
    return [o for o in outcome if o is not None]


def _eta_update(
    event: CarrierEvent,
    update: date | str,
    *,
    source: str,
    integration: str,
) -> dict[str, Any]:
    """A carrier's new delivery date (`update`, or why it cannot be read) as
    the shipment's ETA change: the customer hears of a delay as when staff
    move the date. Refused when the date is unreadable or the change is not
    allowed; ignored when the carrier said something newer since."""
    if isinstance(update, str):
        return _result(event, status="refused", reason=update)
    found = shipments_by_codes([event.tracking_number.upper()])
    pk = found.get(event.tracking_number.upper())
    if pk is None:
        return _result(event, status="refused", reason=UNKNOWN_NUMBER)
    shipment = Shipment.objects.select_related("carrier").get(pk=pk)
    if TrackingEvent.objects.filter(
        shipment=shipment,
        source__in=(Source.WEBHOOK, Source.CARRIER),
        occurred_at__gt=event.occurred_at,
    ).exists():
        return _result(
            event,
            status="ignored",
            reason="The carrier reported something newer since this date.",
        )
    try:
        changed = shipment_eta_change(
            shipment=shipment,
            user=None,
            estimated_delivery=update,
            source=source,
            integration=integration,
            occurred_at=event.occurred_at,
        )
    except ValidationError as exc:
        return _result(event, status="refused", reason=" ".join(exc.messages))
    except TransitionRefused as exc:
        return _result(event, status="refused", reason=str(exc))
    return _result(
        event,
        status="created" if changed is not None else "duplicate",
        kind=EventKind.ETA_CHANGED,
        shipment_id=shipment.shipment_id,
        event=changed.pk if changed is not None else None,
        reason="",
    )


UNKNOWN_NUMBER = "No shipment has this tracking number."


def carrier_webhook_process(*, webhook_id: int) -> CarrierWebhook | None:
    """Claim a stored push and record its events; None if another worker has
    it or it is done. Running it twice is harmless: the events' external ids
    make a second ingest all duplicates."""
    now = timezone.now()
    claimed = CarrierWebhook.objects.filter(
        pk=webhook_id, status=CarrierWebhook.Status.RECEIVED
    ).update(
        status=CarrierWebhook.Status.PROCESSING,
        claimed_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    webhook = CarrierWebhook.objects.select_related("carrier").get(pk=webhook_id)
    try:
        push = parse(webhook.format, bytes(webhook.body))
        webhook.outcome = carrier_events_ingest(
            push_format=webhook.format,
            events=push.events,
            source=Source.WEBHOOK,
            integration=webhook.carrier.name,
        )
    except Exception as exc:
        # Kept for the sweeper to try again (a database blip), up to a limit.
        log.exception("Carrier push %s failed", webhook.pk)
        failed = webhook.attempts >= MAX_ATTEMPTS
        webhook.status = (
            CarrierWebhook.Status.FAILED if failed else CarrierWebhook.Status.RECEIVED
        )
        webhook.error = f"{type(exc).__name__}: {exc}"[:2000]
        webhook.save(update_fields=["status", "error"])
        return webhook
    webhook.status = CarrierWebhook.Status.PROCESSED
    webhook.processed_at = timezone.now()
    webhook.error = ""
    webhook.save(update_fields=["status", "processed_at", "outcome", "error"])
    log.info(
        "Carrier push %s (%s %s): %d event(s), %d created",
        webhook.pk,
        webhook.carrier.code,
        webhook.provider_event_id,
        len(webhook.outcome),
        sum(o["status"] == "created" for o in webhook.outcome),
    )
    return webhook


def carrier_webhooks_sweep(*, now: datetime | None = None) -> int:
    """Queue again the pushes whose task was lost; return how many."""
    now = now or timezone.now()
    with transaction.atomic():
        CarrierWebhook.objects.filter(
            status=CarrierWebhook.Status.PROCESSING, claimed_at__lt=now - CLAIM_LEASE
        ).update(status=CarrierWebhook.Status.RECEIVED)
        due = list(
            CarrierWebhook.objects.filter(
                Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - STALE_AFTER),
                status=CarrierWebhook.Status.RECEIVED,
                received_at__lt=now - STALE_AFTER,
            )
            .order_by("received_at", "id")
            .values_list("pk", flat=True)[:500]
        )
        for pk in due:
            _queue_on_commit(pk)
    return len(due)
