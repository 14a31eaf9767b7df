"""Latency of the customer-service search box, per kind of query."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Max, Min
from django.test.utils import CaptureQueriesContext

from shipments.models import Shipment
from shipments.selectors import shipment_search

WARMUP = 20


# What a customer-service agent types for each kind, taken from a real row.
KINDS: dict[str, Callable[[Shipment], str]] = {
    "tracking number": lambda s: s.tracking_number or "",
    "tracking prefix": lambda s: (s.tracking_number or "")[:8],
    "shipment ID": lambda s: s.shipment_id,
    "order number": lambda s: s.order_number.lower(),
    "email": lambda s: s.recipient_email,
    "phone": lambda s: s.recipient_phone.as_national,
    "name fragment": lambda s: s.recipient_name[:-2].lower(),
}


@dataclass
class Latency:
    median: float
    p95: float


def _latency(samples: list[float]) -> Latency:
    return Latency(statistics.median(samples), statistics.quantiles(samples, n=20)[-1])


def sample_rows(n: int, seed: int = 7) -> list[Shipment]:
    """`n` random dispatched shipments (they have every searchable field)."""
    bounds = Shipment.objects.aggregate(lo=Min("id"), hi=Max("id"))
    ids = range(bounds["lo"], bounds["hi"] + 1)
    picked = random.Random(seed).sample(ids, min(len(ids), 2 * n))
    rows = list(
        Shipment.objects.filter(pk__in=picked, tracking_number__isnull=False)
        .exclude(recipient_email="")
        .exclude(recipient_phone="")
    )
    random.Random(seed).shuffle(rows)
    assert len(rows) >= n, f"only {len(rows)} searchable shipments"
    return rows[:n]


def _timed(call: Callable[..., Any], **kwargs: Any) -> float:
    started = time.perf_counter()
    call(**kwargs)
    return (time.perf_counter() - started) * 1000


def measure(user: Any, rows: list[Shipment]) -> dict[str, tuple[Latency, Latency]]:
    """Per kind: (search latency, primary-key fetch of the same rows)."""
    warm, timed = rows[:WARMUP], rows[WARMUP:]
    fetch_by_pk = Shipment.objects.filter
    results = {}
    for kind, make_query in KINDS.items():
        for row in warm:
            shipment_search(user=user, query=make_query(row))
        search_ms = [
            _timed(shipment_search, user=user, query=make_query(row)) for row in timed
        ]
        pk_ms = [_timed(lambda pk: fetch_by_pk(pk=pk).first(), pk=r.pk) for r in timed]
        results[kind] = (_latency(search_ms), _latency(pk_ms))
    return results


def explain(user: Any, query: str) -> list[str]:
    """The plan PostgreSQL runs for the selector's query, one node a line."""
    with CaptureQueriesContext(connection) as captured:
        shipment_search(user=user, query=query)
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        (raw,) = cursor.fetchone()
    top = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    return [*_nodes(top["Plan"]), f"Execution Time: {top['Execution Time']:.2f} ms"]


def _nodes(plan: dict[str, Any], depth: int = 0) -> Iterator[str]:
    label = plan["Node Type"]
    if "Index Name" in plan:
        label += f" using {plan['Index Name']}"
    elif "Relation Name" in plan:
        label += f" on {plan['Relation Name']}"
    yield (
        f"{'  ' * depth}{label}  "
        f"(rows={plan['Actual Rows']}, {plan['Actual Total Time']:.2f} ms)"
    )
    for child in plan.get("Plans", []):
        yield from _nodes(child, depth + 1)
