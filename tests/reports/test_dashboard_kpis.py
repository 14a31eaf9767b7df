"""The dashboard's row of headline figures from the last four weekly reports."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from reports.models import ReportKind, ReportRun, ReportSchedule, RunStatus
from reports.selectors import dashboard_kpis
from tests.factories import UserFactory
from tracksop import roles

pytestmark = pytest.mark.django_db


def headline(
    on_time: float | None, created: int, *, too_few: bool = False
) -> list[dict[str, object]]:
    return [
        {"key": "on_time", "label": "On time", "value": on_time, "unit": "pct",
         "n": 40, "too_few": too_few, "better": "up"},
        {"key": "created", "label": "Shipments created", "value": created,
         "unit": "count", "n": created, "too_few": False, "better": "up"},
    ]  # fmt: skip


def weekly_run(
    schedule: ReportSchedule, monday: date, items: list[dict[str, object]], **extra: Any
) -> ReportRun:
    return ReportRun.objects.create(
        kind=ReportKind.WEEKLY,
        period_start=monday,
        period_end=monday + timedelta(days=6),
        schedule=schedule,
        request_key=f"weekly:{monday}::",
        status=RunStatus.DONE,
        data={"headline": items},
        **extra,
    )


@pytest.fixture
def weeks() -> list[ReportRun]:
    schedule, _ = ReportSchedule.objects.get_or_create(kind=ReportKind.WEEKLY)
    first = date(2027, 3, 1)
    runs = [
        weekly_run(schedule, first, headline(90.0, 100)),
        weekly_run(schedule, first + timedelta(weeks=1), headline(None, 5)),
        weekly_run(schedule, first + timedelta(weeks=2), headline(80.0, 120)),
        weekly_run(schedule, first + timedelta(weeks=3), headline(95.5, 130)),
        weekly_run(schedule, first + timedelta(weeks=4), headline(85.0, 140)),
    ]
    # A failed retry and a person's own run of the same week are not shown.
    ReportRun.objects.create(
        kind=ReportKind.WEEKLY,
        period_start=first + timedelta(weeks=5),
        period_end=first + timedelta(weeks=5, days=6),
        schedule=schedule,
        request_key="x",
        status=RunStatus.FAILED,
    )
    return runs


def test_kpis_are_the_last_four_weeks_oldest_first_linking_the_latest(
    weeks: list[ReportRun],
) -> None:
    kpis = dashboard_kpis()
    assert [k.label for k in kpis] == ["On time", "Shipments created"]
    on_time, created = kpis
    assert on_time.values == [None, 80.0, 95.5, 85.0]
    assert created.values == [5, 120, 130, 140]
    assert on_time.run == weeks[-1]
    # The line skips the week without a figure and spans the box: 85 lies
    # 5/15.5 of the way up from 80 to 95.5, so at 22 - 20 * 5/15.5 = 15.5.
    assert on_time.points.split() == ["33.3,22.0", "66.7,2.0", "100.0,15.5"]


def test_supervisor_dashboard_shows_the_row_without_extra_queries(
    weeks: list[ReportRun],
    client: Client,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    client.force_login(UserFactory(role=roles.SUPERVISOR))
    with django_assert_max_num_queries(16):
        page = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="kpis"' in page
    assert "85.0%" in page
    assert "140" in page
    assert weeks[-1].get_absolute_url() in page


def test_logistics_staff_see_no_report_figures(
    weeks: list[ReportRun], client: Client
) -> None:
    client.force_login(UserFactory(role=roles.LOGISTICS))
    page = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="kpis"' not in page
