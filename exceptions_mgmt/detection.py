"""Exceptions the system raises itself, each once: packages past their ETA,
packages in transit without a scan for TRACKSOP_STALL_HOURS (both found by the
periodic sweep), and a carrier's own exception scans (from the shipments
app's announcement of the events). Staff see them in the queue like any other;
the customer hears the listed cause, never a carrier's words."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from exceptions_mgmt import reporting, selectors
from exceptions_mgmt.escalation import Rules
from exceptions_mgmt.models import Cause, DeliveryException
from exceptions_mgmt.status import ExceptionConflict
from notifications.outbox import queue_batched
from shipments.models import Shipment, Source, TrackingEvent
from shipments.status import CLOSED, MOVING, ShipmentStatus, TransitionRefused

log = logging.getLogger(__name__)


def exceptions_report_from_carrier(
    *, reports: Sequence[tuple[TrackingEvent, Shipment]]
) -> list[DeliveryException]:
    """A carrier's own exception scan (a push, later a poll) opens an
    exception in the queue, with the carrier as its source and its words in
    the staff description; the customer hears the listed cause ("Carrier
    delay"), never the carrier's text. A package already held keeps its open
    exception; the same carrier event never opens two (detection key)."""
    opened = []
    resolution = timezone.now() + timedelta(
        hours=settings.TRACKSOP_DETECTED_RESOLUTION_HOURS
    )
    for event, shipment in reports:
        if shipment.status in CLOSED or shipment.status == ShipmentStatus.EXCEPTION:
            continue
        text = str(event.data.get("carrier_text") or "")[:500]
        try:
            opened.append(
                reporting.exception_report(
                    shipment=shipment.pk,
                    user=None,
                    cause=Cause.CARRIER_DELAY,
                    severity=settings.TRACKSOP_DETECTED_SEVERITY,
                    expected_resolution=resolution,
                    description=f"Reported by {event.integration or 'the carrier'}"
                    + (f": {text}" if text else "."),
                    source=event.source,
                    detection_key=f"carrier-event:{event.pk}",
                )
            )
        except (ExceptionConflict, TransitionRefused, ValidationError) as exc:
            log.info("Carrier exception on %s not opened: %s", shipment.pk, exc)
    return opened


def exceptions_detect(
    *, now: datetime | None = None, limit: int = 1000, chunk: int = 50
) -> int:
    """Raise a delay exception, once, for each package past its ETA and each
    in-transit package without a scan for TRACKSOP_STALL_HOURS."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    resolution = now + timedelta(hours=settings.TRACKSOP_DETECTED_RESOLUTION_HOURS)
    detected = DeliveryException.objects.filter(
        shipment=OuterRef("pk"), detection_key=OuterRef("key")
    )
    moving = Shipment.objects.filter(status__in=sorted(MOVING))
    found = 0
    late = (
        moving.filter(estimated_delivery__lt=today)
        .annotate(key=_key("late:", "estimated_delivery"))
        .filter(~Exists(detected))
        .order_by("estimated_delivery", "id")
        .values_list("pk", "key")[:limit]
    )
    # In transit only (a moving status): no `moving` filter besides, whose
    # redundant status test makes the planner misjudge the rows and read every
    # in-transit shipment instead of the shipment_moving_last_event range.
    stalled = (
        Shipment.objects.filter(
            status=ShipmentStatus.IN_TRANSIT,
            last_event_at__lt=now - timedelta(hours=settings.TRACKSOP_STALL_HOURS),
        )
        .annotate(key=_key("stall:", "last_event_at"))
        .filter(~Exists(detected))
        .order_by("last_event_at", "id")
        .values_list("pk", "key")[:limit]
    )
    rules = selectors.escalation_rules()
    for cause, rows in ((Cause.LATE, late), (Cause.NO_SCAN, stalled)):
        work = list(rows)  # read once the late ones are on hold, not before
        for start in range(0, len(work), chunk):
            # One commit and one publish per chunk rather than per detection.
            with transaction.atomic(), queue_batched():
                found += _detect_chunk(
                    dict(work[start : start + chunk]),
                    cause=cause,
                    resolution=resolution,
                    rules=rules,
                )
    return found


def _detect_chunk(
    keys: dict[int, str],
    *,
    cause: str,
    resolution: datetime,
    rules: Rules,
) -> int:
    """Open the delay exceptions of one chunk of found shipments together,
    in a savepoint. If that fails (a shipment another sweep got to first, a
    row the database refuses), try them one at a time: one bad row must not
    hold up the rest, and each detection stays all or nothing."""
    fields: dict[str, Any] = {
        "cause": cause,
        "severity": settings.TRACKSOP_DETECTED_SEVERITY,
        "expected_resolution": resolution,
        "source": Source.SYSTEM,
        "rules": rules,
    }
    try:
        with transaction.atomic():
            # Locked in id order: two sweeps at once cannot deadlock. A
            # shipment that moved on since it was found (delivered, or on
            # hold already) is left alone.
            locked = list(
                Shipment.objects.select_for_update(of=("self",))
                .select_related("carrier")
                .filter(pk__in=keys, status__in=sorted(MOVING))
                .order_by("pk")
            )
            now = timezone.now()
            reporting.exceptions_open(
                locked,
                detection_keys=[keys[shipment.pk] for shipment in locked],
                cause_other="",
                description="",
                user=None,
                now=now,
                occurred_at=now,
                **fields,
            )
            return len(locked)
    except Exception:
        log.warning("Detections in one go failed; one at a time", exc_info=True)
    found = 0
    for pk, key in sorted(keys.items()):
        try:
            reporting.exception_report(
                shipment=pk, user=None, detection_key=key, **fields
            )
        except (ExceptionConflict, IntegrityError):
            continue  # moved on, or another sweep got there first
        except Exception:
            # Rolled back to its savepoint; the next sweep tries it again.
            log.exception("Detecting %s on shipment %s failed", key, pk)
            continue
        found += 1
    return found


def _key(prefix: str, field: str) -> Concat:
    """What was detected, as the detection key: the ETA or the last scan
    it was found by, so a new ETA or a new scan can be detected again."""
    return Concat(Value(prefix), Cast(field, CharField()), output_field=CharField())
