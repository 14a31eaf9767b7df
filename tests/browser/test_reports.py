"""A supervisor's report, clicked through in Chromium and made by a real
Celery worker.

The worker is a separate process on the same test database: these tests are
transactional (the live server needs committed rows), so it sees the run the
page asked for, makes it and stores its files in a folder the live server
reads them back from.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage
from django.utils import timezone
from playwright.sync_api import expect

from reports.models import ReportRun, RunStatus
from tests.factories import CarrierFactory
from tests.notifications.conftest import purge_broker
from tests.notifications.conftest import start_worker as start_worker  # fixture

pytestmark = pytest.mark.browser

CARRIER = "Northwind Parcel Express"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the worker writes report files to and the live server
    serves them from (the fields took their storage when the model loaded)."""
    folder = tmp_path / "files"
    storage = FileSystemStorage(location=str(folder))
    for name in ("pdf", "csv", "xlsx"):
        monkeypatch.setattr(ReportRun._meta.get_field(name), "storage", storage)
    return folder


def pdf_text(path: Path) -> str:
    return subprocess.run(  # noqa: S603
        ["pdftotext", str(path), "-"],  # noqa: S607
        capture_output=True,
        check=True,
        text=True,
    ).stdout


def test_a_supervisor_asks_for_a_carriers_monthly_report_watches_it_and_gets_the_pdf(
    log_in: Any, supervisor: User, start_worker: Any, files: Path, tmp_path: Path
) -> None:
    CarrierFactory(code="nwx", name=CARRIER)
    CarrierFactory(code="ups", name="UPS")
    last_month = timezone.localdate().replace(day=1) - timedelta(days=1)
    purge_broker()  # no task left over from another test
    page = log_in("supervisor")

    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    page.get_by_label("Kind").select_option(label="Monthly")
    page.get_by_label("Start date").fill(last_month.isoformat())
    page.get_by_label("Carrier").select_option(label=CARRIER)
    page.get_by_role("button", name="Make the report").click()

    # No worker yet: the run waits in the queue and the page says so.
    expect(page.get_by_text("Queued: waiting for a worker")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Progress")).to_be_visible()
    run = ReportRun.objects.get()
    assert run.carrier is not None
    assert run.carrier.name == CARRIER
    assert run.period_start == last_month.replace(day=1)

    # The worker takes the queued task; the page refreshes itself until done.
    start_worker(purge=False, TRACKSOP_FILES_DIR=str(files))
    download_link = page.get_by_role("link", name="Download PDF")
    expect(download_link).to_be_visible(timeout=120_000)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    with page.expect_download() as info:
        download_link.click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    assert "nwx" in download.suggested_filename
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")
    text = pdf_text(saved)
    assert CARRIER in text
    assert "UPS" not in text  # the other carrier is filtered out

    # The list shows the finished run with its carrier and its files.
    page.get_by_role("link", name="All reports").click()
    row = page.get_by_role("row").filter(has_text=CARRIER)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Done")
    expect(row.get_by_role("link", name="PDF")).to_be_visible()
