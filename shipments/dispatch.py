"""Order preparation and dispatch: the final check and the hand-over to the
carrier (SOP steps 1, 3 and 5).

`shipment_check` records who checked what and when; both results must pass
for READY. `shipment_dispatch` validates the carrier's tracking number (or
generates one for the own fleet), records it with the ETA and moves the
shipment to DISPATCHED. Both write through `services.event_append`, under the
shipment's row lock.
"""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from shipments import bounds
from shipments import tracking_numbers as tn
from shipments.events import CheckData, DispatchedData
from shipments.models import Carrier, Shipment, Source
from shipments.services import PRE_DISPATCH, acting_user, event_append, shipment_lock
from shipments.status import EventKind, TransitionRefused

if TYPE_CHECKING:
    from shipments.services import User

__all__ = ["shipment_check", "shipment_dispatch", "tracking_number_generate"]


def shipment_check(
    *,
    shipment: Shipment,
    user: User | None,
    quality_ok: bool,
    quantity_ok: bool,
    notes: str = "",
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    """Record the final quality and quantity check; both must pass for READY."""
    passed = quality_ok and quantity_ok
    if not passed and not notes.strip():
        raise ValidationError({"notes": "Say what is wrong when a check fails."})
    now = timezone.now()
    with transaction.atomic():
        locked = shipment_lock(shipment, expected_version)
        if locked.status not in PRE_DISPATCH:
            raise TransitionRefused(
                f"Shipment {locked.shipment_id} is already "
                f"{locked.get_status_display()}; the check happens before dispatch."
            )
        locked.checked_by = acting_user(user)
        locked.checked_at = now
        locked.quality_ok = quality_ok
        locked.quantity_ok = quantity_ok
        locked.check_notes = notes
        event_append(
            locked,
            kind=EventKind.CHECK_PASSED if passed else EventKind.CHECK_FAILED,
            occurred_at=now,
            user=user,
            source=source,
            integration=integration,
            notes=notes,
            data=CheckData(quality_ok=quality_ok, quantity_ok=quantity_ok),
        )
    return locked


def tracking_number_generate() -> str:
    """A fresh S10 number for the own fleet, unused by any shipment."""
    while True:
        number = tn.s10_generate(
            prefix=settings.TRACKSOP_S10_PREFIX,
            serial=secrets.randbelow(100_000_000),
            country=settings.TRACKSOP_S10_COUNTRY,
        )
        if not Shipment.objects.filter(tracking_number=number).exists():
            return number


def shipment_dispatch(
    *,
    shipment: Shipment,
    user: User | None,
    carrier: Carrier,
    tracking_number: str,
    estimated_delivery: date,
    expected_version: int | None = None,
    source: str = Source.FORM,
    integration: str = "",
) -> Shipment:
    """Hand the shipment to its carrier: tracking number and ETA → DISPATCHED."""
    now = timezone.now()
    errors: dict[str, str] = {}
    routing_zip = ""
    if tracking_number.strip():
        try:
            candidate = tn.validate(tracking_number, carrier.family)
        except tn.InvalidTrackingNumber as exc:
            errors["tracking_number"] = str(exc)
        else:
            number, routing_zip = candidate.number, candidate.routing_zip
    elif carrier.is_own_fleet:
        number = tracking_number_generate()
    else:
        errors["tracking_number"] = (
            f"Enter the tracking number {carrier.name} gave for this shipment."
        )
    eta_problem = bounds.eta_error(
        estimated_delivery,
        created_at=shipment.created_at,
        today=timezone.localdate(now),
    )
    if eta_problem:
        errors["estimated_delivery"] = eta_problem
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            locked = shipment_lock(shipment, expected_version)
            clash = (
                Shipment.objects.filter(tracking_number=number)
                .exclude(pk=locked.pk)
                .values_list("shipment_id", flat=True)
                .first()
            )
            if clash:
                raise ValidationError(
                    {"tracking_number": f"Shipment {clash} already has this number."}
                )
            if routing_zip:
                _routing_zip_apply(locked, routing_zip)
            locked.carrier = carrier
            locked.tracking_number = number
            locked.estimated_delivery = estimated_delivery
            locked.dispatch_eta = estimated_delivery
            locked.dispatched_at = now
            event_append(
                locked,
                kind=EventKind.DISPATCHED,
                occurred_at=now,
                user=user,
                source=source,
                integration=integration,
                data=_dispatched_data(carrier, number, estimated_delivery, routing_zip),
            )
    except IntegrityError as exc:
        raise ValidationError(
            {"tracking_number": "Another shipment has this tracking number."}
        ) from exc
    return locked


def _dispatched_data(
    carrier: Carrier, number: str, estimated_delivery: date, routing_zip: str
) -> DispatchedData:
    data = DispatchedData(
        carrier=carrier.code,
        tracking_number=number,
        estimated_delivery=estimated_delivery.isoformat(),
    )
    if routing_zip:
        data["routing_zip"] = routing_zip
    return data


def _routing_zip_apply(shipment: Shipment, routing_zip: str) -> None:
    """A scanned USPS label names the ZIP code it is routed to: it must be the
    shipment's postcode (its first 5 digits), or become it when there is none.
    No field of its own: the destination postcode already says where the
    package goes, and the dispatch event keeps the ZIP as scanned."""
    zip5 = routing_zip[:5]
    postcode = shipment.recipient_postcode.strip()
    if not postcode:
        shipment.recipient_postcode = (
            f"{zip5}-{routing_zip[5:]}" if len(routing_zip) == 9 else zip5
        )
    elif re.sub(r"[\s-]", "", postcode)[:5] != zip5:
        raise ValidationError(
            {
                "tracking_number": f"This label is routed to ZIP code {zip5}, but "
                f"the shipment goes to {postcode}: check that it is this "
                "package's label."
            }
        )
