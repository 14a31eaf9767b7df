"""Domain events of the shipments app: the one place other apps listen to.

`events_recorded` is sent inside the transaction that wrote the events, so a
receiver that writes (an outbox row, an exception) commits or rolls back with
them. Receivers that leave the process must defer with `transaction.on_commit`.
Receivers connect in their AppConfig.ready(); shipments imports none of them.

One announcement carries every event a service wrote in one go: one for a
scan, fifty for a chunk of the exceptions sweep. Receivers handle the list
with a fixed number of queries, which is what keeps a sweep's cost per row low.

`TrackingEvent.data` is a JSON column; its keys per event kind are the
contract between the apps that write it and the apps that read it, and the
`TypedDict`s below say what they are. Writers build them; readers in other
apps `cast` `event.data` to the one of the kind they handle. Checkpoints posted
by the API or a carrier carry the caller's own JSON as well: `CarrierData`
names only the keys TrackSOP itself writes or reads there.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from django.db import transaction
from django.dispatch import Signal

from shipments.public import tracking_page_forget, tracking_pages_forget

if TYPE_CHECKING:
    from shipments.models import Shipment, TrackingEvent


class DetailsChangedData(TypedDict):
    """`details_changed`: the shipment fields a correction changed."""

    fields: list[str]


class CheckData(TypedDict):
    """`check_passed`, `check_failed`: the final check's two results."""

    quality_ok: bool
    quantity_ok: bool


# Optional keys through `total=False` subclasses, not `NotRequired`: with
# postponed annotations Python 3.12 cannot tell them at run time.
class _DispatchedBase(TypedDict):
    carrier: str
    tracking_number: str
    estimated_delivery: str


class DispatchedData(_DispatchedBase, total=False):
    """`dispatched`: the carrier's code, the number and the ETA (ISO date)."""

    # A scanned USPS label's ZIP code (`shipments.dispatch`).
    routing_zip: str


# `eta_changed`: ISO dates before and after ("" when there was none before)
# and the reason given. Functional form: `from` is a Python keyword.
EtaChangedData = TypedDict("EtaChangedData", {"from": str, "to": str, "reason": str})


class CorrectionData(TypedDict):
    """`correction`: the kind of the event it voids."""

    voided_kind: str


class _ExceptionBase(TypedDict):
    cause: str
    cause_code: str
    severity: str
    expected_resolution: str
    exception: int


class ExceptionData(_ExceptionBase, total=False):
    """`exception_reported`, `exception_updated`, `exception_resolved`, written
    by `exceptions_mgmt`: the cause as staff see it and as a code, the
    severity, the expected resolution (ISO time) and the exception's id."""

    # Reported by the late-shipment sweep: the customer hears of a delay.
    detected: bool
    # Why the expected resolution moved (`exception_updated`).
    reason: str
    # The cause in words a customer may read, supplied by exceptions_mgmt.
    public_cause: str


class CarrierData(TypedDict, total=False):
    """A checkpoint from a carrier (`shipments.carrier_status`): its own code
    and text, and how TrackSOP read them. Carriers' extra keys pass through."""

    carrier_status: str
    carrier_text: str
    carrier_status_type: str
    carrier_normalized_status: str
    carrier_status_unknown: bool
    carrier_location: str
    carrier_reason: str
    # A carrier's exception, logged as a note: exceptions_mgmt opens one.
    carrier_exception: bool
    # A carrier delivery that the closed record refused, kept as a note.
    carrier_said: str
    refused: str


class Recorded(NamedTuple):
    event: TrackingEvent
    shipment: Shipment  # locked, already saved with the event applied
    previous_status: str


# kwargs: records (a list of Recorded, at least one)
events_recorded = Signal()


def publish_events_recorded(records: Sequence[Recorded]) -> None:
    if not records:
        return
    tokens = list(dict.fromkeys(record.shipment.public_token for record in records))
    # Robust: a cache that is down must not fail the request after its commit.
    if len(tokens) == 1:
        transaction.on_commit(partial(tracking_page_forget, tokens[0]), robust=True)
    else:
        # A batch of scans: one round trip to the cache for all its shipments.
        transaction.on_commit(partial(tracking_pages_forget, tokens), robust=True)
    events_recorded.send(sender=type(records[0].event), records=list(records))


def publish_event_recorded(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> None:
    publish_events_recorded([Recorded(event, shipment, previous_status)])
