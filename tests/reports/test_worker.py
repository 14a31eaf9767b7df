"""A real Celery worker makes a requested run end to end."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from reports import services
from reports.models import ReportRun, RunStatus
from tests.factories import CarrierFactory
from tests.helpers import stored_at
from tests.notifications.conftest import wait_for


@pytest.mark.django_db(transaction=True)
def test_a_worker_makes_the_requested_run_into_a_pdf(
    start_worker: Any, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    start_worker(TRACKSOP_FILES_DIR=str(files))
    carrier = CarrierFactory()
    day = timezone.localdate().replace(day=1) - timedelta(days=1)
    run = services.report_request(kind="monthly", start=day, carrier=carrier.code)

    def finished() -> bool:
        run.refresh_from_db()
        return run.is_finished

    wait_for(finished, timeout=90, what="the worker to make the report")
    assert run.status == RunStatus.DONE, run.error
    text = subprocess.run(  # noqa: S603
        ["pdftotext", str(stored_at(files, run.pdf)), "-"],  # noqa: S607
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert carrier.name in text
    assert run.data is not None
    for item in run.data["headline"]:
        assert item["label"] in text
    assert ReportRun.objects.count() == 1
