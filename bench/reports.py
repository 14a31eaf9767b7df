"""What a report costs at two data sizes, and what the retention purge costs.

Run alone with `.venv/bin/python -m bench reports` (`make bench` runs it with
the others); `--small`/`--large` are replaced here by 100,000 and BENCH_SCALE
(1,000,000): seed_demo's 12 months of shipments with ~10 events each, in the
databases of bench/db.py.

At each size, beside each other from the same run:

  * the scan baseline: `SELECT count(*)` over the last full month's events;
  * the monthly report's figures (`report_data`) with no month stored yet
    (cold: the trend computes and stores its 12 closed months) and again
    with them stored (warm, as every scheduled run after the first);
  * the 12-month trend alone, cold and warm;
  * the PDF render, and the whole run as the worker does it (request →
    figures → PDF, CSV, XLSX → stored files), monthly and weekly;
  * the peak memory of a fresh process making the monthly run, beside the
    same process that only loads Django, WeasyPrint and the app;
  * the dashboard's KPI row (`dashboard_kpis`) beside the dashboard page.

At the small size only (it deletes and restores rows): the purge of the
oldest month (rows per second), and the longest wait of a writer updating
other shipments every 20 ms while it runs, beside the same writer alone.
The purged month is restored from its archive afterwards, so the database
keeps its size and is reused by the next run.

Targets (issue 12): monthly end to end < 15 s and weekly < 5 s at 1M;
1M over 100k ≤ 1.5x for the same period; peak memory < 400 MB; KPI row
< 20 ms. seed_demo puts the same 12 months under both sizes, so a month at
1M holds 10 times the rows of a month at 100k: the growth target is checked
per delivery in the month (the same work per row while the table is ten
times larger), and the raw ratio is printed beside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.urls import reverse
from django.utils import timezone

HEADER = ("metric", "scale", "value", "baseline", "target", "ok?")
SMALL = 100_000
MONTHLY_TARGET_S = 15.0
WEEKLY_TARGET_S = 5.0
GROWTH_TARGET = 1.5
MEMORY_TARGET_MB = 400.0
KPI_TARGET_MS = 20.0

Row = tuple[str, ...]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def last_full_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def scan_baseline(start: Any, end: Any) -> float:
    seconds, _ = timed(
        lambda: connection.cursor().execute(
            "SELECT count(*) FROM shipments_trackingevent"
            " WHERE occurred_at >= %s AND occurred_at < %s",
            [start, end],
        )
    )
    return seconds


def whole_run(kind: str, start: date) -> tuple[float, Any]:
    """Queue a run and make it in this process, as the worker would."""
    from reports.models import ReportRun
    from reports.services import report_make, report_period

    period = report_period(kind=kind, start=start, end=None)
    queued = ReportRun.objects.create(
        kind=kind,
        period_start=period.start,
        period_end=period.end,
        request_key=f"bench:{time.time_ns()}",
    )
    seconds, run = timed(lambda: report_make(queued.pk))
    assert run is not None
    assert run.status == "done", run.error
    return seconds, run


def page_ms(user: Any, url: str, requests: int = 20) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    assert client.get(url).status_code == 200
    samples = [timed(lambda: client.get(url))[0] for _ in range(requests)]
    return statistics.median(samples) * 1000


def peak_memory(run_id: int | None) -> float:
    """MB of peak RSS of a fresh process making `run_id` (None: only loading)."""
    out = subprocess.run(  # noqa: S603  (this interpreter, our own module)
        [sys.executable, "-m", "bench.reports", str(run_id or 0)],
        env={**os.environ, "BENCH_DB": connection.settings_dict["NAME"]},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def measure(scale: int, large: bool) -> dict[str, Any]:
    from bench import db, pages
    from reports import selectors
    from reports.aggregates import trend_values
    from reports.headline import headline
    from reports.models import PeriodAggregate, ReportRun, ReportSchedule
    from reports.periods import Filters, iso_week, month_of
    from reports.render import report_pdf
    from reports.sections import report_data

    print(db.prepare(scale), flush=True)
    today = timezone.localdate()
    month = month_of(last_full_month(today))
    week = iso_week(today - timedelta(days=7))
    found: dict[str, Any] = {"scale": scale}
    found["scan"] = statistics.median(scan_baseline(*month.bounds()) for _ in range(3))
    PeriodAggregate.objects.all().delete()
    found["trend_cold"], _ = timed(lambda: headline(month, Filters(), trend_values))
    found["trend_warm"], _ = timed(lambda: headline(month, Filters(), trend_values))
    PeriodAggregate.objects.all().delete()
    found["figures_cold"], _ = timed(lambda: report_data(month, Filters()))
    found["figures_warm"], data = timed(lambda: report_data(month, Filters()))
    found["deliveries"] = next(
        i["value"] for i in data["headline"] if i["key"] == "delivered"
    )
    monthly_seconds, run = whole_run("monthly", month.start)
    found["pdf"], _ = timed(lambda: report_pdf(run, data))
    found["monthly"] = monthly_seconds
    weekly = ReportSchedule.objects.filter(kind="weekly").first()
    found["weekly_cold"], _ = whole_run("weekly", week.start)
    found["weekly"], weekly_run = whole_run("weekly", week.start)
    # The dashboard reads the last four scheduled weekly runs.
    for back in range(4):
        start = week.start - timedelta(weeks=back)
        ReportRun.objects.create(
            kind="weekly",
            period_start=start,
            period_end=start + timedelta(days=6),
            request_key=f"bench-kpi:{time.time_ns()}",
            schedule=weekly,
            status="done",
            data=weekly_run.data,
        )
    samples = []
    for _ in range(30):
        seconds, _ = timed(selectors.dashboard_kpis)
        samples.append(seconds)
    found["kpi_ms"] = statistics.median(samples) * 1000
    found["dashboard_ms"] = page_ms(pages.bench_user(), reverse("dashboard"))
    queued = ReportRun.objects.create(
        kind="monthly",
        period_start=month.start,
        period_end=month.end,
        request_key=f"bench-mem:{time.time_ns()}",
    )
    found["memory_mb"] = peak_memory(queued.pk)
    found["memory_idle_mb"] = peak_memory(None)
    ReportRun.objects.filter(request_key__startswith="bench").delete()
    if not large:
        found.update(purge_one_month())
    print(
        "  " + ", ".join(f"{k} {v:.3f}" for k, v in found.items() if k != "scale"),
        flush=True,
    )
    return found


def purge_one_month() -> dict[str, Any]:
    """Purge what has expired with the clock 13 months on (about the oldest
    month of seed_demo's year), timed beside a writer on other shipments;
    then restore it from its archives."""
    from reports import retention
    from reports.models import Archive
    from shipments.models import Shipment

    now = timezone.now() + timedelta(days=395)
    expired = retention.expired_shipments(retention.retention_cutoff(now))
    keep = Shipment.objects.exclude(pk__in=expired.values("pk")).order_by("-pk")[0]
    alone = writer_waits(keep.pk, lambda: time.sleep(3))
    during = writer_waits(keep.pk, lambda: retention.purge(label="bench", now=now))
    purge_run = during["result"]
    removed = sum(purge_run.removed.values())
    for archive in Archive.objects.filter(purge=purge_run):
        retention.restore(archive.file.name)
    return {
        "purge_rows": removed,
        "purge_rate": removed / during["seconds"],
        "purge_seconds": during["seconds"],
        "wait_alone_ms": alone["max_ms"],
        "wait_during_ms": during["max_ms"],
    }


def writer_waits(pk: int, work: Callable[[], Any]) -> dict[str, Any]:
    """Run `work` while another connection updates shipment `pk` every 20 ms;
    the longest single update, in ms."""
    from django.db import connections

    stop = threading.Event()
    waits: list[float] = []

    def write() -> None:
        from shipments.models import Shipment

        try:
            while not stop.is_set():
                started = time.perf_counter()
                Shipment.objects.filter(pk=pk).update(updated_at=timezone.now())
                waits.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        seconds, result = timed(work)
    finally:
        stop.set()
        thread.join()
    return {"seconds": seconds, "result": result, "max_ms": max(waits, default=0.0)}


def run(large: int) -> tuple[list[Row], list[str]]:
    small = measure(SMALL, large=False)
    big = measure(large, large=True)
    rows: list[Row] = []

    def row(
        metric: str,
        f: dict[str, Any],
        value: str,
        base: str,
        target: str = "",
        ok: bool = True,
    ) -> None:
        verdict = ("ok" if ok else "FAIL") if target else ""
        rows.append((metric, f"{f['scale']:,}", value, base, target, verdict))

    for f in (small, big):
        is_large = f is big
        scan = f"{f['scan'] * 1000:.0f} ms (count of the month's events)"
        row("monthly figures, cold: s", f, f"{f['figures_cold']:.2f}", scan)
        row("monthly figures, warm: s", f, f"{f['figures_warm']:.2f}", scan)
        row("12-month trend, cold: s", f, f"{f['trend_cold']:.2f}", scan)
        row("12-month trend, warm: s", f, f"{f['trend_warm']:.3f}", scan)
        row("PDF render: s", f, f"{f['pdf']:.2f}", f"{f['figures_warm']:.2f} (figures)")
        row(
            "monthly run end to end: s",
            f,
            f"{f['monthly']:.2f}",
            scan,
            f"< {MONTHLY_TARGET_S:g} s" if is_large else "",
            ok=f["monthly"] < MONTHLY_TARGET_S,
        )
        row(
            "weekly run, cold: s",
            f,
            f"{f['weekly_cold']:.2f}",
            scan,
        )
        row(
            "weekly run end to end: s",
            f,
            f"{f['weekly']:.2f}",
            scan,
            f"< {WEEKLY_TARGET_S:g} s" if is_large else "",
            ok=f["weekly"] < WEEKLY_TARGET_S,
        )
        row(
            "monthly run, peak RSS: MB",
            f,
            f"{f['memory_mb']:.0f}",
            f"{f['memory_idle_mb']:.0f} (process loaded, idle)",
            f"< {MEMORY_TARGET_MB:g} MB",
            ok=f["memory_mb"] < MEMORY_TARGET_MB,
        )
        dash = f["dashboard_ms"]
        row(
            "dashboard KPI row: ms",
            f,
            f"{f['kpi_ms']:.2f}",
            f"{dash:.1f} (whole dashboard)",
            f"< {KPI_TARGET_MS:g} ms",
            ok=f["kpi_ms"] < KPI_TARGET_MS,
        )
    growth = big["monthly"] / small["monthly"]
    row(
        "monthly run, large over small",
        big,
        f"{growth:.2f}x",
        f"{big['deliveries'] / max(small['deliveries'], 1):.0f}x the month's rows",
    )
    per_row = {
        f["scale"]: f["monthly"] / max(f["deliveries"], 1) * 1000 for f in (small, big)
    }
    for f in (small, big):
        row(
            "monthly run per 1,000 deliveries: s",
            f,
            f"{per_row[f['scale']]:.3f}",
            f"{f['deliveries']:,} deliveries in the month",
        )
    row_growth = per_row[big["scale"]] / per_row[small["scale"]]
    row(
        "per delivery, large over small",
        big,
        f"{row_growth:.2f}x",
        "the same work per row at 10x the table",
        f"<= {GROWTH_TARGET:g}x",
        ok=row_growth <= GROWTH_TARGET,
    )
    if "purge_rate" in small:
        row(
            "purge one month: rows/s",
            small,
            f"{small['purge_rate']:,.0f}",
            f"{small['purge_rows']:,} rows in {small['purge_seconds']:.1f} s",
        )
        row(
            "other writes during purge: max ms",
            small,
            f"{small['wait_during_ms']:.1f}",
            f"{small['wait_alone_ms']:.1f} (no purge)",
        )
    notes = [
        "Cold: no month stored yet (the first run after an upgrade); warm: the",
        "closed periods are read from their PeriodAggregate rows, as in every",
        "later scheduled run. The end-to-end runs are warm; the cold weekly run",
        "is the first one, which stores its 12 closed weeks.",
    ]
    return rows, notes


def child(run_id: int) -> None:
    """`python -m bench.reports RUN_ID`: make one run (or, with 0, only load
    what the worker loads) and print the peak RSS in KB. VmHWM, not
    ru_maxrss: the latter keeps the parent's peak across fork and exec."""

    os.environ["DJANGO_SETTINGS_MODULE"] = "tracksop.settings.test"
    os.environ["DATABASE_URL"] = (
        f"postgres://postgres:postgres@127.0.0.1:5432/{os.environ['BENCH_DB']}"
    )
    import django

    django.setup()
    import weasyprint  # noqa: F401

    from reports import services

    if run_id:
        services.report_make(run_id)
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    print(peak.split()[1])


if __name__ == "__main__":
    child(int(sys.argv[1]))
