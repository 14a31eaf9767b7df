"""Runs that would wait for ever: a run whose task was lost before a worker
saw it (the broker was down when it was asked for) is queued again, and a
run whose worker was killed half-way is failed with the reason, so that the
schedule tries again and the same request can be asked once more."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from reports import services
from reports.models import ReportRun, RunStatus
from tests.notifications.conftest import purge_broker

pytestmark = pytest.mark.django_db


def last_month() -> date:
    return timezone.localdate().replace(day=1) - timedelta(days=1)


def queued_tasks() -> list[tuple[str, str]]:
    """(task name, its arguments) of each message waiting in the broker."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    found = []
    for raw in broker.lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        found.append((headers["task"], headers["argsrepr"]))
    return found


def test_a_run_whose_task_was_lost_is_queued_again_and_a_new_one_is_left() -> None:
    purge_broker()
    now = timezone.now()
    lost = services.report_request(kind="monthly", start=last_month())
    ReportRun.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=11))
    just_asked = services.report_request(kind="weekly", start=last_month())

    assert services.report_runs_sweep(now=now) == {"requeued": 1, "failed": 0}

    assert queued_tasks() == [("reports.tasks.report_make_task", f"({lost.pk},)")]
    just_asked.refresh_from_db()
    assert just_asked.status == RunStatus.QUEUED
    purge_broker()


def test_a_run_left_running_by_a_killed_worker_fails_and_can_be_asked_again() -> None:
    purge_broker()
    now = timezone.now()
    stuck = services.report_request(kind="monthly", start=last_month())
    ReportRun.objects.filter(pk=stuck.pk).update(
        status=RunStatus.RUNNING, started_at=now - timedelta(minutes=31)
    )
    busy = services.report_request(kind="weekly", start=last_month())
    ReportRun.objects.filter(pk=busy.pk).update(
        status=RunStatus.RUNNING, started_at=now - timedelta(minutes=2)
    )

    assert services.report_runs_sweep(now=now) == {"requeued": 0, "failed": 1}

    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED
    assert "worker stopped" in stuck.error
    busy.refresh_from_db()
    assert busy.status == RunStatus.RUNNING  # a run still within its time
    # The same request is no longer held by the stuck run: a new one is made.
    again = services.report_request(kind="monthly", start=last_month())
    assert again.pk != stuck.pk
    assert again.status == RunStatus.QUEUED
    assert queued_tasks() == []
