"""Report metrics on a hand-built week whose answers are worked out by hand.

The week of Monday 1 March 2027 to Sunday 7 March 2027, company time UTC (no
US public holiday). Four deliveries:

  S1 ups  dispatched Mon 10:00, ETA at dispatch Wed 3, delivered Wed 15:00.
          Lateness 0 (on the day). Transit 53 h; business days 14/24+1+15/24.
          Its ETA was later moved to the 10th: that changes nothing.
  S2 ups  dispatched Mon 10:00, ETA at dispatch Tue 2, moved to Fri 5 later;
          delivered Thu 09:00: 2 days late against the ETA given at dispatch.
          Transit 71 h; business days 14/24+1+1+9/24.
  S3 own  dispatched Tue 12:00, ETA Fri 5, attempted Thu 18:00, delivered
          Sat 10:00: judged by the attempt, a day early; not first attempt.
          Transit 94 h; business days 0.5+1+1+1+0 (Saturday).
  S4 own  dispatched Fri 12:00, no ETA, delivered Sun 23:30 (still in the
          week). Transit 59.5 h; business days 0.5 (the weekend is off).

On time: S1 and S3 of the three with an ETA = 66.7 %. First attempt: S1, S2,
S4 = 75 %. ETA coverage 3 of 4 = 75 %.
Transit hours sorted 53, 59.5, 71, 94: p50 = 59.5 + 0.5·11.5 = 65.25;
p90 = rank 2.7 → 71 + 0.7·23 = 87.1.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pytest_django import Settings

from exceptions_mgmt.models import DeliveryException, ExceptionStatus
from reports import metrics, sections
from reports.periods import Filters, iso_week
from shipments.models import Carrier, Feedback, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import CarrierFactory, OwnFleetFactory, ShipmentFactory

pytestmark = pytest.mark.django_db

WEEK = iso_week(date(2027, 3, 1))


def at(day: int, hour: float, month: int = 3) -> datetime:
    return datetime(2027, month, day, int(hour), int(hour % 1 * 60), tzinfo=UTC)


def event(shipment: Shipment, kind: str, when: datetime, status: str) -> TrackingEvent:
    return TrackingEvent.objects.create(
        shipment=shipment,
        kind=kind,
        occurred_at=when,
        source="form",
        status_after=status,
    )


def delivered(
    carrier: Carrier,
    code: str,
    *,
    dispatched: datetime,
    eta: date | None,
    delivered_at: datetime,
    attempt: datetime | None = None,
    now_eta: date | None = None,
) -> Shipment:
    shipment = ShipmentFactory(shipment_id=code)
    Shipment.objects.filter(pk=shipment.pk).update(
        created_at=at(26, 9, month=2),
        status=ShipmentStatus.DELIVERED,
        carrier=carrier,
        tracking_number=f"TN{code}",
        dispatched_at=dispatched,
        dispatch_eta=eta,
        estimated_delivery=now_eta or eta,
        delivered_at=delivered_at,
    )
    event(shipment, EventKind.DISPATCHED, dispatched, ShipmentStatus.DISPATCHED)
    if attempt:
        event(
            shipment, EventKind.DELIVERY_ATTEMPTED, attempt, ShipmentStatus.IN_TRANSIT
        )
    event(shipment, EventKind.DELIVERED, delivered_at, ShipmentStatus.DELIVERED)
    return Shipment.objects.get(pk=shipment.pk)


@pytest.fixture
def week(settings: Settings) -> dict[str, Shipment]:
    settings.TIME_ZONE = "UTC"
    settings.TRACKSOP_HOLIDAY_COUNTRY = "US"
    settings.TRACKSOP_REPORT_MIN_CELL = 3
    ups = CarrierFactory(code="ups", name="UPS", tracking_family="any")
    own = OwnFleetFactory(code="own", name="Own fleet")
    s1 = delivered(
        ups,
        "SH-S1",
        dispatched=at(1, 10),
        eta=date(2027, 3, 3),
        delivered_at=at(3, 15),
        now_eta=date(2027, 3, 10),
    )
    s2 = delivered(
        ups,
        "SH-S2",
        dispatched=at(1, 10),
        eta=date(2027, 3, 2),
        delivered_at=at(4, 9),
        now_eta=date(2027, 3, 5),
    )
    s3 = delivered(
        own,
        "SH-S3",
        dispatched=at(2, 12),
        eta=date(2027, 3, 5),
        delivered_at=at(6, 10),
        attempt=at(4, 18),
    )
    s4 = delivered(
        own, "SH-S4", dispatched=at(5, 12), eta=None, delivered_at=at(7, 23.5)
    )
    Shipment.objects.filter(pk=s4.pk).update(created_at=at(5, 8))  # fmt: skip
    # S5 recorded and cancelled in the week; S6 recorded and still open.
    s5 = ShipmentFactory(shipment_id="SH-S5")
    Shipment.objects.filter(pk=s5.pk).update(created_at=at(3, 8), status="cancelled")
    event(s5, EventKind.CANCELLED, at(3, 9), ShipmentStatus.CANCELLED)
    s6 = ShipmentFactory(shipment_id="SH-S6")
    Shipment.objects.filter(pk=s6.pk).update(created_at=at(6, 8))
    # Exceptions: E1 on S2 acknowledged in 2 h, resolved in 24 h, in time,
    # escalated to level 1; E2 on S3 acknowledged in 6 h, still open at the
    # end (age 40 h); E3 void: left out.
    base = {"severity": "medium", "cause": "carrier_delay"}
    DeliveryException.objects.create(
        shipment=s2, reported_at=at(2, 10), acknowledged_at=at(2, 12),
        resolved_at=at(3, 10), expected_resolution=at(3, 12),
        status=ExceptionStatus.RESOLVED, escalation_level=1, **base,
    )  # fmt: skip
    DeliveryException.objects.create(
        shipment=s3, reported_at=at(6, 8), acknowledged_at=at(6, 14),
        expected_resolution=at(7, 8), status=ExceptionStatus.OPEN, cause="damaged",
        severity="high",
    )  # fmt: skip
    DeliveryException.objects.create(
        shipment=s1, reported_at=at(2, 9), expected_resolution=at(3, 9),
        resolved_at=at(2, 10), status=ExceptionStatus.VOID, **base,
    )  # fmt: skip
    # Feedback: 5, 2 ("Late"), 4; S4 unrated.
    Feedback.objects.create(shipment=s1, rating=5)
    Feedback.objects.create(shipment=s2, rating=2, comment="Late")
    Feedback.objects.create(shipment=s3, rating=4)
    return {"s1": s1, "s2": s2, "s3": s3, "s4": s4}


def test_volume_counts_each_step_in_the_week_and_what_is_open_at_its_end(
    week: dict[str, Shipment],
) -> None:
    assert metrics.volume(WEEK, Filters()) == {
        "created": 3,  # S4, S5, S6
        "dispatched": 4,
        "delivered": 4,
        "returned": 0,
        "cancelled": 1,
        "open_at_end": 1,  # S6
    }


def test_on_time_is_judged_against_the_eta_given_at_dispatch(
    week: dict[str, Shipment],
) -> None:
    found = metrics.delivery(metrics.delivered_rows(WEEK, Filters()))
    assert found["delivered"] == 4
    assert found["on_time_rate"] == pytest.approx(200 / 3)
    assert found["first_attempt_rate"] == 75.0
    assert found["eta_coverage"] == 75.0
    assert found["buckets"] == {
        "early": 1, "on_time": 1, "late_1": 0, "late_2": 1,
        "late_3_5": 0, "late_over_5": 0,
    }  # fmt: skip


def test_transit_percentiles_in_hours_and_business_days(
    week: dict[str, Shipment],
) -> None:
    found = metrics.delivery(metrics.delivered_rows(WEEK, Filters()))
    assert found["transit_hours"]["p50"] == pytest.approx(65.25)
    assert found["transit_hours"]["p90"] == pytest.approx(87.1)
    # Business days sorted: 0.5 (S4), 53/24 (S1), 71/24 (S2), 3.5 (S3).
    s1 = 14 / 24 + 1 + 15 / 24
    s2 = 14 / 24 + 2 + 9 / 24
    assert found["transit_business_days"]["p50"] == pytest.approx((s1 + s2) / 2)


def test_a_company_holiday_is_not_a_business_day(week: dict[str, Shipment]) -> None:
    from reports.models import Holiday

    Holiday.objects.create(date=date(2027, 3, 3), name="Stocktake")
    rows = [r for r in metrics.delivered_rows(WEEK, Filters()) if r.pk == week["s1"].pk]
    found = metrics.delivery(rows)
    # S1 Mon 10:00 to Wed 15:00 with Wednesday off: 14/24 + 1.
    assert found["transit_business_days"]["p50"] == pytest.approx(14 / 24 + 1)


def test_the_last_evening_belongs_to_the_week_in_company_time(
    week: dict[str, Shipment], settings: Settings
) -> None:
    # In New York, S4's delivery (Sun 23:30 UTC) is Sunday 18:30: still in the
    # week; S1's dispatch at Mon 10:00 UTC is 05:00 local: in the week too.
    settings.TIME_ZONE = "America/New_York"
    assert metrics.volume(WEEK, Filters())["delivered"] == 4
    # A week later in New York starts Monday 05:00 UTC: S4 is not in it.
    assert metrics.volume(iso_week(date(2027, 3, 8)), Filters())["delivered"] == 0


def test_carrier_filter_and_too_few_cells(week: dict[str, Shipment]) -> None:
    ups = Filters(carrier="ups")
    assert metrics.volume(WEEK, ups)["delivered"] == 2
    table = metrics.delivery_by(
        metrics.delivered_rows(WEEK, Filters()), lambda r: r.carrier
    )
    by = {row["name"]: row for row in table}
    assert by["ups"]["delivered"] == 2
    # Two shipments are fewer than the minimum cell of 3.
    assert by["ups"]["on_time_rate"] == {"too_few": True, "n": 2}


def test_exceptions_acknowledge_resolve_escalate_and_backlog(
    week: dict[str, Shipment],
) -> None:
    found = metrics.exceptions(WEEK, Filters(), shipments=4)
    assert found["count"] == 2  # the void one is left out
    assert found["per_100"] == 50.0
    assert found["ack_hours"] == {"p50": pytest.approx(4.0), "p90": pytest.approx(5.6)}
    assert found["resolve_hours"]["p50"] == pytest.approx(24.0)
    assert found["resolved_in_time_rate"] == 100.0
    assert (found["level_1"], found["level_2"]) == (1, 0)
    assert found["backlog"] == 1
    assert found["backlog_oldest_days"] == pytest.approx(40 / 24)
    assert found["by_cause"] == {"carrier_delay": 1, "damaged": 1}


def test_csat_counts_only_those_who_rated(week: dict[str, Shipment]) -> None:
    found = metrics.feedback(WEEK, Filters(), delivered=4)
    assert found["response_rate"] == 75.0
    assert found["average"] == pytest.approx(11 / 3)
    assert found["csat"] == pytest.approx(200 / 3)
    assert found["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
    assert found["lowest"] == [{"shipment": "SH-S2", "rating": 2, "comment": "Late"}]


def test_report_data_has_headline_with_trends_and_definitions(
    week: dict[str, Shipment],
) -> None:
    data = sections.report_data(WEEK, Filters())
    items = {i["key"]: i for i in data["headline"]}
    assert items["on_time_rate"]["value"] == pytest.approx(200 / 3)
    # The week before had nothing delivered: no previous rate, no change.
    assert items["on_time_rate"]["previous"] is None
    assert items["delivered"]["previous"] == 0
    assert len(items["delivered"]["series"]) == 12
    assert items["delivered"]["series"][-1]["value"] == 4
    terms = {d["term"] for d in data["definitions"]}
    assert {"Delivery performance", "Exceptions", "Feedback", "Business days"} <= terms
    assert "ETA at dispatch" in " ".join(d["text"] for d in data["definitions"]) or (
        "given at dispatch" in " ".join(d["text"] for d in data["definitions"])
    )
