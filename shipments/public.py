"""The public tracking page: what a customer may see, and its page cache.

`public_tracking` builds a dataclass of public-safe fields from its own two
queries, so a personal field cannot reach the page by accident: the template
never sees a model. Names, addresses, emails, phones, staff and notes stay out.

The rendered page is cached per shipment and language. A page is stored with
the shipment's cache generation at the time it was read; recording an event
bumps the generation (on commit), so a page rendered from data read before the
event can never be served after it, even if it was stored after the bump.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from shipments.models import Feedback, Shipment, TrackingEvent
from shipments.status import CLOSED, EventKind, ShipmentStatus
from tracksop import dates
from tracksop.http import rate_split, rate_usage

log = logging.getLogger(__name__)

S = ShipmentStatus
K = EventKind

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")

# What each public event says, in plain words. Kinds missing here (checks,
# notes, corrections, detail edits) are internal and never shown.
DESCRIPTIONS: dict[str, Any] = {
    K.CREATED: _("We received the shipment details"),
    K.DISPATCHED: _("Handed to the carrier"),
    K.PICKED_UP: _("Picked up by the carrier"),
    K.ARRIVED_HUB: _("Arrived at a sorting centre"),
    K.DEPARTED_HUB: _("Left the sorting centre"),
    K.IN_TRANSIT_SCAN: _("On its way"),
    K.OUT_FOR_DELIVERY: _("Out for delivery"),
    K.DELIVERY_ATTEMPTED: _("We tried to deliver it"),
    K.AVAILABLE_FOR_PICKUP: _("Ready to collect at the pickup point"),
    K.DELIVERED: _("Delivered"),
    K.RETURNED: _("Returned to the sender"),
    K.EXCEPTION_REPORTED: _("A problem is holding it up"),
    K.EXCEPTION_UPDATED: _("New time for solving the problem"),
    K.EXCEPTION_RESOLVED: _("The problem is solved"),
    K.ETA_CHANGED: _("New estimated delivery date"),
    K.CANCELLED: _("Shipment cancelled"),
}

HEADLINES: dict[str, Any] = {
    S.CREATED: _("Being prepared"),
    S.READY: _("Being prepared"),
    S.DISPATCHED: _("Handed to the carrier"),
    S.IN_TRANSIT: _("On its way"),
    S.OUT_FOR_DELIVERY: _("Out for delivery today"),
    S.AVAILABLE_FOR_PICKUP: _("Ready to collect"),
    S.EXCEPTION: _("Delayed by a problem"),
    S.DELIVERED: _("Delivered"),
    S.RETURNED: _("Returned to the sender"),
    S.CANCELLED: _("Cancelled"),
}

# The progress bar: where each status stands on the way to the door.
STEP_OF: dict[str, int] = {
    S.DISPATCHED: 0,
    S.IN_TRANSIT: 1,
    S.OUT_FOR_DELIVERY: 2,
    S.AVAILABLE_FOR_PICKUP: 2,
    S.DELIVERED: 3,
}
STEPS = (
    pgettext_lazy("progress step", "Dispatched"),
    pgettext_lazy("progress step", "On its way"),
    pgettext_lazy("progress step", "Out for delivery"),
    pgettext_lazy("progress step", "Delivered"),
)
PICKUP_STEP = pgettext_lazy("progress step", "Ready to collect")

# How customers read an exception's cause is the exceptions app's to say, in
# the data of the events it writes: `public_cause`, a msgid translated when
# shown, empty for a cause typed by staff (which could name people). Events
# written before that key keep their data (the log is append-only, down to a
# trigger): for them the app names at start the cause codes whose `cause` is
# listed wording (`legacy_public_causes_add`); any other is never shown.
_legacy_public_causes: set[str] = set()


@dataclass(frozen=True)
class Step:
    label: str
    state: str  # "done", "current", "todo"


@dataclass(frozen=True)
class Checkpoint:
    when: datetime  # in the zone of the place it happened
    description: str
    place: str


@dataclass(frozen=True)
class Problem:
    cause: str
    expected_resolution: datetime | None


@dataclass(frozen=True)
class PublicTracking:
    token: str
    status: str
    headline: str
    steps: tuple[Step, ...]
    estimated_delivery: date | None
    delivered_at: datetime | None
    carrier: str
    tracking_number: str
    carrier_url: str
    checkpoints: tuple[Checkpoint, ...]
    problem: Problem | None
    can_give_feedback: bool
    feedback_given: bool
    is_closed: bool


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or settings.TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _steps(status: str, resume_status: str) -> tuple[Step, ...]:
    shown = resume_status if status == S.EXCEPTION else status
    if shown not in STEP_OF:
        return ()
    at = STEP_OF[shown]
    labels = list(STEPS)
    if shown == S.AVAILABLE_FOR_PICKUP:
        labels[2] = PICKUP_STEP
    return tuple(
        Step(
            label=str(label),
            state="done"
            if i < at or shown == S.DELIVERED
            else "current"
            if i == at
            else "todo",
        )
        for i, label in enumerate(labels)
    )


def legacy_public_causes_add(codes: Iterable[str]) -> None:
    """Cause codes whose `cause` text customers may read in events written
    before `public_cause` (the exceptions app calls this from its ready())."""
    _legacy_public_causes.update(codes)


def public_cause(data: Mapping[str, Any]) -> str:
    """An exception event's cause as a customer may read it, in the active
    language: a listed cause by name, anything typed by staff as a vague
    phrase. The tracking page and the customers' messages both use this."""
    if "public_cause" in data:
        wording = str(data["public_cause"] or "")
    elif data.get("cause_code", "") in _legacy_public_causes:
        wording = str(data.get("cause") or "")
    else:
        wording = ""
    return gettext(wording) if wording else gettext("A problem with the delivery")


def _problem(events: list[TrackingEvent]) -> Problem | None:
    """The open exception, from the last report or update in the log."""
    for event in reversed(events):
        if event.kind in (K.EXCEPTION_REPORTED, K.EXCEPTION_UPDATED):
            cause = public_cause(event.data)
            when = parse_datetime(event.data.get("expected_resolution") or "")
            return Problem(
                cause=cause,
                expected_resolution=dates.localtime(when, _zone(None))
                if when and timezone.is_aware(when)
                else None,
            )
    return None


def public_tracking(*, token: str) -> PublicTracking | None:
    """What the public page shows for a token, or None. Two queries."""
    if not TOKEN_RE.match(token):
        return None
    shipment = (
        Shipment.objects.select_related("carrier")
        .annotate(has_feedback=Exists(Feedback.objects.filter(shipment=OuterRef("pk"))))
        .only(
            "status",
            "resume_status",
            "estimated_delivery",
            "delivered_at",
            "tracking_number",
            "public_token",
            "carrier__name",
            "carrier__tracking_url_template",
        )
        .filter(public_token=token)
        .first()
    )
    if shipment is None:
        return None
    events = list(
        TrackingEvent.objects.filter(
            shipment_id=shipment.pk,
            kind__in=list(DESCRIPTIONS),
            voided_by__isnull=True,
        )
        .select_related("location")
        .only(
            "kind",
            "occurred_at",
            "data",
            "location__city",
            "location__country",
            "location__timezone",
        )
        .order_by("occurred_at", "id")
    )
    checkpoints = tuple(
        Checkpoint(
            when=dates.localtime(
                e.occurred_at, _zone(e.location.timezone if e.location else None)
            ),
            description=str(DESCRIPTIONS[e.kind]),
            place=f"{e.location.city}, {e.location.country}" if e.location else "",
        )
        for e in reversed(events)
    )
    delivered = shipment.status == S.DELIVERED
    # Times are shown where they happened (the page is cached for everyone,
    # so never in a visitor's zone); the rest in the company's zone.
    last_zone = checkpoints[0].when.tzinfo if checkpoints else _zone(None)
    return PublicTracking(
        token=token,
        status=shipment.status,
        headline=str(HEADLINES[shipment.status]),
        steps=_steps(shipment.status, shipment.resume_status),
        estimated_delivery=shipment.estimated_delivery,
        delivered_at=dates.localtime(shipment.delivered_at, last_zone)
        if shipment.delivered_at
        else None,
        carrier=shipment.carrier.name if shipment.carrier else "",
        tracking_number=shipment.tracking_number or "",
        carrier_url=shipment.tracking_url,
        checkpoints=checkpoints,
        problem=_problem(events) if shipment.status == S.EXCEPTION else None,
        can_give_feedback=delivered and not shipment.has_feedback,
        feedback_given=shipment.has_feedback,
        is_closed=shipment.status in CLOSED,
    )


# --- the page cache ----------------------------------------------------------


@dataclass(frozen=True)
class Page:
    body: str
    etag: str


PAGE_TIMEOUT = 3600
# Outlives every page stored under it, so a page never outlives its generation.
GENERATION_TIMEOUT = 2 * PAGE_TIMEOUT


def _keys(token: str, language: str) -> tuple[str, str]:
    return f"public:gen:{token}", f"public:page:{token}:{language}"


def tracking_page(*, token: str, language: str) -> Page | None:
    """The rendered page for a token in a language: from the cache when its
    generation is current, else rendered and stored. None: no such shipment.
    The cache is an optimisation: when it is down the page is rendered."""
    gen_key, page_key = _keys(token, language)
    try:
        cached = cache.get_many([gen_key, page_key])
        generation = cached.get(gen_key)
        if generation is None:
            # A fresh, never-reused start, so no page stored under an
            # evicted generation can match it.
            cache.add(gen_key, time.time_ns(), GENERATION_TIMEOUT)
            generation = cache.get(gen_key)
        hit = cached.get(page_key)
        if hit and generation is not None and hit[0] == generation:
            return Page(body=hit[1], etag=hit[2])
    except Exception:
        log.warning("Public page cache unavailable", exc_info=True)
        generation = None
    data = public_tracking(token=token)
    if data is None:
        return None
    body = render_to_string(
        "public/tracking.html",
        {"t": data, "company": settings.TRACKSOP_COMPANY_NAME},
    )
    etag = '"' + hashlib.blake2b(body.encode(), digest_size=12).hexdigest() + '"'
    if generation is not None:
        try:
            cache.set(page_key, (generation, body, etag), PAGE_TIMEOUT)
        except Exception:
            log.warning("Public page cache unavailable", exc_info=True)
    return Page(body=body, etag=etag)


def tracking_page_forget(token: str) -> None:
    """Make every cached page of this shipment stale. Call on commit of any
    change the page shows (an event, feedback)."""
    gen_key, _page = _keys(token, "")
    try:
        cache.incr(gen_key)
    except ValueError:
        pass  # no generation yet: no page is cached under one either
    except Exception:
        log.warning("Public page cache unavailable", exc_info=True)


def tracking_pages_forget(tokens: Sequence[str]) -> None:
    """`tracking_page_forget` for many shipments in one round trip (a batch
    of scans touches a thousand). Deleting a generation is as good as
    bumping it: the next reader starts a fresh one (`time.time_ns()`), which
    no page stored before can match, as after an eviction."""
    if not tokens:
        return
    try:
        cache.delete_many([_keys(token, "")[0] for token in tokens])
    except Exception:
        log.warning("Public page cache unavailable", exc_info=True)


# --- lookup limits -----------------------------------------------------------


def _lookup_limits(number: str, client: str) -> tuple[tuple[str, str, str], ...]:
    """(group, value, rate) of the per-number and per-address-on-number counts."""
    _limit, period = rate_split(settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER)
    return (
        ("public-lookup-number", number, settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER),
        # One wrong guess per address and period once the number is under attack.
        ("public-lookup-number-client", f"{number}|{client}", f"1/{period}s"),
    )


def lookup_wait(*, number: str, client: str) -> int:
    """Seconds before `client` (an address) may try `number` again, else 0.

    Wrong guesses on a number are counted from all addresses together; past
    TRACKSOP_LOOKUP_RATE_PER_NUMBER the number is under attack, and from then
    on each address gets one wrong guess on it per period. An address that has
    not guessed wrong (the owner's new phone, the office) is never refused, so
    nobody else can lock the owner out, and a guesser needs a new address for
    every guess. Existing and unknown numbers are counted alike, so the answer
    says nothing about whether a number exists.
    """
    (group, value, rate), (own_group, own_value, own_rate) = _lookup_limits(
        number, client
    )
    attack = rate_usage(group=group, value=value, rate=rate, count=False)
    if attack.count < attack.limit:
        return 0
    own = rate_usage(group=own_group, value=own_value, rate=own_rate, count=False)
    return own.time_left if own.count >= own.limit else 0


def lookup_wrong_guess(*, number: str, client: str) -> None:
    for group, value, rate in _lookup_limits(number, client):
        rate_usage(group=group, value=value, rate=rate)


def public_lookup(*, tracking_number: str, second_factor: str) -> str | None:
    """The public token for a tracking number and what the customer knows of
    it (the destination postcode or the order number), else None. One query,
    whether the number exists or not; a wrong pair looks like no shipment."""
    row = (
        Shipment.objects.filter(tracking_number=tracking_number)
        .values_list("public_token", "recipient_postcode", "order_number")
        .first()
    )
    given = _squash(second_factor)
    token, postcode, order = row or ("", "", "")
    matched = bool(given) and (
        constant_time_compare(given, _squash(postcode))
        | constant_time_compare(given, _squash(order))
    )
    return token if row and matched else None


def _squash(value: str) -> str:
    # "SW1A 1AA", "sw1a-1aa" and "SW1A1AA" are one postcode; same for orders.
    return re.sub(r"[\s\-]+", "", value).upper()
