"""Checkpoints from machines: the API's batches, carrier push feeds, polling.

`checkpoints_ingest` takes up to `INGEST_LIMIT` checkpoints, each naming its
shipment by shipment ID or tracking number, and answers one result per item
in the order given: *created*, *duplicate* (its `external_id` is already on
that shipment) or *refused* with the reason. A refused item never stops the
others. Out-of-order and late events follow the same rules as the forms
(`shipments.status`), because they go through the same state machine
(`services.shipment_advance`).

A batch costs a fixed number of statements however many items it has: the
references, locations, known external ids and shipments are read once, the
shipments locked once, the events inserted in one statement and the shipments
updated in one, and the other apps hear of every event in one announcement.
`checkpoints_ingest_one_by_one` is the same contract through
`checkpoints.checkpoint_record`, one item at a time: the reference the tests hold
the batch to.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from shipments import bounds
from shipments.checkpoints import checkpoint_record
from shipments.events import Recorded, publish_events_recorded
from shipments.models import Location, Shipment, Source, TrackingEvent
from shipments.selectors import shipments_by_codes
from shipments.services import ADVANCED_FIELDS, shipment_advance
from shipments.status import CHECKPOINT_KINDS, TransitionRefused
from tracksop.bulk import bulk_set

INGEST_LIMIT = 1000
NOTES_MAX = TrackingEvent._meta.get_field("notes").max_length or 2000
EXTERNAL_ID_MAX = TrackingEvent._meta.get_field("external_id").max_length or 100
LOCATION_MAX = Location._meta.get_field("code").max_length or 32
# Longer than any shipment ID (32) or tracking number (40) in any format.
REFERENCE_MAX = 64
# A carrier's raw status payload fits; a megabyte of junk per scan does not.
DATA_MAX_CHARS = 10_000

UNKNOWN_REFERENCE = "No shipment has this shipment ID or tracking number."
BAD_KIND = "This kind of event cannot be posted as a checkpoint."
NUL = "Remove the NUL character: text cannot contain it."


@dataclass(frozen=True)
class CheckpointIn:
    reference: str  # shipment ID or tracking number
    kind: str
    occurred_at: datetime
    location: str = ""  # a Location's code
    notes: str = ""
    external_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    status: Literal["created", "duplicate", "refused"]
    shipment_id: str = ""
    event_id: int | None = None
    reason: str = ""
    errors: Mapping[str, list[str]] = field(default_factory=dict)


def _refused(errors: Mapping[str, list[str]]) -> IngestResult:
    reason = " ".join(message for messages in errors.values() for message in messages)
    return IngestResult("refused", reason=reason, errors=dict(errors))


def _text_errors(value: object, *, name: str, limit: int) -> list[str]:
    if not isinstance(value, str):
        return [f"The {name} must be text."]
    if "\x00" in value:
        return [NUL]
    if len(value) > limit:
        return [f"Keep the {name} to {limit:,} characters (it has {len(value):,})."]
    return []


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _data_errors(data: object) -> list[str]:
    if not isinstance(data, Mapping):
        return ["The data must be a JSON object."]
    try:
        # PostgreSQL's jsonb takes neither NaN nor Infinity.
        size = len(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError):
        return ["The data must be plain JSON (no NaN or Infinity)."]
    if size > DATA_MAX_CHARS:
        return [f"Keep the data to {DATA_MAX_CHARS:,} characters of JSON."]
    if _has_nul(data):
        return [NUL]
    return []


def checkpoint_errors(item: CheckpointIn) -> dict[str, list[str]]:
    """What is wrong with the item on its own (no database): text that
    PostgreSQL would refuse (NUL) or that no column holds, a time without a
    zone. Checked first by both paths, so a bad item never reaches a query
    and never aborts the batch's transaction."""
    errors = {
        "reference": _text_errors(
            item.reference, name="reference", limit=REFERENCE_MAX
        ),
        "location": _text_errors(
            item.location, name="location code", limit=LOCATION_MAX
        ),
        "notes": _text_errors(item.notes, name="notes", limit=NOTES_MAX),
        "external_id": _text_errors(
            item.external_id, name="external id", limit=EXTERNAL_ID_MAX
        ),
        "data": _data_errors(item.data),
    }
    if not isinstance(item.occurred_at, datetime) or timezone.is_naive(
        item.occurred_at
    ):
        errors["occurred_at"] = ["Give the time with its time zone (ISO 8601)."]
    return {name: messages for name, messages in errors.items() if messages}


def _refuse_oversized(items: Sequence[CheckpointIn]) -> None:
    if len(items) > INGEST_LIMIT:
        raise ValidationError(
            {"checkpoints": f"Send at most {INGEST_LIMIT} checkpoints at once."}
        )


def _code(item: CheckpointIn) -> str:
    return item.reference.strip().upper()


def _locations(codes: set[str]) -> dict[str, Location]:
    return {
        loc.code: loc for loc in Location.objects.filter(code__in=codes, is_active=True)
    }


def _unknown_location(code: str) -> IngestResult:
    return _refused({"location": [f"No active location has the code {code}."]})


def checkpoints_ingest(
    items: Sequence[CheckpointIn],
    *,
    source: str = Source.API,
    integration: str = "",
) -> list[IngestResult]:
    """One result per item, in one transaction with a fixed number of
    queries (about a dozen, plus what the listening apps write)."""
    _refuse_oversized(items)
    results: list[IngestResult | None] = [None] * len(items)
    for index, item in enumerate(items):
        if errors := checkpoint_errors(item):
            results[index] = _refused(errors)
    valid = [(i, item) for i, item in enumerate(items) if results[i] is None]
    found = shipments_by_codes(_code(item) for _, item in valid)
    locations = _locations({item.location for _, item in valid if item.location})
    now = timezone.now()
    with transaction.atomic():
        # One lock for the batch, in primary-key order: two batches naming the
        # same shipments queue behind each other instead of deadlocking.
        shipments: dict[int, Shipment] = {
            s.pk: s
            for s in Shipment.objects.select_for_update(of=("self",))
            .select_related("carrier")
            .filter(pk__in={found[_code(i)] for _, i in valid if _code(i) in found})
            .order_by("pk")
        }
        # Under the locks, so a concurrent batch's events are seen here.
        known: dict[tuple[int, str], TrackingEvent | int] = {
            (shipment, external_id): pk
            for pk, shipment, external_id in TrackingEvent.objects.filter(
                shipment_id__in=list(shipments),
                external_id__in={i.external_id for _, i in valid if i.external_id},
            ).values_list("pk", "shipment_id", "external_id")
        }
        latest_located = _latest_located(valid, found, shipments)
        created: list[tuple[int, Recorded]] = []
        # Where in `created` each shipment's latest event is, holding the live
        # shipment (see below).
        holding: dict[int, int] = {}
        duplicates: list[tuple[int, Shipment, TrackingEvent | int]] = []
        for index, item in valid:
            shipment = shipments.get(found.get(_code(item), 0))
            if shipment is None:
                results[index] = _refused({"reference": [UNKNOWN_REFERENCE]})
                continue
            seen = known.get((shipment.pk, item.external_id))
            if item.external_id and seen is not None:
                duplicates.append((index, shipment, seen))
                continue
            location = locations.get(item.location) if item.location else None
            if refusal := _refusal(item, shipment, location, now):
                results[index] = refusal
                continue
            latest = latest_located.get(shipment.pk)
            if (earlier := holding.get(shipment.pk)) is not None:
                # Each announcement carries the shipment as its event left it,
                # as one by one: the earlier event keeps a copy before this one
                # changes the live shipment (most shipments have one event in a
                # batch, and no copy).
                at, record = created[earlier]
                created[earlier] = (at, record._replace(shipment=copy.copy(shipment)))
            try:
                recorded = shipment_advance(
                    shipment,
                    kind=item.kind,
                    occurred_at=item.occurred_at,
                    user=None,
                    source=source,
                    integration=integration,
                    location=location,
                    notes=item.notes,
                    external_id=item.external_id,
                    data=item.data,
                    located_later=latest is not None and latest > item.occurred_at,
                )
            except TransitionRefused as exc:
                results[index] = IngestResult("refused", reason=str(exc))
                continue
            if location is not None and (latest is None or item.occurred_at > latest):
                latest_located[shipment.pk] = item.occurred_at
            shipment.updated_at = now
            holding[shipment.pk] = len(created)
            created.append((index, recorded))
            if item.external_id:
                known[(shipment.pk, item.external_id)] = recorded.event
        if created:
            TrackingEvent.objects.bulk_create([r.event for _, r in created])
            changed = {
                r.event.shipment_id: shipments[r.event.shipment_id] for _, r in created
            }
            bulk_set(list(changed.values()), ADVANCED_FIELDS)
            publish_events_recorded([r for _, r in created])
    return _answers(results, created, duplicates)


def _refusal(
    item: CheckpointIn, shipment: Shipment, location: Location | None, now: datetime
) -> IngestResult | None:
    """Why an item that names a known shipment cannot go to the state machine:
    a kind machines may not post, an unknown location, an impossible time."""
    if item.kind not in CHECKPOINT_KINDS:
        return _refused({"kind": [BAD_KIND]})
    if item.location and location is None:
        return _unknown_location(item.location)
    problem = bounds.event_time_error(
        item.occurred_at, created_at=shipment.created_at, now=now
    )
    if problem:
        return _refused({"occurred_at": [problem]})
    return None


def _answers(
    results: list[IngestResult | None],
    created: Sequence[tuple[int, Recorded]],
    duplicates: Sequence[tuple[int, Shipment, TrackingEvent | int]],
) -> list[IngestResult]:
    """The batch's results in the order given, once its events have ids."""
    for index, recorded in created:
        results[index] = IngestResult(
            "created",
            shipment_id=recorded.shipment.shipment_id,
            event_id=recorded.event.pk,
        )
    for index, shipment, seen in duplicates:
        results[index] = IngestResult(
            "duplicate",
            shipment_id=shipment.shipment_id,
            event_id=seen if isinstance(seen, int) else seen.pk,
        )
    return [r for r in results if r is not None]


def _latest_located(
    valid: Sequence[tuple[int, CheckpointIn]],
    found: Mapping[str, int],
    shipments: Mapping[int, Shipment],
) -> dict[int, datetime]:
    """When each shipment's latest live located event happened, for the
    shipments that need it: a located item older than the shipment's last
    event (a late scan). Every other event is the latest so far, and places
    the package (the batch's own events are followed in memory)."""
    late = set()
    for _, item in valid:
        shipment = shipments.get(found.get(_code(item), 0))
        if (
            shipment is not None
            and item.location
            and item.occurred_at < shipment.last_event_at
        ):
            late.add(shipment.pk)
    if not late:
        return {}
    return dict(
        TrackingEvent.objects.filter(
            shipment_id__in=late, location__isnull=False, voided_by__isnull=True
        )
        .values("shipment_id")
        .annotate(latest=Max("occurred_at"))
        .values_list("shipment_id", "latest")
    )


def checkpoints_ingest_one_by_one(
    items: Sequence[CheckpointIn],
    *,
    source: str = Source.API,
    integration: str = "",
) -> list[IngestResult]:
    """The same contract, one `checkpoint_record` per item, each in its own
    transaction (about ten queries an item). Kept as the reference that
    `checkpoints_ingest` is tested against."""
    _refuse_oversized(items)
    checked = [checkpoint_errors(item) for item in items]
    valid = [item for item, errors in zip(items, checked, strict=True) if not errors]
    found = shipments_by_codes(_code(i) for i in valid)
    locations = _locations({i.location for i in valid if i.location})
    known: dict[tuple[int | None, str], tuple[int | None, str]] = {
        (shipment, external_id): (event, code)
        for event, shipment, external_id, code in TrackingEvent.objects.filter(
            shipment_id__in=set(found.values()),
            external_id__in={i.external_id for i in valid if i.external_id},
        ).values_list("pk", "shipment_id", "external_id", "shipment__shipment_id")
    }
    results: list[IngestResult] = []
    for item, errors in zip(items, checked, strict=True):
        if errors:
            results.append(_refused(errors))
            continue
        pk = found.get(_code(item))
        seen = known.get((pk, item.external_id)) if item.external_id else None
        if seen is not None:
            results.append(
                IngestResult("duplicate", shipment_id=seen[1], event_id=seen[0])
            )
            continue
        result = _one(item, pk, locations, source, integration)
        if result.status == "created" and item.external_id:
            known[(pk, item.external_id)] = (result.event_id, result.shipment_id)
        results.append(result)
    return results


def _one(
    item: CheckpointIn,
    pk: int | None,
    locations: Mapping[str, Location],
    source: str,
    integration: str,
) -> IngestResult:
    if pk is None:
        return _refused({"reference": [UNKNOWN_REFERENCE]})
    if item.kind not in CHECKPOINT_KINDS:
        return _refused({"kind": [BAD_KIND]})
    location = locations.get(item.location) if item.location else None
    if item.location and location is None:
        return _unknown_location(item.location)
    try:
        event = checkpoint_record(
            shipment=pk,
            kind=item.kind,
            user=None,
            occurred_at=item.occurred_at,
            location=location,
            source=source,
            integration=integration,
            notes=item.notes,
            external_id=item.external_id,
            data=item.data,
        )
    except TransitionRefused as exc:
        return IngestResult("refused", reason=str(exc))
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {}
        return IngestResult("refused", reason=" ".join(exc.messages), errors=errors)
    return IngestResult(
        "created", shipment_id=event.shipment.shipment_id, event_id=event.pk
    )
