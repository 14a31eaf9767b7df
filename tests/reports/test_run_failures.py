"""A run that cannot be made ends failed with its reason and keeps no file;
a schedule's failed run is tried again at the next beat, MAX_TRIES times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.files.storage import FileSystemStorage, storages
from pytest_django import Settings

from reports import schedules, services
from reports.models import ReportKind, ReportRun, ReportSchedule, RunStatus
from tests.helpers import stored_at

pytestmark = pytest.mark.django_db


def schedule_of(kind: str) -> ReportSchedule:
    """The only schedule on, of this kind; the migration's defaults may be
    there already (their rows are back after a flush only in some orders)."""
    ReportSchedule.objects.exclude(kind=kind).update(is_active=False)
    return ReportSchedule.objects.update_or_create(
        kind=kind, defaults={"is_active": True}
    )[0]


class CsvRefusingStorage(FileSystemStorage):
    """A disk that fills up: the PDF is written, the CSV zip is not."""

    broken = True

    def _save(self, name: str, content: Any) -> str:
        if self.broken and name.endswith(".zip"):
            raise OSError(28, "No space left on device")
        # Storage._save is Django's documented hook; django-stubs leave it out.
        saved: str = super()._save(name, content)  # type: ignore[misc]
        return saved


@pytest.fixture
def refusing_storage(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, report_files: Path
) -> CsvRefusingStorage:
    """The `reports` storage alias set to CsvRefusingStorage. The fields took
    their storage when the model loaded, so they are given the new one."""
    settings.STORAGES = {
        **settings.STORAGES,
        "reports": {
            "BACKEND": f"{__name__}.CsvRefusingStorage",
            "OPTIONS": {"location": str(report_files)},
        },
    }
    storage = storages["reports"]
    assert isinstance(storage, CsvRefusingStorage)
    for name in ("pdf", "csv", "xlsx"):
        monkeypatch.setattr(ReportRun._meta.get_field(name), "storage", storage)
    return storage


def stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def beat(day: int) -> datetime:
    """A beat at 09:00 company time on a day of April 2026."""
    zone = ZoneInfo(django_settings.TIME_ZONE)
    return datetime(2026, 4, day, 9, 0, tzinfo=zone)


def test_a_storage_failing_while_saving_the_csv_fails_the_run_and_keeps_no_pdf(
    refusing_storage: CsvRefusingStorage, report_files: Path
) -> None:
    with time_machine.travel(beat(2), tick=False):
        run = services.report_request(kind="monthly", start=beat(1).date())
        failed = services.report_make(run.pk)

    assert failed is not None
    assert failed.status == RunStatus.FAILED
    assert failed.error == "OSError: [Errno 28] No space left on device"
    assert failed.stage == "Failed"
    assert failed.finished_at is not None
    # Nothing half-stored: the PDF saved before the CSV failed is gone too.
    assert not failed.pdf
    assert not failed.csv
    assert not failed.pdf_sha256
    assert stored_files(report_files) == []


def test_weasyprint_failing_to_draw_the_pdf_fails_the_run_with_its_reason(
    settings: Settings, tmp_path: Path, report_files: Path
) -> None:
    # A report template WeasyPrint cannot lay out: nested deeper than its
    # recursive layout goes.
    override = tmp_path / "templates" / "reports"
    override.mkdir(parents=True)
    deep = "<div>" * 5000 + "figures" + "</div>" * 5000
    (override / "report_pdf.html").write_text(f"<html><body>{deep}</body></html>")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path / "templates"]},
    ]
    with time_machine.travel(beat(2), tick=False):
        run = services.report_request(kind="monthly", start=beat(1).date())
        failed = services.report_make(run.pk)

    assert failed is not None
    assert failed.status == RunStatus.FAILED
    assert failed.error.startswith("RecursionError: ")
    assert failed.data is None
    assert stored_files(report_files) == []


def test_a_schedule_whose_run_failed_makes_a_new_one_at_the_next_beat(
    refusing_storage: CsvRefusingStorage, report_files: Path
) -> None:
    schedule = schedule_of(ReportKind.MONTHLY)
    with time_machine.travel(beat(1), tick=False):
        (first,) = services.report_schedules_run()
        services.report_make(first.pk)
    first.refresh_from_db()
    assert first.status == RunStatus.FAILED

    refusing_storage.broken = False  # the disk was cleared
    with time_machine.travel(beat(2), tick=False):
        (second,) = services.report_schedules_run()
        done = services.report_make(second.pk)

    assert second.pk != first.pk
    assert done is not None
    assert done.status == RunStatus.DONE, done.error
    assert done.period_start == first.period_start
    assert stored_at(report_files, done.csv).is_file()
    # Done: later beats return that run and make no other.
    with time_machine.travel(beat(3), tick=False):
        assert services.report_schedules_run() == [done]
    assert ReportRun.objects.filter(schedule=schedule).count() == 2


def test_a_schedule_stops_trying_a_period_after_max_tries_failed_runs(
    refusing_storage: CsvRefusingStorage,
) -> None:
    schedule = schedule_of(ReportKind.MONTHLY)
    for day in range(1, schedules.MAX_TRIES + 1):
        with time_machine.travel(beat(day), tick=False):
            (run,) = services.report_schedules_run()
            services.report_make(run.pk)

    tries = ReportRun.objects.filter(schedule=schedule)
    assert tries.count() == schedules.MAX_TRIES
    assert set(tries.values_list("status", flat=True)) == {RunStatus.FAILED}
    # Left to a person: the next beat makes no new run of that month.
    with time_machine.travel(beat(schedules.MAX_TRIES + 1), tick=False):
        assert services.report_schedules_run() == []
    assert tries.count() == schedules.MAX_TRIES
