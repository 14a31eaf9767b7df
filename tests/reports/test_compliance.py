"""Procedure compliance and the exception figures by carrier, hub and notice
time, on a hand-built week whose answers are worked out by hand.

The week of Monday 1 March 2027 to Sunday 7 March 2027, company time UTC
unless a test says New York (UTC-5 then: that week runs Mon 1 05:00 UTC to
Mon 8 05:00 UTC). Locations: CHI a hub, DEP a delivery depot. Every event is
recorded as it happens unless "recorded" says otherwise.

  D1 ups  picked up Mon 1 03:00 (recorded 06:00: 3 h late), arrived CHI Mon
          14:00, out for delivery Tue 08:00, delivered Tue 12:00.
  D2 ups  picked up Mon 10:00 (recorded 13:00: late), departed DEP Mon 18:00
          (a depot: no hub scan), out for delivery Wed 08:00, delivered Wed
          11:00 (recorded 13:00: exactly 2 h, not late).
  D3 own  arrived CHI Tue 09:00, voided by a correction; a note; delivered
          Thu 15:00. No pickup, hub or out-for-delivery scan.
  D4 own  picked up Sat 27 Feb, arrived CHI Sun 28 Feb (before the week: they
          still count for its checkpoints), out for delivery Sun 7 22:00,
          delivered Sun 23:30 (recorded Mon 8 03:00: late).
  D5 ups  picked up Fri 5 10:00, arrived CHI Sat 10:00, out for delivery Mon 8
          01:00, delivered Mon 8 02:00 UTC (Sunday 21:00 in New York).

UTC week: delivered D1-D4. Pickup D1 D2 D4 = 75 %; hub D1 D4 = 50 %; out for
delivery D1 D2 D4 = 75 %; all three 50 %. Checkpoint events in the week: D1 4,
D2 4, D3 1 (the voided one and the note are left out), D4 2, D5 2 = 13; late:
D1's pickup, D2's pickup, D4's delivery = 3.
New York week: delivered D1-D5 (D4 at 18:30 and D5 at 21:00 local on Sunday).
Pickup D1 D2 D4 D5 = 80 %, hub D1 D4 D5 = 60 %, out for delivery 80 %, all
three 60 %. Events: D1 3 (its pickup was Sunday 22:00 local), D2 4, D3 1,
D4 2, D5 4 = 14; late: D2's pickup and D4's delivery = 2.

Dispatched in the week: D1 D2 D5 (ups, CHI), D3 (own, CHI), S6 (own, DEP);
D4 on 26 Feb. S7 has no carrier or hub yet.
Exceptions reported in the week (void ones left out):
  X1 no scan (a stall) on D3 Wed 09:00: email sent 09:20, too late; a staff
     alert at 09:01 is not a customer notice.
  X4 carrier delay on D2 Tue 10:00: email sent 10:05; SMS suppressed.
  X5 damaged on S7 Wed 10:00: email and SMS suppressed: no contact.
  X6 address on S6 Thu 10:00: email failed, resent by staff, sent 10:15
     (exactly 15 minutes: in time).
  X7 weather on D5 Fri 12:00: no message written (left out of the notices).
  Left out: X2 a stall on D4 on 28 Feb, X3 a void stall on D1 in the week.
Stalls: 1 (X1). By carrier: ups 2 of 3 dispatched = 66.7 per 100; own 2 of 2
(too few with a minimum cell of 3); "-" 1 with none dispatched, no rate.
By hub: CHI 3 of 4 = 75; DEP 1 of 1 too few; "-" 1. Notified within 15
minutes: X4 and X6 of X1, X4, X6 = 66.7 %; 1 no contact (X5).
Carrier ups only: delivered D1 D2: pickup 100 %, hub 50 %, all three 50 %;
events D1 4 + D2 4 + D5 2 = 10, late 2; no stall; notices: X4 of X4 = 100 %.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from pytest_django import Settings

from exceptions_mgmt.models import DeliveryException, ExceptionStatus
from notifications.models import Audience, Channel, Kind, Notification, Status
from reports import compliance, exception_metrics, metrics, sections
from reports.periods import Filters, iso_week
from shipments.models import Location, Shipment, TrackingEvent
from shipments.status import EventKind as K
from shipments.status import ShipmentStatus
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    OwnFleetFactory,
    ShipmentFactory,
)

pytestmark = pytest.mark.django_db

WEEK = iso_week(date(2027, 3, 1))
UPS = Filters(carrier="ups")


def at(day: int, hour: float, month: int = 3) -> datetime:
    return datetime(2027, month, day, int(hour), int(hour % 1 * 60), tzinfo=UTC)


def log(
    shipment: Shipment,
    kind: str,
    when: datetime,
    *,
    where: Location | None = None,
    recorded: datetime | None = None,
    voids: TrackingEvent | None = None,
) -> TrackingEvent:
    # The log is append-only: the clock stands at the time it was recorded.
    with time_machine.travel(recorded or when, tick=False):
        return TrackingEvent.objects.create(
            shipment=shipment,
            kind=kind,
            occurred_at=when,
            location=where,
            voids=voids,
            source="form",
            status_after=ShipmentStatus.IN_TRANSIT,
        )


def shipment(code: str, **fields: object) -> Shipment:
    found = ShipmentFactory(shipment_id=f"SH-{code}")
    if "dispatched_at" in fields:
        fields["tracking_number"] = f"TN{code}"
    Shipment.objects.filter(pk=found.pk).update(created_at=at(25, 9, month=2), **fields)
    return Shipment.objects.get(pk=found.pk)


def reported(
    on: Shipment, cause: str, when: datetime, status: str = ExceptionStatus.OPEN
) -> TrackingEvent:
    """An exception and its report event; returns the event."""
    event = log(on, K.EXCEPTION_REPORTED, when)
    DeliveryException.objects.create(
        shipment=on, cause=cause, reported_at=when, report_event=event,
        expected_resolution=when + timedelta(days=1), status=status,
    )  # fmt: skip
    return event


def notice(
    event: TrackingEvent, channel: str, status: str, sent: datetime | None = None,
    *, audience: str = Audience.RECIPIENT, resend_of: Notification | None = None,
) -> Notification:  # fmt: skip
    return Notification.objects.create(
        shipment=event.shipment, event=None if resend_of else event,
        resend_of=resend_of, kind=Kind.EXCEPTION, channel=channel,
        audience=audience, to="someone", status=status, sent_at=sent,
        idempotency_key=f"test:{event.pk}:{channel}:{audience}:{bool(resend_of)}",
    )  # fmt: skip


@pytest.fixture
def week(settings: Settings) -> None:
    settings.TIME_ZONE = "UTC"
    settings.TRACKSOP_REPORT_MIN_CELL = 3
    ups = CarrierFactory(code="ups", name="UPS", tracking_family="any")
    own = OwnFleetFactory(code="own", name="Own fleet")
    chi = LocationFactory(code="chi", kind=Location.Kind.HUB)
    dep = LocationFactory(code="dep", kind=Location.Kind.DEPOT)
    done = {"status": ShipmentStatus.DELIVERED, "origin": chi}
    d1 = shipment(
        "D1", carrier=ups, dispatched_at=at(1, 0.5), delivered_at=at(2, 12), **done
    )
    log(d1, K.PICKED_UP, at(1, 3), recorded=at(1, 6))
    log(d1, K.ARRIVED_HUB, at(1, 14), where=chi)
    log(d1, K.OUT_FOR_DELIVERY, at(2, 8))
    log(d1, K.DELIVERED, at(2, 12))
    d2 = shipment(
        "D2", carrier=ups, dispatched_at=at(1, 8), delivered_at=at(3, 11), **done
    )
    log(d2, K.PICKED_UP, at(1, 10), recorded=at(1, 13))
    log(d2, K.DEPARTED_HUB, at(1, 18), where=dep)
    log(d2, K.OUT_FOR_DELIVERY, at(3, 8))
    log(d2, K.DELIVERED, at(3, 11), recorded=at(3, 13))
    d3 = shipment(
        "D3", carrier=own, dispatched_at=at(1, 8), delivered_at=at(4, 15), **done
    )
    wrong = log(d3, K.ARRIVED_HUB, at(2, 9), where=chi)
    log(d3, K.CORRECTION, at(2, 10), voids=wrong)
    log(d3, K.NOTE, at(3, 9), recorded=at(3, 20))
    log(d3, K.DELIVERED, at(4, 15))
    d4 = shipment(
        "D4", carrier=own, dispatched_at=at(26, 8, 2), delivered_at=at(7, 23.5), **done
    )
    log(d4, K.PICKED_UP, at(27, 10, month=2))
    log(d4, K.ARRIVED_HUB, at(28, 10, month=2), where=chi)
    log(d4, K.OUT_FOR_DELIVERY, at(7, 22))
    log(d4, K.DELIVERED, at(7, 23.5), recorded=at(8, 3))
    d5 = shipment(
        "D5", carrier=ups, dispatched_at=at(4, 8), delivered_at=at(8, 2), **done
    )
    log(d5, K.PICKED_UP, at(5, 10))
    log(d5, K.ARRIVED_HUB, at(6, 10), where=chi)
    log(d5, K.OUT_FOR_DELIVERY, at(8, 1))
    log(d5, K.DELIVERED, at(8, 2))
    s6 = shipment("S6", carrier=own, dispatched_at=at(2, 8), origin=dep)
    s7 = shipment("S7")
    # Exceptions and their customer notices.
    x1 = reported(d3, "no_scan", at(3, 9))
    notice(x1, Channel.EMAIL, Status.SENT, at(3, 9) + timedelta(minutes=20))
    notice(
        x1,
        Channel.EMAIL,
        Status.SENT,
        at(3, 9) + timedelta(minutes=1),
        audience=Audience.STAFF,
    )
    reported(d4, "no_scan", at(28, 12, month=2))
    reported(d1, "no_scan", at(2, 9), status=ExceptionStatus.VOID)
    x4 = reported(d2, "carrier_delay", at(2, 10))
    notice(x4, Channel.EMAIL, Status.SENT, at(2, 10) + timedelta(minutes=5))
    notice(x4, Channel.SMS, Status.SUPPRESSED)
    x5 = reported(s7, "damaged", at(3, 10))
    notice(x5, Channel.EMAIL, Status.SUPPRESSED)
    notice(x5, Channel.SMS, Status.SUPPRESSED)
    x6 = reported(s6, "address", at(4, 10))
    failed = notice(x6, Channel.EMAIL, Status.FAILED)
    notice(
        x6,
        Channel.EMAIL,
        Status.SENT,
        at(4, 10) + timedelta(minutes=15),
        resend_of=failed,
    )
    reported(d5, "weather", at(5, 12))


def test_checkpoint_shares_count_each_delivery_once_whenever_it_was_scanned(
    week: None,
) -> None:
    rows = metrics.delivered_rows(WEEK, Filters())
    found = compliance.checkpoints(WEEK, Filters(), rows)
    assert found["delivered"] == 4
    assert (found["pickup"], found["hub_scan"], found["out_for_delivery"]) == (3, 2, 3)
    assert found["pickup_rate"] == 75.0
    assert found["hub_scan_rate"] == 50.0  # a depot and a voided scan do not count
    assert found["out_for_delivery_rate"] == 75.0
    assert found["all_three_rate"] == 50.0


def test_events_logged_more_than_two_hours_late(week: None) -> None:
    assert compliance.late_entries(WEEK, Filters()) == {
        "events": 13,
        "late": 3,
        "late_rate": pytest.approx(300 / 13),
    }


def test_stalls_are_the_no_scan_detections_of_the_period(week: None) -> None:
    assert compliance.stalls(WEEK, Filters()) == 1
    assert compliance.stalls(WEEK, UPS) == 0


def test_the_week_runs_midnight_to_midnight_in_company_time(
    week: None, settings: Settings
) -> None:
    settings.TIME_ZONE = "America/New_York"
    rows = metrics.delivered_rows(WEEK, Filters())
    found = compliance.compliance(WEEK, Filters(), rows)
    assert found["delivered"] == 5
    assert (found["pickup_rate"], found["hub_scan_rate"]) == (80.0, 60.0)
    assert (found["out_for_delivery_rate"], found["all_three_rate"]) == (80.0, 60.0)
    assert (found["events"], found["late"]) == (14, 2)


def test_a_carrier_filter_keeps_to_that_carriers_shipments(week: None) -> None:
    found = compliance.compliance(WEEK, UPS, metrics.delivered_rows(WEEK, UPS))
    assert found["delivered"] == 2
    assert (found["pickup_rate"], found["hub_scan_rate"]) == (100.0, 50.0)
    assert found["all_three_rate"] == 50.0
    assert (found["events"], found["late"], found["stalls"]) == (10, 2, 0)
    told = exception_metrics.notified_in_time(WEEK, UPS)
    assert (told["notify_due"], told["notified_in_time"]) == (1, 1)
    by = exception_metrics.exceptions_by_group(WEEK, UPS)["by_carrier"]
    assert by == [
        {"name": "ups", "count": 2, "dispatched": 3, "per_100": pytest.approx(200 / 3)}
    ]


def test_exceptions_per_100_dispatched_by_carrier_and_origin_hub(week: None) -> None:
    found = exception_metrics.exceptions_by_group(WEEK, Filters())
    assert found["by_carrier"] == [
        {"name": "-", "count": 1, "dispatched": 0, "per_100": None},
        {"name": "own", "count": 2, "dispatched": 2,
         "per_100": {"too_few": True, "n": 2}},
        {"name": "ups", "count": 2, "dispatched": 3, "per_100": pytest.approx(200 / 3)},
    ]  # fmt: skip
    assert found["by_hub"] == [
        {"name": "-", "count": 1, "dispatched": 0, "per_100": None},
        {"name": "chi", "count": 3, "dispatched": 4, "per_100": 75.0},
        {"name": "dep", "count": 1, "dispatched": 1,
         "per_100": {"too_few": True, "n": 1}},
    ]  # fmt: skip


def test_customer_notified_within_15_minutes_of_the_report(week: None) -> None:
    assert exception_metrics.notified_in_time(WEEK, Filters()) == {
        "notify_due": 3,  # X1, X4, X6; X5 could not be reached, X7 had no notice
        "notified_in_time": 2,  # X4, and X6 by its resend
        "notified_in_time_rate": pytest.approx(200 / 3),
        "no_contact": 1,
    }


def test_the_report_has_a_compliance_section_and_the_new_exception_tables(
    week: None,
) -> None:
    data = sections.report_data(WEEK, Filters())
    keys = [s["key"] for s in data["sections"]]
    assert keys.index("compliance") == keys.index("delivery") + 1
    section = data["sections"][keys.index("compliance")]
    summary = {r["name"]: r["value"] for r in section["tables"][0]["rows"]}
    assert summary["With a hub scan"] == "50.0%"
    assert summary["Stalls detected"] == "1"
    assert summary["Events logged over 2 h late"] == "3 of 13 (23.1%)"
    exceptions = data["sections"][keys.index("exceptions")]["tables"]
    tables = {t["key"]: t for t in exceptions}
    assert {"by_cause", "by_severity", "by_carrier", "by_hub"} <= set(tables)
    rows = {r["name"]: r["value"] for r in tables["summary"]["rows"]}
    assert rows["Customer notified within 15 minutes"] == (
        "66.7% (2 of 3; 1 no contact)"
    )
    # Five exceptions over five dispatched: the weather one is 20 per 100.
    causes = tables["by_cause"]["rows"]
    assert {"name": "weather", "count": 1, "dispatched": 5, "per_100": 20.0} in causes
    terms = {d["term"] for d in data["definitions"]}
    assert {"Key checkpoints", "Stalls", "Events logged late"} <= terms
    assert {"Exceptions by carrier and hub", "Customer notified in time"} <= terms
