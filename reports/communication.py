"""Customer communication and service: the messages TrackSOP sends customers
about their shipments, and the questions customers ask customer service.

Plain data for a period and filters, in the shape rules of `reports.metrics`
(whose helpers this module uses; metrics never imports it, so there is no
cycle). The database counts and groups; the percentiles are taken in Python
from the few durations. Each definition is the docstring of its function.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from notifications.models import Audience, Channel, Kind, Notification, Status
from reports.metrics import belongs, cell, percentile
from reports.periods import Filters, Period
from shipments.models import Inquiry

SEND_QUANTILES = (("p50", 0.5), ("p95", 0.95))
ANSWER_QUANTILES = (("p50", 0.5), ("p90", 0.9))
OUTCOMES = ("sent", "failed", "suppressed", "pending")
# A message still queued or being sent when the report is made is pending.
OUTCOME_OF = {
    Status.SENT: "sent",
    Status.FAILED: "failed",
    Status.SUPPRESSED: "suppressed",
    Status.PENDING: "pending",
    Status.SENDING: "pending",
}


def _minutes(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def customer_messages(period: Period, filters: Filters) -> QuerySet[Notification]:
    """The messages to customers written in the period, about shipments in
    the filters (report emails and staff alerts are not to customers)."""
    start, end = period.bounds()
    return Notification.objects.filter(
        belongs(filters), created_at__gte=start, created_at__lt=end
    ).exclude(audience=Audience.STAFF)


def _outcomes(counts: dict[str, int]) -> dict[str, Any]:
    total = sum(counts.get(o, 0) for o in OUTCOMES)
    found: dict[str, Any] = {"messages": total}
    for outcome in OUTCOMES:
        found[outcome] = counts.get(outcome, 0)
    for outcome in OUTCOMES[:3]:
        found[f"{outcome}_rate"] = cell(found[outcome], total)
    return found


def messages(period: Period, filters: Filters) -> dict[str, Any]:
    """Messages: the emails and SMS to customers (recipient, sender, or an
    address added on the tracking page) about shipments in the filters,
    written in the period (by the time the message was created, company
    time). A resend is a message of its own; staff alerts and report emails
    are left out. By kind and channel: how many were sent (handed to the mail
    or SMS provider), failed (given up after the retries), suppressed (not
    sent on purpose: the customer turned that channel off, or there was no
    valid address) and are still pending, and the sent, failed and suppressed
    shares of all of them. Time to send: from the moment the tracking event
    that caused a message was recorded in TrackSOP to the moment the message
    was sent, in minutes, p50 / p95, over the sent messages an event caused
    (resends and confirmation codes have none). The event's recorded time,
    not the time it happened: a carrier scan that reaches us hours late
    cannot be told about sooner."""
    rows = customer_messages(period, filters)
    grouped: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for kind, channel, status, n in (
        rows.values("kind", "channel", "status")
        .annotate(n=Count("pk"))
        .values_list("kind", "channel", "status", "n")
    ):
        outcome = OUTCOME_OF[Status(status)]
        counts = grouped[kind, channel]
        counts[outcome] = counts.get(outcome, 0) + n
        totals[outcome] += n
    kinds, channels = list(Kind.values), list(Channel.values)
    by_kind_channel = [
        {"kind": kind, "channel": channel, **_outcomes(grouped[kind, channel])}
        for kind, channel in sorted(
            grouped, key=lambda k: (kinds.index(k[0]), channels.index(k[1]))
        )
    ]
    durations = [
        _minutes(recorded, sent)
        for sent, recorded in rows.filter(
            status=Status.SENT, sent_at__isnull=False, event__isnull=False
        ).values_list("sent_at", "event__recorded_at")
        if sent is not None
    ]
    return {
        **_outcomes(totals),
        "by_kind_channel": by_kind_channel,
        "timed": len(durations),
        "send_minutes": {q: percentile(durations, s) for q, s in SEND_QUANTILES},
    }


def inquiries(period: Period, filters: Filters, shipments: int) -> dict[str, Any]:
    """Inquiries: questions customers asked customer service (by phone,
    email, chat and so on) about shipments in the filters, received in the
    period (by the time the inquiry was recorded, company time). Per 100
    shipments dispatched in the period (the "where is my package" rate, on
    the same base as exceptions per 100), overall and by the channel the
    question came in by. Time to answer: from the inquiry being recorded to
    its answer being recorded (an inquiry is answered once), in hours, p50 /
    p90, over those of them answered so far. Unanswered: received in the
    period and still without an answer at the period's end."""
    start, end = period.bounds()
    rows = Inquiry.objects.filter(
        belongs(filters), created_at__gte=start, created_at__lt=end
    )
    counted = {
        channel: (n, answered)
        for channel, n, answered in rows.values("channel")
        .annotate(n=Count("pk"), answered=Count("answered_at"))
        .values_list("channel", "n", "answered")
    }
    unanswered = rows.filter(
        Q(answered_at__isnull=True) | Q(answered_at__gte=end)
    ).count()
    durations: dict[str, list[float]] = defaultdict(list)
    for channel, received, answered_at in rows.filter(
        answered_at__isnull=False
    ).values_list("channel", "created_at", "answered_at"):
        if answered_at is not None:
            durations[channel].append(_hours(received, answered_at))
    everything = [d for found in durations.values() for d in found]
    count = sum(n for n, _ in counted.values())
    by_channel = [
        {
            "channel": channel,
            "inquiries": counted[channel][0],
            "per_100": cell(counted[channel][0], shipments),
            "answered": counted[channel][1],
            **{
                f"answer_{q}": percentile(durations[channel], s)
                for q, s in ANSWER_QUANTILES
            },
        }
        for channel in Inquiry.Channel.values
        if channel in counted
    ]
    return {
        "count": count,
        "per_100": cell(count, shipments),
        "answered": len(everything),
        "unanswered_at_end": unanswered,
        "answer_hours": {q: percentile(everything, s) for q, s in ANSWER_QUANTILES},
        "by_channel": by_channel,
    }


# The appendix's terms for this module, after the exceptions.
TERMS = (("Messages", messages), ("Inquiries", inquiries))
