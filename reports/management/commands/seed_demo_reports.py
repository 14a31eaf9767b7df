"""Demo data: the weekly and monthly schedules, and last week's and last
month's reports made on the spot so `make run` has reports to open."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from reports import services
from reports.models import ReportKind, ReportRun, ReportSchedule, RunStatus


class Command(BaseCommand):
    help = "Create the report schedules and a few finished demo reports."

    def handle(self, *args: Any, **options: Any) -> None:
        for kind in (ReportKind.WEEKLY, ReportKind.MONTHLY):
            ReportSchedule.objects.get_or_create(kind=kind)
        if ReportRun.objects.filter(status=RunStatus.DONE).exists():
            return
        today = timezone.localdate()
        for kind, day in [
            (ReportKind.WEEKLY, today - timedelta(days=7)),
            (ReportKind.MONTHLY, today.replace(day=1) - timedelta(days=1)),
        ]:
            run = services.report_request(kind=kind, start=day)
            services.report_make(run.pk)
