"""Report runs: the only write path. `report_request` queues a run,
`report_make` makes it (metrics → HTML → PDF, CSV zip, XLSX) and stores it.

A done run is never changed again; a failed one keeps no file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.outbox import ReportEmail, report_emails_queue
from reports import render, schedules
from reports.models import ACTIVE, ReportKind, ReportRun, ReportSchedule, RunStatus
from reports.periods import Filters, Period, iso_week, month_of
from reports.sections import report_data
from shipments.models import Carrier, Location

logger = logging.getLogger(__name__)
TEXT, HTML = "reports/email/body.txt", "reports/email/body.html"


def report_period(*, kind: str, start: date | None, end: date | None) -> Period:
    """The period a request names, or a ValidationError keyed by field."""
    if kind not in ReportKind.values:
        raise ValidationError({"kind": "Choose weekly, monthly or custom."})
    if start is None:
        raise ValidationError({"start": "Give the first day of the period."})
    if kind == ReportKind.WEEKLY:
        period = iso_week(start)
    elif kind == ReportKind.MONTHLY:
        period = month_of(start)
    else:
        if end is None:
            raise ValidationError({"end": "Give the last day of the period."})
        if end < start:
            raise ValidationError({"end": "The period ends before it starts."})
        period = Period(ReportKind.CUSTOM, start, end)
        if period.days > settings.TRACKSOP_REPORT_MAX_DAYS:
            raise ValidationError(
                {
                    "end": f"A custom period is at most "
                    f"{settings.TRACKSOP_REPORT_MAX_DAYS} days; this one is "
                    f"{period.days}."
                }
            )
    today = timezone.localdate()
    if period.start > today:
        raise ValidationError({"start": "The period has not started yet."})
    if kind == ReportKind.CUSTOM and period.end > today:
        raise ValidationError({"end": "The period ends in the future."})
    return period


def report_request(
    *,
    kind: str,
    start: date | None,
    end: date | None = None,
    carrier: Carrier | str | None = None,
    hub: Location | str | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
    schedule: ReportSchedule | None = None,
) -> ReportRun:
    """Queue a run, or return the identical one already queued or running."""
    period = report_period(kind=kind, start=start, end=end)
    carrier_obj = _carrier(carrier)
    hub_obj = _hub(hub)
    filters = Filters(
        carrier=carrier_obj.code if carrier_obj else "",
        hub=hub_obj.code if hub_obj else "",
    )
    key = f"{period.kind}:{period.start}:{period.end}:{filters.key()}"
    try:
        with transaction.atomic():
            run = ReportRun.objects.create(
                kind=period.kind,
                period_start=period.start,
                period_end=period.end,
                carrier=carrier_obj,
                hub=hub_obj,
                requested_by=user if user and user.is_authenticated else None,  # type: ignore[misc]
                schedule=schedule,
                request_key=key,
            )
    except IntegrityError:
        # The same request is already queued or running (or this schedule
        # already made this period): that run is the answer.
        existing = ReportRun.objects.filter(request_key=key, status__in=ACTIVE).first()
        if existing is None and schedule is not None:
            existing = (
                ReportRun.objects.filter(schedule=schedule, period_start=period.start)
                .exclude(status=RunStatus.FAILED)
                .first()
            )
        if existing is None:
            raise
        return existing
    from reports.tasks import report_make_task

    transaction.on_commit(partial(report_make_task.delay, run.pk))
    return run


def _by_code(model: Any, value: Any, field: str, what: str) -> Any:
    """A carrier or hub given as itself or by its code; a field error if
    no row has that code."""
    if value in (None, ""):
        return None
    if isinstance(value, model):
        return value
    found = model.objects.filter(code=value).first()
    if found is None:
        raise ValidationError({field: f"No {what} has the code {value!r}."})
    return found


def _carrier(value: Carrier | str | None) -> Carrier | None:
    return _by_code(Carrier, value, "carrier", "carrier")  # type: ignore[no-any-return]


def _hub(value: Location | str | None) -> Location | None:
    return _by_code(Location, value, "hub", "hub")  # type: ignore[no-any-return]


def _progress(run_id: int, progress: int, stage: str) -> None:
    ReportRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        progress=progress, stage=stage
    )


def run_period(run: ReportRun) -> Period:
    return Period(run.kind, run.period_start, run.period_end)


def run_filters(run: ReportRun) -> Filters:
    return Filters(
        carrier=run.carrier.code if run.carrier else "",
        hub=run.hub.code if run.hub else "",
    )


@contextmanager
def without_jit() -> Iterator[None]:
    """PostgreSQL compiles each large report query with its JIT (about 0.1 s
    apiece) and gains nothing back at a period's row counts: off while the
    figures are computed, back to the server's setting after."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET jit")


def report_make(run_id: int) -> ReportRun | None:
    """Make a queued run. Claimed by a conditional update, so a second task
    for the same run (a redelivery) returns without doing anything."""
    claimed = ReportRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        progress=5,
        stage="Computing the figures",
    )
    if not claimed:
        return None
    run = ReportRun.objects.select_related("carrier", "hub").get(pk=run_id)
    saved: list[str] = []
    storage = ReportRun._meta.get_field("pdf").storage
    try:
        with without_jit():
            data = report_data(run_period(run), run_filters(run))
        _progress(run_id, 40, "Drawing the PDF")
        pdf = render.report_pdf(run, data)
        _progress(run_id, 75, "Writing the CSV and XLSX files")
        files: dict[str, bytes] = {
            "pdf": pdf,
            "csv": render.report_csv_zip(data),
            "xlsx": render.report_xlsx(data),
        }
        _progress(run_id, 90, "Storing the files")
        fields: dict[str, Any] = {}
        stem = render.file_stem(run)
        for field, content in files.items():
            extension = "zip" if field == "csv" else field
            name = storage.save(
                f"reports/{run.pk}/{stem}.{extension}", ContentFile(content)
            )
            saved.append(name)
            fields[field] = name
            fields[f"{field}_size"] = len(content)
            fields[f"{field}_sha256"] = hashlib.sha256(content).hexdigest()
        updated = ReportRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.DONE,
            data=data,
            progress=100,
            stage="Done",
            finished_at=timezone.now(),
            error="",
            **fields,
        )
        if not updated:
            raise RuntimeError("The run was no longer running when it finished.")
    except Exception as exc:
        logger.exception("Report run %s failed", run_id)
        for name in saved:
            try:
                storage.delete(name)
            except Exception:
                logger.exception("Could not delete %s after a failed run", name)
        ReportRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            stage="Failed",
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    run = ReportRun.objects.select_related("schedule").get(pk=run_id)
    if run.status == RunStatus.DONE and run.schedule_id is not None:
        report_emails_send(run)
    return run


def schedule_due_period(kind: str, now: datetime) -> Period:
    """The period a schedule makes at `now`: the one before the latest
    Monday 06:00 (weekly) or 1st 06:00 (monthly), company time."""
    local = timezone.localtime(now)
    day = local.date()
    if local.time() < time(6):
        day -= timedelta(days=1)
    if kind == ReportKind.WEEKLY:
        return iso_week(iso_week(day).start - timedelta(days=1))
    return month_of(month_of(day).start - timedelta(days=1))


def report_schedules_run(*, now: datetime | None = None) -> list[ReportRun]:
    """Beat: each active schedule's run of the previous period, once per
    schedule and period (the constraint makes two beats or a restart harmless;
    a failed run is tried again by a new one)."""
    now = now or timezone.now()
    runs = []
    for schedule in ReportSchedule.objects.filter(is_active=True):
        period = schedule_due_period(schedule.kind, now)
        tries = ReportRun.objects.filter(schedule=schedule, period_start=period.start)
        if (
            tries.count() >= schedules.MAX_TRIES
            and not tries.exclude(status=RunStatus.FAILED).exists()
        ):
            continue  # failed every time: left to a person, not retried forever
        runs.append(
            report_request(kind=schedule.kind, start=period.start, schedule=schedule)
        )
    return runs


STALE_QUEUED = timedelta(minutes=10)
STALE_RUNNING = timedelta(minutes=30)


def report_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: a run queued for STALE_QUEUED whose task was lost (the broker
    was down when it was asked for) is queued again; a run still running
    after STALE_RUNNING (its worker was killed: the redelivered task finds
    it running and leaves it) is failed with the reason, so that the
    schedule tries again and an identical request is no longer held by it.
    Making a run claims it, so a second task for it does nothing."""
    from reports.tasks import report_make_task

    now = now or timezone.now()
    stopped = ReportRun.objects.filter(
        status=RunStatus.RUNNING, started_at__lt=now - STALE_RUNNING
    ).update(
        status=RunStatus.FAILED,
        finished_at=now,
        stage="Failed",
        error="The worker stopped before the report was finished "
        f"(still running after {STALE_RUNNING.seconds // 60} minutes).",
    )
    waiting = list(
        ReportRun.objects.filter(
            status=RunStatus.QUEUED, created_at__lt=now - STALE_QUEUED
        ).values_list("pk", flat=True)
    )
    for pk in waiting:
        report_make_task.delay(pk)
    return {"requeued": len(waiting), "failed": stopped}


def report_emails_send(run: ReportRun) -> int:
    """Email a finished scheduled run to its schedule's recipients, through
    the outbox (once per address, however often this is called)."""
    if run.schedule is None or run.status != RunStatus.DONE:
        return 0
    schedule = run.schedule
    users = (
        User.objects.filter(groups__in=schedule.recipient_groups.all(), is_active=True)
        .distinct()
        .order_by("pk")
    )
    found = schedules.recipients(
        [(u.get_full_name() or u.username, u.email) for u in users],
        schedule.recipient_emails,
    )
    link = settings.TRACKSOP_PUBLIC_URL.rstrip("/") + run.get_absolute_url()
    context = {
        "run": run,
        "link": link,
        "company_name": settings.TRACKSOP_COMPANY_NAME,
        "headline": (run.data or {}).get("headline", []),
    }
    subject = render_to_string("reports/email/subject.txt", context).strip()
    emails = [
        ReportEmail(
            to=r.address,
            subject=subject,
            text=render_to_string(
                "reports/email/body.txt", {**context, "name": r.name}
            ),
            html=render_to_string(
                "reports/email/body.html", {**context, "name": r.name}
            ),
        )
        for r in found
    ]
    with transaction.atomic():
        return len(report_emails_queue(run, emails))
