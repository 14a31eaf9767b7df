"""Asking the carriers: a batch task's service (`carrier_sync_batch`) and
*Sync now* on the shipment page (`carrier_sync_shipment`).

Contract (what other modules call; the beat's `carrier_sync_due` is in
`due`, the account alert's `carrier_account_alert_send` in `accounts`):
- `carrier_sync_batch(account_id=…, shipment_ids=…, now=None) -> list[CarrierSync]`:
  the task's service; asks the carrier, records events, ETA changes and
  results; one shipment's failure never stops the batch.
- `carrier_sync_shipment(shipment=…, now=None) -> CarrierSync`: *Sync now*;
  raises `SyncRefused` (message for staff) when the shipment has no
  connected carrier account or nothing to follow.

A task asks the carrier a few requests at once on threads (the time is the
carrier's), then records every answer together (`recording.record_tracked`)
and sets each row's next due time. A failed request means something for the
account (`_failure_of`: refused credentials, a 429, a 5xx, or nothing); when
the account must stop asking, the requests not made yet are given back.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.utils import timezone

from shipments.carriers.accounts import (
    account_backoff,
    account_failing,
    account_ok,
    next_minute,
    rate_take,
)
from shipments.carriers.adapter.client import karrio_warm_up, track
from shipments.carriers.cadence import Cadence
from shipments.carriers.credentials import CredentialsUnavailable, credentials_for
from shipments.carriers.recording import (
    number_of,
    plural,
    record_failed,
    record_tracked,
    release,
)
from shipments.carriers.tracking import (
    BATCH_SIZE,
    CarrierAuthFailed,
    CarrierError,
    CarrierRateLimited,
    CarrierUnavailable,
    Connection,
    KarrioMissing,
    NotFound,
    Tracked,
)
from shipments.models import CarrierAccount, CarrierSync, Shipment
from shipments.status import ShipmentStatus
from tracksop.bulk import bulk_set

log = logging.getLogger(__name__)

S = ShipmentStatus
R = CarrierSync.Result

NOT_CONNECTED = (
    "This shipment's carrier is not connected: an administrator can add its "
    "API account under Carrier accounts in the admin."
)


class SyncRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Failure:
    """What a failed request means: the rows' result and message, and when
    the account may be asked again (None: it goes on being asked)."""

    result: str
    message: str
    until: datetime | None = None


@dataclass
class Asked:
    """What one task's requests came to: the rows answered and the answers,
    and the failure that stopped the account, if one did."""

    answered: list[CarrierSync] = field(default_factory=list)
    answers: dict[str, Tracked | NotFound] = field(default_factory=dict)
    stop: Failure | None = None


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
        retry = account_failing(account, str(exc), now=now, cadence=cadence)
        record_failed(
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
        release([s for c in later for s in c], at=next_minute(now))
    if not asked:
        return
    got = _ask(account, connection, asked, now=now, cadence=cadence, timeout=timeout)
    if got.answered:
        record_tracked(
            account=account,
            chunk=got.answered,
            answers=got.answers,
            now=now,
            cadence=cadence,
        )
        if got.stop is None:
            account_ok(account, now=now)


def _ask(
    account: CarrierAccount,
    connection: Connection,
    asked: Sequence[list[CarrierSync]],
    *,
    now: datetime,
    cadence: Cadence,
    timeout: float | None,
) -> Asked:
    """Make the requests, a few at once, within `timeout` seconds in all;
    the failed ones are recorded as they come, the answers are returned."""
    pool = ThreadPoolExecutor(
        max_workers=min(cadence.threads, len(asked)),
        thread_name_prefix="carrier-sync",
    )
    futures: dict[Future[dict[str, Tracked | NotFound]], list[CarrierSync]] = {
        pool.submit(track, connection, [number_of(s) for s in chunk]): chunk
        for chunk in asked
    }
    # The answers are recorded together once all are in: one ingest for the
    # task's shipments costs a fixed number of statements, where one per
    # request would cost them again for each (UPS: one number a request).
    got = Asked()
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
                message = (
                    f"{account.carrier.name} did not answer within "
                    f"{plural(math.ceil(timeout or 0), 'second')}."
                )
                for future in remaining:
                    future.cancel()
                    record_failed(
                        futures[future],
                        result=R.ERROR,
                        message=message,
                        now=now,
                        cadence=cadence,
                    )
                break
            for future in done:
                remaining.discard(future)
                _take(account, future, futures[future], got, remaining, now, cadence)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return got


def _take(
    account: CarrierAccount,
    future: Future[dict[str, Tracked | NotFound]],
    chunk: list[CarrierSync],
    got: Asked,
    remaining: set[Future[dict[str, Tracked | NotFound]]],
    now: datetime,
    cadence: Cadence,
) -> None:
    """One finished request: its answers kept, or its failure recorded."""
    outcome = _chunk_outcome(future)
    if isinstance(outcome, dict):
        got.answered.extend(chunk)
        got.answers.update(outcome)
        return
    if isinstance(outcome, CancelledError):
        stop = got.stop or Failure(R.ERROR, "The request was not made.", now)
        record_failed(
            chunk,
            result=stop.result,
            message=stop.message,
            now=now,
            cadence=cadence,
            attempted=False,
            not_before=stop.until,
        )
        return
    failure = _failure_of(account, outcome, now=now, cadence=cadence)
    record_failed(
        chunk,
        result=failure.result,
        message=failure.message,
        now=now,
        cadence=cadence,
        not_before=failure.until,
    )
    if failure.until is not None and got.stop is None:
        got.stop = failure
        # The carrier refused the account: the requests not made yet would
        # be refused too.
        for other in remaining:
            other.cancel()


def _chunk_outcome(
    future: Future[dict[str, Tracked | NotFound]],
) -> dict[str, Tracked | NotFound] | BaseException:
    try:
        return future.result()
    except CancelledError as exc:
        return exc
    except Exception as exc:
        return exc


def _failure_of(
    account: CarrierAccount,
    error: BaseException,
    *,
    now: datetime,
    cadence: Cadence,
) -> Failure:
    """What a failed request means, the account's state changed to match:
    failing (credentials refused, karrio missing) or backing off (429, 5xx)."""
    name = account.carrier.name
    if isinstance(error, (CarrierAuthFailed, KarrioMissing)):
        message = f"{name} refused the account: {error.message}"
        if isinstance(error, KarrioMissing):
            message = error.message
        until = account_failing(account, message, now=now, cadence=cadence)
        return Failure(R.ACCOUNT_FAILING, message, until)
    if isinstance(error, CarrierRateLimited):
        until = account_backoff(
            account, now=now, cadence=cadence, retry_after=error.retry_after
        )
        message = f"{name} asked us to slow down: {error.message}"
        return Failure(R.RATE_LIMITED, message, until)
    if isinstance(error, CarrierUnavailable):
        until = account_backoff(account, now=now, cadence=cadence, retry_after=None)
        message = f"{name} is not answering properly: {error.message}"
        return Failure(R.ERROR, message, until)
    if isinstance(error, CarrierError):
        return Failure(R.ERROR, f"{name}: {error.message}")
    log.error(
        "Carrier tracking request of account %s failed",
        account.pk,
        exc_info=error,
    )
    return Failure(
        R.ERROR, f"The request to {name} failed: {type(error).__name__}: {error}"
    )


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
    cadence = Cadence.from_settings(settings.TRACKSOP_CARRIER_SYNC)
    account = (
        CarrierAccount.objects.select_related("carrier").filter(pk=account_id).first()
    )
    if account is None:
        return []
    syncs = _syncs_for(account, shipment_ids)
    if not account.is_active:
        release(syncs, at=now)
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
    cadence = Cadence.from_settings(settings.TRACKSOP_CARRIER_SYNC)
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
            f"{plural(minutes, 'minute')}."
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
        timeout=cadence.sync_now_timeout,
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
