"""Throughput of the notification pipeline: outbox → Celery worker → SMTP.

Run alone with `.venv/bin/python -m bench notifications` (`make bench` runs it
after the search and page benchmarks); `--messages` and `--concurrency` change
the load and the worker's thread count.

Ten thousand dispatch emails go through the real path: rows written by
`notifications_for_event` (which builds and stores each email), queued by
`queue_now`, sent by the `notification_send` task in a `celery worker --pool
threads` subprocess to an aiosmtpd server in a process of its own (so it never
shares the GIL with the worker or the producer). Three phases, one fresh
worker each, with the same command line and settings:

  (a) a no-op task (`noop` below, loaded with `--include bench.notifications`)
      drained by that worker, published in one pipelined batch as `queue_now`
      publishes: Celery's own ceiling on this machine;
  (b) the pipeline, with a server that answers at once;
  (c) the pipeline, with a server that waits 50 ms before accepting each message.

Each phase is timed from the first publish to the last message counted (the
no-op's counter in Redis, or the server's count of messages). The server also
counts distinct Message-IDs (one per notification), so a lost or doubled
message shows. Targets: (b) at least half the rate of (a); (c) all delivered in
under a minute; every phase exactly one of each message, and every row sent.
The notes under the table give the CPU time per message of each process (the
worker's PostgreSQL sessions too, when the server runs on this host) and what
building the stored email costs whoever writes the row, which no phase times.

Database `tracksop_bench_notify` (seeded once, about three minutes, then
reused while every email row has its stored bytes; `_N` for other sizes);
Redis databases 8 (broker) and 7 (counters), both flushed before each phase
(the tests' default brokers are 1 and up, one per xdist worker: run neither
beside the other with -n 7 or more). A second run at the same time refuses to
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import batched
from pathlib import Path
from typing import Any

import redis
from celery import shared_task

from bench.processes import (
    StatsProcess,
    WorkerProcess,
    free_port,
    wait_for,
    worker_env,
)

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "tracksop_bench_notify"
BROKER_URL = "redis://127.0.0.1:6379/8"
COUNTER_URL = "redis://127.0.0.1:6379/7"
MESSAGES = 10_000
CONCURRENCY = 32
PREFETCH = 4
SLOW_SINK_SECONDS = 0.05
RATIO_TARGET = 0.5  # (b) against (a)
SLOW_TARGET_SECONDS = 60.0  # (c), all messages
PHASE_TIMEOUT = 300.0
NOOP_COUNTER = "bench:noop"
_LOCK = 0x7A61_6E6F  # pg_advisory_lock key of this benchmark
HEADER = (
    "phase",
    "messages",
    "seconds",
    "msg/s",
    "% of (a)",
    "sink total",
    "sink unique",
    "target",
    "ok?",
)

Row = tuple[str, ...]


# --- Worker side: loaded into the worker with --include ------------------

_counter_lock = threading.Lock()
_counter_client: redis.Redis | None = None


def _admin(sql: str, *params: object) -> list[tuple[object, ...]]:
    """One statement on the maintenance database (CREATE/DROP DATABASE)."""
    from bench import db

    with db.admin_connection() as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]  # psycopg wants LiteralString
        return cur.fetchall() if cur.description else []


def _counter() -> redis.Redis:
    global _counter_client
    with _counter_lock:
        if _counter_client is None:
            _counter_client = redis.Redis.from_url(COUNTER_URL)
        return _counter_client


@shared_task(acks_late=True, ignore_result=True)
def noop(counter: str, target: int) -> None:
    """Nothing but the count; the one that reaches `target` records the time
    (CLOCK_MONOTONIC is system-wide, so the benchmark process can compare)."""
    if _counter().incr(counter) == target:
        _counter().set(f"{counter}:done", repr(time.monotonic()))


# --- The SMTP sink: `python -m bench.notifications --sink PORT DELAY N` ----

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class _Sink:
    """Counts messages and distinct Message-IDs; `done_at` is the monotonic time
    of the `target`-th message. Commands on stdin: `stats` (one JSON line)."""

    def __init__(self, delay: float, target: int) -> None:
        self.delay, self.target = delay, target
        self.total = 0
        self.ids: set[bytes] = set()
        self.done_at: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)  # a real server's queueing and fsync
        content = envelope.original_content or envelope.content
        head = content.partition(b"\r\n\r\n")[0]
        found = _MESSAGE_ID.search(head)
        self.ids.add(found.group(1) if found else b"")
        self.total += 1
        if self.total == self.target:
            self.done_at = time.monotonic()
        return "250 2.0.0 Ok: queued"

    def stats(self) -> dict[str, Any]:
        return {"total": self.total, "unique": len(self.ids), "done_at": self.done_at}


def _sink_main(port: int, delay: float, target: int) -> None:
    from aiosmtpd.controller import Controller

    sink = _Sink(delay, target)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(sink.stats()), flush=True)
    controller.stop()


def sink_start(port: int, delay: float, target: int) -> StatsProcess:
    return StatsProcess(
        "bench.notifications", "--sink", port, delay, target, what="SMTP sink"
    )


# --- The worker subprocess ----------------------------------------------


def worker_command(concurrency: int, prefetch: int) -> list[str]:
    """The same for every phase."""
    return [
        *(sys.executable, "-m", "celery", "-A", "tracksop", "worker"),
        *("--pool", "threads", "--concurrency", str(concurrency)),
        *("--prefetch-multiplier", str(prefetch), "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        *("--hostname", "bench-notify@%h", "--include", "bench.notifications"),
    ]


class Worker(WorkerProcess):
    def __init__(self, command: list[str], smtp_port: int, log: Path) -> None:
        from bench.db import database_url

        env = worker_env(
            database_url=database_url(),
            broker_url=BROKER_URL,
            EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        )
        super().__init__(command, env, log)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """A probe task through the broker: the worker consumes, runs tasks
        and talks to Redis."""
        noop.delay("bench:probe", 1)
        wait_for(
            lambda: _counter().exists("bench:probe:done") or not self.alive(),
            timeout,
            "the worker to run a probe task",
        )
        if not self.alive():
            raise RuntimeError(f"The worker exited; see {self.log}")
        _counter().delete("bench:probe", "bench:probe:done")


# --- Data -----------------------------------------------------------------


def database_name(messages: int) -> str:
    return DATABASE if messages == MESSAGES else f"{DATABASE}_{messages}"


def prepare(messages: int) -> str:
    """Switch to the bench database; seed `messages` dispatched shipments with
    their outbox rows unless it holds exactly those already."""
    from django.core.management import call_command

    from bench import db
    from notifications.models import Channel, Notification
    from shipments.models import Shipment

    started = time.monotonic()
    name = database_name(messages)
    if not db.admin_execute("SELECT 1 FROM pg_database WHERE datname = %s", name):
        db.admin_execute(f'CREATE DATABASE "{name}"')
    db.use(name)
    call_command("migrate", verbosity=0, interactive=False)
    # Rows written before emails were built at write time have no bytes.
    emails = Notification.objects.filter(channel=Channel.EMAIL).exclude(mime=b"")
    if Shipment.objects.count() == messages and emails.count() == messages:
        return f"{name}: reused ({messages:,} dispatch notifications)"
    from django.db import connection

    connection.close()
    db.admin_execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    db.admin_execute(f'CREATE DATABASE "{name}"')
    db.use(name)
    call_command("migrate", verbosity=0, interactive=False)
    _seed(messages)
    return (
        f"{name}: seeded {messages:,} dispatched shipments and their "
        f"notifications in {time.monotonic() - started:.0f} s"
    )


def _seed(count: int) -> None:
    """Shipments and their created/checked/dispatched events by COPY (the
    seeder's fast path), then the outbox rows through the real
    `notifications_for_event`, one event at a time, in transactions."""
    import secrets
    from decimal import Decimal
    from unittest import mock

    from django.contrib.auth.models import User
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.utils import timezone

    from notifications import outbox
    from shipments import tracking_numbers as tn
    from shipments.management.commands.seed_demo import rows_copy
    from shipments.models import (
        Carrier,
        Shipment,
        Source,
        TrackingEvent,
        default_language,
    )
    from shipments.status import EventKind, ShipmentStatus, initial_state, next_state

    fleet, _ = Carrier.objects.get_or_create(
        code="fleet",
        defaults={
            "name": "TrackSOP Fleet",
            "tracking_family": "s10",
            "is_own_fleet": True,
        },
    )
    user, _ = User.objects.get_or_create(username="bench-logistics")
    now = timezone.now()
    shipments, events = [], []
    for n in range(1, count + 1):
        created = now - timedelta(hours=3, seconds=n)
        checked, dispatched = created + timedelta(hours=1), created + timedelta(hours=2)
        number = tn.s10_generate(prefix="TS", serial=n, country="US")
        eta = (dispatched + timedelta(days=3)).date()
        state = initial_state()
        for kind, at, data in (
            (EventKind.CREATED, created, {}),
            (EventKind.CHECK_PASSED, checked, {}),
            (
                EventKind.DISPATCHED,
                dispatched,
                {
                    "carrier": fleet.code,
                    "tracking_number": number,
                    "estimated_delivery": eta.isoformat(),
                },
            ),
        ):
            state = next_state(state, kind=kind, occurred_at=at)
            events.append(
                {
                    "id": len(events) + 1,
                    "shipment_id": n,
                    "kind": kind,
                    "occurred_at": at,
                    "recorded_at": at,
                    "location_id": None,
                    "recorded_by_id": user.pk,
                    "integration": "",
                    "source": Source.FORM,
                    "notes": "",
                    "external_id": "",
                    "voids_id": None,
                    "status_after": state.status,
                    "data": data,
                }
            )
        # Email only: the SMS row is written suppressed (no phone number).
        shipments.append(
            {
                "id": n,
                "shipment_id": f"SH-B{n:07d}",
                "order_number": f"ORD-{500000 + n}",
                "sender_name": "TrackSOP Bench Warehouse",
                "sender_email": "warehouse@tracksop.local",
                "sender_phone": "",
                "sender_address": "1 Dock Road, Newark, NJ",
                "notify_sender": False,
                "recipient_name": f"Customer {n}",
                "recipient_email": f"customer.{n}@example.com",
                "recipient_phone": "",
                "recipient_address": f"{n % 999 + 1} Main Street",
                "recipient_postcode": "10001",
                "recipient_city": "New York",
                "recipient_country": "US",
                "weight_kg": Decimal("1.250"),
                "length_cm": Decimal(30),
                "width_cm": Decimal(20),
                "height_cm": Decimal(10),
                "contents": "Books",
                "pieces": 1,
                "checked_by_id": user.pk,
                "checked_at": checked,
                "quality_ok": True,
                "quantity_ok": True,
                "check_notes": "",
                "carrier_id": fleet.pk,
                "tracking_number": number,
                "estimated_delivery": eta,
                "dispatched_at": dispatched,
                "delivered_at": None,
                "current_location_id": None,
                "public_token": secrets.token_urlsafe(16),
                "created_by_id": user.pk,
                "created_at": created,
                "updated_at": dispatched,
                "last_event_at": dispatched,
                "status": state.status,
                "status_changed_at": state.since,
                "resume_status": state.resume,
                "version": 3,
                # COPY fills no Python-side default: the model's own.
                "language": default_language(),
            }
        )
    with transaction.atomic():
        rows_copy(Shipment, shipments)
        rows_copy(TrackingEvent, events)
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(
            no_style(), [Shipment, TrackingEvent]
        ):
            cursor.execute(sql)
    by_id = {s.pk: s for s in Shipment.objects.select_related("carrier")}
    dispatch_events = TrackingEvent.objects.filter(kind=EventKind.DISPATCHED).order_by(
        "pk"
    )
    # The benchmark queues the rows itself, timed; nothing goes out now.
    with mock.patch.object(outbox, "queue_now", return_value=0):
        for chunk in batched(dispatch_events.iterator(chunk_size=1000), 500):
            with transaction.atomic():
                for event in chunk:
                    outbox.notifications_for_event(
                        event=event,
                        shipment=by_id[event.shipment_id],
                        previous_status=ShipmentStatus.READY,
                    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def _reset_outbox() -> list[int]:
    """Every email row pending again (as just written); returns their ids."""
    from django.db import connection
    from django.utils import timezone

    from notifications.models import Channel, Notification, Status

    emails = Notification.objects.filter(channel=Channel.EMAIL)
    emails.update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        sent_at=None,
        provider_message_id="",
        last_error="",
    )
    with connection.cursor() as cursor:
        # The previous phase left a dead version of every row behind.
        cursor.execute("VACUUM (ANALYZE) notifications_notification")
    return list(emails.order_by("pk").values_list("pk", flat=True))


def _statuses() -> dict[str, int]:
    from django.db.models import Count

    from notifications.models import Channel, Notification

    return dict(
        Notification.objects.filter(channel=Channel.EMAIL)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )


# --- Phases ---------------------------------------------------------------


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    publish_seconds: float
    total: int  # no-ops run, or messages the sink took
    unique: int | None  # distinct Message-IDs; None for the no-op
    statuses: dict[str, int]
    finished: bool
    cpu: dict[str, float]  # CPU seconds per process while timed

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _PostgresCpu:
    """CPU seconds of the server processes of the other sessions on the bench
    database (the worker's), when PostgreSQL runs on this host. Sampled while
    a phase runs: a session that closes (CONN_MAX_AGE) keeps its last reading,
    and one opened meanwhile counts from its start."""

    def __init__(self) -> None:
        self.before = self._read()
        self.last = dict(self.before)

    @staticmethod
    def _read() -> dict[int, float]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            pids = [pid for (pid,) in cursor.fetchall()]
        used = {}
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):  # gone, or not here
                used[pid] = _cpu_seconds(pid)
        return used

    def sample(self) -> None:
        self.last.update(self._read())

    def used(self) -> dict[str, float]:
        if not self.last:
            return {}
        seconds = sum(v - self.before.get(pid, 0.0) for pid, v in self.last.items())
        return {"postgres": seconds}


def _cpu(worker: int, sink: int) -> dict[str, float]:
    """CPU seconds used so far by the worker (all its threads), the sink and
    this process (the producer), on Linux; empty elsewhere."""
    try:
        used = {"worker": _cpu_seconds(worker), "sink": _cpu_seconds(sink)}
    except (OSError, ValueError):
        return {}
    return used | {"producer": time.process_time()}


def _broker_drained() -> bool:
    broker = redis.Redis.from_url(BROKER_URL)
    return not broker.llen("celery") and not broker.hlen("unacked")


def _phase(
    name: str,
    messages: int,
    ids: list[int] | None,
    sink_delay: float,
    command: list[str],
    logs: Path,
) -> Result:
    """One fresh sink and worker; publish, wait for the last message, drain."""
    from notifications import outbox

    redis.Redis.from_url(BROKER_URL).flushdb()
    _counter().flushdb()
    port = free_port()
    sink = sink_start(port, sink_delay, messages)
    worker = Worker(command, port, logs / f"worker-{name[:3].strip('()')}.log")
    try:
        worker.wait_ready()
        cpu_before = _cpu(worker.process.pid, sink.process.pid)
        postgres = _PostgresCpu()
        started = time.monotonic()
        if ids is None:
            # Published as queue_now publishes the pipeline's tasks (one
            # pipelined batch), so that (a) measures the worker, not this loop.
            with noop.app.producer_or_acquire() as producer, producer.batch():
                for _ in range(messages):
                    noop.apply_async((NOOP_COUNTER, messages), producer=producer)
            published = messages
        else:
            published = outbox.queue_now(ids)
        publish_seconds = time.monotonic() - started
        assert published == messages, f"the broker took {published} of {messages}"

        def done_at() -> float | None:
            if ids is None:
                raw = _counter().get(f"{NOOP_COUNTER}:done")
                return float(raw) if raw else None
            at = sink.stats()["done_at"]
            return float(at) if at else None

        deadline = started + PHASE_TIMEOUT
        finished_at, sampled = done_at(), 0.0
        while finished_at is None and time.monotonic() < deadline and worker.alive():
            time.sleep(0.05)
            finished_at = done_at()
            if time.monotonic() - sampled > 1:
                postgres.sample()
                sampled = time.monotonic()
        finished = finished_at is not None
        seconds = (finished_at or time.monotonic()) - started
        postgres.sample()
        cpu = {
            k: v - cpu_before[k]
            for k, v in _cpu(worker.process.pid, sink.process.pid).items()
        } | postgres.used()
        if finished:
            # Every task run and acknowledged, so a late double would show.
            wait_for(_broker_drained, 60, "the broker to drain")
            time.sleep(0.5)
        stats = sink.stats()
        if ids is None:
            total, unique = int(_counter().get(NOOP_COUNTER) or 0), None
        else:
            total, unique = stats["total"], stats["unique"]
    finally:
        worker.stop()
        sink.stop()
    return Result(
        name,
        messages,
        seconds,
        publish_seconds,
        total,
        unique,
        _statuses() if ids is not None else {},
        finished,
        cpu,
    )


def run(
    messages: int = MESSAGES, concurrency: int = CONCURRENCY, prefetch: int = PREFETCH
) -> tuple[list[Row], list[str]]:
    """The three phases; returns the table's rows and notes to print under it."""
    from tracksop.celery import app

    # The producer publishes to the bench's broker, never another one (Celery
    # reads CELERY_BROKER_URL from the environment before its settings).
    os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = BROKER_URL
    with app.connection_for_write() as broker:
        assert broker.as_uri().endswith(BROKER_URL.rpartition(":")[2]), broker
    with _alone():
        print(prepare(messages), flush=True)
        return _run(messages, concurrency, prefetch)


def _run(messages: int, concurrency: int, prefetch: int) -> tuple[list[Row], list[str]]:
    command = worker_command(concurrency, prefetch)
    logs = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    phases = [
        ("(a) no-op task", None, 0.0),
        ("(b) pipeline, instant sink", "outbox", 0.0),
        (
            f"(c) pipeline, {SLOW_SINK_SECONDS * 1000:g} ms sink",
            "outbox",
            SLOW_SINK_SECONDS,
        ),
    ]
    results = []
    for name, source, delay in phases:
        ids = _reset_outbox() if source else None
        assert ids is None or len(ids) == messages
        print(f"{name}: running ...", flush=True)
        results.append(_phase(name, messages, ids, delay, command, logs))
    notes = _notes(results, command, logs)
    notes.append(
        f"Written, not timed: building an email when its row is written costs the"
        f" writer {_build_ms():.2f} ms CPU (the event's transaction, not the worker)."
    )
    return _rows(results, messages), notes


@contextlib.contextmanager
def _alone() -> Iterator[None]:
    """Refuse to run beside another run of this benchmark (on this PostgreSQL):
    both would flush the same Redis databases and reseed the same database."""
    from bench.db import admin_connection

    with admin_connection() as admin:
        locked = admin.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK]).fetchone()
        if not (locked and locked[0]):
            raise RuntimeError("Another notifications benchmark is running.")
        yield  # the lock goes with the connection


def _build_ms(sample: int = 200) -> float:
    """CPU ms to build one stored email, as outbox.write does, on bench rows."""
    from notifications import gateways
    from notifications.models import Channel, Notification

    rows = list(
        Notification.objects.filter(channel=Channel.EMAIL)
        .select_related("shipment")
        .order_by("pk")[:sample]
    )
    started = time.process_time()
    for row in rows:
        gateways.email_bytes(gateways.email_for(row))
    return (time.process_time() - started) * 1000 / len(rows)


def _rows(results: list[Result], messages: int) -> list[Row]:
    ceiling, instant, _ = results
    rows = []
    for r in results:
        exact = r.total == messages and r.unique in (None, messages)
        if r.unique is not None:
            exact = exact and r.statuses == {"sent": messages}
        if r is ceiling:
            target, ok = "all run once", exact
        elif r is instant:
            target = f">= {RATIO_TARGET:.0%} of (a), exact"
            ok = exact and r.rate >= RATIO_TARGET * ceiling.rate
        else:
            target = f"< {SLOW_TARGET_SECONDS:g} s, exact"
            ok = exact and r.seconds < SLOW_TARGET_SECONDS
        ok = ok and r.finished
        rows.append(
            (
                r.name,
                f"{r.messages:,}",
                f"{r.seconds:.1f}" + ("" if r.finished else " (timeout)"),
                f"{r.rate:,.0f}",
                f"{r.rate / ceiling.rate:.0%}" if ceiling.rate else "-",
                f"{r.total:,}",
                "-" if r.unique is None else f"{r.unique:,}",
                target,
                "ok" if ok else "FAIL",
            )
        )
    return rows


def _notes(results: list[Result], command: list[str], logs: Path) -> list[str]:
    notes = [
        "worker: " + " ".join(["celery", *command[3:]]),
        f"worker logs: {logs}",
        "(a) counts runs of the no-op in Redis; (b) and (c) count at the SMTP sink.",
    ]
    for r in results:
        line = f"{r.name}: published in {r.publish_seconds:.1f} s"
        if r.cpu:
            line += "; CPU ms per message: " + ", ".join(
                f"{k} {v * 1000 / r.messages:.2f}" for k, v in r.cpu.items()
            )
            line += f" (the worker busy {r.cpu['worker'] / r.seconds:.0%} of a core)"
        if r.statuses:
            line += "; rows " + ", ".join(f"{k} {v:,}" for k, v in r.statuses.items())
        notes.append(line)
    return notes


if __name__ == "__main__" and sys.argv[1:2] == ["--sink"]:
    _sink_main(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
