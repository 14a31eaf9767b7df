"""Carrier tracking sync (issue 14): shipments synced per second against the
local fake carrier answering in 100 ms, beside the ceiling.

Run with `.venv/bin/python -m bench.carrier_sync [--small N] [--large N]
[--concurrency N] [--workers N] [--provider ups]` (or `python -m bench
carrier_sync`).

The fake carrier runs in a process of its own (`manage.py fake_carrier
--delay-ms 100`). At each scale (5,000 and 50,000 tracking numbers):

- ceiling, HTTP only: the polling loop doing only the HTTP calls, `N` threads
  each asking the fake for one batch of numbers (BATCH_SIZE[provider]) at a
  time with a token fetched once; nothing parsed, nothing written.
- ceiling, adapter: the same loop through `adapter.client.track` (karrio's
  connector, its parsing, the token from the cache), still writing nothing:
  what karrio costs over the bare HTTP.
- full loop: `scale` undelivered shipments of a carrier connected through
  `provider` in a fresh database (`tracksop_bench_carrier`), their sync rows
  due now; `--workers` Celery worker processes (prefork) run
  `carrier_sync_batch` while this process calls the beat's service
  (`carrier_sync_due`) every second, until every shipment was asked about
  and its answer recorded (events, notifications, ETA, sync row). Its rate
  beside the HTTP-only ceiling (target >= 70%), and the seconds per 1,000
  shipments at both scales (target: flat).

Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from bench.processes import WorkerProcess, free_port, wait_for, worker_env

ROOT = Path(__file__).resolve().parent.parent
DELAY_MS = 100
CONCURRENCY = 32
SMALL, LARGE = 5_000, 50_000
TARGET_RATIO = 0.70
WORKERS = 2
HEADER = ("metric", "scale", "value", "baseline", "target", "ok?")

Row = tuple[str, ...]


class FakeCarrierProcess:
    """`manage.py fake_carrier` in a process of its own (the GIL is the
    poller's, not shared with the carrier)."""

    def __init__(self, delay_ms: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tracksop.settings.test"}
        self.process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "manage.py",
                "fake_carrier",
                "--port",
                str(self.port),
                "--delay-ms",
                str(delay_ms),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.up, 60, "the fake carrier")

    def up(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=5) as r:  # noqa: S310
            return dict(json.load(r)["requests"])

    def api_urls(self) -> dict[str, str]:
        return {p: f"{self.url}/{p}" for p in ("ups", "fedex", "usps", "dhl_express")}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def numbers(count: int, provider: str) -> list[str]:
    prefix = {"ups": "1ZBENCH", "fedex": "79", "usps": "9400", "dhl_express": "31"}
    return [f"{prefix[provider]}{i:010d}" for i in range(count)]


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def post(url: str, data: bytes | None, headers: dict[str, str]) -> bytes:
    """A GET (no data) or a POST to the fake carrier: the bare HTTP call."""
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return bytes(answer.read())


def http_only(
    fake: FakeCarrierProcess, provider: str, items: list[str], workers: int
) -> float:
    """Seconds for the bare HTTP calls of one polling cycle (UPS and USPS:
    one GET a number; FedEx: one POST a batch)."""
    from shipments.carriers.tracking import BATCH_SIZE

    base = fake.api_urls()[provider]
    token_path = {
        "ups": "/security/v1/oauth/token",
        "fedex": "/oauth/token",
        "usps": "/oauth2/v3/token",
    }
    token = ""
    if provider in token_path:
        answer = post(base + token_path[provider], b"grant_type=client_credentials", {})
        token = json.loads(answer)["access_token"]

    def call(batch: list[str]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if provider == "ups":
            post(f"{base}/api/track/v1/details/{batch[0]}", None, headers)
        elif provider == "usps":
            post(f"{base}/tracking/v3/tracking/{batch[0]}?expand=DETAIL", None, headers)
        elif provider == "fedex":
            info = [{"trackingNumberInfo": {"trackingNumber": n}} for n in batch]
            body = {"includeDetailedScans": True, "trackingInfo": info}
            post(f"{base}/track/v1/trackingnumbers", json.dumps(body).encode(), headers)
        else:
            xml = "".join(f"<AWBNumber>{n}</AWBNumber>" for n in batch)
            post(f"{base}/XMLShippingServlet", xml.encode(), {})

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(call, batches(items, BATCH_SIZE[provider])))
    return time.monotonic() - started


def adapter_only(
    fake: FakeCarrierProcess, provider: str, items: list[str], workers: int
) -> float:
    """Seconds for the same cycle through `adapter.client.track`."""
    from django.conf import settings

    from shipments.carriers.adapter.client import track
    from shipments.carriers.tracking import BATCH_SIZE, Connection

    settings.TRACKSOP_CARRIER_API_URLS = fake.api_urls()
    credentials = {
        "ups": {"client_id": "bench", "client_secret": "bench"},
        "fedex": {"track_api_key": "bench", "track_secret_key": "bench"},
        "usps": {"client_id": "bench", "client_secret": "bench"},
        "dhl_express": {"site_id": "bench", "password": "benchbench"},
    }[provider]
    connection = Connection(account_id=0, provider=provider, credentials=credentials)
    track(connection, items[:1])  # the token, once, into the cache

    def call(batch: list[str]) -> None:
        answers = track(connection, batch)
        assert len(answers) == len(batch)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(call, batches(items, BATCH_SIZE[provider])))
    return time.monotonic() - started


# --- the full loop: seeded shipments, Celery workers, the beat's service -------

DATABASE = "tracksop_bench_carrier"
BROKER_URL = "redis://127.0.0.1:6379/10"
CREDENTIALS_ENV = "TRACKSOP_BENCH_CARRIER_CREDENTIALS"
CREDENTIALS = {
    "ups": {"client_id": "bench", "client_secret": "bench"},
    "fedex": {"track_api_key": "bench", "track_secret_key": "bench"},
    "usps": {"client_id": "bench", "client_secret": "bench"},
    "dhl_express": {"site_id": "bench", "password": "benchbench"},
}


def seed(provider: str, count: int) -> None:
    """A fresh database: one carrier connected through `provider`, `count`
    shipments dispatched two hours ago with their tracking numbers."""
    from django.utils import timezone

    from bench import db
    from bench.seed import dispatched_shipments
    from shipments.models import Carrier, CarrierAccount

    db.fresh(DATABASE)
    family = {"ups": "ups", "fedex": "fedex", "usps": "usps"}.get(provider, "s10")
    carrier = Carrier.objects.create(
        code=provider, name=provider.upper(), tracking_family=family
    )
    CarrierAccount.objects.create(
        carrier=carrier,
        provider=provider,
        credentials_env=CREDENTIALS_ENV,
        requests_per_minute=10**6,
    )
    now = timezone.now()
    tracking = numbers(count, provider)
    dispatched_shipments(
        range(count),
        carrier=carrier,
        codes=lambda n: (f"SH-C{n:07d}", f"ORD-{800000 + n}", tracking[n]),
        dispatched_at=now - timedelta(hours=2),
        eta=(now + timedelta(days=3)).date(),
    )


class Worker(WorkerProcess):
    def __init__(
        self, fake: FakeCarrierProcess, provider: str, n: int, log: Path
    ) -> None:
        from bench.db import database_url

        env = worker_env(
            database_url=database_url(),
            broker_url=BROKER_URL,
            TRACKSOP_CARRIER_API_URLS=json.dumps(fake.api_urls()),
            CELERY_WORKER_POOL="prefork",
            **{CREDENTIALS_ENV: json.dumps(CREDENTIALS[provider])},
        )
        command = [
            *(sys.executable, "-m", "celery", "-A", "tracksop", "worker"),
            *("--pool", "prefork", "--concurrency", str(n)),
            *("--loglevel", "WARNING", "--hostname", "bench-carrier@%h"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]
        super().__init__(command, env, log)


def full_loop(
    fake: FakeCarrierProcess, provider: str, count: int, workers: int
) -> tuple[float, dict[str, int]]:
    """Seconds from the first beat until every shipment was asked about and
    its answer recorded (events, ETA, sync row), and the results."""
    import redis
    from django.db.models import Count
    from django.test import override_settings
    from django.utils import timezone

    from shipments.carriers.due import carrier_sync_due
    from shipments.models import CarrierSync

    seed(provider, count)
    broker = redis.Redis.from_url(BROKER_URL)
    with override_settings(CELERY_BROKER_URL=BROKER_URL):
        from tracksop.celery import app

        # Celery reads CELERY_BROKER_URL from the environment before settings.
        os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = BROKER_URL
        # The first beat makes the sync rows (first due times spread over the
        # interval); one polling cycle asks about all of them: due now.
        carrier_sync_due()
        broker.flushdb()
        CarrierSync.objects.update(next_due_at=timezone.now(), queued_at=None)
        log = Path(tempfile.gettempdir()) / "bench-carrier-worker.log"
        worker = Worker(fake, provider, workers, log)
        try:
            # Ready once the children have loaded karrio (a warm-up thread).
            time.sleep(2)
            started = time.monotonic()
            since = timezone.now()
            while (
                CarrierSync.objects.filter(last_attempt_at__gte=since).count() < count
            ):
                if not worker.alive():
                    raise RuntimeError(f"The worker died: {log.read_text()[-2000:]}")
                if time.monotonic() - started > 3600:
                    raise RuntimeError("The polling cycle took over an hour")
                carrier_sync_due()
                time.sleep(1)
            seconds = time.monotonic() - started
        finally:
            worker.stop()
            broker.flushdb()
    results = dict(
        CarrierSync.objects.values_list("last_result").annotate(n=Count("pk"))
    )
    return seconds, results


def run(
    small: int, large: int, concurrency: int, provider: str, workers: int
) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    ceilings: dict[int, float] = {}
    costs: dict[int, float] = {}
    fake = FakeCarrierProcess(DELAY_MS)
    try:
        for scale in (small, large):
            items = numbers(scale, provider)
            bare = http_only(fake, provider, items, concurrency)
            via = adapter_only(fake, provider, items, concurrency)
            ceilings[scale] = scale / bare
            rows.append(
                (
                    f"ceiling, HTTP only ({provider}, {concurrency} threads): n/s",
                    f"{scale:,}",
                    f"{scale / bare:.0f}",
                    "",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    "ceiling, adapter (karrio): n/s",
                    f"{scale:,}",
                    f"{scale / via:.0f}",
                    f"{scale / bare:.0f} (HTTP only)",
                    "",
                    "",
                )
            )
        notes.append(f"Fake carrier answering in {DELAY_MS} ms")
        # The full loop at each scale, against the same fake carrier.
        for scale in (small, large):
            print(f"full loop, {scale:,} shipments ...", flush=True)
            seconds, results = full_loop(fake, provider, scale, workers)
            bare = ceilings[scale]
            rate = scale / seconds
            ratio = rate / bare
            rows.append(
                (
                    f"full loop ({workers} worker processes): n/s",
                    f"{scale:,}",
                    f"{rate:.0f}",
                    f"{bare:.0f} (HTTP only)",
                    f">= {TARGET_RATIO:.0%}",
                    "ok" if ratio >= TARGET_RATIO else "FAIL",
                )
            )
            costs[scale] = seconds / scale * 1000
            notes.append(
                f"full loop at {scale:,}: {ratio:.0%} of the ceiling; {results}"
            )
        small_cost, large_cost = costs[small], costs[large]
        rows.append(
            (
                "full loop: s per 1,000 shipments",
                f"{large:,}",
                f"{large_cost:.2f}",
                f"{small_cost:.2f} (at {small:,})",
                "flat (within 25%)",
                "ok" if large_cost <= small_cost * 1.25 else "FAIL",
            )
        )
    finally:
        fake.stop()
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.carrier_sync", description=__doc__
    )
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="Celery worker processes"
    )
    parser.add_argument(
        "--provider", default="ups", choices=("ups", "fedex", "usps", "dhl_express")
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracksop.settings.test")
    import django

    django.setup()
    from bench.__main__ import print_table

    rows, notes = run(
        args.small, args.large, args.concurrency, args.provider, args.workers
    )
    print_table(rows, HEADER)
    print("\n".join(["", *notes]))
    return 1 if any(r[-1] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
