"""Report runs: asking for one, making it, and failing cleanly."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from reports import render, services
from reports.models import ReportRun, RunStatus
from tests.factories import CarrierFactory
from tests.helpers import race, stored_at


def last_month_day() -> Any:
    return timezone.localdate().replace(day=1) - timedelta(days=1)


@pytest.mark.django_db(transaction=True)
def test_a_monthly_run_is_made_with_a_pdf_that_shows_the_figures(
    report_files: Path,
) -> None:
    run = services.report_request(kind="monthly", start=last_month_day())
    assert run.period_start.day == 1
    done = services.report_make(run.pk)
    assert done is not None
    assert done.status == RunStatus.DONE, done.error
    assert done.pdf_size
    assert len(done.pdf_sha256) == 64
    path = stored_at(report_files, done.pdf)
    text = subprocess.run(  # noqa: S603
        ["pdftotext", str(path), "-"],  # noqa: S607
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "Delivery report" in text
    assert done.data is not None
    for item in done.data["headline"]:
        assert item["label"] in text
    assert stored_at(report_files, done.csv).exists()
    assert stored_at(report_files, done.xlsx).exists()
    # Done is final: a second make changes nothing.
    assert services.report_make(run.pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_failing_xlsx_writer_fails_the_run_and_keeps_not_even_the_pdf(
    report_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise OSError("no fonts")

    monkeypatch.setattr(render, "report_xlsx", broken)
    run = services.report_request(kind="weekly", start=last_month_day())
    failed = services.report_make(run.pk)
    assert failed is not None
    assert failed.status == RunStatus.FAILED
    assert "no fonts" in failed.error
    assert not failed.pdf
    assert not any(p.is_file() for p in report_files.rglob("*"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "custom", "start": 5, "end": 10}, "end"),
        ({"kind": "custom", "start": 3, "end": -5}, "end"),
        ({"kind": "custom", "start": 500, "end": 1}, "end"),
        ({"kind": "monthly", "start": -40}, "start"),
        ({"kind": "weekly", "start": 10, "carrier": "nope"}, "carrier"),
        ({"kind": "weekly", "start": 10, "hub": "nope"}, "hub"),
    ],
)
def test_bad_requests_get_a_field_error(kwargs: dict[str, Any], field: str) -> None:
    today = timezone.localdate()
    kwargs = {**kwargs, "start": today - timedelta(days=kwargs["start"])}
    if "end" in kwargs:
        kwargs["end"] = today - timedelta(days=kwargs["end"])
    with pytest.raises(ValidationError) as caught:
        services.report_request(**kwargs)
    assert field in caught.value.error_dict
    assert not ReportRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_identical_requests_at_once_make_one_run() -> None:
    carrier = CarrierFactory()
    day = last_month_day()
    outcomes = race(
        *[
            lambda: services.report_request(
                kind="monthly", start=day, carrier=carrier.code
            )
            for _ in range(4)
        ]
    )
    assert all(isinstance(o, ReportRun) for o in outcomes), outcomes
    assert len({o.pk for o in outcomes}) == 1
    assert ReportRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_demo_command_makes_schedules_and_finished_reports_once() -> None:
    from django.core.management import call_command

    from reports.models import ReportSchedule

    call_command("seed_demo_reports")
    call_command("seed_demo_reports")
    assert ReportSchedule.objects.count() == 2
    assert ReportRun.objects.filter(status=RunStatus.DONE).count() == 2
