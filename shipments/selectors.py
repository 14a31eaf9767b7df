"""Reads for the staff pages: each decides its joins so pages stay constant-query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import phonenumbers
from django.conf import settings
from django.db.models import Count, F, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from shipments import tracking_numbers as tn
from shipments.models import (
    CarrierAccount,
    CarrierSync,
    Inquiry,
    Shipment,
    TrackingEvent,
)
from shipments.status import OPEN, EventKind

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AbstractUser, AnonymousUser

SEARCH_LIMIT = 50
SHIPMENT_ID_MAX = Shipment._meta.get_field("shipment_id").max_length or 40


@dataclass
class SearchResult:
    query: str
    shipments: list[Shipment] = field(default_factory=list)
    exact: Shipment | None = None
    truncated: bool = False


def _as_phone(query: str) -> str | None:
    digits = sum(ch.isdigit() for ch in query)
    if digits < 7 or any(ch.isalpha() for ch in query):
        return None
    try:
        number = phonenumbers.parse(query, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def shipment_search(
    *, user: AbstractBaseUser | AnonymousUser, query: str, limit: int = SEARCH_LIMIT
) -> SearchResult:
    """One box: tracking number (exact or prefix), shipment ID, order number,
    recipient email, phone or name. Every branch is served by an index."""
    # NUL cannot be in any field (nor in a PostgreSQL query): ignore it.
    text = query.replace("\x00", "").strip()[:200]
    result = SearchResult(query=text)
    if not text:
        return result
    code = tn.normalize(text)
    # Shipment IDs keep their dashes ("SH-…"), which normalising strips.
    ids = {code, text.upper()}
    exact = (
        Q(tracking_number=code) | Q(shipment_id__in=ids) | Q(order_number__iexact=text)
    )
    if "@" in text:
        exact |= Q(recipient_email__iexact=text)
    phone = _as_phone(text)
    if phone:
        exact |= Q(recipient_phone=phone)
    loose = Q()
    if len(code) >= 4 and code.isalnum():
        loose |= Q(tracking_number__startswith=code)
    if len(text) >= 3 and "@" not in text and not phone:
        loose |= Q(recipient_name__icontains=text)
    rows = list(
        Shipment.objects.filter(exact | loose)
        .select_related("carrier", "current_location")
        .order_by("-created_at")[: limit + 1]
    )
    result.truncated = len(rows) > limit
    result.shipments = rows[:limit]
    exact_hits = [
        s
        for s in result.shipments
        if s.tracking_number == code
        or s.shipment_id in ids
        or s.order_number.upper() == text.upper()
        or (s.recipient_email and s.recipient_email.upper() == text.upper())
        or (phone and str(s.recipient_phone) == phone)
    ]
    if len(exact_hits) == 1:
        result.exact = exact_hits[0]
    return result


def shipment_get(*, user: AbstractBaseUser | AnonymousUser, code: str) -> Shipment:
    if "\x00" in code or len(code) > SHIPMENT_ID_MAX:
        # No shipment ID holds these, and PostgreSQL refuses NUL in a query.
        raise Http404("No shipment has this shipment ID.")
    return get_object_or_404(
        Shipment.objects.select_related(
            "carrier",
            "current_location",
            "created_by",
            "checked_by",
            "feedback",
            # The carrier tracking panel: no query of its own.
            "carrier__account",
            "carrier_sync",
        ).defer("carrier__account__credentials"),
        shipment_id=code.upper(),
    )


@dataclass(frozen=True)
class TimelineEntry:
    event: TrackingEvent
    voided: bool
    is_inquiry: ClassVar[bool] = False

    @property
    def at(self) -> datetime:
        return self.event.occurred_at


def shipment_timeline(*, shipment: Shipment) -> list[TimelineEntry]:
    """All events in time order; voided ones stay, marked, with their correction."""
    events = list(
        TrackingEvent.objects.filter(shipment=shipment)
        .select_related("location", "recorded_by", "voids")
        .order_by("occurred_at", "id")
    )
    voided = {e.voids_id for e in events if e.kind == EventKind.CORRECTION}
    return [TimelineEntry(event=e, voided=e.id in voided) for e in events]


# --- carrier tracking sync ---------------------------------------------------


@dataclass(frozen=True)
class CarrierPanel:
    """The shipment page's "Carrier tracking" panel."""

    account: CarrierAccount
    sync: CarrierSync | None
    next_poll_at: datetime | None  # None: no poll planned (see `waiting`)
    waiting: str  # why no poll is planned, or "" when one is
    stale: bool

    @property
    def result(self) -> str:
        if self.sync is None or not self.sync.last_result:
            return "Not synced yet"
        return str(self.sync.get_last_result_display())


def carrier_panel(
    *, shipment: Shipment, now: datetime, stale_after: timedelta
) -> CarrierPanel | None:
    """The panel of a shipment whose carrier has an account, from the rows
    `shipment_get` joined (no query); None for the others."""
    carrier = shipment.carrier
    if carrier is None:
        return None
    try:
        account = carrier.account
    except CarrierAccount.DoesNotExist:
        return None
    try:
        sync: CarrierSync | None = shipment.carrier_sync
    except CarrierSync.DoesNotExist:
        sync = None
    next_poll_at = None
    waiting = ""
    if not account.is_active:
        waiting = "The carrier account is off."
    elif sync is not None and sync.is_done:
        waiting = "Finished: the carrier has nothing more to tell."
    elif shipment.is_closed:
        waiting = "The shipment is closed."
    elif sync is None:
        waiting = "At the next poll."
    else:
        next_poll_at = sync.next_due_at
        if account.backoff_until and account.backoff_until > next_poll_at:
            next_poll_at = account.backoff_until
    synced_at = sync.last_synced_at if sync else None
    since = synced_at or shipment.dispatched_at
    stale = (
        account.is_active
        and not shipment.is_closed
        and not (sync is not None and sync.is_done)
        and since is not None
        and since < now - stale_after
    )
    return CarrierPanel(
        account=account,
        sync=sync,
        next_poll_at=next_poll_at,
        waiting=waiting,
        stale=stale,
    )


def carrier_stale(
    queryset: QuerySet[Shipment], *, now: datetime, stale_after: timedelta
) -> QuerySet[Shipment]:
    """Shipments of a connected carrier whose carrier data is older than
    `stale_after`: the last successful sync is older, or there was none and
    the package was handed to the carrier before then. Done syncs (delivered,
    given up) are not stale; closed shipments are the caller's to leave out."""
    cutoff = now - stale_after
    return queryset.filter(
        Q(carrier_sync__isnull=True) | Q(carrier_sync__is_done=False),
        Q(carrier_sync__last_synced_at__lt=cutoff)
        | Q(carrier_sync__last_synced_at__isnull=True, dispatched_at__lt=cutoff),
        carrier__account__is_active=True,
        tracking_number__isnull=False,
    )


def monitor_queryset() -> QuerySet[Shipment]:
    """Open shipments, most urgent ETA first: the late ones (ETA passed) on
    top, those without an ETA yet (not dispatched) last. NULLS LAST is said
    outright because SQLite sorts NULL first; on PostgreSQL it is the
    default, so the `shipment_open_eta` index still serves the order."""
    return (
        Shipment.objects.filter(status__in=OPEN)
        .select_related("carrier", "current_location")
        .order_by(
            F("estimated_delivery").asc(nulls_last=True),
            F("dispatched_at").asc(nulls_last=True),
            "id",
        )
    )


def dashboard_counts() -> dict[str, Any]:
    """Open shipments per status and how many are past their ETA (two queries)."""
    open_qs = Shipment.objects.filter(status__in=OPEN)
    rows = open_qs.values("status").annotate(n=Count("id")).order_by()
    by_status = {row["status"]: row["n"] for row in rows}
    overdue = open_qs.filter(estimated_delivery__lt=timezone.localdate()).count()
    return {"by_status": by_status, "overdue": overdue, "open": sum(by_status.values())}


def shipments_by_codes(codes: Iterable[str]) -> dict[str, int]:
    """Scanned labels → shipment pk, as bulk scanning matches them: a label
    may carry our shipment ID (matched as is, upper case) or the tracking
    number (matched normalised). Unknown codes are left out (two queries)."""
    wanted = {code.strip().upper() for code in codes if code.strip()}
    by_number = {tn.normalize(code): code for code in wanted}
    found: dict[str, int] = dict(
        Shipment.objects.filter(shipment_id__in=list(wanted)).values_list(
            "shipment_id", "pk"
        )
    )
    for number, pk in Shipment.objects.filter(
        tracking_number__in=list(by_number)
    ).values_list("tracking_number", "pk"):
        found[by_number[str(number)]] = pk
    return found


# --- the customer service desk ---------------------------------------------------

VIEW_INQUIRY = "shipments.view_inquiry"


@dataclass(frozen=True)
class InquiryEntry:
    """A customer inquiry in the staff timeline (never in the public one)."""

    inquiry: Inquiry
    is_inquiry: ClassVar[bool] = True

    @property
    def at(self) -> datetime:
        return self.inquiry.created_at


def shipment_inquiries(
    *, user: AbstractUser | AnonymousUser, shipment: Shipment
) -> list[Inquiry]:
    """The shipment's inquiries, oldest first, with who logged and answered
    them and the exceptions reported from them (two queries); none, and no
    query, for someone who may not see them."""
    if not user.has_perm(VIEW_INQUIRY):
        return []
    return list(
        Inquiry.objects.filter(shipment=shipment)
        .select_related("created_by", "answered_by")
        .prefetch_related("exceptions")  # exceptions_mgmt's link to them
        .order_by("created_at", "id")
    )


def timeline_with_inquiries(
    timeline: list[TimelineEntry], inquiries: list[Inquiry]
) -> list[TimelineEntry | InquiryEntry]:
    """Events and inquiries in one time order, for the staff page only: the
    public page and the customer's messages read the event log alone."""
    merged: list[TimelineEntry | InquiryEntry] = [
        *timeline,
        *(InquiryEntry(inquiry=i) for i in inquiries),
    ]
    # Stable: the events keep their (time, id) order among themselves.
    return sorted(merged, key=lambda entry: entry.at)


def inquiry_get(*, shipment: Shipment, pk: int) -> Inquiry:
    return get_object_or_404(
        Inquiry.objects.select_related("created_by", "answered_by"),
        pk=pk,
        shipment=shipment,
    )


def inquiry_queue() -> QuerySet[Inquiry]:
    """Open inquiries, oldest first: the partial index `inquiry_open` serves
    the order, so the list costs the open rows, not the whole history."""
    return (
        Inquiry.objects.filter(status=Inquiry.Status.OPEN)
        .select_related("shipment", "created_by")
        .order_by("created_at", "id")
    )


def inquiry_open_count() -> int:
    return Inquiry.objects.filter(status=Inquiry.Status.OPEN).count()
