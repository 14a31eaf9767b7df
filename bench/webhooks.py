"""Throughput of outbound webhooks: events → outbox → Celery worker → receiver.

Run with `.venv/bin/python -m bench webhooks` (`--messages`, `--concurrency`).

`--messages` dispatched shipments (seeded by bulk insert, no webhooks) get an
in-transit scan each through the real service, `checkpoints_append`, in
batches of 1,000 per transaction, as a hub's scanner feed would: each scan
writes its webhook row in the scan's own transaction for the one endpoint,
subscribed to `checkpoint.recorded`. The rows are queued after each commit;
a `celery worker --pool threads` subprocess with production settings
delivers them to a local HTTP receiver, in a process of its own, that takes
50 ms over every request (threaded, keep-alive) and counts webhook-ids.

The scans are recorded first (their time is shown, not judged: most of it is
the shipments' own bookkeeping); the webhooks are then published as the
commits would have, and the clock runs from the first publish to the
receiver's last message. Targets: all
delivered in under a minute; exactly one request per message (none lost, none
doubled); every row marked delivered.

Database `tracksop_bench_webhooks` (made anew each run); Redis database 9 of
BENCH_REDIS_URL (default redis://127.0.0.1:6379) as the broker, flushed first.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.processes import (
    StatsProcess,
    WorkerProcess,
    free_port,
    wait_for,
    worker_env,
)

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "tracksop_bench_webhooks"
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
BROKER_URL = f"{REDIS}/9"
MESSAGES = 10_000
CONCURRENCY = 32
RECEIVER_SECONDS = 0.05
TARGET_SECONDS = 60.0
BATCH = 1000
TIMEOUT = 600.0
HEADER = ("metric", "value", "target", "ok?")

Row = tuple[str, ...]


# --- The receiver: `python -m bench.webhooks --receiver PORT DELAY N` ---------


def _receiver_main(port: int, delay: float, target: int) -> None:
    lock = threading.Lock()
    seen: dict[str, int] = {}
    state: dict[str, Any] = {"total": 0, "done_at": None, "first_at": None}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)  # the receiver's own work
            msg_id = self.headers.get("webhook-id", "")
            with lock:
                seen[msg_id] = seen.get(msg_id, 0) + 1
                state["total"] += 1
                state["first_at"] = state["first_at"] or time.monotonic()
                if state["total"] == target:
                    state["done_at"] = time.monotonic()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            with lock:
                stats = {
                    **state,
                    "unique": len(seen),
                    "doubled": sum(1 for n in seen.values() if n > 1),
                }
            print(json.dumps(stats), flush=True)
    server.shutdown()


def receiver_start(port: int, delay: float, target: int) -> StatsProcess:
    return StatsProcess(
        "bench.webhooks", "--receiver", port, delay, target, what="receiver"
    )


# --- The worker ------------------------------------------------------------------


class Worker(WorkerProcess):
    def __init__(self, concurrency: int, log: Path) -> None:
        from bench.db import database_url

        # The receiver is on this machine, so private addresses are allowed.
        env = worker_env(
            database_url=database_url(),
            broker_url=BROKER_URL,
            TRACKSOP_WEBHOOK_ALLOW_PRIVATE="true",
        )
        command = [
            *(sys.executable, "-m", "celery", "-A", "tracksop", "worker"),
            *("--pool", "threads", "--concurrency", str(concurrency)),
            *("--prefetch-multiplier", "4", "--loglevel", "WARNING"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("--hostname", "bench-webhooks@%h"),
        ]
        super().__init__(command, env, log)


# --- Data ----------------------------------------------------------------------


def prepare(messages: int) -> str:
    """A fresh database with `messages` dispatched shipments and no webhooks."""

    from bench import db

    started = time.monotonic()
    db.fresh(DATABASE)
    _seed(messages)
    return (
        f"{DATABASE}: seeded {messages:,} dispatched shipments in "
        f"{time.monotonic() - started:.0f} s"
    )


def _seed(count: int) -> None:
    """`count` dispatched shipments of the own fleet, no recipient email or
    phone (the scans notify nobody: the webhooks are what is measured)."""
    from django.db import connection
    from django.utils import timezone

    from bench.seed import dispatched_shipments, own_fleet
    from shipments import tracking_numbers as tn

    now = timezone.now()
    dispatched_shipments(
        range(1, count + 1),
        carrier=own_fleet(),
        codes=lambda n: (
            f"SH-W{n:07d}",
            f"ORD-{700000 + n}",
            tn.s10_generate(prefix="TW", serial=n, country="US"),
        ),
        dispatched_at=now - timedelta(hours=2),
        eta=(now + timedelta(days=3)).date(),
        email=False,
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def _scan_everything() -> float:
    """One in-transit scan per shipment through `checkpoints_append`, 1,000
    per transaction, each writing its webhook row. Nothing is published: the
    timed phase does, as the commits would. Returns seconds."""
    from unittest import mock

    from django.db import transaction
    from django.utils import timezone

    from notifications.webhooks import outbox as webhook_outbox
    from shipments import checkpoints
    from shipments.models import Shipment, Source
    from shipments.status import EventKind

    started = time.monotonic()
    ids = list(Shipment.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        with mock.patch.object(webhook_outbox, "queue_now"), transaction.atomic():
            locked = list(
                Shipment.objects.select_for_update(of=("self",))
                .select_related("carrier")
                .filter(pk__in=ids[start : start + BATCH])
                .order_by("pk")
            )
            checkpoints.checkpoints_append(
                [checkpoints.Checkpoint(shipment=s) for s in locked],
                kind=EventKind.IN_TRANSIT_SCAN,
                user=None,
                occurred_at=timezone.now(),
                source=Source.API,
            )
    return time.monotonic() - started


# --- The run -------------------------------------------------------------------


def run(
    messages: int = MESSAGES, concurrency: int = CONCURRENCY
) -> tuple[list[Row], list[str]]:
    import tempfile

    import redis
    from django.db.models import Count

    from notifications.models import WebhookEventType, WebhookMessage, WebhookStatus
    from notifications.webhooks import endpoints
    from notifications.webhooks import outbox as webhook_outbox
    from tracksop.celery import app
    from tracksop.models import Integration

    # The scans' commits publish to the bench's broker, never another one
    # (Celery reads CELERY_BROKER_URL from the environment before settings).
    os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = BROKER_URL
    print(prepare(messages), flush=True)
    redis.Redis.from_url(BROKER_URL).flushdb()
    port = free_port()
    receiver = receiver_start(port, RECEIVER_SECONDS, messages)
    endpoints.webhook_endpoint_create(
        integration=Integration.objects.create(name="Bench shop"),
        url=f"http://127.0.0.1:{port}/hooks",
        event_types=[WebhookEventType.CHECKPOINT_RECORDED],
    )
    log = Path(tempfile.mkdtemp(prefix="bench-webhooks-")) / "worker.log"
    worker = Worker(concurrency, log)
    notes: list[str] = []
    try:
        # Started and consuming before the clock starts.
        wait_for(
            lambda: app.control.ping(timeout=0.5) or not worker.alive(),
            120,
            "the worker to answer a ping",
        )
        if not worker.alive():
            raise RuntimeError(f"The worker exited; see {log}")
        scan_seconds = _scan_everything()
        pairs = list(
            WebhookMessage.objects.order_by("pk").values_list("endpoint_id", "pk")
        )
        started = time.monotonic()
        # What the scans' commits do: one pipelined publish per scan batch.
        for start in range(0, len(pairs), BATCH):
            webhook_outbox.queue_now(
                webhook_outbox.batches(pairs[start : start + BATCH])
            )
        finished = True
        try:
            wait_for(
                lambda: receiver.stats()["done_at"] is not None or not worker.alive(),
                TIMEOUT,
                "the receiver to get every webhook",
            )
        except RuntimeError as exc:
            finished = False
            notes.append(str(exc))
        # Late doubles would show in a moment more.
        time.sleep(1)
        stats = receiver.stats()
        done_at = stats["done_at"] or time.monotonic()
        seconds = done_at - started
        wait_for(
            lambda: (
                not WebhookMessage.objects.filter(
                    status__in=[WebhookStatus.PENDING, WebhookStatus.SENDING]
                ).exists()
            ),
            30,
            "every row to be marked",
        )
        worker_cpu = _cpu_seconds(worker.process.pid)
        receiver_cpu = _cpu_seconds(receiver.process.pid)
    finally:
        worker.stop()
        receiver.stop()
    statuses = dict(
        WebhookMessage.objects.values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    written = sum(statuses.values())
    exact = (
        finished
        and written == messages
        and stats["total"] == messages
        and stats["unique"] == messages
        and stats["doubled"] == 0
        and statuses.get(WebhookStatus.DELIVERED, 0) == messages
    )
    rows: list[Row] = [
        (
            "webhooks written (one per scan)",
            f"{written:,}",
            f"{messages:,}",
            _ok(written == messages),
        ),
        ("scans recorded with their webhooks, seconds", f"{scan_seconds:.1f}", "", ""),
        (
            "all delivered, seconds from the first publish",
            f"{seconds:.1f}",
            f"< {TARGET_SECONDS:.0f}",
            _ok(finished and seconds < TARGET_SECONDS),
        ),
        ("delivered per second", f"{messages / seconds:,.0f}", "", ""),
        (
            "requests / distinct webhook-ids / doubled",
            f"{stats['total']:,} / {stats['unique']:,} / {stats['doubled']}",
            f"{messages:,} / {messages:,} / 0",
            _ok(exact),
        ),
        (
            "rows by status",
            json.dumps(statuses),
            f"delivered: {messages:,}",
            _ok(exact),
        ),
    ]
    notes.append(
        f"CPU per message: worker {worker_cpu / messages * 1000:.1f} ms, receiver "
        f"{receiver_cpu / messages * 1000:.1f} ms (the worker's whole life, "
        "start-up included); load average when done: "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + f" on {os.cpu_count()} CPUs."
    )
    notes.append(
        f"Worker: {concurrency} threads (production settings), receiver "
        f"{RECEIVER_SECONDS * 1000:.0f} ms per request; the floor at that "
        f"concurrency is {messages * RECEIVER_SECONDS / concurrency:.1f} s. "
        f"Worker log: {log}"
    )
    return rows, notes


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ok(good: bool) -> str:
    return "ok" if good else "FAIL"


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--receiver":
        _receiver_main(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
