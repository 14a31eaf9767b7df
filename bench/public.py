"""Load on the public tracking page, served as in production, against two
baselines served by the same server.

Run alone with `.venv/bin/python -m bench public` (`make bench` runs it with the
others); `--large` sets the data size (default BENCH_SCALE, 1,000,000 shipments;
the database is reused, or seeded once by bench/db.py), `--duration` the
seconds of each timed run (60; shorter for a trial). Needs wrk
(`scripts/test-services.sh --bench` installs it, as `make bench` does).

One gunicorn (GUNICORN below) serves `bench.settings`: the production settings
(DEBUG off, HTTPS redirect and HSTS on, PostgreSQL, the Redis cache in database
CACHE_DB) with the URLconf of bench/urls.py, which adds the two baselines in
front of the application's URLs. wrk plays the clients on loopback:
`wrk -t2 -c32 --latency` with a Lua script that takes a shipment's public token
for each request from a file, and sends `X-Forwarded-Proto: https` as the
TLS-terminating proxy of a deployment would (DJANGO_BEHIND_TLS_PROXY=true).
Rows, one timed run each, in this order:

  (a) a view that returns "ok": Django's own floor on this machine;
  (b) a view that reads one shipment's status by public token (one query on a
      unique index): the cost of going to the database once;
  tracking page, HOT_SET random shipments: after one warm-up pass over them,
      each request takes one of them at random, as a realistic day's traffic
      (most pages served from the page cache);
  tracking page, every request a different shipment: the cache flushed, and
      each request takes the next of a fresh sample, so nothing is cached.

Target (the hot row): at least TARGET_RATIO of (a)'s requests per second, p99
under TARGET_P99_MS, no errors. Every row fails on any error: a response
other than 2xx/3xx, or a socket error (connect, read, write, timeout), as wrk
counts them. Before the runs the bench checks that each URL answers 200 and
that a request without the proxy header is redirected to HTTPS.

"CPU ms/req" is gunicorn's CPU time (master and workers) per request in the
timed run; PostgreSQL, Redis and wrk are not in it. It moves much less than
requests per second when other programs share the machine; the load average
before each run is in the notes.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import batched
from pathlib import Path

import redis

from bench.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
# Not a database the tests use (15 is their cache, 1-13 their brokers, 14 is
# only named in the deploy check): flushed at the start and before the cold run.
CACHE_DB = 14
CONNECTIONS = 32
THREADS = 2
DURATION = 60
WARMUP_SECONDS = 10
HOT_SET = 10_000
TARGET_RATIO = 0.25
TARGET_P99_MS = 100.0
SEED = 11
# The Dockerfile's server: three sync workers, one request at a time each.
# The views are CPU-bound Python and wrk, PostgreSQL and Redis share the two
# cores: five workers (gunicorn's 2 x cores + 1) lost throughput and p99 here,
# and gthread's keep-alive raised the bare view's rate but gave p99 several
# times worse (threads queue on their process's GIL). No access log (the
# Dockerfile writes one: about 0.1 ms of CPU per request), and no control
# socket, which is a fixed path that other gunicorns on the machine use.
GUNICORN = [
    *("gunicorn", "tracksop.wsgi:application"),
    *("--workers", "3", "--worker-class", "sync", "--no-control-socket"),
]
HEADER = (
    "view",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "CPU ms/req",
    "% of (a)",
    "target",
    "ok?",
)

Row = tuple[str, ...]

LUA = """\
-- Written by bench/public.py for one wrk run.
local TOKENS = {tokens}
local PREFIX, SUFFIX = {prefix}, {suffix}
-- "random": any token for each request; "walk": the tokens in turn, the
-- threads interleaved, so no two requests ask for the same one until the
-- list is used up.
local MODE = {mode}
local THREADS = {threads}

local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end

function init(args)
  tokens = {{}}
  for line in io.lines(TOKENS) do tokens[#tokens + 1] = line end
  math.randomseed(os.time() + 7919 * id)
  position = id + 1
  wrk.headers["X-Forwarded-Proto"] = "https"
end

function request()
  local token
  if MODE == "random" then
    token = tokens[math.random(#tokens)]
  else
    if position > #tokens then position = (position - 1) % #tokens + 1 end
    token = tokens[position]
    position = position + THREADS
  end
  return wrk.format(nil, PREFIX .. token .. SUFFIX)
end
"""


@dataclass
class Load:
    """What wrk measured in one run."""

    name: str
    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    bad_status: int
    bytes_read: float
    cpu_seconds: float | None
    load_before: float

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status

    @property
    def cpu_ms(self) -> float | None:
        """gunicorn's CPU milliseconds per request."""
        if self.cpu_seconds is None or not self.requests:
            return None
        return self.cpu_seconds * 1000 / self.requests


def run(
    shipments: int, duration: int = DURATION, hot: int = HOT_SET
) -> tuple[list[Row], list[str]]:
    """Seeds or reuses the database, serves it, drives the four runs; returns
    the table's rows and the notes to print under it."""
    from bench import db

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: scripts/test-services.sh --bench")
    print(db.prepare(shipments), flush=True)
    page = page_path()
    hot = min(hot, shipments // 2)
    hot_tokens = sample_tokens(hot, SEED)
    work = Path(tempfile.mkdtemp(prefix="bench-public-"))
    _write_lines(work / "hot.txt", hot_tokens)
    env = server_env(work / "static")
    print("collectstatic and check --deploy with the benchmark's settings ...")
    _manage(env, "collectstatic", "--no-input", "-v", "0")
    _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    cache = redis.Redis.from_url(env["REDIS_URL"])
    cache.flushdb()
    port = free_port()
    server = Server([*GUNICORN, "--bind", f"127.0.0.1:{port}"], env, work)
    notes: list[str] = []
    try:
        server.wait_ready(port)
        _preflight(port, [f"/bench/ok/{hot_tokens[0]}/"])
        base = f"http://127.0.0.1:{port}"

        def timed(name: str, lua: Path, seconds: int) -> Load:
            print(f"{name}: {seconds} s ...", flush=True)
            return _wrk(wrk, name, lua, seconds, base, server)

        def warm(lua: Path, seconds: int) -> Load:
            return _wrk(wrk, "warm-up", lua, seconds, base, server)

        runs = []
        for name, prefix in (
            ("(a) bare view", "/bench/ok/"),
            ("(b) one indexed query", "/bench/query/"),
        ):
            lua = _lua(work, name[1], work / "hot.txt", prefix, "/", "random")
            _preflight(port, [f"{prefix}{t}/" for t in hot_tokens[:3]])
            warm(lua, min(WARMUP_SECONDS, duration))
            runs.append(timed(name, lua, duration))

        # The hot set: one pass renders (and caches) each page once, then the
        # timed run asks for them in random order.
        hot_paths = [page[0] + t + page[1] for t in hot_tokens]
        _preflight(port, hot_paths[:3])
        print(f"warm-up: one pass over the {hot:,} hot shipments ...", flush=True)
        passed = _one_pass(port, hot_paths)
        cached = cache.dbsize()
        hot_lua = _lua(work, "hot", work / "hot.txt", *page, "random")
        runs.append(timed(f"tracking page, hot set of {hot:,}", hot_lua, duration))

        # Cold: enough other shipments that none repeats, going by (a)'s rate
        # (no page is served faster than "ok").
        wanted = min(shipments - hot, int(runs[0].rate * duration * 1.2) + 1000)
        taken = set(hot_tokens)
        cold_tokens = [
            t for t in sample_tokens(wanted + hot, SEED + 1) if t not in taken
        ][:wanted]
        cold = len(cold_tokens)
        _write_lines(work / "cold.txt", cold_tokens)
        cold_lua = _lua(work, "cold", work / "cold.txt", *page, "walk")
        cache.flushdb()
        runs.append(
            timed(
                "tracking page, every request a different shipment (cache cold)",
                cold_lua,
                duration,
            )
        )
        notes = _notes(runs, duration, passed, hot, cached, cold, env, work)
    finally:
        server.stop()
        cache.flushdb()  # tens of megabytes of pages
        shutil.rmtree(work / "static", ignore_errors=True)
    return _rows(runs), notes


def page_path() -> tuple[str, str]:
    """The tracking page's path around a token: ("/t/", "/")."""
    from django.urls import NoReverseMatch, reverse

    marker = "BENCHTOKEN"
    try:
        path = reverse("public-tracking", args=[marker])
    except NoReverseMatch as error:
        raise RuntimeError(
            "No tracking page to measure (URL name public-tracking)."
        ) from error
    prefix, _, suffix = path.partition(marker)
    return prefix, suffix


def sample_tokens(count: int, seed: int) -> list[str]:
    """The public tokens of up to `count` random shipments, in random order.

    Random ids between the lowest and the highest (the seeder leaves no gaps;
    a gap only makes the sample smaller): ORDER BY random() sorts the whole
    table, TABLESAMPLE SYSTEM takes whole pages of neighbours."""
    from django.db.models import Max, Min

    from shipments.models import Shipment

    bounds = Shipment.objects.aggregate(lo=Min("id"), hi=Max("id"))
    ids = range(bounds["lo"], bounds["hi"] + 1)
    picked = random.Random(seed).sample(ids, min(len(ids), count))
    tokens: dict[int, str] = {}
    for chunk in batched(picked, 10_000):  # PostgreSQL's limit on parameters
        rows = Shipment.objects.filter(pk__in=chunk).values_list("id", "public_token")
        tokens.update(rows)
    return [tokens[i] for i in picked if i in tokens]


def server_env(static_root: Path) -> dict[str, str]:
    """Production settings from the environment, as a deployment sets them."""
    from django.db import connection

    s = connection.settings_dict
    database = (
        f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )
    # Nothing of the developer's own configuration: .env is read only for
    # variables not set here (base.py reads it with overwrite=False).
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "TRACKSOP_", "EMAIL_"))
        and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return inherited | {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-not-secret-" + "k" * 40,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_BEHIND_TLS_PROXY": "true",
        "DJANGO_STATIC_ROOT": str(static_root),
        "DATABASE_URL": database,
        "REDIS_URL": f"redis://127.0.0.1:6379/{CACHE_DB}",
        # Nothing is published or sent by these GETs; both point away from
        # the tests' brokers and pass the deploy check (no console mailer).
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{CACHE_DB}",
        "EMAIL_URL": "smtp://127.0.0.1:25",
        "PYTHONUNBUFFERED": "1",
    }


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}:\n{result.stderr}")


class Server:
    """gunicorn in its own process group, its output in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], work: Path) -> None:
        self.command = command
        self.log = work / "gunicorn.log"
        binary = str(Path(sys.executable).parent / command[0])
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603
                [binary, *command[1:]],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                if _get(port, "/bench/ok/ready/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in {timeout:.0f} s: {self.log}")

    def cpu_seconds(self) -> float | None:
        """CPU time of the master and its workers so far (Linux)."""
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            pid = self.process.pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            total = 0
            for each in [pid, *map(int, children)]:
                stat = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2]
                total += int(stat.split()[11]) + int(stat.split()[12])
        except (OSError, ValueError):
            return None
        return total / ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # graceful: workers finish
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def _get(port: int, path: str, proxy: bool = True) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"X-Forwarded-Proto": "https"} if proxy else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _preflight(port: int, paths: list[str]) -> None:
    """Each path answers 200 through the proxy, and a request that did not come
    through it is sent to HTTPS: the production security settings are on."""
    for path in paths:
        status, headers, body = _get(port, path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}\n{body[:500]!r}")
        assert "Strict-Transport-Security" in headers, headers
    status, headers, _ = _get(port, paths[0], proxy=False)
    assert status == 301, (status, headers)
    assert headers["Location"].startswith("https://"), headers


@dataclass
class Pass:
    requests: int
    seconds: float
    statuses: Counter[int]  # 0: no response (refused, reset, timed out)


def _one_pass(port: int, paths: list[str]) -> Pass:
    """Each path once, CONNECTIONS at a time."""

    def status(path: str) -> int:
        try:
            return _get(port, path)[0]
        except OSError:
            return 0

    started = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        statuses = Counter(pool.map(status, paths))
    return Pass(len(paths), time.monotonic() - started, statuses)


def _lua(
    work: Path,
    name: str,
    tokens: Path,
    prefix: str,
    suffix: str,
    mode: str,
) -> Path:
    script = work / f"{name}.lua"
    script.write_text(
        LUA.format(
            tokens=json.dumps(str(tokens)),
            prefix=json.dumps(prefix),
            suffix=json.dumps(suffix),
            mode=json.dumps(mode),
            threads=THREADS,
        )
    )
    return script


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def wrk_command(wrk: str, lua: Path, seconds: int, base: str) -> list[str]:
    """The same for every run."""
    return [
        *(wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s"),
        *("--latency", "-s", str(lua), base),
    ]


def _wrk(
    wrk: str, name: str, lua: Path, seconds: int, base: str, server: Server
) -> Load:
    load_before = os.getloadavg()[0]
    cpu_before = server.cpu_seconds()
    result = subprocess.run(  # noqa: S603
        wrk_command(wrk, lua, seconds, base),
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    cpu_after = server.cpu_seconds()
    if result.returncode:
        raise RuntimeError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    load = parse_wrk(name, result.stdout)
    load.load_before = load_before
    if cpu_before is not None and cpu_after is not None:
        load.cpu_seconds = cpu_after - cpu_before
    return load


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(name: str, output: str) -> Load:
    """wrk's summary (with --latency) as numbers."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"No {pattern!r} in wrk's output:\n{output}")
        return match

    total = find(r"(\d+) requests in ([\d.]+\w+), ([\d.]+)(\w+) read")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(
        name=name,
        requests=int(total[1]),
        seconds=_ms(total[2]) / 1000,
        rate=float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_ms(find(r"\s50%\s+([\d.]+\w+)")[1]),
        p99_ms=_ms(find(r"\s99%\s+([\d.]+\w+)")[1]),
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
        bad_status=int(bad[1]) if bad else 0,
        bytes_read=float(total[3]) * _SIZES[total[4]],
        cpu_seconds=None,
        load_before=0.0,
    )


def _rows(runs: list[Load]) -> list[Row]:
    floor = runs[0]
    rows: list[Row] = []
    for r in runs:
        if r is runs[2]:
            target = (
                f">= {TARGET_RATIO:.0%} of (a), p99 < {TARGET_P99_MS:g} ms, 0 errors"
            )
            ok = (
                r.rate >= TARGET_RATIO * floor.rate
                and r.p99_ms < TARGET_P99_MS
                and not r.errors
            )
        else:
            target, ok = "0 errors", not r.errors
        cpu = "-" if r.cpu_ms is None else f"{r.cpu_ms:.2f}"
        rows.append(
            (
                r.name,
                f"{r.rate:,.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.errors:,}",
                cpu,
                f"{r.rate / floor.rate:.0%}" if floor.rate else "-",
                target,
                "ok" if ok else "FAIL",
            )
        )
    return rows


def _notes(
    runs: list[Load],
    duration: int,
    passed: Pass,
    hot: int,
    cached: int,
    cold: int,
    env: dict[str, str],
    work: Path,
) -> list[str]:
    server = " ".join(GUNICORN)
    statuses = ", ".join(f"{k or 'none'} x{v:,}" for k, v in passed.statuses.items())
    client = " ".join(wrk_command("wrk", Path("<run>.lua"), duration, "http://…"))
    notes = [
        f"server: {server} (DJANGO_SETTINGS_MODULE=bench.settings, "
        f"database {env['DATABASE_URL'].rpartition('/')[2]}, "
        f"cache {env['REDIS_URL']}); {os.cpu_count()} CPUs",
        f"client: {client}, X-Forwarded-Proto: https, a token per request",
        f"warm-up: {min(WARMUP_SECONDS, duration)} s of the same load before "
        "(a) and (b); "
        f"before the hot run, each of its {hot:,} pages once in "
        f"{passed.seconds:.0f} s (statuses: {statuses}), "
        f"{cached:,} keys in the cache after it",
        f"cold: {cold:,} fresh shipments for {runs[3].requests:,} requests"
        + (
            ""
            if runs[3].requests <= cold
            else f" ({runs[3].requests - cold:,} asked twice)"
        ),
        "Responses are full pages: no If-None-Match (the ETag is not used), "
        "no Accept-Language (one language).",
    ]
    floor = runs[0].cpu_ms
    for r in runs:
        socket = f", socket errors {r.socket_errors}" if r.socket_errors else ""
        # The ratio by CPU time: what the rates would show on a machine with
        # nothing else to do (the server's side only).
        ratio = f", {r.cpu_ms / floor:.1f} x (a)'s CPU" if r.cpu_ms and floor else ""
        notes.append(
            f"{r.name}: {r.requests:,} requests in {r.seconds:.0f} s, "
            f"{r.bytes_read / max(r.requests, 1) / 1024:.1f} KB each{socket}"
            f"{ratio}; load average {r.load_before:.1f} before"
        )
    busiest, cpus = max(r.load_before for r in runs), os.cpu_count() or 1
    if busiest > cpus:
        notes.append(
            f"BUSY MACHINE: load average up to {busiest:.1f} on {cpus} CPUs; the "
            "rates and latencies follow the other programs: compare CPU ms/req, "
            "and run again on a quiet machine."
        )
    notes.append(f"scripts, token lists and gunicorn's log: {work}")
    return notes
