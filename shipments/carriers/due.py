"""The beat's service, `carrier_sync_due`: which shipments are due to be
asked about, queued per carrier account within its rate limit.

Every shipment the poller follows has a `CarrierSync` row with its due time
(`cadence` decides them). Each run creates the rows of shipments it sees for
the first time and stops following the closed ones, then, per account that
is not backing off, takes the oldest due rows its requests a minute allow,
holds them (`queued_at`, and a due time pushed a lease ahead so no second
run takes them), and queues them in tasks of a few carrier requests
(`sync.carrier_sync_batch` runs each).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from shipments.carriers import cadence as cadence_rules
from shipments.carriers.accounts import alert_queue_now, rate_used
from shipments.carriers.cadence import Cadence
from shipments.carriers.tracking import BATCH_SIZE
from shipments.models import CarrierAccount, CarrierSync, Shipment
from shipments.status import MOVING, ShipmentStatus

# The statuses the poller follows: on the carrier's way, or held by an
# exception (the carrier's scans are what resolves most of them).
FOLLOWED = (*sorted(MOVING), ShipmentStatus.EXCEPTION)


def _syncs_start(*, now: datetime, cadence: Cadence) -> int:
    """Create the sync rows of followed shipments seen for the first time,
    their first due times spread over one period. Set-based: one anti-join
    read and one INSERT per 2,000 rows."""
    missing = (
        Shipment.objects.filter(
            status__in=FOLLOWED,
            tracking_number__isnull=False,
            carrier__account__is_active=True,
            carrier_sync__isnull=True,
        )
        .values_list("pk", "status", "carrier__account__id")
        .order_by("pk")
    )
    created = 0
    rows: list[CarrierSync] = []
    for pk, status, account_id in missing.iterator(chunk_size=2000):
        rows.append(
            CarrierSync(
                shipment_id=pk,
                account_id=account_id,
                next_due_at=cadence_rules.first_due(
                    key=pk, status=status, now=now, cadence=cadence
                ),
            )
        )
        if len(rows) >= 2000:
            created += len(CarrierSync.objects.bulk_create(rows, ignore_conflicts=True))
            rows = []
    if rows:
        created += len(CarrierSync.objects.bulk_create(rows, ignore_conflicts=True))
    return created


def _syncs_end(*, now: datetime) -> int:
    """Stop following, without asking, the due rows whose shipment closed
    (staff scanned it delivered) or moved to another carrier."""
    due = CarrierSync.objects.filter(is_done=False, next_due_at__lte=now)
    return due.filter(
        ~Q(shipment__status__in=FOLLOWED) | Q(shipment__tracking_number__isnull=True)
    ).update(is_done=True, queued_at=None) + due.exclude(
        account__carrier_id=F("shipment__carrier_id")
    ).update(is_done=True, queued_at=None)


def _in_flight_requests(
    account: CarrierAccount, *, now: datetime, size: int, cadence: Cadence
) -> int:
    """Requests queued for the account and not recorded yet (a lapsed lease
    no longer counts: its task was lost)."""
    held = CarrierSync.objects.filter(
        account=account,
        queued_at__isnull=False,
        queued_at__gt=now - cadence.lease,
    ).count()
    return math.ceil(held / size)


def _account_queue(account: CarrierAccount, *, now: datetime, cadence: Cadence) -> int:
    size = BATCH_SIZE.get(account.provider, 1)
    requests = (
        account.requests_per_minute
        - rate_used(account.pk, now=now)
        - _in_flight_requests(account, now=now, size=size, cadence=cadence)
    )
    if account.state == CarrierAccount.State.FAILING:
        # Its credentials were refused: one request tells whether they work
        # again, a minute of them would only be refused too.
        requests = min(requests, 1)
    if requests <= 0:
        return 0
    with transaction.atomic():
        rows = list(
            CarrierSync.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                account=account,
                is_done=False,
                next_due_at__lte=now,
                shipment__status__in=FOLLOWED,
                shipment__carrier_id=account.carrier_id,
                shipment__tracking_number__isnull=False,
            )
            .order_by("next_due_at", "pk")
            .values_list("pk", "shipment_id")[: requests * size]
        )
        if not rows:
            return 0
        # The lease: no other run takes them while their task waits or runs;
        # a lost task's shipments come due again when it lapses.
        CarrierSync.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            next_due_at=now + cadence.lease, queued_at=now
        )
        per_task = size * cadence.requests_per_task
        ids = [shipment_id for _, shipment_id in rows]
        for start in range(0, len(ids), per_task):
            transaction.on_commit(
                partial(batch_queue_now, account.pk, ids[start : start + per_task]),
                robust=True,
            )
    return len(rows)


def batch_queue_now(account_id: int, shipment_ids: list[int]) -> None:
    from shipments.tasks import carrier_sync_batch_task

    carrier_sync_batch_task.delay(account_id, shipment_ids)


def carrier_sync_due(*, now: datetime | None = None) -> int:
    """Queue the shipments that are due, per account within its rate limit;
    return how many were queued. Safe to run anywhere, any number of times
    (rows are taken with SKIP LOCKED and held by a lease)."""
    now = now or timezone.now()
    cadence = Cadence.from_settings(settings.TRACKSOP_CARRIER_SYNC)
    _syncs_start(now=now, cadence=cadence)
    _syncs_end(now=now)
    accounts = (
        CarrierAccount.objects.filter(is_active=True)
        .filter(Q(backoff_until__isnull=True) | Q(backoff_until__lte=now))
        .select_related("carrier")
        .order_by("pk")
    )
    queued = sum(_account_queue(a, now=now, cadence=cadence) for a in accounts)
    # Alerts whose mail did not go (mail server or broker down): again.
    for pk in CarrierAccount.objects.filter(
        state=CarrierAccount.State.FAILING,
        alerted_at__isnull=True,
        failing_since__lt=now - timedelta(minutes=1),
    ).values_list("pk", flat=True):
        alert_queue_now(pk)
    return queued
