"""A scheduled report reaches its recipients' mail server with its PDF, through
the outbox and a real Celery worker. Transactional: the worker runs in another
process."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.test import Client

from notifications.models import Kind, Notification, Status
from reports.models import ReportKind, ReportRun, ReportSchedule, RunStatus
from reports.services import report_emails_send
from tests.factories import UserFactory
from tests.notifications.conftest import wait_for
from tests.reports.conftest import report_files
from tracksop import roles

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["report_files"]

HEADLINE = {
    "key": "on_time",
    "label": "On-time rate",
    "value": 93.25,
    "unit": "pct",
    "n": 400,
    "too_few": False,
    "previous": 90.0,
}
PDF = b"%PDF-1.7\n% a stand-in for the report\n%%EOF\n"


def finished_weekly_run(schedule: ReportSchedule) -> ReportRun:
    run = ReportRun.objects.create(
        kind=ReportKind.WEEKLY,
        period_start=date(2027, 3, 1),
        period_end=date(2027, 3, 7),
        schedule=schedule,
        request_key="weekly:2027-03-01:2027-03-07::",
        status=RunStatus.DONE,
        data={"headline": [HEADLINE]},
    )
    run.pdf.save("weekly.pdf", ContentFile(PDF))
    return run


def test_scheduled_report_reaches_role_members_and_extra_addresses_with_its_pdf(
    report_files: Any, smtp_sink: Any, start_worker: Any
) -> None:
    start_worker(
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_sink.port}",
        TRACKSOP_FILES_DIR=str(report_files),
    )
    UserFactory(role=roles.SUPERVISOR, email="sam@example.com", first_name="Sam")
    UserFactory(role=roles.LOGISTICS, email="lou@example.com")
    schedule, _ = ReportSchedule.objects.get_or_create(kind=ReportKind.WEEKLY)
    schedule.recipient_groups.set([Group.objects.get(name=roles.SUPERVISOR)])
    schedule.recipient_emails = "boss@example.org\nnot-an-address\n"
    schedule.save()
    run = finished_weekly_run(schedule)

    assert report_emails_send(run) == 2
    # Asked again (a retried task): nothing new is written or sent.
    assert report_emails_send(run) == 0

    for address in ("sam@example.com", "boss@example.org"):
        message = wait_for(partial(smtp_sink.to, address), what=address)[0]
        assert "weekly report" in message["Subject"]
        assert "1 Mar 2027 to 7 Mar 2027" in message["Subject"]
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "On-time rate: 93.2%" in text or "On-time rate: 93.3%" in text
        assert run.get_absolute_url() in text
        (attachment,) = list(message.iter_attachments())
        assert attachment.get_filename() == "tracksop-weekly-report-2027-03-01.pdf"
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_content() == PDF
    assert smtp_sink.to("lou@example.com") == []
    wait_for(
        lambda: (
            Notification.objects.filter(
                report=run, kind=Kind.REPORT, status=Status.SENT
            ).count()
            == 2
        ),
        what="both rows marked sent",
    )


def test_a_failed_report_email_is_listed_and_sent_again_from_the_failed_list(
    report_files: Any, client: Client
) -> None:
    supervisor = UserFactory(role=roles.SUPERVISOR, email="sam@example.com")
    schedule, _ = ReportSchedule.objects.get_or_create(kind=ReportKind.WEEKLY)
    run = finished_weekly_run(schedule)
    row = Notification.objects.create(
        report=run,
        kind=Kind.REPORT,
        channel="email",
        audience="staff",
        to="sam@example.com",
        subject="Weekly report",
        status=Status.FAILED,
        idempotency_key=f"report:{run.pk}:sam@example.com",
    )
    client.force_login(supervisor)
    page = client.get("/notifications/failed/")
    assert page.status_code == 200
    assert run.get_absolute_url() in page.content.decode()
    client.post("/notifications/failed/", {"ids": [row.pk]})
    again = Notification.objects.exclude(pk=row.pk).get(kind=Kind.REPORT)
    assert again.report == run
    assert again.to == "sam@example.com"
