from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from pytest_django import Settings

from reports.calendar import business_days_between, company_days_off
from reports.models import Holiday

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _company(settings: Settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    settings.TRACKSOP_HOLIDAY_COUNTRY = "US"
    settings.TRACKSOP_HOLIDAY_SUBDIVISION = ""


@pytest.mark.django_db
def test_weekend_public_holiday_and_admin_holiday_are_days_off() -> None:
    # Fri 2026-07-03 is the observed Independence Day (the 4th is a Saturday);
    # the admin adds Mon 2026-07-06. Thu 2026-07-02 12:00 to Tue 2026-07-07
    # 12:00: half of Thursday, then Fri/Sat/Sun/Mon off, half of Tuesday = 1.0.
    Holiday.objects.create(date=date(2026, 7, 6), name="Summer shutdown")
    off = company_days_off(date(2026, 7, 1), date(2026, 7, 31))
    start = datetime(2026, 7, 2, 12, tzinfo=NY)
    end = datetime(2026, 7, 7, 12, tzinfo=NY)
    assert business_days_between(start, end, off) == pytest.approx(1.0)
    # Without the admin row Monday counts: 2.0.
    assert business_days_between(start, end, off - {date(2026, 7, 6)}) == pytest.approx(
        2.0
    )


def test_end_before_start_is_zero() -> None:
    start = datetime(2026, 7, 7, tzinfo=NY)
    assert (
        business_days_between(start, datetime(2026, 7, 6, tzinfo=NY), frozenset()) == 0
    )
