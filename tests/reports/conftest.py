"""The notifications tests' Celery worker and SMTP sink, shared with reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django import Settings

from reports.models import Archive, ReportRun
from tests.notifications.conftest import smtp_sink, start_worker

__all__ = ["archives", "report_files", "smtp_sink", "start_worker"]


@pytest.fixture(autouse=True)
def report_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Report files go to a temporary folder: the fields took their storage
    when the model loaded, so the folder is set on them. (A worker is given
    the same folder as TRACKSOP_FILES_DIR.)"""
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=str(tmp_path / "reports"))
    for name in ("pdf", "csv", "xlsx"):
        monkeypatch.setattr(ReportRun._meta.get_field(name), "storage", storage)
    return tmp_path / "reports"


@pytest.fixture
def archives(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Retention archives go to a temporary folder, through the "reports"
    storage alias (what the purge saves with) and the Archive field."""
    from django.core.files.storage import FileSystemStorage

    settings.STORAGES = {
        **settings.STORAGES,
        "reports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archives")},
        },
    }
    monkeypatch.setattr(
        Archive._meta.get_field("file"),
        "storage",
        FileSystemStorage(location=str(tmp_path / "archives")),
    )
    return tmp_path / "archives"
