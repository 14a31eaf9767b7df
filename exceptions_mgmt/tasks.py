from __future__ import annotations

from celery import shared_task

from exceptions_mgmt import services


@shared_task(ignore_result=True)
def exceptions_sweep() -> dict[str, int]:
    return services.exceptions_sweep()
