from __future__ import annotations

from celery import shared_task

from reports import retention, services


@shared_task(ignore_result=True)
def report_make_task(run_id: int) -> None:
    services.report_make(run_id)


@shared_task(ignore_result=True)
def report_schedules_task() -> None:
    services.report_runs_sweep()
    services.report_schedules_run()


@shared_task(ignore_result=True)
def retention_purge_task() -> None:
    """Monthly: archive, verify and delete what is past the retention period
    (PostgreSQL only; the embedded SQLite demo keeps everything)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    retention.purge(label="schedule")
