"""Report pages: who may see them, asking for a run, reading and downloading it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from reports import services
from reports.models import ReportRun, RunStatus
from tests.factories import CarrierFactory, UserFactory
from tracksop import roles


def last_month() -> Any:
    return timezone.localdate().replace(day=1) - timedelta(days=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [
        (roles.LOGISTICS, 403),
        (roles.CUSTOMER_SERVICE, 403),
        (roles.SUPERVISOR, 200),
        (roles.MANAGER, 200),
    ],
)
def test_only_supervisors_and_managers_see_reports(
    client: Client, role: str, status: int
) -> None:
    client.force_login(UserFactory(role=role))
    assert client.get(reverse("report-list")).status_code == status


@pytest.mark.django_db
def test_the_list_asks_a_bounded_number_of_queries(
    client: Client,
    supervisor: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    carrier = CarrierFactory()
    for k in range(30):
        ReportRun.objects.create(
            kind="custom",
            period_start=last_month() - timedelta(days=k),
            period_end=last_month(),
            carrier=carrier,
            request_key=f"k{k}",
            status=RunStatus.FAILED,
        )
    client.force_login(supervisor)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("report-list"))
    assert response.status_code == 200


@pytest.mark.django_db
def test_a_bad_period_shows_a_field_error(client: Client, supervisor: User) -> None:
    client.force_login(supervisor)
    today = timezone.localdate()
    response = client.post(
        reverse("report-list"),
        {"kind": "custom", "start": today, "end": today - timedelta(days=3)},
    )
    assert response.status_code == 400
    assert "ends before it starts" in response.content.decode()
    assert not ReportRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_supervisor_asks_reads_and_downloads_a_report(
    client: Client, supervisor: User
) -> None:
    carrier = CarrierFactory()
    client.force_login(supervisor)
    response = client.post(
        reverse("report-list"),
        {"kind": "monthly", "start": last_month(), "carrier": carrier.code},
    )
    run = ReportRun.objects.get()
    assert response.url == run.get_absolute_url()  # type: ignore[attr-defined]  # a redirect
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' in page
    services.report_make(run.pk)
    page = client.get(run.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert carrier.name in page
    download = client.get(reverse("report-file", args=[run.pk, "pdf"]))
    assert download.status_code == 200
    assert "attachment" in download["Content-Disposition"]
    # A FileResponse; the test client's response type does not say so.
    assert b"".join(download.streaming_content).startswith(b"%PDF")  # type: ignore[attr-defined]
