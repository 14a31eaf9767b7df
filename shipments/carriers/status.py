"""The one place where carriers' statuses become TrackSOP event kinds.

One table per provider format: the carrier's status code → a `Rule` (the
event kind, or IGNORE). Inbound push webhooks (`shipments.carrier_services`)
and the carrier polling of issue 14 both go through `carrier_checkpoint`, so a
carrier event means the same thing however it reached us.

What a rule may map to is what `shipments.ingest` accepts (CHECKPOINT_KINDS),
so the state machine decides the rest: a delivered package refuses a later
scan, a late scan joins the timeline without moving the status. A carrier
*exception* is kept as a NOTE flagged `carrier_exception` in its data (the
exceptions app opens exceptions through its own service, not as a checkpoint).
The carrier's own code and text always go into the event's `data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shipments.ingest import CheckpointIn
from shipments.models import Location, PushFormat, TrackingProvider
from shipments.status import EventKind

K = EventKind


@dataclass(frozen=True)
class Rule:
    kind: str | None  # an EventKind; None: not a checkpoint (IGNORE)
    carrier_exception: bool = False


IGNORE = Rule(None)
NOTE = Rule(K.NOTE)
EXCEPTION = Rule(K.NOTE, carrier_exception=True)

# TrackSOP's own signed JSON format (README "Carrier push webhooks").
GENERIC: dict[str, Rule] = {
    "label_created": IGNORE,
    "picked_up": Rule(K.PICKED_UP),
    "arrived_hub": Rule(K.ARRIVED_HUB),
    "departed_hub": Rule(K.DEPARTED_HUB),
    "in_transit": Rule(K.IN_TRANSIT_SCAN),
    "out_for_delivery": Rule(K.OUT_FOR_DELIVERY),
    "delivery_attempted": Rule(K.DELIVERY_ATTEMPTED),
    "available_for_pickup": Rule(K.AVAILABLE_FOR_PICKUP),
    "delivered": Rule(K.DELIVERED),
    "returned": Rule(K.RETURNED),
    "exception": EXCEPTION,
    "info": NOTE,
}

# UPS (Track Alert pushes; the Track API uses the same codes): the 2-letter
# activity status code first, then its type letter for codes not listed.
UPS_CODES: dict[str, Rule] = {
    "MP": IGNORE,  # "Shipment Ready for UPS": the label, not the package
    "OR": Rule(K.PICKED_UP),  # origin scan, "UPS has your package"
    "AR": Rule(K.ARRIVED_HUB),  # arrival scan
    "DP": Rule(K.DEPARTED_HUB),  # departure scan
    "YP": Rule(K.IN_TRANSIT_SCAN),  # "Preparing for Delivery"
    "OT": Rule(K.OUT_FOR_DELIVERY),
    "OF": Rule(K.OUT_FOR_DELIVERY),
    "FS": Rule(K.DELIVERED),
    "RS": Rule(K.RETURNED),  # returned to shipper
}
UPS_TYPES: dict[str, Rule] = {
    "M": IGNORE,  # manifest (billing information received)
    "MV": NOTE,  # manifest voided: worth a line in the timeline
    "I": Rule(K.IN_TRANSIT_SCAN),  # "On the Way"
    "D": Rule(K.DELIVERED),
    "X": EXCEPTION,
    # An updated delivery date: not a checkpoint but an ETA change (see
    # delivery_date_update), taken before this table is asked.
    "U": IGNORE,
}

# FedEx Track API `scanEvents[].eventType` (FedEx "Track API: scan event
# codes"). DE/SE/CD: delivery, shipment and clearance exceptions.
FEDEX_CODES: dict[str, Rule] = {
    "OC": IGNORE,  # "Shipment information sent to FedEx": the label
    "PU": Rule(K.PICKED_UP),
    "PX": Rule(K.PICKED_UP),  # picked up (see details)
    "AR": Rule(K.ARRIVED_HUB),  # at local FedEx facility / arrived at
    "AF": Rule(K.ARRIVED_HUB),  # at local FedEx facility
    "AA": Rule(K.ARRIVED_HUB),  # at airport
    "AC": Rule(K.ARRIVED_HUB),  # at Canada post facility
    "DP": Rule(K.DEPARTED_HUB),  # departed FedEx location
    "DS": Rule(K.DEPARTED_HUB),  # vehicle dispatched
    "PL": Rule(K.DEPARTED_HUB),  # plane landed
    "EP": Rule(K.DEPARTED_HUB),  # enroute to pickup
    "IT": Rule(K.IN_TRANSIT_SCAN),
    "IX": Rule(K.IN_TRANSIT_SCAN),  # in transit (see details)
    "CC": Rule(K.IN_TRANSIT_SCAN),  # cleared customs
    "OD": Rule(K.OUT_FOR_DELIVERY),  # on FedEx vehicle for delivery
    "DL": Rule(K.DELIVERED),
    "HL": Rule(K.AVAILABLE_FOR_PICKUP),  # hold at location
    "HP": Rule(K.AVAILABLE_FOR_PICKUP),  # ready for recipient pickup
    "RS": Rule(K.RETURNED),  # return to shipper
    "RP": Rule(K.RETURNED),  # return label link emailed: returning
    "DE": EXCEPTION,  # delivery exception
    "SE": EXCEPTION,  # shipment exception
    "CD": EXCEPTION,  # clearance delay
    "DY": EXCEPTION,  # delay
    "CA": EXCEPTION,  # shipment cancelled
    "LO": NOTE,  # left FedEx origin facility (no hub named)
    "SF": NOTE,  # at sort facility
    "CH": NOTE,  # location changed
    "DD": NOTE,  # delivery delay
}

# USPS Tracking 3.0 `trackingEvents[].eventCode` (USPS Web Tools "Tracking
# event codes" table).
USPS_CODES: dict[str, Rule] = {
    "MA": IGNORE,  # "Pre-Shipment Info Sent to USPS": the label
    "GX": IGNORE,  # "Shipping Label Created, USPS Awaiting Item"
    "03": Rule(K.PICKED_UP),  # "USPS in possession of item" (accepted)
    "OA": Rule(K.PICKED_UP),  # accepted at USPS origin facility
    "80": Rule(K.PICKED_UP),  # picked up by shipping partner
    "10": Rule(K.ARRIVED_HUB),  # arrived at USPS regional origin facility
    "A1": Rule(K.ARRIVED_HUB),  # arrived at USPS regional facility
    "07": Rule(K.ARRIVED_HUB),  # arrived at post office (arrival at unit)
    "T1": Rule(K.DEPARTED_HUB),  # departed USPS regional facility
    "SF": Rule(K.DEPARTED_HUB),  # departed post office
    "L1": Rule(K.DEPARTED_HUB),  # departed USPS facility
    "TL": Rule(K.IN_TRANSIT_SCAN),  # in transit to next facility
    "U1": Rule(K.IN_TRANSIT_SCAN),  # in transit
    "PC": Rule(K.IN_TRANSIT_SCAN),  # sorting complete
    "OF": Rule(K.OUT_FOR_DELIVERY),
    "01": Rule(K.DELIVERED),
    "17": Rule(K.DELIVERED),  # picked up by agent
    "02": Rule(K.DELIVERY_ATTEMPTED),  # notice left (no authorized recipient)
    "52": Rule(K.DELIVERY_ATTEMPTED),  # notice left
    "53": Rule(K.DELIVERY_ATTEMPTED),  # receptacle blocked
    "55": Rule(K.DELIVERY_ATTEMPTED),  # receptacle full / item oversized
    "56": Rule(K.DELIVERY_ATTEMPTED),  # no secure location available
    "51": Rule(K.DELIVERY_ATTEMPTED),  # business closed
    "14": Rule(K.AVAILABLE_FOR_PICKUP),  # arrival at pickup point
    "16": Rule(K.AVAILABLE_FOR_PICKUP),  # available for pickup
    "57": Rule(K.AVAILABLE_FOR_PICKUP),  # held at post office
    "09": Rule(K.RETURNED),  # return to sender
    "29": Rule(K.RETURNED),  # return to sender: not picked up
    "31": Rule(K.RETURNED),  # return to sender: processed
    "04": EXCEPTION,  # refused
    "05": EXCEPTION,  # undeliverable as addressed
    "08": EXCEPTION,  # missent
    "21": EXCEPTION,  # no such number
    "22": EXCEPTION,  # insufficient address
    "23": EXCEPTION,  # moved, left no address
    "25": EXCEPTION,  # addressee unknown
    "44": EXCEPTION,  # customer recall
}

# DHL Express checkpoint codes (XML-PI `ServiceEvent/EventCode`, the same as
# MyDHL API's `events[].typeCode`).
DHL_CODES: dict[str, Rule] = {
    "SA": IGNORE,  # shipment acceptance (data received)
    "PU": Rule(K.PICKED_UP),  # shipment picked up
    "AF": Rule(K.ARRIVED_HUB),  # arrived at DHL facility
    "AR": Rule(K.ARRIVED_HUB),  # arrived at delivery facility
    "PL": Rule(K.ARRIVED_HUB),  # processed at location
    "DF": Rule(K.DEPARTED_HUB),  # departed facility
    "PO": Rule(K.DEPARTED_HUB),  # departing origin
    "RW": IGNORE,  # weighed (no text)
    "TR": Rule(K.IN_TRANSIT_SCAN),  # transferred through
    "CR": Rule(K.IN_TRANSIT_SCAN),  # clearance processing complete
    "IC": Rule(K.IN_TRANSIT_SCAN),  # in clearance processing
    "WC": Rule(K.OUT_FOR_DELIVERY),  # with delivery courier
    "OK": Rule(K.DELIVERED),  # delivered
    "DD": Rule(K.DELIVERED),  # delivered damaged
    "NH": Rule(K.DELIVERY_ATTEMPTED),  # not home
    "CA": Rule(K.DELIVERY_ATTEMPTED),  # closed on arrival
    "CM": Rule(K.DELIVERY_ATTEMPTED),  # customer moved
    "CC": Rule(K.AVAILABLE_FOR_PICKUP),  # awaiting collection by recipient
    "RT": Rule(K.RETURNED),  # returned to shipper
    "BA": EXCEPTION,  # bad address
    "RD": EXCEPTION,  # refused delivery
    "HP": EXCEPTION,  # held for payment
    "OH": EXCEPTION,  # on hold
    "CD": EXCEPTION,  # clearance delay
    "MS": EXCEPTION,  # misrouted
    "UD": EXCEPTION,  # uncontrollable delay
    "ND": EXCEPTION,  # not delivered
    "DS": EXCEPTION,  # destroyed
    "SM": NOTE,  # scheduled for movement
    "AD": NOTE,  # agreed delivery
    "RR": NOTE,  # response received
}

# karrio's normalized status (TrackingStatus names), for a provider code none
# of the tables above knows yet.
NORMALIZED: dict[str, Rule] = {
    "pending": IGNORE,
    "picked_up": Rule(K.PICKED_UP),
    "in_transit": Rule(K.IN_TRANSIT_SCAN),
    "out_for_delivery": Rule(K.OUT_FOR_DELIVERY),
    "delivered": Rule(K.DELIVERED),
    "delivery_failed": Rule(K.DELIVERY_ATTEMPTED),
    "ready_for_pickup": Rule(K.AVAILABLE_FOR_PICKUP),
    "return_to_sender": Rule(K.RETURNED),
    "on_hold": EXCEPTION,
    "delivery_delayed": EXCEPTION,
    "cancelled": EXCEPTION,
    "unknown": NOTE,
}

PROVIDER_CODES: dict[str, dict[str, Rule]] = {
    TrackingProvider.UPS: UPS_CODES,
    TrackingProvider.FEDEX: FEDEX_CODES,
    TrackingProvider.USPS: USPS_CODES,
    TrackingProvider.DHL_EXPRESS: DHL_CODES,
}

# Located kinds without a known Location become the unlocated scan with the
# same status target, so a carrier's unknown hub never blocks the event.
UNLOCATED: dict[str, str] = {
    K.ARRIVED_HUB: K.IN_TRANSIT_SCAN,
    K.DEPARTED_HUB: K.IN_TRANSIT_SCAN,
}


def status_rule(
    push_format: str, *, code: str, status_type: str = "", normalized: str = ""
) -> Rule | None:
    """The table's rule for a carrier status, or None when it has none.

    `push_format` is a PushFormat (push webhooks) or a TrackingProvider (the
    carrier tracking sync); for a provider, a code its table does not know
    falls back on UPS's status type, then on karrio's normalized status."""
    if push_format in PROVIDER_CODES:
        code, status_type = code.strip().upper(), status_type.strip().upper()
        rule = PROVIDER_CODES[push_format].get(code)
        if rule is None and push_format == TrackingProvider.UPS:
            rule = UPS_TYPES.get(status_type)
        return rule or NORMALIZED.get(normalized.strip().lower())
    if push_format == PushFormat.UPS_TRACK_ALERT:
        code, status_type = code.strip().upper(), status_type.strip().upper()
        return UPS_CODES.get(code) or UPS_TYPES.get(status_type)
    if push_format == PushFormat.GENERIC:
        return GENERIC.get(code.strip().lower())
    raise ValueError(f"Unknown push format {push_format!r}")


@dataclass(frozen=True)
class CarrierLocation:
    code: str = ""  # the carrier's facility code, when it sends one
    name: str = ""
    city: str = ""
    region: str = ""
    postcode: str = ""
    country: str = ""

    @property
    def text(self) -> str:
        parts = [self.name, self.city, self.region, self.postcode, self.country]
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class CarrierEvent:
    """One carrier event, whatever format or API it came from."""

    tracking_number: str
    event_id: str  # stable per carrier event: the timeline's external_id
    code: str  # the carrier's status code, as its table keys it
    occurred_at: datetime
    status_type: str = ""
    description: str = ""
    location: CarrierLocation = field(default_factory=CarrierLocation)
    extra: Mapping[str, Any] = field(default_factory=dict)
    normalized_status: str = ""  # karrio's (picked_up, in_transit…), polled only


@dataclass(frozen=True)
class Places:
    """The active Locations, indexed the ways a carrier names a place."""

    by_code: Mapping[str, str]
    by_city: Mapping[tuple[str, str], list[str]]  # (CITY, COUNTRY) → codes

    @classmethod
    def load(cls) -> Places:
        # Hubs number in the tens or hundreds: one read per batch beats one
        # case-insensitive query per carrier event.
        by_code: dict[str, str] = {}
        by_city: dict[tuple[str, str], list[str]] = {}
        rows = Location.objects.filter(is_active=True).values_list(
            "code", "city", "country"
        )
        for code, city, country in rows:
            by_code[code.upper()] = code
            by_city.setdefault((city.upper(), country.upper()), []).append(code)
            by_city.setdefault((city.upper(), ""), []).append(code)
        return cls(by_code, by_city)

    def code_for(self, place: CarrierLocation) -> str:
        """The Location a carrier place is: by the carrier's facility code,
        else by city (and country) when exactly one matches; "" when none
        (creating Locations is the carrier sync's business, issue 14)."""
        if place.code and (code := self.by_code.get(place.code.upper())):
            return code
        if place.city:
            codes = self.by_city.get((place.city.upper(), place.country.upper()), [])
            if len(codes) == 1:
                return codes[0]
        return ""


def delivery_date_update(push_format: str, event: CarrierEvent) -> date | str | None:
    """The new delivery date a carrier event announces instead of a scan:
    a UPS Track Alert of type U ("Update", a new scheduled delivery date).
    None for every other event; a sentence when the date cannot be read."""
    if push_format != PushFormat.UPS_TRACK_ALERT or event.status_type != "U":
        return None
    raw = str(event.extra.get("ups_scheduledDeliveryDate", ""))
    try:
        return datetime.strptime(raw, "%Y%m%d").date()  # noqa: DTZ007 - a date
    except ValueError:
        return "The update has no scheduledDeliveryDate as YYYYMMDD."


def carrier_checkpoint(
    push_format: str, event: CarrierEvent, *, places: Places
) -> tuple[CheckpointIn | None, str]:
    """The checkpoint a carrier event becomes, or (None, why it is not one)."""
    rule = status_rule(
        push_format,
        code=event.code,
        status_type=event.status_type,
        normalized=event.normalized_status,
    )
    unknown = rule is None
    if rule is None:
        # A status the table does not know yet: kept as a note, status alone.
        rule = NOTE
    if rule.kind is None:
        return None, f"Carrier status {event.code or event.status_type} is ignored."
    data: dict[str, Any] = {
        "carrier_status": event.code,
        "carrier_text": event.description,
    }
    if event.status_type:
        data["carrier_status_type"] = event.status_type
    if event.normalized_status:
        data["carrier_normalized_status"] = event.normalized_status
    if unknown:
        data["carrier_status_unknown"] = True
    if rule.carrier_exception:
        data["carrier_exception"] = True
    code = places.code_for(event.location)
    if event.location.text:
        data["carrier_location"] = event.location.text
    kind = rule.kind
    if not code:
        kind = UNLOCATED.get(kind, kind)
    data.update(event.extra)
    return CheckpointIn(
        reference=event.tracking_number,
        kind=kind,
        occurred_at=event.occurred_at,
        location=code,
        notes=event.description[:2000] if kind == K.NOTE else "",
        external_id=event.event_id[:100],
        data=data,
    ), ""
