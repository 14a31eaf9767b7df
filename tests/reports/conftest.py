"""The notifications tests' Celery worker and SMTP sink, shared with reports."""

from __future__ import annotations

from tests.notifications.conftest import smtp_sink, start_worker

__all__ = ["smtp_sink", "start_worker"]
