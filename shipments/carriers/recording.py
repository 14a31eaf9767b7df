"""Recording what a carrier said: a batch's answers become events (through
the same path as the push webhooks: `carrier_services.carrier_events_ingest`,
so the status table, the state machine, dedupe on the carrier's event ids,
notifications and exceptions), ETA changes, contradiction notes, and each
sync row's result and next due time (`cadence.next_sync`).

One shipment's bad data fails only that shipment: the batch's events are
ingested together (a fixed number of statements) and, when that fails, one
shipment at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from shipments.carrier_services import carrier_events_ingest
from shipments.carriers import cadence as cadence_rules
from shipments.carriers.cadence import Cadence
from shipments.carriers.places import events_locate
from shipments.carriers.status import CarrierEvent
from shipments.carriers.tracking import NotFound, Tracked
from shipments.ingest import CheckpointIn, checkpoints_ingest
from shipments.models import CarrierAccount, CarrierSync, Shipment, Source
from shipments.services import shipment_eta_change
from shipments.status import MOVING, EventKind, ShipmentStatus, TransitionRefused
from tracksop.bulk import bulk_set

log = logging.getLogger(__name__)

S = ShipmentStatus
R = CarrierSync.Result

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


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def record_tracked(
    *,
    account: CarrierAccount,
    chunk: Sequence[CarrierSync],
    answers: Mapping[str, Tracked | NotFound],
    now: datetime,
    cadence: Cadence,
) -> None:
    """Record one carrier answer for its shipments: their events, ETA
    changes, contradictions, and each row's result and next due time."""
    events_by_sync: dict[int, list[CarrierEvent]] = {}
    for number, sync in {number_of(s): s for s in chunk}.items():
        answer = answers.get(number)
        if isinstance(answer, Tracked):
            # Under the number we asked about, whatever spelling came back.
            events_by_sync[sync.pk] = [
                dataclasses.replace(e, tracking_number=number) for e in answer.events
            ]
    _locate(account, events_by_sync)
    outcomes = _ingest_each(account, events_by_sync)
    shipments = {
        s.pk: s for s in Shipment.objects.filter(pk__in=[c.shipment_id for c in chunk])
    }
    contradicted = _contradictions(
        account=account,
        chunk=chunk,
        shipments=shipments,
        events_by_sync=events_by_sync,
        outcomes=outcomes,
    )
    for sync in chunk:
        try:
            _record_one(
                account=account,
                sync=sync,
                answer=answers.get(number_of(sync)),
                outcome=outcomes.get(sync.pk, []),
                shipment=shipments.get(sync.shipment_id),
                contradiction=contradicted.get(sync.pk),
                now=now,
                cadence=cadence,
            )
        except Exception as exc:
            log.exception("Carrier sync of shipment %s failed", sync.shipment_id)
            set_failed(
                sync,
                result=R.ERROR,
                message=f"Recording the carrier's answer failed: {exc}",
                now=now,
                cadence=cadence,
                attempted=True,
            )
    bulk_set(list(chunk), SYNC_FIELDS)


def _locate(
    account: CarrierAccount, events_by_sync: dict[int, list[CarrierEvent]]
) -> None:
    """Give the events the Location codes of their places (made when new),
    in place; left as they are when that fails."""
    try:
        flat = events_locate(
            [e for events in events_by_sync.values() for e in events],
            account=account,
        )
    except Exception:
        log.exception("Carrier places of account %s failed to record", account.pk)
        return
    start = 0
    for pk, events in events_by_sync.items():
        events_by_sync[pk] = flat[start : start + len(events)]
        start += len(events)


def _contradictions(
    *,
    account: CarrierAccount,
    chunk: Sequence[CarrierSync],
    shipments: Mapping[int, Shipment],
    events_by_sync: Mapping[int, list[CarrierEvent]],
    outcomes: Mapping[int, list[dict[str, Any]] | Exception],
) -> dict[int, CheckpointIn]:
    """A delivery the state machine refused on a closed record (returned,
    cancelled): a note in the timeline, by sync row."""
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
    return {sync.pk: note for sync, note in notes}


def number_of(sync: CarrierSync) -> str:
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
    """One shipment's answer: a failure, an unknown number, or its events."""
    if shipment is None:  # deleted meanwhile
        sync.is_done, sync.queued_at = True, None
        return
    sync.shipment = shipment
    if answer is None:
        set_failed(
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
        set_failed(
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
        set_result(
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
        set_failed(
            sync,
            result=R.ERROR,
            message=f"The carrier's events could not be recorded: {outcome}",
            now=now,
            cadence=cadence,
            attempted=True,
        )
        return
    _record_events(
        account=account,
        sync=sync,
        answer=answer,
        outcome=outcome,
        shipment=shipment,
        contradiction=contradiction,
        now=now,
        cadence=cadence,
    )


def _record_events(
    *,
    account: CarrierAccount,
    sync: CarrierSync,
    answer: Tracked,
    outcome: list[dict[str, Any]],
    shipment: Shipment,
    contradiction: CheckpointIn | None,
    now: datetime,
    cadence: Cadence,
) -> None:
    """A carrier answer whose events were recorded: the row's last movement,
    the ETA, the contradiction flag, and a message that sums it up."""
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
    parts = [plural(created, "new event") if created else "No new events"]
    if refused:
        parts.append(
            f"{plural(len(refused), 'carrier event')} not recorded: "
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
    set_result(
        sync,
        result=R.OK,
        message="; ".join(p for p in parts if p),
        now=now,
        cadence=cadence,
    )


def set_result(
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


def set_failed(
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
    set_result(
        sync,
        result=result,
        message=message,
        now=now,
        cadence=cadence,
        not_before=not_before,
        attempted=attempted,
    )


def record_failed(
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
        set_failed(
            sync,
            result=result,
            message=message,
            now=now,
            cadence=cadence,
            attempted=attempted,
            not_before=not_before,
        )
    bulk_set(list(chunk), SYNC_FIELDS)


def release(chunk: Sequence[CarrierSync], *, at: datetime) -> None:
    """Give rows back unasked (this minute's requests are used up)."""
    for sync in chunk:
        sync.queued_at = None
        sync.next_due_at = at
    bulk_set(list(chunk), ("queued_at", "next_due_at"))
