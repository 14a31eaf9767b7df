"""Who hears about what, on which channel: the notification rules.

Pure functions of their arguments and the settings: no queries, no writes, no
I/O. The outbox (`outbox.py`) asks them which rows to write; delivery
(`delivery.py`) asks them again just before sending and when to retry. To
change "who is notified of what", start here.
"""

from __future__ import annotations

import random
from typing import cast

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from notifications.models import Audience, Channel, Kind, Preference
from shipments.events import EtaChangedData, ExceptionData
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus

# The status an event must move the shipment into to count as a milestone.
_MILESTONE_STATUS: dict[str, str] = {
    ShipmentStatus.OUT_FOR_DELIVERY: Kind.OUT_FOR_DELIVERY,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: Kind.AVAILABLE_FOR_PICKUP,
    ShipmentStatus.DELIVERED: Kind.DELIVERED,
}


def milestone_for(
    *, event: TrackingEvent, shipment: Shipment, previous_status: str
) -> str | None:
    """The kind of message an event calls for, or None. Late and repeated
    scans that do not move the status tell the customer nothing new."""
    kind = event.kind
    if kind == EventKind.CORRECTION:
        # A supervisor fixing the record: the status it returns to is one the
        # customer already heard of, and a voided mistake (an exception that
        # never was) must not read as news, least of all as "resolved".
        return None
    if kind == EventKind.DISPATCHED:
        return Kind.DISPATCHED
    if kind == EventKind.EXCEPTION_REPORTED:
        # Found by the late-shipment sweep: to the customer it is a delay.
        report = cast(ExceptionData, event.data)
        return Kind.DELAY if report.get("detected") else Kind.EXCEPTION
    if kind == EventKind.EXCEPTION_UPDATED:
        return Kind.EXCEPTION
    if kind == EventKind.EXCEPTION_RESOLVED:
        return Kind.EXCEPTION_RESOLVED
    if kind == EventKind.ETA_CHANGED:
        eta = cast(EtaChangedData, event.data)
        old, new = eta.get("from") or "", eta.get("to") or ""
        return Kind.DELAY if old and new and new > old else None
    if shipment.status == previous_status:
        return None
    if (
        shipment.status == ShipmentStatus.IN_TRANSIT
        and previous_status == ShipmentStatus.DISPATCHED
    ):
        return Kind.IN_TRANSIT
    return _MILESTONE_STATUS.get(shipment.status)


def enabled(kind: str) -> bool:
    """Whether messages of this kind are sent at all (a setting)."""
    return kind in settings.TRACKSOP_NOTIFY_KINDS


def audiences(kind: str, shipment: Shipment) -> list[str]:
    """The parties of the shipment a message of this kind goes to. (Addresses
    added on the tracking page hear of every milestone as well.)"""
    if kind == Kind.DISPATCHED and shipment.notify_sender:
        return [Audience.RECIPIENT, Audience.SENDER]
    return [Audience.RECIPIENT]


def declined(choice: str, channel: str) -> bool:
    """Whether a party's preference (`Preference.Choice`) turns this channel off."""
    return choice not in (Preference.Choice.BOTH, channel)


def party_address(shipment: Shipment, audience: str, channel: str) -> str:
    """The address a party of the shipment has for a channel (may be empty)."""
    prefix = "recipient" if audience == Audience.RECIPIENT else "sender"
    if channel == Channel.EMAIL:
        return str(getattr(shipment, f"{prefix}_email") or "").strip()
    phone = getattr(shipment, f"{prefix}_phone")
    return str(phone.as_e164 if hasattr(phone, "as_e164") else phone or "").strip()


def address_problem(channel: str, address: str, *, where: str = "the shipment") -> str:
    """Why a message cannot go to this address; empty when it can."""
    if channel == Channel.EMAIL:
        if not address:
            return f"No email address on {where}."
        try:
            validate_email(address)
        except ValidationError:
            return f"The email address {address!r} is not valid."
        return ""
    if not address:
        return f"No phone number on {where}."
    try:
        number = phonenumbers.parse(address, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return f"The phone number {address!r} is not a phone number."
    if not phonenumbers.is_valid_number(number):
        return f"The phone number {address!r} is not valid."
    return ""


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter: about BASE·2^(n-1), capped, ±50%."""
    ceiling = float(
        min(
            settings.TRACKSOP_NOTIFY_RETRY_MAX_SECONDS,
            settings.TRACKSOP_NOTIFY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
        )
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311
