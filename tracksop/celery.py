from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready
from django.db import close_old_connections

from tracksop.broker import use_guarded_redis_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracksop.settings.base")
use_guarded_redis_transport()

app = Celery("tracksop")
# All Celery configuration lives in Django settings under the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task: Any = None, **_: Any) -> None:
    """Around each task what Django does around each request: drop a database
    connection that failed or outlived CONN_MAX_AGE (CELERY_DB_REUSE_MAX keeps
    Celery from closing every one). Not for eager tasks: they run inside their
    caller's transaction."""
    if task is not None and not getattr(task.request, "is_eager", False):
        close_old_connections()


@worker_ready.connect
def _warm_up_carriers(sender: Any = None, **_: Any) -> None:
    # The threads and solo pools run tasks in this process; prefork children
    # warm up themselves (below).
    pool = getattr(sender, "pool", None)
    if not type(pool).__module__.endswith("prefork"):
        from shipments.carriers.sync import karrio_warm_up_soon

        karrio_warm_up_soon()


@worker_process_init.connect
def _warm_up_carriers_in_child(**_: Any) -> None:
    from shipments.carriers.sync import karrio_warm_up_soon

    karrio_warm_up_soon()
