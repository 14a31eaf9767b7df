from __future__ import annotations

from celery import shared_task

from reports import services


@shared_task(ignore_result=True)
def report_make_task(run_id: int) -> None:
    services.report_make(run_id)


@shared_task(ignore_result=True)
def report_schedules_task() -> None:
    services.report_schedules_run()
