"""Batch ingest of checkpoints over the API, against PostgreSQL's COPY.

Run alone with `.venv/bin/python -m bench api` (`make bench` runs it with the
others); `--checkpoints` sets how many (100,000), in batches of BATCH (1,000).

Part 1, checkpoints. A fresh database (DATABASE below, dropped and made again
each run) holds SHIPMENTS dispatched shipments, each with a recipient email and
phone; each gets STEPS checkpoints (picked up, hub scans, out for delivery,
delivered), in time order, at five hubs, each with the carrier's event id as
`external_id`. They go out step by step (every shipment's first scan, then
every shipment's second ...), so a batch names 1,000 different shipments, as a
hub's scanner would send them. Rows, in this order:

  COPY: the same rows, as the events table stores them, `COPY`ed into a
      scratch table shaped like it (`LIKE shipments_trackingevent`, without
      its indexes and constraints) in one COPY: PostgreSQL's floor for
      writing these rows on this machine;
  API: `POST /api/v1/checkpoints/` with a Bearer key issued by `manage.py
      api_key_issue NAME --scope events:write`, over HTTP to gunicorn serving
      the production settings (bench.settings, as bench/public.py serves
      them), CLIENTS requests at a time, timed from the first request to the
      last response, with everything each event causes written in its
      transaction (the outbox rows, each email built and stored);
  service: the same path without HTTP, DRF or the JSON (`checkpoints_ingest`
      called in this process, one batch at a time, on the same kind of
      batches for another tenth as many shipments): what the web layer and
      the three workers add or save, by difference.

Target: API at least TARGET_RATIO of COPY's rows per second, every checkpoint
created, and every event's notifications written: each milestone (out for
delivery, delivered) has its email and its SMS row, no other event has any.

Part 2, the 10,000 webhooks to a local receiver, is bench/webhooks.py:
`python -m bench api` runs it after this part (`--webhooks` sets how many).

Database `tracksop_bench_api`; Redis from REDIS_URL (its database 14 for the
server's cache and broker: the outbox's tasks are published there, and no
worker takes them; flushed before and after).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import batched
from pathlib import Path
from urllib.parse import urlsplit

import redis

from bench.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "tracksop_bench_api"
CHECKPOINTS = 100_000
BATCH = 1000
STEPS = 10
CLIENTS = 3  # one per gunicorn worker
DIRECT_SHARE = 10  # the in-process row runs a tenth of the checkpoints
TARGET_RATIO = 0.25
CACHE_DB = 14
PATH = "/api/v1/checkpoints/"
HUBS = ("bench-ord", "bench-ind", "bench-cmh", "bench-pit", "bench-ewr")
KINDS = (
    "picked_up",
    "arrived_hub",
    "departed_hub",
    "arrived_hub",
    "departed_hub",
    "in_transit_scan",
    "arrived_hub",
    "departed_hub",
    "out_for_delivery",
    "delivered",
)
# The production server of bench/public.py, with room for a batch's time.
GUNICORN = [
    *("gunicorn", "tracksop.wsgi:application"),
    *("--workers", "3", "--worker-class", "sync", "--no-control-socket"),
    *("--timeout", "600"),
]
HEADER = ("path", "rows", "seconds", "rows/s", "% of COPY", "target", "ok?")

Row = tuple[str, ...]


@dataclass(frozen=True)
class Scan:
    """One checkpoint as the scanner sends it, and as the table stores it."""

    shipment_pk: int
    reference: str
    kind: str
    occurred_at: datetime
    hub: str
    external_id: str
    notes: str

    def json(self) -> dict[str, str]:
        return {
            "reference": self.reference,
            "kind": self.kind,
            "occurred_at": self.occurred_at.isoformat(),
            "location": self.hub,
            "external_id": self.external_id,
            "notes": self.notes,
        }


@dataclass
class Timed:
    rows: int
    seconds: float
    cpu_seconds: float | None = None  # of the process that did the work
    load_before: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run(checkpoints: int = CHECKPOINTS) -> tuple[list[Row], list[str]]:
    from django.db import connection

    from bench import db

    shipments = max(1, checkpoints // STEPS)
    started = time.monotonic()
    db.fresh(DATABASE)
    http_set = _seed(shipments, "BA")
    # The in-process row is a comparison, not the target: a tenth is enough.
    direct_set = _seed(max(1, shipments // DIRECT_SHARE), "BB")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    print(
        f"{DATABASE}: {len(http_set) + len(direct_set):,} dispatched shipments "
        "seeded in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    api_scans = _scans(http_set)[:checkpoints]
    direct_scans = _scans(direct_set)
    notes: list[str] = []

    print(f"COPY of {len(api_scans):,} rows ...", flush=True)
    copy = _copy(api_scans)

    print(f"API: {len(api_scans):,} checkpoints in batches of {BATCH} ...", flush=True)
    api, api_notes = _over_http(api_scans)
    notes += api_notes
    problems = _check(api_scans, what="API")

    print(
        f"service, in this process: {len(direct_scans):,} checkpoints ...", flush=True
    )
    direct = _direct(direct_scans)
    problems += _check(direct_scans, what="service")

    rows: list[Row] = []

    def row(name: str, timed: Timed | None, target: str = "", ok: bool = True) -> None:
        if timed is None:
            rows.append((name, "-", "-", "-", "-", target, "FAIL" if target else ""))
            return
        share = f"{timed.rate / copy.rate:.1%}" if copy.rate else "-"
        verdict = ("ok" if ok else "FAIL") if target else ""
        rows.append(
            (
                name,
                f"{timed.rows:,}",
                f"{timed.seconds:.2f}",
                f"{timed.rate:,.0f}",
                share,
                target,
                verdict,
            )
        )

    row("COPY into a scratch table", copy)
    api_ok = api is not None and not problems and api.rate >= TARGET_RATIO * copy.rate
    row(
        f"API: POST {PATH} over HTTP (gunicorn)",
        api,
        f">= {TARGET_RATIO:.0%} of COPY, all created, notifications written",
        api_ok,
    )
    row("service: checkpoints_ingest in process", direct)
    if api is not None and copy.rate:
        notes.insert(0, f"ratio API / COPY: {api.rate / copy.rate:.1%}")
    for name, timed in (("COPY", copy), ("API", api), ("service", direct)):
        if timed is None:
            continue
        cpu = (
            f"{timed.cpu_seconds * 1000 / timed.rows:.2f} ms of Python CPU per row"
            if timed.cpu_seconds is not None and timed.rows
            else "Python CPU not measured"
        )
        notes.append(f"{name}: {cpu}; load average {timed.load_before:.1f} before")
    busiest = max(t.load_before for t in (copy, api, direct) if t is not None)
    if busiest > (os.cpu_count() or 1):
        notes.append(
            f"BUSY MACHINE: load average up to {busiest:.1f} on {os.cpu_count()} "
            "CPUs: the rates follow the other programs; compare CPU per row."
        )
    notes += problems or [
        "every checkpoint created once; every event's notifications written"
    ]
    return rows, notes


# --- the data ---------------------------------------------------------------


def _seed(count: int, prefix: str) -> list[tuple[int, str]]:
    """`count` dispatched shipments (own fleet) with their three events, in
    bulk; returns (pk, shipment ID) in creation order."""
    from django.utils import timezone

    from bench.seed import dispatched_shipments, own_fleet
    from shipments.models import Location

    for code in HUBS:
        Location.objects.get_or_create(
            code=code,
            defaults={"name": code, "city": code[6:].upper(), "country": "US"},
        )
    return dispatched_shipments(
        range(count),
        carrier=own_fleet(),
        codes=lambda n: (
            f"{prefix}-{n:07d}",
            f"ORD-{prefix}{n:07d}",
            f"{prefix}{n:09d}US",
        ),
        dispatched_at=timezone.now() - timedelta(days=2),
        eta=(timezone.now() + timedelta(days=2)).date(),
        phone=True,
        history=True,
    )


def _scans(shipments: Sequence[tuple[int, str]]) -> list[Scan]:
    """Every shipment's step 0, then every shipment's step 1, ...: two hours
    apart, the first two hours after dispatch (so none is in the future)."""
    from django.utils import timezone

    start = timezone.now() - timedelta(days=2)
    scans = []
    for step, kind in enumerate(KINDS):
        for n, (pk, code) in enumerate(shipments):
            scans.append(
                Scan(
                    shipment_pk=pk,
                    reference=code,
                    kind=kind,
                    occurred_at=start + timedelta(hours=2 * (step + 1), seconds=n),
                    hub=HUBS[(n + step) % len(HUBS)],
                    external_id=f"carrier-{code}-{step}",
                    notes="" if step % 3 else "scanned at dock 4",
                )
            )
    return scans


# --- COPY ----------------------------------------------------------------------


def _copy(scans: Sequence[Scan]) -> Timed:
    """The rows the events table would get, COPYed into a table like it."""
    from django.db import connection
    from django.utils import timezone

    from shipments.models import Location

    hubs = dict(Location.objects.values_list("code", "pk"))
    now = timezone.now()
    rows = [
        (
            s.shipment_pk,
            s.kind,
            s.occurred_at,
            now,
            hubs[s.hub],
            "bench-copy",
            "api",
            s.notes,
            s.external_id,
            "in_transit",
            "{}",
        )
        for s in scans
    ]
    columns = (
        "shipment_id, kind, occurred_at, recorded_at, location_id, integration, "
        "source, notes, external_id, status_after, data"
    )
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_api_copy")
        cursor.execute(
            "CREATE TABLE bench_api_copy (LIKE shipments_trackingevent "
            "INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
    raw = connection.connection
    load = os.getloadavg()[0]
    started = time.monotonic()
    with (
        raw.transaction(),
        raw.cursor() as cursor,
        cursor.copy(f"COPY bench_api_copy ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    seconds = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_api_copy")
        (copied,) = cursor.fetchone()  # type: ignore[misc]
        cursor.execute("DROP TABLE bench_api_copy")
    assert copied == len(rows), (copied, len(rows))
    return Timed(len(rows), seconds, None, load)


# --- over HTTP -------------------------------------------------------------------


def _endpoint_exists() -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve(PATH)
    except Resolver404:
        return False
    return True


def _server_env(work: Path) -> dict[str, str]:
    from bench import public

    env = public.server_env(work / "static")
    # This machine's Redis as the bench process has it (its host and port),
    # in the database the server may flush.
    redis_url = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    base = f"redis://{redis_url.hostname or '127.0.0.1'}:{redis_url.port or 6379}"
    env["REDIS_URL"] = env["CELERY_BROKER_URL"] = f"{base}/{CACHE_DB}"
    env["TRACKSOP_API_RATE"] = "100000/min"  # the bench measures, not the limit
    return env


def _issue_key(env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603
        [
            *(sys.executable, "manage.py", "api_key_issue", "bench-scanner"),
            *("--scope", "events:write"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"api_key_issue:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def _over_http(scans: Sequence[Scan]) -> tuple[Timed | None, list[str]]:
    from bench import public

    if not _endpoint_exists():
        return None, [f"API: no {PATH} in this checkout (the endpoint is not merged)"]
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = _server_env(work)
    key = _issue_key(env)
    cache = redis.Redis.from_url(env["REDIS_URL"])
    cache.flushdb()
    bodies = [
        json.dumps({"checkpoints": [s.json() for s in chunk]}).encode()
        for chunk in batched(scans, BATCH)
    ]
    port = free_port()
    server = public.Server([*GUNICORN, "--bind", f"127.0.0.1:{port}"], env, work)
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    try:
        server.wait_ready(port)
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
        }
        load = os.getloadavg()[0]
        cpu_before = server.cpu_seconds()
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for status, counts in pool.map(
                lambda body: _post(port, body, headers), bodies
            ):
                statuses[status] += 1
                outcomes.update(counts)
        seconds = time.monotonic() - started
        cpu_after = server.cpu_seconds()
    finally:
        server.stop()
        cache.flushdb()
        shutil.rmtree(work / "static", ignore_errors=True)
    cpu = (
        f", gunicorn CPU {(cpu_after - cpu_before) * 1000 / len(scans):.2f} ms per "
        "checkpoint"
        if cpu_before is not None and cpu_after is not None
        else ""
    )
    notes = [
        f"API: {len(bodies)} requests, statuses {dict(statuses)}, results "
        f"{dict(outcomes)}{cpu}; {CLIENTS} clients, server: {' '.join(GUNICORN)} "
        f"(bench.settings); {os.cpu_count()} CPUs; log in {work}",
    ]
    if statuses != Counter({200: len(bodies)}) or outcomes["created"] != len(scans):
        notes.append(f"API: NOT ALL CREATED; see {server.log}")
    spent = (
        cpu_after - cpu_before
        if cpu_before is not None and cpu_after is not None
        else None
    )
    return Timed(outcomes["created"], seconds, spent, load), notes


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, Counter[str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", PATH, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    counts: Counter[str] = Counter()
    if response.status == 200:
        answer = json.loads(payload)
        counts.update(r["status"] for r in answer["results"])
    return response.status, counts


# --- in process --------------------------------------------------------------------


def _direct(scans: Sequence[Scan]) -> Timed:
    from shipments.ingest import CheckpointIn, checkpoints_ingest
    from tracksop.celery import app

    # The outbox's tasks go where the server's went (flushed), not to the
    # broker of whoever runs the bench.
    broker = _server_env(Path(tempfile.gettempdir()))["CELERY_BROKER_URL"]
    app.conf.broker_url = broker

    batches = [
        [
            CheckpointIn(
                reference=s.reference,
                kind=s.kind,
                occurred_at=s.occurred_at,
                location=s.hub,
                notes=s.notes,
                external_id=s.external_id,
            )
            for s in chunk
        ]
        for chunk in batched(scans, BATCH)
    ]
    created = 0
    load = os.getloadavg()[0]
    cpu = time.process_time()
    started = time.monotonic()
    for batch in batches:
        results = checkpoints_ingest(batch, integration="bench-direct")
        created += sum(r.status == "created" for r in results)
    seconds = time.monotonic() - started
    redis.Redis.from_url(broker).flushdb()
    return Timed(created, seconds, time.process_time() - cpu, load)


# --- what was written ----------------------------------------------------------------


def _check(scans: Sequence[Scan], *, what: str) -> list[str]:
    """Every scan is one event; each milestone event has its email and SMS
    row, no other event any (what `notifications_for_events` must write).
    Each path has shipments of its own; the seeded events are "import"."""
    from django.db.models import Count

    from notifications.models import Notification
    from shipments.models import TrackingEvent

    pks = {s.shipment_pk for s in scans}
    events = TrackingEvent.objects.filter(
        shipment_id__in=pks, source="api"
    ).values_list("pk", "kind")
    problems: list[str] = []
    found = dict(events)
    if len(found) != len(scans):
        problems.append(f"{what}: {len(found):,} events for {len(scans):,} scans")
    channels: dict[int, set[str]] = {}
    for event, channel in Notification.objects.filter(
        shipment_id__in=pks, event__source="api"
    ).values_list("event_id", "channel"):
        channels.setdefault(event, set()).add(channel)
    per_event = Counter(
        Notification.objects.filter(shipment_id__in=pks, event__source="api")
        .values("event_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    wrong = [
        pk
        for pk, kind in found.items()
        if channels.get(pk, set())
        != ({"email", "sms"} if kind in ("out_for_delivery", "delivered") else set())
    ]
    if wrong:
        problems.append(f"{what}: {len(wrong):,} events with the wrong outbox rows")
    if set(per_event) - {2}:
        problems.append(f"{what}: outbox rows per event {dict(per_event)}")
    return problems
