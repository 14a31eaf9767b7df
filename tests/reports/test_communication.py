"""Customer communication and service on a hand-built week whose answers are
worked out by hand.

The week of Monday 1 March 2027 to Sunday 7 March 2027, company time UTC,
minimum cell 3. Shipments dispatched in the week: A, B (ups) Mon and Tue,
C, D (own) Wed and Thu, all at 10:00: four. E (own) was dispatched on
26 February, before the week.

Messages created in the week (each event recorded at 10:00 on its day):
  m1 A dispatched email  sent +2 min   (A's event happened at 09:30: the
                                        time to send counts from 10:00)
  m2 A dispatched SMS    sent +6 min
  m3 B dispatched email  sent +10 min
  m4 B dispatched SMS    failed
  m8 B dispatched SMS    resend of m4, sent: a message, but not timed
  m5 C dispatched email  sent +30 min
  m6 C dispatched SMS    suppressed (the recipient turned SMS off)
  m7 D dispatched email  still pending
Left out: an escalation about B to staff, a report email, a message created
on Sunday 28 February 23:59, and one created on Monday 8 March 02:00 UTC
(which is Sunday 21:00 in New York, so in the week there).

Eight messages: 5 sent, 1 failed, 1 suppressed, 1 pending = 62.5 / 12.5 /
12.5 %. Dispatched email: m1 m3 m5 m7 = 4, 3 sent (75 %), 1 pending.
Dispatched SMS: m2 m4 m6 m8 = 4, 2 sent (50 %), 1 failed, 1 suppressed.
Time to send, sorted 2, 6, 10, 30 min: p50 = 8; p95 at rank 2.85 =
10 + 0.85 * 20 = 27. With ups only: m1 m2 m3 m4 m8; dispatched email has
m1 m3 = 2 messages, fewer than 3: too few.

Inquiries received in the week:
  i1 A phone  Tue 09:00, answered 11:00     2 h
  i2 B phone  Wed 09:00, answered 15:00     6 h
  i3 C email  Thu 08:00, answered Fri 08:00 24 h
  i4 D chat   Sun 22:00, answered Mon 8 March 08:00: 10 h, after the week's
              end, so unanswered at the end
  i5 E email  Sat 10:00, open
Left out: i6 on A, Monday 8 March 01:00 UTC (Sunday 20:00 in New York).
Five inquiries over four shipments dispatched = 125 per 100; phone 2 = 50,
email 2 = 50, chat 1 = 25. Time to answer, sorted 2, 6, 10, 24 h: p50 = 8;
p90 at rank 2.7 = 10 + 0.7 * 14 = 19.8. Phone: 2, 6: p50 4, p90 5.6.
Unanswered at the end: i4, i5. With ups only: 2 inquiries over 2 shipments
dispatched: per 100 is too few.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings as django_settings
from pytest_django import Settings

from notifications.models import Audience, Channel, Kind, Notification, Status
from reports import communication, sections
from reports.models import ReportKind, ReportRun
from reports.periods import Filters, iso_week
from shipments.models import Carrier, Inquiry, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    OwnFleetFactory,
    ShipmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

WEEK = iso_week(date(2027, 3, 1))


def at(day: int, hour: float, month: int = 3) -> datetime:
    return datetime(2027, month, day, int(hour), round(hour % 1 * 60), tzinfo=UTC)


def dispatched(
    carrier: Carrier, code: str, when: datetime, occurred: datetime | None = None
) -> tuple[Shipment, TrackingEvent]:
    shipment = ShipmentFactory(shipment_id=code)
    Shipment.objects.filter(pk=shipment.pk).update(
        status=ShipmentStatus.DISPATCHED,
        carrier=carrier,
        tracking_number=f"TN{code}",
        dispatched_at=when,
    )
    # Events are append-only: it is recorded at `when` by travelling there.
    with time_machine.travel(when, tick=False):
        event = TrackingEvent.objects.create(
            shipment=shipment,
            kind=EventKind.DISPATCHED,
            occurred_at=occurred or when,
            source="form",
            status_after=ShipmentStatus.DISPATCHED,
        )
    return shipment, event


def message(
    shipment: Shipment | None,
    event: TrackingEvent | None,
    channel: str,
    status: str,
    created: datetime,
    sent: datetime | None = None,
    **extra: Any,
) -> Notification:
    row = Notification.objects.create(
        shipment=shipment,
        event=event,
        kind=extra.pop("kind", Kind.DISPATCHED),
        channel=channel,
        audience=extra.pop("audience", Audience.RECIPIENT),
        to="someone@example.net" if channel == Channel.EMAIL else "+12025550100",
        status=status,
        sent_at=sent,
        idempotency_key=f"test:{Notification.objects.count()}",
        next_attempt_at=created if status == Status.PENDING else None,
        **extra,
    )
    Notification.objects.filter(pk=row.pk).update(created_at=created)
    return row


def inquiry(
    shipment: Shipment,
    channel: str,
    received: datetime,
    answered: datetime | None = None,
) -> None:
    user = UserFactory(username="agent")
    row = Inquiry.objects.create(
        shipment=shipment,
        channel=channel,
        question="Where is my package?",
        created_by=user,
        status=Inquiry.Status.ANSWERED if answered else Inquiry.Status.OPEN,
        answer="On its way." if answered else "",
        answered_by=user if answered else None,
        answered_at=answered,
    )
    Inquiry.objects.filter(pk=row.pk).update(created_at=received)


@pytest.fixture
def week(settings: Settings) -> None:
    settings.TIME_ZONE = "UTC"
    settings.TRACKSOP_HOLIDAY_COUNTRY = "US"
    settings.TRACKSOP_REPORT_MIN_CELL = 3
    ups = CarrierFactory(code="ups", name="UPS", tracking_family="any")
    own = OwnFleetFactory(code="own", name="Own fleet")
    a, ea = dispatched(ups, "SH-A", at(1, 10), occurred=at(1, 9.5))
    b, eb = dispatched(ups, "SH-B", at(2, 10))
    c, ec = dispatched(own, "SH-C", at(3, 10))
    d, ed = dispatched(own, "SH-D", at(4, 10))
    e, ee = dispatched(own, "SH-E", at(26, 10, month=2))
    email, sms = Channel.EMAIL, Channel.SMS
    message(a, ea, email, Status.SENT, at(1, 10), at(1, 10 + 2 / 60))
    message(a, ea, sms, Status.SENT, at(1, 10), at(1, 10.1))
    message(b, eb, email, Status.SENT, at(2, 10), at(2, 10 + 10 / 60))
    m4 = message(b, eb, sms, Status.FAILED, at(2, 10))
    message(b, None, sms, Status.SENT, at(2, 12), at(2, 12.25), resend_of=m4)
    message(c, ec, email, Status.SENT, at(3, 10), at(3, 10.5))
    message(c, ec, sms, Status.SUPPRESSED, at(3, 10))
    message(d, ed, email, Status.PENDING, at(4, 10))
    # Left out: to staff, a report email, and the two either side of the week.
    message(
        b, None, email, Status.SENT, at(2, 11), at(2, 11),
        kind=Kind.ESCALATION, audience=Audience.STAFF,
    )  # fmt: skip
    run = ReportRun.objects.create(
        kind=ReportKind.WEEKLY, period_start=WEEK.start, period_end=WEEK.end,
        request_key="weekly:2027-03-01:2027-03-07::",
    )  # fmt: skip
    message(
        None, None, email, Status.SENT, at(2, 11), at(2, 11),
        kind=Kind.REPORT, audience=Audience.STAFF, report=run,
    )  # fmt: skip
    message(e, ee, email, Status.SENT, at(28, 23 + 59 / 60, month=2), at(1, 0))
    message(d, ed, sms, Status.SENT, at(8, 2), at(8, 2.5))
    inquiry(a, Inquiry.Channel.PHONE, at(2, 9), at(2, 11))
    inquiry(b, Inquiry.Channel.PHONE, at(3, 9), at(3, 15))
    inquiry(c, Inquiry.Channel.EMAIL, at(4, 8), at(5, 8))
    inquiry(d, Inquiry.Channel.CHAT, at(7, 22), at(8, 8))
    inquiry(e, Inquiry.Channel.EMAIL, at(6, 10))
    inquiry(a, Inquiry.Channel.PHONE, at(8, 1))


def test_messages_count_each_outcome_by_kind_and_channel(week: None) -> None:
    found = communication.messages(WEEK, Filters())
    assert (found["messages"], found["sent"], found["failed"]) == (8, 5, 1)
    assert (found["suppressed"], found["pending"]) == (1, 1)
    assert (found["sent_rate"], found["failed_rate"]) == (62.5, 12.5)
    assert found["suppressed_rate"] == 12.5
    email, sms = found["by_kind_channel"]
    assert (email["kind"], email["channel"]) == ("dispatched", "email")
    assert (email["messages"], email["sent"], email["pending"]) == (4, 3, 1)
    assert email["sent_rate"] == 75.0
    assert email["failed_rate"] == 0.0
    assert (sms["channel"], sms["messages"], sms["sent"]) == ("sms", 4, 2)
    assert (sms["failed_rate"], sms["suppressed_rate"]) == (25.0, 25.0)


def test_time_to_send_counts_from_the_events_recorded_time(week: None) -> None:
    found = communication.messages(WEEK, Filters())
    assert found["timed"] == 4  # the resend has no event
    assert found["send_minutes"]["p50"] == pytest.approx(8.0)
    assert found["send_minutes"]["p95"] == pytest.approx(27.0)


def test_inquiries_per_100_dispatched_by_channel_and_time_to_answer(week: None) -> None:
    found = communication.inquiries(WEEK, Filters(), shipments=4)
    assert found["count"] == 5
    assert found["per_100"] == 125.0
    assert found["answered"] == 4
    assert found["unanswered_at_end"] == 2
    assert found["answer_hours"]["p50"] == pytest.approx(8.0)
    assert found["answer_hours"]["p90"] == pytest.approx(19.8)
    by = {row["channel"]: row for row in found["by_channel"]}
    assert list(by) == ["phone", "email", "chat"]
    assert [by[c]["per_100"] for c in by] == [50.0, 50.0, 25.0]
    assert by["phone"]["answer_p50"] == pytest.approx(4.0)
    assert by["phone"]["answer_p90"] == pytest.approx(5.6)
    assert (by["email"]["inquiries"], by["email"]["answered"]) == (2, 1)


def test_a_carrier_filter_keeps_its_shipments_and_thin_cells_say_too_few(
    week: None,
) -> None:
    ups = Filters(carrier="ups")
    found = communication.messages(WEEK, ups)
    assert (found["messages"], found["sent"], found["failed"]) == (5, 4, 1)
    email, sms = found["by_kind_channel"]
    assert email["messages"] == 2
    assert email["sent_rate"] == {"too_few": True, "n": 2}
    assert sms["sent_rate"] == pytest.approx(200 / 3)
    asked = communication.inquiries(WEEK, ups, shipments=2)
    assert asked["count"] == 2
    assert asked["per_100"] == {"too_few": True, "n": 2}
    assert [row["channel"] for row in asked["by_channel"]] == ["phone"]


def test_the_last_evening_belongs_to_the_week_in_company_time(
    week: None, settings: Settings
) -> None:
    # Monday 8 March 01:00 and 02:00 UTC are Sunday evening in New York.
    settings.TIME_ZONE = "America/New_York"
    assert communication.messages(WEEK, Filters())["messages"] == 9
    assert communication.inquiries(WEEK, Filters(), shipments=4)["count"] == 6


def test_an_empty_period_has_no_rates_and_no_rows(week: None) -> None:
    empty = iso_week(date(2027, 2, 1))
    found = communication.messages(empty, Filters())
    assert found["messages"] == 0
    assert found["sent_rate"] is None
    assert found["by_kind_channel"] == []
    assert found["send_minutes"] == {"p50": None, "p95": None}
    asked = communication.inquiries(empty, Filters(), shipments=0)
    assert (asked["count"], asked["per_100"], asked["by_channel"]) == (0, None, [])
    assert asked["answer_hours"] == {"p50": None, "p90": None}


def test_the_report_has_the_section_between_exceptions_and_feedback(week: None) -> None:
    data = sections.report_data(WEEK, Filters())
    keys = [s["key"] for s in data["sections"]]
    assert keys[keys.index("exceptions") + 1 : keys.index("feedback")] == [
        "communication"
    ]
    section = data["sections"][keys.index("communication")]
    summary, messages, inquiries = section["tables"]
    figures = {row["name"]: row["value"] for row in summary["rows"]}
    assert figures["Sent / failed / suppressed"] == "62.5% / 12.5% / 12.5%"
    assert figures["Event to message sent p50 / p95 (minutes)"] == "8.0 / 27.0"
    assert figures["Inquiries per 100 shipments dispatched"] == "125.0"
    assert [(r["kind"], r["channel"]) for r in messages["rows"]] == [
        ("Dispatched", "Email"),
        ("Dispatched", "SMS"),
    ]
    assert [r["channel"] for r in inquiries["rows"]] == ["Phone", "Email", "Chat"]


def test_the_definitions_are_the_docstrings_in_the_appendix_and_readme(
    week: None,
) -> None:
    data = sections.report_data(WEEK, Filters())
    texts = {d["term"]: d["text"] for d in data["definitions"]}
    readme = Path(django_settings.BASE_DIR, "README.md").read_text()
    readme = " ".join(readme.replace("**", "").split())
    for term, function in communication.TERMS:
        words = " ".join((function.__doc__ or "").split())
        assert texts[term] == words
        assert words in readme, term
