"""Celery tasks: the periodic sweep (its name, `exceptions_mgmt.tasks.exceptions_sweep`,
is in the beat schedule and in queued messages: it does not change)."""

from __future__ import annotations

from celery import shared_task

from exceptions_mgmt import sweep


@shared_task(ignore_result=True)
def exceptions_sweep() -> dict[str, int]:
    return sweep.exceptions_sweep()
