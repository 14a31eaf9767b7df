"""Carrier tracking sync: poll the carriers' tracking APIs for every
undelivered shipment of a connected carrier (issue 14).

Contract (the pieces other modules call):
- `carrier_sync_due(now=None) -> int`: the beat's service; queues batches of
  the shipments that are due, per account, within its rate limit.
- `carrier_sync_batch(account_id=…, shipment_ids=…, now=None) -> list[CarrierSync]`:
  the task's service; asks the carrier, records events, ETA changes and
  results; one shipment's failure never stops the batch.
- `carrier_sync_shipment(shipment=…, now=None) -> CarrierSync`: *Sync now* on
  the shipment page; raises `SyncRefused` (message for staff) when the
  shipment has no connected carrier account or nothing to follow.

How it goes: every shipment the poller follows has a `CarrierSync` row with
its due time (`shipments.carrier_cadence` decides them). The beat's run
creates the rows of shipments it sees for the first time, then, per account
that is not backing off, takes the oldest due rows its requests a minute
allow, holds them (`queued_at`, and a due time pushed a lease ahead so no
second run takes them), and queues them in tasks of a few carrier requests.
A task asks the carrier (a few requests at once on threads: the time is the
carrier's), records what each answer says through the same path as the push
webhooks (`carrier_services.carrier_events_ingest`: the status table, the
state machine, dedupe on the carrier's event ids, notifications, exceptions)
and sets each row's next due time. Requests are counted per account and
minute in the cache, so every worker, and *Sync now*, share one limit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache as django_cache
from django.core.exceptions import ValidationError
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from shipments import carrier_cadence as cadence_rules
from shipments.carrier_cadence import Cadence
from shipments.carrier_places import events_locate
from shipments.carrier_services import carrier_events_ingest
from shipments.carrier_status import CarrierEvent
from shipments.carrier_tracking import (
    BATCH_SIZE,
    CarrierAuthFailed,
    CarrierError,
    CarrierRateLimited,
    CarrierUnavailable,
    Connection,
    KarrioMissing,
    NotFound,
    Tracked,
    karrio_warm_up,
    track,
)
from shipments.credentials import CredentialsUnavailable, credentials_for
from shipments.ingest import CheckpointIn, checkpoints_ingest
from shipments.models import (
    CarrierAccount,
    CarrierSync,
    Shipment,
    Source,
)
from shipments.services import shipment_eta_change
from shipments.status import MOVING, EventKind, ShipmentStatus, TransitionRefused
from tracksop import roles
from tracksop.bulk import bulk_set

log = logging.getLogger(__name__)

S = ShipmentStatus
R = CarrierSync.Result
# The statuses the poller follows: on the carrier's way, or held by an
# exception (the carrier's scans are what resolves most of them).
FOLLOWED = (*sorted(MOVING), S.EXCEPTION)
# Every field a sync attempt writes on a CarrierSync row.
SYNC_FIELDS = (
    "next_due_at",
    "last_attempt_at",
    "last_synced_at",
    "last_result",
    "last_message",
    "failures",
    "unknown_since",
    "last_movement_at",
    "flag",
    "is_done",
    "queued_at",
)
NOT_CONNECTED = (
    "This shipment's carrier is not connected: an administrator can add its "
    "API account under Carrier accounts in the admin."
)


class SyncRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def current_cadence() -> Cadence:
    return Cadence.from_settings(settings.TRACKSOP_CARRIER_SYNC)


def _setting(name: str) -> int:
    return int(settings.TRACKSOP_CARRIER_SYNC.get(name, cadence_rules.DEFAULTS[name]))


# --- the per-account rate limit ------------------------------------------------


def _rate_key(account_id: int, now: datetime) -> str:
    return f"carrier-sync:requests:{account_id}:{int(now.timestamp() // 60)}"


def rate_used(account_id: int, *, now: datetime) -> int:
    """Requests made to the account's carrier in this minute (all workers)."""
    try:
        return int(django_cache.get(_rate_key(account_id, now), 0))
    except Exception:
        log.warning("Cache unavailable: the carrier rate limit is not shared.")
        return 0


def rate_take(account_id: int, *, limit: int, wanted: int, now: datetime) -> int:
    """Take up to `wanted` requests of this minute's `limit`; how many were
    granted. One atomic counter per account and minute in the cache (Redis),
    shared by every worker. Without a cache it grants: the carrier's own 429
    then slows us down."""
    if wanted <= 0:
        return 0
    key = _rate_key(account_id, now)
    try:
        django_cache.add(key, 0, timeout=120)
        try:
            total = django_cache.incr(key, wanted)
        except ValueError:  # expired between add and incr
            django_cache.add(key, 0, timeout=120)
            total = django_cache.incr(key, wanted)
        granted = max(0, min(wanted, limit - (total - wanted)))
        if granted < wanted:
            django_cache.decr(key, wanted - granted)
    except Exception:
        log.warning("Cache unavailable: the carrier rate limit is not shared.")
        return wanted
    return granted


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


# --- the beat: what is due ----------------------------------------------------


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
        per_task = size * _setting("requests_per_task")
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
    cadence = current_cadence()
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


# --- the account's state --------------------------------------------------------


def _account_ok(account: CarrierAccount, *, now: datetime) -> None:
    CarrierAccount.objects.filter(pk=account.pk).update(
        state=CarrierAccount.State.OK,
        state_message="",
        failing_since=None,
        alerted_at=None,
        backoff_until=None,
        failures=0,
        last_poll_at=now,
    )
    account.state = CarrierAccount.State.OK
    account.backoff_until, account.failures = None, 0


def _account_failing(
    account: CarrierAccount, message: str, *, now: datetime, cadence: Cadence
) -> datetime:
    """Mark the account failing with the carrier's message; staff are
    emailed once per failing spell (after commit). Returns when it is tried
    again."""
    retry = now + cadence.failing_retry
    with transaction.atomic():
        became = (
            CarrierAccount.objects.filter(pk=account.pk)
            .exclude(state=CarrierAccount.State.FAILING)
            .update(
                state=CarrierAccount.State.FAILING,
                state_message=message[:2000],
                failing_since=now,
                alerted_at=None,
                backoff_until=retry,
                last_poll_at=now,
            )
        )
        if became:
            transaction.on_commit(partial(alert_queue_now, account.pk))
        else:
            CarrierAccount.objects.filter(pk=account.pk).update(
                state_message=message[:2000], backoff_until=retry, last_poll_at=now
            )
    log.warning("Carrier account %s failing: %s", account.pk, message)
    account.state, account.backoff_until = CarrierAccount.State.FAILING, retry
    return retry


def _account_backoff(
    account: CarrierAccount,
    *,
    now: datetime,
    cadence: Cadence,
    retry_after: float | None,
) -> datetime:
    """A 429 or a 5xx: no request to this carrier before the returned time."""
    failures = account.failures + 1
    until = now + cadence_rules.account_backoff(
        failures=failures, retry_after=retry_after, cadence=cadence
    )
    CarrierAccount.objects.filter(pk=account.pk).update(
        failures=failures, backoff_until=until, last_poll_at=now
    )
    account.failures, account.backoff_until = failures, until
    return until


def alert_queue_now(account_id: int) -> None:
    from shipments.tasks import carrier_account_alert_task

    try:
        carrier_account_alert_task.delay(account_id)
    except Exception:
        log.warning("Broker unavailable; the poller mails about account %s", account_id)


def _alert_recipients() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    return sorted(
        {
            u.email
            for u in users.filter(
                Q(is_superuser=True) | Q(groups__name__in=sorted(roles.ADMIN_ROLES))
            )
        }
    )


def _admin_url(account: CarrierAccount) -> str:
    try:
        path = reverse("admin:shipments_carrieraccount_change", args=[account.pk])
    except NoReverseMatch:
        path = reverse("admin:index")
    return str(settings.TRACKSOP_PUBLIC_URL).rstrip("/") + path


def carrier_account_alert_send(*, account_id: int) -> bool:
    """Tell the administrators and supervisors that a carrier account fails,
    once per failing spell: the row stays locked while the mail goes, so two
    tasks cannot both send, and a mail server that is down leaves it for the
    next poll (as a disabled webhook endpoint's mail)."""
    with transaction.atomic():
        account = (
            CarrierAccount.objects.select_for_update(of=("self",))
            .select_related("carrier")
            .filter(
                pk=account_id,
                state=CarrierAccount.State.FAILING,
                alerted_at__isnull=True,
            )
            .first()
        )
        if account is None:
            return False
        to = _alert_recipients()
        if to:
            since = timezone.localtime(account.failing_since or timezone.now())
            mail.send_mail(
                subject=f"Carrier tracking stopped: {account.carrier.name}"[:200],
                message=(
                    f"TrackSOP cannot read tracking from {account.carrier.name} "
                    f"since {since:%Y-%m-%d %H:%M %Z}.\n\n"
                    f"The carrier said: {account.state_message}\n\n"
                    f"Shipments with {account.carrier.name} get no carrier "
                    "checkpoints until this is fixed; the poller tries again "
                    "every few minutes and resumes by itself once the "
                    "credentials work. Check the account's credentials in the "
                    f"admin: {_admin_url(account)}\n\n"
                    "You get this message once; it is not repeated while the "
                    "account keeps failing.\n"
                ),
                from_email=None,
                recipient_list=to,
            )
        account.alerted_at = timezone.now()
        account.save(update_fields=["alerted_at"])
    return bool(to)


# --- recording answers ---------------------------------------------------------


def _ingest_each(
    account: CarrierAccount, events_by_sync: Mapping[int, list[CarrierEvent]]
) -> dict[int, list[dict[str, Any]] | Exception]:
    """The outcomes of each shipment's events: one ingest for the whole
    chunk (a fixed number of statements), or, when that fails, one per
    shipment, so that one shipment's bad data fails only that one."""
    order = [pk for pk, events in events_by_sync.items() if events]
    flat = [event for pk in order for event in events_by_sync[pk]]
    outcomes: dict[int, list[dict[str, Any]] | Exception] = {
        pk: [] for pk in events_by_sync
    }
    if not flat:
        return outcomes
    kwargs: dict[str, Any] = {
        "push_format": account.provider,
        "source": Source.CARRIER,
        "integration": account.carrier.name,
    }
    try:
        results = carrier_events_ingest(events=flat, **kwargs)
    except Exception:
        log.warning("A carrier batch failed to record; retrying one by one")
    else:
        start = 0
        for pk in order:
            count = len(events_by_sync[pk])
            outcomes[pk] = results[start : start + count]
            start += count
        return outcomes
    for pk in order:
        try:
            outcomes[pk] = carrier_events_ingest(events=events_by_sync[pk], **kwargs)
        except Exception as exc:
            log.exception("Carrier events of sync %s failed to record", pk)
            outcomes[pk] = exc
    return outcomes


def _contradiction_note(
    *,
    account: CarrierAccount,
    shipment: Shipment,
    event: CarrierEvent,
    reason: str,
) -> CheckpointIn:
    """The timeline's record of a carrier delivery the closed record refused:
    a note under the carrier event's own id, so polling it again is a
    duplicate, not a second note."""
    label = shipment.get_status_display().lower()
    return CheckpointIn(
        reference=shipment.tracking_number or shipment.shipment_id,
        kind=EventKind.NOTE,
        occurred_at=event.occurred_at,
        notes=(
            f"{account.carrier.name} says this package was delivered"
            + (f" ({event.description})" if event.description else "")
            + f"; the record stays {label}."
        )[:2000],
        external_id=event.event_id[:100],
        data={
            "carrier_said": EventKind.DELIVERED.value,
            "carrier_status": event.code,
            "carrier_text": event.description,
            "carrier_location": event.location.text,
            "refused": reason,
        },
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _record_tracked(
    *,
    account: CarrierAccount,
    chunk: Sequence[CarrierSync],
    answers: Mapping[str, Tracked | NotFound],
    now: datetime,
    cadence: Cadence,
) -> None:
    """Record one carrier answer for its shipments: their events, ETA
    changes, contradictions, and each row's result and next due time."""
    by_number = {_number(s): s for s in chunk}
    tracked: dict[int, Tracked] = {}
    events_by_sync: dict[int, list[CarrierEvent]] = {}
    for number, sync in by_number.items():
        answer = answers.get(number)
        if isinstance(answer, Tracked):
            tracked[sync.pk] = answer
            # Under the number we asked about, whatever spelling came back.
            events_by_sync[sync.pk] = [
                dataclasses.replace(e, tracking_number=number) for e in answer.events
            ]
    try:
        flat = events_locate(
            [e for events in events_by_sync.values() for e in events],
            account=account,
        )
    except Exception:
        log.exception("Carrier places of account %s failed to record", account.pk)
    else:
        start = 0
        for pk, events in events_by_sync.items():
            events_by_sync[pk] = flat[start : start + len(events)]
            start += len(events)
    outcomes = _ingest_each(account, events_by_sync)

    # Contradictions: a delivery the state machine refused on a closed record.
    shipments = {
        s.pk: s for s in Shipment.objects.filter(pk__in=[c.shipment_id for c in chunk])
    }
    notes: list[tuple[CarrierSync, CheckpointIn]] = []
    for sync in chunk:
        shipment = shipments.get(sync.shipment_id)
        result = outcomes.get(sync.pk)
        if shipment is None or shipment.status not in (S.RETURNED, S.CANCELLED):
            continue
        if not isinstance(result, list):
            continue
        for event, outcome in zip(events_by_sync[sync.pk], result, strict=False):
            if outcome["status"] == "refused" and outcome.get("kind") == (
                EventKind.DELIVERED
            ):
                note = _contradiction_note(
                    account=account,
                    shipment=shipment,
                    event=event,
                    reason=str(outcome.get("reason", "")),
                )
                notes.append((sync, note))
    if notes:
        try:
            checkpoints_ingest(
                [n for _, n in notes],
                source=Source.CARRIER,
                integration=account.carrier.name,
            )
        except Exception:
            log.exception("Carrier contradiction notes failed to record")
    contradicted = {sync.pk: note for sync, note in notes}

    for sync in chunk:
        try:
            _record_one(
                account=account,
                sync=sync,
                answer=answers.get(_number(sync)),
                outcome=outcomes.get(sync.pk, []),
                shipment=shipments.get(sync.shipment_id),
                contradiction=contradicted.get(sync.pk),
                now=now,
                cadence=cadence,
            )
        except Exception as exc:
            log.exception("Carrier sync of shipment %s failed", sync.shipment_id)
            _set_failed(
                sync,
                result=R.ERROR,
                message=f"Recording the carrier's answer failed: {exc}",
                now=now,
                cadence=cadence,
                attempted=True,
            )
    bulk_set(list(chunk), SYNC_FIELDS)


def _number(sync: CarrierSync) -> str:
    return sync.shipment.tracking_number or ""


def _eta_change(
    *,
    account: CarrierAccount,
    shipment: Shipment,
    eta: date | None,
) -> str:
    """Move the ETA to the carrier's; what to add to the row's message."""
    if eta is None or eta == shipment.estimated_delivery:
        return ""
    if shipment.status not in MOVING and shipment.status != S.EXCEPTION:
        return ""
    try:
        changed = shipment_eta_change(
            shipment=shipment,
            user=None,
            estimated_delivery=eta,
            source=Source.CARRIER,
            integration=account.carrier.name,
        )
    except ValidationError as exc:
        return f"ETA {eta:%Y-%m-%d} not taken: {' '.join(exc.messages)}"
    except TransitionRefused as exc:
        return f"ETA {eta:%Y-%m-%d} not taken: {exc}"
    if changed is None:
        return ""
    shipment.estimated_delivery = eta
    return f"ETA now {eta:%Y-%m-%d}"


def _record_one(
    *,
    account: CarrierAccount,
    sync: CarrierSync,
    answer: Tracked | NotFound | None,
    outcome: list[dict[str, Any]] | Exception,
    shipment: Shipment | None,
    contradiction: CheckpointIn | None,
    now: datetime,
    cadence: Cadence,
) -> None:
    if shipment is None:  # deleted meanwhile
        sync.is_done, sync.queued_at = True, None
        return
    sync.shipment = shipment
    if answer is None:
        _set_failed(
            sync,
            result=R.ERROR,
            message="The carrier's answer left this tracking number out.",
            now=now,
            cadence=cadence,
            attempted=True,
        )
        return
    if isinstance(answer, NotFound) and getattr(answer, "unreadable", False):
        # The carrier answered for it, karrio cannot read that part: an
        # error retried sooner, not an unknown number.
        _set_failed(
            sync,
            result=R.ERROR,
            message=answer.message or "The carrier's answer could not be read.",
            now=now,
            cadence=cadence,
            attempted=True,
        )
        return
    if isinstance(answer, NotFound):
        sync.unknown_since = sync.unknown_since or now
        sync.failures = 0
        _set_result(
            sync,
            result=R.UNKNOWN_NUMBER,
            message=answer.message or "The carrier does not know this number.",
            now=now,
            cadence=cadence,
        )
        if sync.is_done:
            sync.last_message = (
                f"{account.carrier.name} has not known this number for "
                f"{cadence.unknown_give_up.days} days: following it stopped. "
                f"The carrier said: {sync.last_message}"
            )[:2000]
        return
    if isinstance(outcome, Exception):
        _set_failed(
            sync,
            result=R.ERROR,
            message=f"The carrier's events could not be recorded: {outcome}",
            now=now,
            cadence=cadence,
            attempted=True,
        )
        return
    moved = [
        e.occurred_at
        for e, o in zip(answer.events, outcome, strict=False)
        if o["status"] != "ignored"
    ]
    if moved:
        latest = max(moved)
        if sync.last_movement_at is None or latest > sync.last_movement_at:
            sync.last_movement_at = latest
    created = sum(o["status"] == "created" for o in outcome)
    refused = [
        o
        for o in outcome
        if o["status"] == "refused"
        and not (contradiction is not None and o.get("kind") == EventKind.DELIVERED)
    ]
    parts = [_plural(created, "new event") if created else "No new events"]
    if refused:
        parts.append(
            f"{_plural(len(refused), 'carrier event')} not recorded: "
            f"{refused[0].get('reason', '')}"
        )
    parts.append(
        _eta_change(account=account, shipment=shipment, eta=answer.estimated_delivery)
    )
    if contradiction is not None and not sync.flag:
        when = timezone.localtime(contradiction.occurred_at)
        sync.flag = (
            f"{account.carrier.name} says this package was delivered on "
            f"{when:%Y-%m-%d %H:%M}, but the record is "
            f"{shipment.get_status_display().lower()}: check with the carrier "
            "and the sender."
        )
    sync.unknown_since = None
    sync.failures = 0
    sync.last_synced_at = now
    _set_result(
        sync,
        result=R.OK,
        message="; ".join(p for p in parts if p),
        now=now,
        cadence=cadence,
    )


def _set_result(
    sync: CarrierSync,
    *,
    result: str,
    message: str,
    now: datetime,
    cadence: Cadence,
    not_before: datetime | None = None,
    attempted: bool = True,
) -> None:
    shipment = sync.shipment
    if attempted:
        sync.last_attempt_at = now
    sync.last_result = result
    sync.last_message = message[:2000]
    sync.queued_at = None
    due = cadence_rules.next_sync(
        key=shipment.pk,
        now=now,
        status=shipment.status,
        result=result,
        failures=sync.failures,
        last_movement_at=sync.last_movement_at,
        dispatched_at=shipment.dispatched_at,
        unknown_since=sync.unknown_since,
        not_before=not_before,
        cadence=cadence,
    )
    sync.is_done = due is None
    sync.next_due_at = due or now


def _set_failed(
    sync: CarrierSync,
    *,
    result: str,
    message: str,
    now: datetime,
    cadence: Cadence,
    attempted: bool,
    not_before: datetime | None = None,
) -> None:
    if result == R.ERROR:
        sync.failures += 1
    _set_result(
        sync,
        result=result,
        message=message,
        now=now,
        cadence=cadence,
        not_before=not_before,
        attempted=attempted,
    )


def _record_failed(
    chunk: Sequence[CarrierSync],
    *,
    result: str,
    message: str,
    now: datetime,
    cadence: Cadence,
    attempted: bool = True,
    not_before: datetime | None = None,
) -> None:
    for sync in chunk:
        _set_failed(
            sync,
            result=result,
            message=message,
            now=now,
            cadence=cadence,
            attempted=attempted,
            not_before=not_before,
        )
    bulk_set(list(chunk), SYNC_FIELDS)


def _release(chunk: Sequence[CarrierSync], *, at: datetime) -> None:
    """Give rows back unasked (this minute's requests are used up)."""
    for sync in chunk:
        sync.queued_at = None
        sync.next_due_at = at
    bulk_set(list(chunk), ("queued_at", "next_due_at"))


# --- a batch -------------------------------------------------------------------


def _connection(account: CarrierAccount) -> Connection:
    return Connection(
        account_id=account.pk,
        provider=account.provider,
        credentials=credentials_for(
            stored=account.credentials, env_name=account.credentials_env
        ),
        test_mode=account.test_mode,
    )


def _chunks(syncs: Sequence[CarrierSync], size: int) -> list[list[CarrierSync]]:
    return [list(syncs[i : i + size]) for i in range(0, len(syncs), size)]


def _sync(
    account: CarrierAccount,
    syncs: Sequence[CarrierSync],
    *,
    now: datetime,
    cadence: Cadence,
    timeout: float | None = None,
    granted: int | None = None,
) -> None:
    """Ask the carrier about these rows' shipments and record the answers.
    `granted`: requests already taken from the rate limit (None: take them
    here)."""
    try:
        connection = _connection(account)
    except CredentialsUnavailable as exc:
        retry = _account_failing(account, str(exc), now=now, cadence=cadence)
        _record_failed(
            syncs,
            result=R.ACCOUNT_FAILING,
            message=str(exc),
            now=now,
            cadence=cadence,
            attempted=False,
            not_before=retry,
        )
        return
    chunks = _chunks(syncs, BATCH_SIZE.get(account.provider, 1))
    if granted is None:
        granted = rate_take(
            account.pk,
            limit=account.requests_per_minute,
            wanted=len(chunks),
            now=now,
        )
    asked, later = chunks[:granted], chunks[granted:]
    if later:
        _release([s for c in later for s in c], at=_next_minute(now))
    if not asked:
        return
    pool = ThreadPoolExecutor(
        max_workers=min(_setting("threads"), len(asked)),
        thread_name_prefix="carrier-sync",
    )
    futures: dict[Future[dict[str, Tracked | NotFound]], list[CarrierSync]] = {
        pool.submit(track, connection, [_number(s) for s in chunk]): chunk
        for chunk in asked
    }
    stop: tuple[str, str, datetime] | None = None  # result, message, until
    # The answers are recorded together once all are in: one ingest for the
    # task's shipments costs a fixed number of statements, where one per
    # request would cost them again for each (UPS: one number a request).
    answered: list[CarrierSync] = []
    answers: dict[str, Tracked | NotFound] = {}
    try:
        remaining = set(futures)
        deadline = (
            None if timeout is None else timezone.now() + timedelta(seconds=timeout)
        )
        while remaining:
            left = None
            if deadline is not None:
                left = max((deadline - timezone.now()).total_seconds(), 0)
            done, _ = wait(remaining, timeout=left, return_when="FIRST_COMPLETED")
            if not done:
                for future in remaining:
                    future.cancel()
                    _record_failed(
                        futures[future],
                        result=R.ERROR,
                        message=(
                            f"{account.carrier.name} did not answer within "
                            f"{_plural(math.ceil(timeout or 0), 'second')}."
                        ),
                        now=now,
                        cadence=cadence,
                    )
                break
            for future in done:
                remaining.discard(future)
                chunk = futures[future]
                outcome = _chunk_outcome(future)
                if isinstance(outcome, dict):
                    answered.extend(chunk)
                    answers.update(outcome)
                    continue
                if isinstance(outcome, CancelledError):
                    result, message, until = stop or (
                        R.ERROR,
                        "The request was not made.",
                        now,
                    )
                    _record_failed(
                        chunk,
                        result=result,
                        message=message,
                        now=now,
                        cadence=cadence,
                        attempted=False,
                        not_before=until,
                    )
                    continue
                stop_here = _failure(account, chunk, outcome, now=now, cadence=cadence)
                if stop_here is not None and stop is None:
                    stop = stop_here
                    # The carrier refused the account: the requests not
                    # made yet would be refused too.
                    for other in remaining:
                        other.cancel()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if answered:
        _record_tracked(
            account=account, chunk=answered, answers=answers, now=now, cadence=cadence
        )
        if stop is None:
            _account_ok(account, now=now)


def _chunk_outcome(
    future: Future[dict[str, Tracked | NotFound]],
) -> dict[str, Tracked | NotFound] | BaseException:
    try:
        return future.result()
    except CancelledError as exc:
        return exc
    except Exception as exc:
        return exc


def _failure(
    account: CarrierAccount,
    chunk: Sequence[CarrierSync],
    error: BaseException,
    *,
    now: datetime,
    cadence: Cadence,
) -> tuple[str, str, datetime] | None:
    """Record a failed request; (result, message, until) when the account
    must stop asking for now."""
    name = account.carrier.name
    if isinstance(error, (CarrierAuthFailed, KarrioMissing)):
        message = f"{name} refused the account: {error.message}"
        if isinstance(error, KarrioMissing):
            message = error.message
        until = _account_failing(account, message, now=now, cadence=cadence)
        _record_failed(
            chunk,
            result=R.ACCOUNT_FAILING,
            message=message,
            now=now,
            cadence=cadence,
            not_before=until,
        )
        return R.ACCOUNT_FAILING, message, until
    if isinstance(error, CarrierRateLimited):
        until = _account_backoff(
            account, now=now, cadence=cadence, retry_after=error.retry_after
        )
        message = f"{name} asked us to slow down: {error.message}"
        _record_failed(
            chunk,
            result=R.RATE_LIMITED,
            message=message,
            now=now,
            cadence=cadence,
            not_before=until,
        )
        return R.RATE_LIMITED, message, until
    if isinstance(error, CarrierUnavailable):
        until = _account_backoff(account, now=now, cadence=cadence, retry_after=None)
        message = f"{name} is not answering properly: {error.message}"
        _record_failed(
            chunk,
            result=R.ERROR,
            message=message,
            now=now,
            cadence=cadence,
            not_before=until,
        )
        return R.ERROR, message, until
    if isinstance(error, CarrierError):
        message = f"{name}: {error.message}"
    else:
        log.error(
            "Carrier tracking request of account %s failed",
            account.pk,
            exc_info=error,
        )
        message = f"The request to {name} failed: {type(error).__name__}: {error}"
    _record_failed(chunk, result=R.ERROR, message=message, now=now, cadence=cadence)
    return None


def _syncs_for(
    account: CarrierAccount, shipment_ids: Iterable[int]
) -> list[CarrierSync]:
    return list(
        CarrierSync.objects.select_related("shipment")
        .filter(account=account, shipment_id__in=list(shipment_ids))
        .order_by("shipment_id")
    )


def carrier_sync_batch(
    *, account_id: int, shipment_ids: Sequence[int], now: datetime | None = None
) -> list[CarrierSync]:
    """Ask the account's carrier about these shipments and record what it
    says; the rows as they were left. Running it twice is harmless: the
    carrier's event ids make a second ingest all duplicates."""
    now = now or timezone.now()
    cadence = current_cadence()
    account = (
        CarrierAccount.objects.select_related("carrier").filter(pk=account_id).first()
    )
    if account is None:
        return []
    syncs = _syncs_for(account, shipment_ids)
    if not account.is_active:
        _release(syncs, at=now)
        return []
    followed = []
    for sync in syncs:
        shipment = sync.shipment
        # A closed record is still asked about once it was queued: the
        # carrier may contradict it (delivered after staff closed it).
        if shipment.tracking_number and shipment.carrier_id == account.carrier_id:
            followed.append(sync)
        else:
            sync.is_done, sync.queued_at = True, None
    stopped = [s for s in syncs if s.is_done]
    if stopped:
        bulk_set(stopped, ("is_done", "queued_at"))
    if followed:
        _sync(account, followed, now=now, cadence=cadence)
    return syncs


def carrier_sync_shipment(
    *, shipment: Shipment, now: datetime | None = None
) -> CarrierSync:
    """*Sync now*: ask the carrier about one shipment while staff wait (a
    short timeout), record the answer as the poller does, and return the
    shipment's sync row. SyncRefused, with the reason for staff, when there
    is nothing to ask or the carrier must not be asked now."""
    now = now or timezone.now()
    cadence = current_cadence()
    if not shipment.tracking_number or shipment.status in (
        S.CREATED,
        S.READY,
        S.CANCELLED,
    ):
        raise SyncRefused(
            "This shipment has no carrier tracking number yet: dispatch it first."
        )
    account = (
        CarrierAccount.objects.select_related("carrier")
        .filter(carrier_id=shipment.carrier_id or 0)
        .first()
    )
    if account is None:
        raise SyncRefused(NOT_CONNECTED)
    if not account.is_active:
        raise SyncRefused(
            f"The {account.carrier.name} carrier account is switched off in the "
            "admin: switch it on to sync."
        )
    if (
        account.backoff_until is not None
        and account.backoff_until > now
        and account.state != CarrierAccount.State.FAILING
    ):
        minutes = math.ceil((account.backoff_until - now).total_seconds() / 60)
        raise SyncRefused(
            f"{account.carrier.name} asked us to slow down: try again in "
            f"{_plural(minutes, 'minute')}."
        )
    sync, _ = CarrierSync.objects.get_or_create(
        shipment=shipment, defaults={"account": account, "next_due_at": now}
    )
    if sync.account_id != account.pk:
        sync.account = account
        sync.save(update_fields=["account"])
    if not rate_take(account.pk, limit=account.requests_per_minute, wanted=1, now=now):
        raise SyncRefused(
            f"This minute's requests to {account.carrier.name} are used up by "
            "the poller: try again in a minute."
        )
    sync.shipment = shipment
    _sync(
        account,
        [sync],
        now=now,
        cadence=cadence,
        timeout=float(_setting("sync_now_timeout_seconds")),
        granted=1,
    )
    sync.refresh_from_db()
    return sync


def karrio_warm_up_soon() -> threading.Thread | None:
    """At a process's start (a Celery worker, a gunicorn worker): load
    karrio in the background when some carrier account is on, so the first
    sync does not wait for it. Never fails the process it runs in."""

    def warm() -> None:
        try:
            if CarrierAccount.objects.filter(is_active=True).exists():
                karrio_warm_up()
        except Exception:
            log.warning("Could not load karrio ahead of the first sync", exc_info=True)
        finally:
            db_connection.close()

    thread = threading.Thread(target=warm, name="karrio-warm-up", daemon=True)
    thread.start()
    return thread
