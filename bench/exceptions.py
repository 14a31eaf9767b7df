"""Cost of one exceptions sweep (detection, then escalation) at two data sizes.

Run alone with `.venv/bin/python -m bench exceptions` (`make bench` runs it
with the others); `--sweeps N` sets the timed runs per case (the median is
shown), `--small` and `--large` (default BENCH_SCALE, 1,000,000) the sizes.

Each size's database (bench/db.py: created, migrated to the latest
migrations, seeded by seed_demo) is given, in bulk SQL:

  * open DeliveryExceptions on OPEN_SHARE of its shipments (50,000 at
    1,000,000; at the small size at least DUE + 50), with their report
    events, and their shipments on hold ("exception", resuming in transit);
    DUE of them are past their escalation deadline, the rest due later;
  * LATE moving shipments past their ETA and STALLED in transit with no scan
    for TRACKSOP_STALL_HOURS, none with an exception yet: the detection work.
    Seeded moving shipments that would be late or stalled too get a later
    ETA or a recent scan, so the stale work is the same at both sizes.

Each timed run re-arms that state (one transaction), then times the
`exceptions_sweep` Celery task run in this process (`.apply()`), as beat's
worker runs it: in a task context (so emails are built by the sending worker,
not by the sweep), in autocommit, each chunk
of detections and each escalation batch committed, notification rows
written and their tasks published on commit to a throwaway broker (Redis
database 12, flushed before and after; no worker takes them, nothing is
sent). The baseline is the same sweep with nothing stale. At the large size
a run with half the stale rows shows the cost following them (the
difference between the two, per stale row, is the marginal cost), and
EXPLAIN ANALYZE of the three queries that find the work shows the indexes
they use.

The database is changed only for the run: the shipments it touches are
copied to `bench_exceptions_saved` (and the highest id of each table the
sweep writes to `bench_exceptions_marks`) before anything changes, and put
back from there at the end, or at the start of the next run if one was
interrupted. An advisory lock keeps two runs off one database.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from unittest import mock

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.template import Template
from django.test import utils as test_utils
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import db, pages
from exceptions_mgmt import detection, selectors, sweep, tasks
from exceptions_mgmt.models import (
    DeliveryException,
    EscalationRule,
    ExceptionChange,
    ExceptionNote,
    Level,
    Severity,
)
from notifications.models import Notification
from shipments.models import Shipment, Source, TrackingEvent
from shipments.status import MOVING

LATE = 100  # moving shipments past their ETA, no exception yet
STALLED = 10  # in transit, no scan for TRACKSOP_STALL_HOURS
DUE = 200  # open exceptions past their escalation deadline
OPEN_SHARE = 0.05  # open exceptions per shipment: 50,000 at 1,000,000
SWEEPS = 5
TARGET_MS = 2000.0
GROWTH_TARGET = 2.0  # the large size's sweep against the small one's
BROKER_URL = "redis://127.0.0.1:6379/12"
SAVED = "bench_exceptions_saved"
MARKS = "bench_exceptions_marks"
LOCK = "bench.exceptions"
# Tables the sweep (and the setup) add rows to, in an order they can go in.
WRITTEN = (Notification, ExceptionChange, ExceptionNote, DeliveryException)


def _table(model: type[Model]) -> str:
    return model._meta.db_table  # Django's documented Options API


EVENTS = _table(TrackingEvent)
SHIPMENTS = _table(Shipment)
EXCEPTIONS = _table(DeliveryException)
# The query that finds each kind of work, how to spot it among the sweep's
# queries, and the indexes that keep its cost to the stale rows. (Not
# shipment_open_eta for the late ones: it holds the shipments on hold too.)
QUERIES = {
    "escalation claim": ("SKIP LOCKED", ("exception_due",)),
    "late detection": ("'late:'", ("shipment_moving_eta", "shipment_status_eta")),
    "stall detection": ("'stall:'", ("shipment_moving_last_event",)),
}

Row = tuple[str, ...]


@dataclass
class Case:
    label: str
    expected: dict[str, int]  # what exceptions_sweep() should report
    ms: list[float] = field(default_factory=list)
    results: list[dict[str, int]] = field(default_factory=list)
    # The sweep's two halves, timed inside the same runs.
    parts: dict[str, list[float]] = field(
        default_factory=lambda: {"detect": [], "escalate": []}
    )

    @property
    def median(self) -> float:
        return statistics.median(self.ms)

    def part(self, name: str) -> float:
        return statistics.median(self.parts[name])

    @property
    def result(self) -> dict[str, int]:
        """The first result that differs from the expected one, if any."""
        return next((r for r in self.results if r != self.expected), self.expected)

    def time(self) -> None:
        with ExitStack() as stack:
            for name, module in (("detect", detection), ("escalate", sweep)):
                function = getattr(module, f"exceptions_{name}")
                stack.enter_context(
                    mock.patch.object(
                        module, function.__name__, self._timer(name, function)
                    )
                )
            started = time.perf_counter()
            result = tasks.exceptions_sweep.apply().get()
            self.ms.append((time.perf_counter() - started) * 1000)
        self.results.append(result)

    def _timer(self, name: str, function: Any) -> Any:
        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(**kwargs)
            finally:
                self.parts[name].append((time.perf_counter() - started) * 1000)

        return timed


def _expected(late: int, stalled: int, due: int) -> dict[str, int]:
    return {"detected": late + stalled, "escalated": due}


@dataclass
class Scale:
    shipments: int
    plan: dict[str, int]
    cases: dict[str, Case]
    outbox_rows: int = 0
    published: int = 0
    statements: int = 0  # SQL statements of the warm-up sweep
    supervisors: int = 0
    explained: dict[str, tuple[list[str], bool]] = field(default_factory=dict)


def run(small: int, large: int, sweeps: int = SWEEPS) -> tuple[list[Row], list[str]]:
    """Both sizes; returns the table's rows and the notes to print under it."""
    measured = {}
    # The page benchmarks run under Django's test environment, which wraps
    # every template render in a signal for the test client; the sweep renders
    # hundreds of messages and production has no such wrapper.
    # No public switch turns off the renderer alone (teardown_test_environment
    # would also turn DEBUG, and so the query log, back on): hence the noqa.
    instrumented = Template._render  # noqa: SLF001
    saved = test_utils._TestState.saved_data  # type: ignore[attr-defined]  # noqa: SLF001
    Template._render = saved.template_render  # noqa: SLF001
    try:
        with _broker() as broker:
            for shipments in (small, large):
                measured[shipments] = _measure(
                    shipments, sweeps, broker, large=shipments == large
                )
    finally:
        Template._render = instrumented  # noqa: SLF001
    return _rows(measured[small], measured[large]), _notes(measured[large])


# --- One size -------------------------------------------------------------


def _measure(shipments: int, sweeps: int, broker: redis.Redis, large: bool) -> Scale:
    print(db.prepare(shipments), flush=True)
    # The search bench's user (a supervisor without an email address) may
    # be there already; make the escalation's recipients the same at each size.
    pages.bench_user()
    _lock()
    _restore()  # what an interrupted run left, if anything
    started = time.monotonic()
    try:
        plan = _plan(shipments)
        _setup()
        print(
            f"{db.database_name(shipments)}: {plan['open']:,} open exceptions "
            f"({plan['due']} due), {plan['late']} late and {plan['stalled']} stalled "
            f"shipments, {plan['neutral']} seeded ones kept from going stale; "
            f"set up in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        full = Case(
            f"sweep, {LATE + STALLED + DUE} stale rows",
            _expected(plan["late"], plan["stalled"], plan["due"]),
        )
        idle = Case("sweep, nothing stale", _expected(0, 0, 0))
        scale = Scale(shipments, plan, {"full": full, "idle": idle})
        scale.supervisors = len(selectors.escalation_recipients(Level.SUPERVISORS))
        # Warm-up (caches, templates, connections); its queries are explained.
        _arm(1.0)
        with CaptureQueriesContext(connection) as captured:
            full.results.append(tasks.exceptions_sweep.apply().get())
        scale.statements = len(captured.captured_queries)
        if large:
            scale.explained = _explain_all(captured.captured_queries)
        for _ in range(sweeps):
            _arm(1.0)
            queued = broker.llen("celery")
            full.time()
            scale.published = broker.llen("celery") - queued
            scale.outbox_rows = Notification.objects.filter(
                pk__gt=_mark(Notification, "armed")
            ).count()
        for _ in range(sweeps):  # right after a full run: nothing is stale
            idle.time()
        if large:  # half the stale rows
            half = Case(
                f"sweep, {(LATE + STALLED + DUE) // 2} stale rows",
                _expected(*(round(n / 2) for n in (LATE, STALLED, DUE))),
            )
            for _ in range(sweeps):
                _arm(0.5)
                half.time()
            scale.cases["half"] = half
        return scale
    finally:
        started = time.monotonic()
        _restore()
        print(
            f"{db.database_name(shipments)}: restored in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [LOCK])
        (got,) = cursor.fetchone()
    assert got, f"another exceptions bench is using {connection.settings_dict['NAME']}"


# --- State: plan, set up, arm, restore ------------------------------------


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


def _plan(shipments: int) -> dict[str, int]:
    """Pick the shipments the bench will change and save them as they are,
    with the highest id of each table it adds rows to (one transaction)."""
    opened = max(round(shipments * OPEN_SHARE), DUE + 50)
    now = timezone.now()
    stall = timedelta(hours=settings.TRACKSOP_STALL_HOURS)
    with transaction.atomic(), connection.cursor() as cursor:
        # Spread over the table (md5 order), not bunched at one end of it.
        cursor.execute(
            f"""
            CREATE TABLE {SAVED} AS
            WITH picked AS (
                SELECT id, row_number() OVER (ORDER BY md5(id::text), id) AS n
                FROM {SHIPMENTS}
                WHERE status IN ('delivered', 'returned')
                  AND tracking_number IS NOT NULL
                ORDER BY n
                LIMIT %(picked)s
            ), roles AS (
                SELECT id, n,
                    CASE WHEN n <= %(due)s THEN 'due'
                         WHEN n <= %(open)s THEN 'open'
                         WHEN n <= %(open)s + %(late)s THEN 'late'
                         ELSE 'stalled' END AS role
                FROM picked
                UNION ALL
                SELECT id, 0, 'neutral' FROM {SHIPMENTS}
                WHERE status = ANY(%(moving)s)
                  AND (estimated_delivery < %(soon)s OR last_event_at < %(recent)s)
            )
            SELECT s.*, r.role AS bench_role,
                row_number() OVER (PARTITION BY r.role ORDER BY r.n, s.id)
                    AS bench_rank
            FROM {SHIPMENTS} s JOIN roles r USING (id)
            """,
            {
                "picked": opened + LATE + STALLED,
                "due": DUE,
                "open": opened,
                "late": LATE,
                "moving": sorted(MOVING),
                "soon": timezone.localdate(now) + timedelta(days=2),
                "recent": now - stall / 2,
            },
        )
        cursor.execute(f"CREATE UNIQUE INDEX ON {SAVED} (id)")
        cursor.execute(
            f"CREATE TABLE {MARKS} (tbl text PRIMARY KEY, saved bigint, armed bigint)"
        )
        for table in [*(_table(m) for m in WRITTEN), EVENTS]:
            cursor.execute(
                f"INSERT INTO {MARKS} SELECT %s, coalesce(max(id), 0), NULL "
                f"FROM {table}",
                [table],
            )
        cursor.execute(f"SELECT bench_role, count(*) FROM {SAVED} GROUP BY 1")
        counts = dict(cursor.fetchall())
    plan = {
        "open": counts.get("due", 0) + counts.get("open", 0),
        "due": counts.get("due", 0),
        "late": counts.get("late", 0),
        "stalled": counts.get("stalled", 0),
        "neutral": counts.get("neutral", 0),
    }
    wanted = {"open": opened, "due": DUE, "late": LATE, "stalled": STALLED}
    assert all(plan[k] == v for k, v in wanted.items()), f"{plan} (wanted {wanted})"
    return plan


def _medium_rules() -> tuple[timedelta, timedelta]:
    """(unacknowledged → level 1, unresolved → level 2) for medium severity:
    the deadlines the bench's exceptions are given, as next_deadline would."""
    rules = {
        (r.when, r.level): r.after
        for r in EscalationRule.objects.filter(severity=Severity.MEDIUM)
    }
    unacknowledged = rules[(EscalationRule.When.UNACKNOWLEDGED, Level.SUPERVISORS)]
    unresolved = rules[(EscalationRule.When.UNRESOLVED, Level.MANAGERS)]
    assert unacknowledged < unresolved, rules
    return unacknowledged, unresolved


def _setup() -> None:
    """The open exceptions (bulk SQL, one transaction), then statistics."""
    unacknowledged, unresolved = _medium_rules()
    now = timezone.now()
    params = {
        "now": now,
        "later": timezone.localdate(now) + timedelta(days=7),
        "recent": now - timedelta(hours=settings.TRACKSOP_STALL_HOURS) / 2,
        "unack": unacknowledged,
        "unresolved": unresolved,
        "form": Source.FORM,
        "exc_mark": _mark(DeliveryException, "saved"),
        "event_mark": _mark(TrackingEvent, "saved"),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # A third each: new and unacknowledged (reported in the last 3 h), in
        # progress (acknowledged; reported in the last 40 h), escalated to
        # supervisors (unacknowledged; 4 to 40 h). Deadlines as next_deadline
        # sets them, all later than now (the due ones are armed by _arm).
        cursor.execute(
            f"""
            INSERT INTO {EXCEPTIONS} (
                shipment_id, cause, cause_other, severity, description,
                expected_resolution, status, escalation_level, escalate_after,
                reported_at, acknowledged_at, resolution_notes, detection_key,
                version)
            SELECT id,
                (ARRAY['weather', 'address', 'damaged', 'customs',
                       'carrier_delay'])[1 + bench_rank %% 5],
                '', 'medium', '', reported + interval '2 days',
                (ARRAY['open', 'in_progress', 'escalated'])[1 + kind],
                CASE kind WHEN 2 THEN 1 ELSE 0 END,
                reported + CASE kind WHEN 0 THEN %(unack)s ELSE %(unresolved)s END,
                reported,
                CASE kind WHEN 1 THEN reported + interval '30 minutes' END,
                '', '', 1
            FROM (
                SELECT id, bench_rank, bench_rank %% 3 AS kind,
                    %(now)s - make_interval(mins => CASE bench_rank %% 3
                        WHEN 0 THEN (bench_rank * 37) %% 180
                        WHEN 1 THEN (bench_rank * 37) %% 2400
                        ELSE 240 + (bench_rank * 37) %% 2160 END::int) AS reported
                FROM {SAVED} WHERE bench_role IN ('due', 'open')
            ) planned
            """,
            params,
        )
        # Each with the event that reported it, as exception_report writes.
        cursor.execute(
            f"""
            INSERT INTO {EVENTS} (
                shipment_id, kind, occurred_at, recorded_at, integration, source,
                notes, external_id, status_after, data)
            SELECT shipment_id, 'exception_reported', reported_at, reported_at,
                '', %(form)s, cause, '', 'exception',
                jsonb_build_object('exception', id, 'cause', cause,
                    'severity', severity, 'detected', false,
                    'expected_resolution', expected_resolution)
            FROM {EXCEPTIONS} WHERE id > %(exc_mark)s
            """,
            params,
        )
        cursor.execute(
            f"""
            UPDATE {EXCEPTIONS} e SET report_event_id = t.id
            FROM {EVENTS} t
            WHERE t.id > %(event_mark)s AND t.shipment_id = e.shipment_id
              AND e.id > %(exc_mark)s
            """,
            params,
        )
        # The shipments on hold since the report, resuming in transit.
        cursor.execute(
            f"""
            UPDATE {SHIPMENTS} s SET status = 'exception',
                resume_status = 'in_transit', delivered_at = NULL,
                status_changed_at = e.reported_at, last_event_at = e.reported_at,
                version = s.version + 1
            FROM {EXCEPTIONS} e
            WHERE e.shipment_id = s.id AND e.id > %(exc_mark)s
            """,
            params,
        )
        # Seeded moving shipments that are (or would become) late or stalled.
        cursor.execute(
            f"""
            UPDATE {SHIPMENTS} s SET
                estimated_delivery = greatest(s.estimated_delivery, %(later)s),
                last_event_at = greatest(s.last_event_at,
                    %(now)s - interval '1 hour')
            FROM {SAVED} v WHERE v.id = s.id AND v.bench_role = 'neutral'
            """,
            params,
        )
        for table in [*(_table(m) for m in WRITTEN), EVENTS]:
            cursor.execute(
                f"UPDATE {MARKS} SET armed = (SELECT coalesce(max(id), 0) "
                f"FROM {table}) WHERE tbl = %s",
                [table],
            )
    _vacuum()


def _vacuum() -> None:
    # As autovacuum would leave them; the planner needs the new statistics.
    with connection.cursor() as cursor:
        for table in (SHIPMENTS, EXCEPTIONS):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def _mark(model: type[Any], which: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {which} FROM {MARKS} WHERE tbl = %s", [_table(model)])
        return int(cursor.fetchone()[0])


def _delete_after(cursor: Any, which: str) -> None:
    """Delete what was added since a mark. Tracking events are append-only;
    the retention purge's setting lets this transaction delete them."""
    cursor.execute("SET LOCAL tracksop.retention_purge = 'on'")
    for model in WRITTEN:
        table = _table(model)
        cursor.execute(
            f"DELETE FROM {table} WHERE id > (SELECT {which} FROM {MARKS} "
            f"WHERE tbl = %s)",
            [table],
        )
    cursor.execute(
        f"DELETE FROM {EVENTS} WHERE id > (SELECT {which} FROM {MARKS} WHERE tbl = %s)",
        [EVENTS],
    )


def _put_back(cursor: Any, roles: tuple[str, ...] | None = None) -> None:
    fields = Shipment._meta.concrete_fields  # the Options API
    columns = [f.column for f in fields if not f.primary_key]
    assignments = ", ".join(f"{c} = v.{c}" for c in columns)
    only = "AND v.bench_role = ANY(%s)" if roles else ""
    cursor.execute(
        f"UPDATE {SHIPMENTS} s SET {assignments} FROM {SAVED} v "
        f"WHERE v.id = s.id {only}",
        [list(roles)] if roles else None,
    )


def _arm(share: float) -> None:
    """Back to the state after _setup, with `share` of the stale rows stale
    (the others due or late later on)."""
    late, stalled, due = (round(n * share) for n in (LATE, STALLED, DUE))
    unacknowledged, _unresolved = _medium_rules()
    now = timezone.now()
    params = {
        "now": now,
        "today": timezone.localdate(now),
        "later": timezone.localdate(now) + timedelta(days=7),
        "late": late,
        "stalled": stalled,
        "due": due,
        "stall_hours": settings.TRACKSOP_STALL_HOURS,
        "unack": unacknowledged,
        "exc_mark": _mark(DeliveryException, "armed"),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        _delete_after(cursor, "armed")
        _put_back(cursor, ("late", "stalled"))
        cursor.execute(
            f"""
            UPDATE {SHIPMENTS} s SET status = 'in_transit',
                resume_status = 'in_transit', delivered_at = NULL,
                estimated_delivery = p.eta, last_event_at = p.scanned,
                status_changed_at = p.scanned
            FROM (
                SELECT id,
                    CASE WHEN bench_role = 'late' AND bench_rank <= %(late)s
                        THEN %(today)s - (1 + bench_rank %% 5)::int
                        ELSE %(later)s END AS eta,
                    CASE WHEN bench_role = 'stalled' AND bench_rank <= %(stalled)s
                        THEN %(now)s - make_interval(hours => %(stall_hours)s + 1,
                                                     mins => bench_rank::int)
                        ELSE %(now)s - interval '2 hours' END AS scanned
                FROM {SAVED} WHERE bench_role IN ('late', 'stalled')
            ) p
            WHERE p.id = s.id
            """,
            params,
        )
        # Due: unacknowledged for longer than the level-1 rule allows (by 5
        # to 65 minutes), so the sweep raises each to supervisors.
        cursor.execute(
            f"""
            UPDATE {EXCEPTIONS} e SET status = 'open', escalation_level = 0,
                acknowledged_at = NULL, version = 1, reported_at = p.reported,
                escalate_after = p.reported + %(unack)s,
                expected_resolution = p.reported + interval '2 days'
            FROM (
                SELECT id,
                    CASE WHEN bench_rank <= %(due)s
                        THEN %(now)s - %(unack)s
                            - make_interval(mins => 5 + (bench_rank %% 60)::int)
                        ELSE %(now)s - interval '1 hour' END AS reported
                FROM {SAVED} WHERE bench_role = 'due'
            ) p
            WHERE e.shipment_id = p.id AND e.id <= %(exc_mark)s
            """,
            params,
        )


def _restore() -> None:
    """Put the database back as it was before _plan; a no-op if it is."""
    if not _table_exists(MARKS):
        return
    with transaction.atomic(), connection.cursor() as cursor:
        _delete_after(cursor, "saved")
        _put_back(cursor)
        cursor.execute(f"DROP TABLE {SAVED}")
        cursor.execute(f"DROP TABLE {MARKS}")
    _vacuum()


# --- Broker -----------------------------------------------------------------


@contextmanager
def _broker() -> Iterator[redis.Redis]:
    """Publish to a throwaway Redis database for the run, then put back the
    broker the process had (and drop the pooled connections to either)."""
    from tracksop.celery import app

    previous = (app.conf.broker_url, os.environ.get("CELERY_BROKER_URL"))
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    _point(app, BROKER_URL)
    try:
        with app.connection_for_write() as conn:
            assert conn.as_uri().endswith(BROKER_URL.rpartition(":")[2]), conn
        yield client
    finally:
        client.flushdb()
        url, env = previous
        if env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = env
        _point(app, url)


def _point(app: Any, url: str) -> None:
    # Celery reads CELERY_BROKER_URL from the environment before its settings.
    os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = url
    # Celery has no public way to re-point a live app at another broker: drop
    # its connection pools, so the next publish connects to `url`.
    if app._pool is not None:  # noqa: SLF001
        app._pool.force_close_all()  # noqa: SLF001
        app._pool = None  # noqa: SLF001
    app.amqp._producer_pool = None  # noqa: SLF001


# --- EXPLAIN --------------------------------------------------------------


def _explain_all(queries: list[dict[str, str]]) -> dict[str, tuple[list[str], bool]]:
    """Re-arm, then EXPLAIN ANALYZE each work-finding query as the sweep sent
    it (in a transaction rolled back: the claim takes row locks)."""
    _arm(1.0)
    explained = {}
    for name, (marker, indexes) in QUERIES.items():
        sql = next(q["sql"] for q in queries if marker in q["sql"])
        explained[name] = _explain(sql, indexes)
    return explained


def _explain(sql: str, indexes: tuple[str, ...]) -> tuple[list[str], bool]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF, FORMAT JSON) {sql}")
        (raw,) = cursor.fetchone()
        transaction.set_rollback(True)
    top = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    lines = [*_nodes(top["Plan"])]
    used = set(_walk(top["Plan"], "Index Name"))
    seq = set(_walk(top["Plan"], "Relation Name", "Seq Scan"))
    ok = bool(used & set(indexes)) and not seq & {SHIPMENTS, EXCEPTIONS}
    jit = top.get("JIT")
    if jit:
        lines.append(
            f"JIT: {jit['Functions']} functions, {jit['Timing']['Total']:.2f} ms"
        )
    lines.append(
        f"Planning Time: {top['Planning Time']:.2f} ms, "
        f"Execution Time: {top['Execution Time']:.2f} ms"
    )
    return lines, ok


def _walk(plan: dict[str, Any], key: str, node: str = "") -> Iterator[str]:
    if key in plan and (not node or plan["Node Type"] == node):
        yield plan[key]
    for child in plan.get("Plans", []):
        yield from _walk(child, key, node)


def _nodes(plan: dict[str, Any], depth: int = 0) -> Iterator[str]:
    label = plan["Node Type"]
    if plan.get("Join Type", "Inner") != "Inner":
        label += f" ({plan['Join Type']})"
    if "Index Name" in plan:
        label += f" using {plan['Index Name']}"
    elif "Relation Name" in plan:
        label += f" on {plan['Relation Name']}"
    if plan.get("Subplan Name"):
        label += f" [{plan['Subplan Name']}]"
    loops = plan.get("Actual Loops", 1)
    yield (
        f"{'  ' * depth}{label}  (rows={plan['Actual Rows']}"
        + (f" x{loops} loops" if loops != 1 else "")
        + f", {plan['Actual Total Time']:.2f} ms)"
    )
    for child in plan.get("Plans", []):
        yield from _nodes(child, depth + 1)


# --- Report -----------------------------------------------------------------


def _rows(small: Scale, large: Scale) -> list[Row]:
    rows: list[Row] = []

    def row(metric: str, s: Scale, value: str, base: str, target: str = "", ok=True):
        verdict = ("ok" if ok else "FAIL") if target else ""
        rows.append((metric, f"{s.shipments:,}", value, base, target, verdict))

    for s in (small, large):
        full, idle = s.cases["full"], s.cases["idle"]
        row(
            f"{full.label}: median ms",
            s,
            f"{full.median:.0f}",
            f"{idle.median:.1f} (nothing stale)",
            f"< {TARGET_MS:g} ms",
            ok=full.median < TARGET_MS,
        )
        row(
            f"{full.label}: best ms",
            s,
            f"{min(full.ms):.0f}",
            f"{min(idle.ms):.1f} (nothing stale)",
        )
        for name, rows_ in (
            ("detect", s.plan["late"] + s.plan["stalled"]),
            ("escalate", s.plan["due"]),
        ):
            row(
                f"  of which {name}, {rows_} rows: median ms (per row)",
                s,
                f"{full.part(name):.0f} ({full.part(name) / rows_:.1f})",
                f"{idle.part(name):.1f} (nothing stale)",
            )
        if "half" in s.cases:
            half = s.cases["half"]
            row(
                f"{half.label}: median ms",
                s,
                f"{half.median:.0f}",
                f"{idle.median:.1f} (nothing stale)",
            )
            full_rows, half_rows = (sum(c.expected.values()) for c in (full, half))
            row(
                "each stale row more: ms (median full - half)",
                s,
                f"{(full.median - half.median) / (full_rows - half_rows):.2f}",
                f"{full.median / full_rows:.2f} (full / its rows)",
            )
        planned = s.plan
        for case in s.cases.values():
            got = case.result
            row(
                f"{case.label}: rows acted on",
                s,
                f"{got['detected']} detected, {got['escalated']} escalated",
                f"{planned['late']} late + {planned['stalled']} stalled, "
                f"{planned['due']} due of {planned['open']:,} open"
                if case is s.cases["full"]
                else "",
                f"= {case.expected['detected']}, {case.expected['escalated']}",
                ok=got == case.expected,
            )
        row(
            "per sweep: outbox rows / tasks published",
            s,
            f"{s.outbox_rows} / {s.published}",
            f"2 per detection, 1 per escalation and supervisor ({s.supervisors})",
        )
        row(
            "per sweep: SQL statements",
            s,
            f"{s.statements}",
            f"{sum(full.expected.values())} stale rows; chunks of 50, batches of 100",
        )
    growth = large.cases["full"].median / small.cases["full"].median
    row(
        f"{large.cases['full'].label}: {large.shipments:,} / {small.shipments:,}",
        large,
        f"{growth:.2f}x",
        f"table {large.shipments / small.shipments:,.0f}x, open exceptions "
        f"{large.plan['open'] / small.plan['open']:,.0f}x",
        f"< {GROWTH_TARGET:g}x",
        ok=growth < GROWTH_TARGET,
    )
    indexed = all(ok for _lines, ok in large.explained.values())
    row(
        "EXPLAIN: the 3 queries finding work",
        large,
        "indexed" if indexed else "NOT indexed (see below)",
        "no Seq Scan on shipments/exceptions",
        "partial/indexed",
        ok=indexed,
    )
    return rows


def _notes(large: Scale) -> list[str]:
    notes = [
        f"EXPLAIN (ANALYZE, BUFFERS OFF) at {large.shipments:,} shipments, "
        f"state armed as for a timed sweep ({large.plan['open']:,} open exceptions):"
    ]
    for name, (lines, ok) in large.explained.items():
        wanted = " or ".join(QUERIES[name][1])
        notes.append(f"\n{name} (wants {wanted}): {'ok' if ok else 'FLAGGED'}")
        notes.extend(f"  {line}" for line in lines)
    notes.append(
        f"\nTimes are wall-clock for the exceptions_sweep task in this process, median "
        f"of the runs, each re-armed; rows acted on show the worst run. Tasks "
        f"went to {BROKER_URL} (flushed); no worker ran and no mail was sent."
    )
    return notes
