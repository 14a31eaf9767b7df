"""Which period a schedule releases when, and who gets it."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from pytest_django import Settings

from reports.schedules import recipients
from reports.services import schedule_due_period as due_period

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _new_york(settings: Settings) -> None:
    settings.TIME_ZONE = "America/New_York"


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        # Monday 2027-03-08 06:00 New York releases the week of 1 to 7 March.
        (datetime(2027, 3, 8, 6, 0, tzinfo=NY), date(2027, 3, 1), date(2027, 3, 7)),
        # At 05:59 that Monday the week before is still the latest released.
        (datetime(2027, 3, 8, 5, 59, tzinfo=NY), date(2027, 2, 22), date(2027, 2, 28)),
        # Any later day of the week: last week.
        (datetime(2027, 3, 12, 23, 0, tzinfo=NY), date(2027, 3, 1), date(2027, 3, 7)),
        # 10:30 UTC on that Monday is 05:30 in New York: not yet.
        (
            datetime(2027, 3, 8, 10, 30, tzinfo=ZoneInfo("UTC")),
            date(2027, 2, 22),
            date(2027, 2, 28),
        ),
    ],
)
def test_weekly_schedule_releases_last_iso_week_on_monday_at_six(
    now: datetime, start: date, end: date
) -> None:
    period = due_period("weekly", now)
    assert period is not None
    assert (period.kind, period.start, period.end) == ("weekly", start, end)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (datetime(2027, 3, 1, 6, 0, tzinfo=NY), date(2027, 2, 1), date(2027, 2, 28)),
        (datetime(2027, 3, 1, 5, 0, tzinfo=NY), date(2027, 1, 1), date(2027, 1, 31)),
        (datetime(2028, 3, 15, 12, 0, tzinfo=NY), date(2028, 2, 1), date(2028, 2, 29)),
        (datetime(2027, 1, 1, 7, 0, tzinfo=NY), date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_monthly_schedule_releases_last_month_on_the_first_at_six(
    now: datetime, start: date, end: date
) -> None:
    period = due_period("monthly", now)
    assert period is not None
    assert (period.kind, period.start, period.end) == ("monthly", start, end)


def test_recipients_are_role_members_with_email_and_extra_addresses_once() -> None:
    found = recipients(
        [("Sam Super", "Sam@Example.com"), ("No Mail", ""), ("Dup", "sam@example.com")],
        "boss@example.com\n\n  not an address \nSAM@example.com\n",
    )
    assert [(r.name, r.address) for r in found] == [
        ("Sam Super", "sam@example.com"),
        ("", "boss@example.com"),
    ]


@pytest.mark.django_db
def test_supervisor_edits_recipients_in_the_admin_and_a_bad_address_is_refused(
    client: Client,
) -> None:
    from django.contrib.auth.models import Group

    from reports.models import ReportSchedule
    from tests.factories import UserFactory
    from tracksop import roles

    schedule, _ = ReportSchedule.objects.get_or_create(kind="weekly")
    client.force_login(UserFactory(role=roles.SUPERVISOR, is_staff=True))
    url = f"/admin/reports/reportschedule/{schedule.pk}/change/"
    manager = Group.objects.get(name=roles.MANAGER)
    refused = client.post(
        url,
        {"is_active": "on", "recipient_groups": [manager.pk],
         "recipient_emails": "boss@example.com\nnot an address"},
    )  # fmt: skip
    assert refused.status_code == 200
    assert "Not an email address: not an address" in refused.content.decode()
    saved = client.post(
        url,
        {"is_active": "on", "recipient_groups": [manager.pk],
         "recipient_emails": "boss@example.com"},
    )  # fmt: skip
    assert saved.status_code == 302
    schedule.refresh_from_db()
    assert schedule.recipient_emails == "boss@example.com"
    assert list(schedule.recipient_groups.all()) == [manager]
