"""Scheduled runs: the previous period, once per schedule and period."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime

import pytest
import time_machine
from django.conf import settings

from reports import services
from reports.models import ReportKind, ReportRun, ReportSchedule


def schedule_of(kind: str) -> ReportSchedule:
    """The schedule of this kind, on; the migration's defaults may be there
    already (their rows are back after a flush only in some test orders)."""
    return ReportSchedule.objects.update_or_create(
        kind=kind, defaults={"is_active": True}
    )[0]


def company(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def test_the_weekly_schedule_makes_last_week_from_monday_six_oclock() -> None:
    # Monday 2026-03-09 05:59 is still the week before's turn.
    assert services.schedule_due_period(
        "weekly", company(2026, 3, 9, 5, 59)
    ).start == date(2026, 2, 23)
    assert services.schedule_due_period(
        "weekly", company(2026, 3, 9, 6, 0)
    ).start == date(2026, 3, 2)


def test_the_monthly_schedule_makes_last_month_from_the_first_at_six() -> None:
    period = services.schedule_due_period("monthly", company(2026, 3, 1, 6, 0))
    assert (period.start, period.end) == (date(2026, 2, 1), date(2026, 2, 28))


@pytest.mark.django_db(transaction=True)
def test_two_beats_make_one_run_per_schedule_and_period() -> None:
    weekly = schedule_of(ReportKind.WEEKLY)
    schedule_of(ReportKind.MONTHLY)
    with time_machine.travel(company(2026, 3, 10, 9, 0), tick=False):
        services.report_schedules_run()
        services.report_schedules_run()
    assert ReportRun.objects.count() == 2
    run = ReportRun.objects.get(schedule=weekly)
    assert run.period_start == date(2026, 3, 2)
