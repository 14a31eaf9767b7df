"""Trends read closed periods from stored figures: a month that is over (31
days past its end) or a week (7 days past its Sunday) is computed once and
kept, so a report's 12-period series costs 12 row reads, and a month still
draws after the retention purge removed the shipments behind it.

The clock is frozen on 15 June 2027 (company time UTC). April ended on 30
April and closed 31 days later, on 31 May: April and every month before it
are closed. May closes on 1 July: it is still open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.utils import timezone
from pytest_django import Settings

from reports import aggregates
from reports.headline import headline, headline_values
from reports.models import PeriodAggregate
from reports.periods import Filters, Period, iso_week, month_of
from reports.sections import report_data
from tests.factories import CarrierFactory
from tests.reports.test_metrics import delivered

pytestmark = pytest.mark.django_db

TODAY = datetime(2027, 6, 15, 12, tzinfo=UTC)
MAY, APRIL, MARCH = (
    month_of(date(2027, 5, 1)),
    month_of(date(2027, 4, 1)),
    month_of(date(2027, 3, 1)),
)


@pytest.fixture(autouse=True)
def frozen(settings: Settings) -> Iterator[None]:
    settings.TIME_ZONE = "UTC"
    settings.TRACKSOP_REPORT_MIN_CELL = 1
    with time_machine.travel(TODAY, tick=False):
        yield


def stored(month: Period, scope: str = "all", delivered: int = 0) -> PeriodAggregate:
    data = {k: {"value": None, "n": 0} for k in headline_values(MAY, Filters())}
    data["delivered"] = {"value": delivered, "n": delivered}
    return PeriodAggregate.objects.create(
        kind=month.kind, start=month.start, scope=scope, data=data
    )


def series(period: Period, filters: Filters | None = None) -> dict[str, object]:
    items = headline(period, filters or Filters(), aggregates.trend_values)
    by_key = {i["key"]: i for i in items}
    return {p["start"]: p["value"] for p in by_key["delivered"]["series"]}


def test_a_purged_month_still_draws_from_its_stored_figures() -> None:
    # No shipment is left for March 2027; its stored row says 40 delivered.
    stored(MARCH, delivered=40)
    assert series(MAY)["2027-03-01"] == 40


def test_a_closed_month_is_computed_once_and_then_read() -> None:
    ups = CarrierFactory(code="ups")
    delivered(
        ups,
        "SH-A1",
        dispatched=datetime(2027, 4, 5, 10, tzinfo=UTC),
        eta=date(2027, 4, 7),
        delivered_at=datetime(2027, 4, 6, 10, tzinfo=UTC),
    )
    assert series(MAY)["2027-04-01"] == 1
    row = PeriodAggregate.objects.get(start=APRIL.start, scope="all")
    assert row.data["delivered"] == {"value": 1, "n": 1}
    # A second report reads the row: a change in April's rows no longer shows.
    PeriodAggregate.objects.filter(pk=row.pk).update(
        data={**row.data, "delivered": {"value": 7, "n": 7}}
    )
    assert series(MAY)["2027-04-01"] == 7
    assert PeriodAggregate.objects.filter(start=APRIL.start).count() == 1


def test_a_month_still_open_is_counted_from_its_rows_and_not_stored() -> None:
    ups = CarrierFactory(code="ups")
    delivered(
        ups,
        "SH-M1",
        dispatched=datetime(2027, 5, 3, 10, tzinfo=UTC),
        eta=date(2027, 5, 5),
        delivered_at=datetime(2027, 5, 4, 10, tzinfo=UTC),
    )
    june = month_of(date(2027, 6, 1))
    assert series(june)["2027-05-01"] == 1
    assert not PeriodAggregate.objects.filter(start=MAY.start).exists()


def test_a_row_stored_before_the_month_closed_is_computed_again() -> None:
    row = stored(APRIL, delivered=99)
    early = datetime(2027, 5, 10, tzinfo=UTC)
    PeriodAggregate.objects.filter(pk=row.pk).update(computed_at=early)
    assert series(MAY)["2027-04-01"] == 0  # April has no rows: recomputed
    row.refresh_from_db()
    assert timezone.localdate(row.computed_at) == TODAY.date()


def test_a_filtered_trend_reads_the_rows_of_its_own_scope() -> None:
    CarrierFactory(code="ups")
    stored(MARCH, delivered=40)
    stored(MARCH, scope="carrier:ups", delivered=12)
    assert series(MAY, Filters(carrier="ups"))["2027-03-01"] == 12
    assert aggregates.scope_of(Filters(carrier="ups", hub="chi")) == (
        "carrier:ups+hub:chi"
    )


def test_the_purge_stores_the_month_for_everyone_each_carrier_and_each_hub() -> None:
    ups = CarrierFactory(code="ups")
    shipment = delivered(
        ups,
        "SH-P1",
        dispatched=datetime(2027, 3, 5, 10, tzinfo=UTC),
        eta=date(2027, 3, 7),
        delivered_at=datetime(2027, 3, 6, 10, tzinfo=UTC),
    )
    type(shipment).objects.filter(pk=shipment.pk).update(
        created_at=datetime(2027, 3, 4, tzinfo=UTC)
    )
    rows = aggregates.aggregate_month(date(2027, 3, 1))
    assert {r.scope for r in rows} == {"all", "carrier:ups"}
    assert all(r.data["delivered"]["value"] == 1 for r in rows)


def test_a_monthly_report_uses_the_stored_months_for_its_year_ago_and_series() -> None:
    stored(month_of(date(2026, 5, 1)), delivered=5)
    data = report_data(MAY, Filters())
    item = next(i for i in data["headline"] if i["key"] == "delivered")
    assert item["year_ago"] == 5


def test_a_closed_week_is_stored_and_the_last_week_is_not() -> None:
    june_7 = iso_week(date(2027, 6, 7))  # Mon 7 - Sun 13 June: closes on the 20th
    series(june_7)
    weeks = set(
        PeriodAggregate.objects.filter(kind="weekly").values_list("start", flat=True)
    )
    # The eleven weeks before it (closed by the 13th) and the same week a
    # year before are stored: twelve rows.
    assert len(weeks) == 12
    assert date(2026, 6, 8) in weeks
    assert date(2027, 5, 31) in weeks  # 31 May - 6 June closed on the 13th
    assert june_7.start not in weeks
