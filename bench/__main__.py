"""`python -m bench [all|search|notifications|exceptions|public|reports|api|
 carrier_sync]
[--small N] [--large N] [--samples N] [--messages N] [--concurrency N]
[--sweeps N] [--duration S] [--checkpoints N] [--webhooks N]`

search: seeds (or reuses) one PostgreSQL database per scale with seed_demo, then
measures the search selector against a primary-key fetch, and the staff pages'
query counts and wall times at the small and the large scale. BENCH_SCALE sets
the default large scale (1,000,000).

notifications: pushes `--messages` dispatch emails through the outbox, a Celery
worker of `--concurrency` threads and a local SMTP server, beside a no-op task
drained by the same worker (see bench/notifications.py).

exceptions: times one exceptions sweep (detection and escalation) with 5% of
the shipments holding open exceptions, at the small and the large scale, median
of `--sweeps` runs, and EXPLAINs the queries that find the work (see
bench/exceptions.py).

public: serves the large scale with gunicorn and production settings and drives
the public tracking page with wrk (32 connections, `--duration` seconds per run),
beside a bare view and a one-query view from the same server (see
bench/public.py).

reports: the monthly and weekly report end to end, their figures, the PDF,
the 12-month trend, peak memory, the dashboard's KPI row, at 100,000 and
`--large` shipments, and the purge of a month at 100,000 (see
bench/reports.py).

api: posts `--checkpoints` checkpoints in batches of 1,000 to the API, served by
gunicorn with production settings, beside a COPY of the same rows into a
scratch table, and the same batches through the service in process (see
bench/api.py); then part 2, the webhooks benchmark with `--webhooks` messages.

webhooks: 10,000 scans through `checkpoints_append`, each writing a webhook,
delivered by a Celery worker to a local receiver that takes 50 ms a request:
all in under a minute, none lost, none doubled (see bench/webhooks.py).

carrier_sync: 5,000 and 50,000 undelivered UPS shipments, one polling cycle
against a local fake carrier answering in 100 ms, by 2 Celery worker
processes, beside the same loop doing only the HTTP calls (see
bench/carrier_sync.py; `python -m bench.carrier_sync --help` for other sizes).

`all` (the default, `make bench`) runs all of them. Prints one table per benchmark;
exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

TARGET_MS = 20.0
TARGETED_KINDS = ("tracking number", "email")
EXPLAINED_KINDS = ("email", "name fragment")
DB_URL = "postgres://postgres:postgres@127.0.0.1:5432/{name}"

Row = tuple[str, ...]
HEADER = ("metric", "scale", "value", "baseline", "target", "ok?")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=(
            *("all", "search", "notifications", "exceptions", "public", "reports"),
            "api",
            "webhooks",
            "carrier_sync",
        ),
    )
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument(
        "--large", type=int, default=int(os.environ.get("BENCH_SCALE", 1_000_000))
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--checkpoints", type=int, default=100_000)
    parser.add_argument("--webhooks", type=int, default=10_000)
    args = parser.parse_args()
    started = time.monotonic()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tracksop.settings.test"
    # Each scale has its own database; bench.db.prepare() creates and switches.
    os.environ["DATABASE_URL"] = DB_URL.format(name=f"tracksop_bench_{args.small}")
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment(debug=False)  # the test Client's host; no query log
    # WhiteNoise looks for collected static files; the pages render without them.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)

    failed = False
    if args.which in ("all", "search"):
        rows = run(args.small, args.large, args.samples)
        print_table(rows)
        failed = any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "notifications"):
        from bench import notifications

        rows, notes = notifications.run(args.messages, args.concurrency)
        print_table(rows, notifications.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "exceptions"):
        from bench import exceptions

        rows, notes = exceptions.run(args.small, args.large, args.sweeps)
        print_table(rows)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "public"):
        from bench import public

        rows, notes = public.run(args.large, args.duration)
        print_table(rows, public.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "reports"):
        from bench import reports

        rows, notes = reports.run(args.large)
        print_table(rows, reports.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "api"):
        from bench import api

        rows, notes = api.run(args.checkpoints)
        print_table(rows, api.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "api", "webhooks"):
        from bench import webhooks

        count = args.webhooks if args.which == "api" else args.messages
        rows, notes = webhooks.run(count, args.concurrency)
        print_table(rows, webhooks.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    if args.which in ("all", "carrier_sync"):
        from bench import carrier_sync

        rows, notes = carrier_sync.run(
            carrier_sync.SMALL,
            carrier_sync.LARGE,
            carrier_sync.CONCURRENCY,
            "ups",
            carrier_sync.WORKERS,
        )
        print_table(rows, carrier_sync.HEADER)
        print("\n".join(["", *notes]))
        failed = failed or any(r[-1] == "FAIL" for r in rows)
    print(f"\n{'FAILED' if failed else 'All targets met'}", end="")
    print(f" in {time.monotonic() - started:.0f} s.")
    return 1 if failed else 0


def run(small: int, large: int, samples: int) -> list[Row]:
    from bench import db, pages, search

    rows: list[Row] = []

    def row(metric: str, scale: int, value: str, base: str, target: str = "", ok=True):
        verdict = ("ok" if ok else "FAIL") if target else ""
        rows.append((metric, f"{scale:,}", value, base, target, verdict))

    page_costs = {}
    for scale in (small, large):
        print(db.prepare(scale), flush=True)
        user = pages.bench_user()
        sample = search.sample_rows(min(samples, scale // 4) + search.WARMUP)
        for kind, (found, pk) in search.measure(user, sample).items():
            targeted = scale == large and kind in TARGETED_KINDS
            row(
                f"search {kind}: median ms",
                scale,
                f"{found.median:.2f}",
                f"{pk.median:.2f} (pk)",
                f"< {TARGET_MS:g} ms" if targeted else "",
                ok=found.median < TARGET_MS,
            )
            row(f"search {kind}: p95 ms", scale, f"{found.p95:.2f}", f"{pk.p95:.2f}")
        if scale == large:
            for kind in EXPLAINED_KINDS:
                query = search.KINDS[kind](sample[0])
                print(f"\nEXPLAIN ANALYZE shipment_search({query!r})  [{kind}]")
                print("\n".join(f"  {line}" for line in search.explain(user, query)))
        page_costs[scale] = pages.measure(user)

    at_small = f" (at {small:,})"
    for name, big in page_costs[large].items():
        little = page_costs[small][name]
        row(
            f"page {name}: queries",
            large,
            f"{big.queries}{_listed(big)}",
            f"{little.queries}{_listed(little)}{at_small}",
            "= baseline",
            ok=big.queries == little.queries,
        )
        row(
            f"page {name}: median ms",
            large,
            f"{big.median_ms:.1f}",
            f"{little.median_ms:.1f}{at_small}",
        )
    return rows


def _listed(cost: Any) -> str:
    return "" if cost.rows is None else f" ({cost.rows} rows)"


def print_table(rows: list[Row], header: Row = HEADER) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
