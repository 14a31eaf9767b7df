"""Query count and wall time of the staff list and detail pages."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from shipments.models import Shipment
from tracksop import roles

REQUESTS = 20


@dataclass
class PageCost:
    queries: int
    median_ms: float
    rows: int | None  # shipments listed; None on the detail page


def bench_user() -> User:
    user, _ = User.objects.get_or_create(username="bench-supervisor")
    user.groups.add(Group.objects.get(name=roles.SUPERVISOR))
    return user


def urls() -> dict[str, str]:
    """The pages, with a delivered shipment (a full timeline) for the detail page."""
    shipment = Shipment.objects.filter(status="delivered").order_by("pk").first()
    assert shipment is not None
    # At 1,000 shipments the seeder's year rarely leaves an open shipment past
    # its ETA, and an empty page skips its query, so the counts would not compare:
    # make the two most recently dispatched in-transit shipments late.
    late = Shipment.objects.filter(status="in_transit").order_by("-dispatched_at")
    Shipment.objects.filter(pk__in=list(late.values_list("pk", flat=True)[:2])).update(
        estimated_delivery=timezone.localdate() - timedelta(days=1)
    )
    monitor = reverse("monitor")
    return {
        "shipment detail": shipment.get_absolute_url(),
        "monitor": monitor,
        "monitor ?status": f"{monitor}?status=in_transit",
        "monitor ?overdue": f"{monitor}?overdue=on",
        "monitor ?status&overdue": f"{monitor}?status=in_transit&overdue=on",
        # A common surname: many matches, so the results page renders (no redirect).
        "search results": f"{reverse('shipment-search')}?q=garcia",
    }


def measure(user: User) -> dict[str, PageCost]:
    client = Client()
    client.force_login(user)
    costs = {}
    for name, url in urls().items():
        response = client.get(url)
        assert response.status_code == 200, f"{name}: {url} did not render"
        rows = _listed(response)
        assert rows != 0, f"{name}: {url} lists nothing, so its count proves nothing"
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        # Read now: each request's request_started signal empties the query log.
        queries = len(captured)
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        costs[name] = PageCost(queries, statistics.median(times), rows)
    return costs


def _listed(response: Any) -> int | None:
    context = response.context
    if "page" in context:
        return len(context["page"].object_list)
    if "result" in context:
        return len(context["result"].shipments)
    return None
