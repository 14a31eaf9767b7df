"""Demo message history for the most recent shipments, as if already sent.

Rows are written directly as sent (or failed, for a few) so that trying the
app shows the history, the failed list and the dashboard count without a
flood of console mail at start-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from notifications import rendering, rules
from notifications.models import Audience, Channel, Kind, Notification, Status
from shipments.models import TrackingEvent
from shipments.status import EventKind as K

KINDS: dict[str, str] = {
    K.DISPATCHED: Kind.DISPATCHED,
    K.OUT_FOR_DELIVERY: Kind.OUT_FOR_DELIVERY,
    K.AVAILABLE_FOR_PICKUP: Kind.AVAILABLE_FOR_PICKUP,
    K.DELIVERED: Kind.DELIVERED,
    K.EXCEPTION_REPORTED: Kind.EXCEPTION,
    K.EXCEPTION_RESOLVED: Kind.EXCEPTION_RESOLVED,
}
REFUSED = "Mail server answered 550: b'5.1.1 Mailbox unavailable'"


class Command(BaseCommand):
    help = "Give the most recent demo shipments a history of sent messages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shipments", type=int, default=300)

    def handle(self, *args: Any, **options: Any) -> None:
        if Notification.objects.exists():
            self.stdout.write("Messages exist already.")
            return
        events = (
            TrackingEvent.objects.filter(kind__in=KINDS, voided_by__isnull=True)
            .select_related("shipment__carrier", "location")
            .order_by("-shipment_id", "occurred_at")
        )
        shipments: set[int] = set()
        rows: list[Notification] = []
        written: list[datetime] = []
        for event in events.iterator(chunk_size=500):
            shipments.add(event.shipment_id)
            if len(shipments) > options["shipments"]:
                break
            new = self._rows(event, failed=len(rows) % 97 == 0)
            rows.extend(new)
            written.extend(event.occurred_at for _ in new)
        with transaction.atomic():
            created = Notification.objects.bulk_create(rows, batch_size=500)
            # Written when the checkpoint was logged, sent a minute later; not
            # written today (auto_now_add) for a message sent last week.
            for row, created_at in zip(created, written, strict=True):
                row.created_at = created_at
            Notification.objects.bulk_update(created, ["created_at"], batch_size=500)
        failed = sum(row.status == Status.FAILED for row in rows)
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {len(rows)} sent messages ({failed} failed).")
        )

    def _rows(self, event: TrackingEvent, *, failed: bool) -> list[Notification]:
        shipment, kind = event.shipment, KINDS[event.kind]
        context = rendering.message_context(
            shipment=shipment, audience=Audience.RECIPIENT, event=event
        )
        rows = []
        for channel in Channel:
            to = rules.party_address(shipment, Audience.RECIPIENT, channel)
            text = rendering.render(kind, channel, context)
            sent = event.occurred_at + timedelta(minutes=1)
            is_failed = failed and channel == Channel.EMAIL
            rows.append(
                Notification(
                    shipment=shipment,
                    event=event,
                    kind=kind,
                    channel=channel,
                    audience=Audience.RECIPIENT,
                    to=to,
                    subject=text.subject,
                    body_text=text.text,
                    body_html=text.html,
                    status=Status.FAILED if is_failed else Status.SENT,
                    attempts=1,
                    last_error=REFUSED if is_failed else "",
                    provider_message_id=""
                    if is_failed
                    else f"demo-{event.pk}-{channel}",
                    idempotency_key=f"event:{event.pk}:{channel}:{to.lower()}",
                    sent_at=None if is_failed else sent,
                )
            )
        return rows
