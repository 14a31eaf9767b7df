"""Query count and wall time of the staff list and detail pages."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from shipments.models import Shipment
from tracksop import roles

REQUESTS = 20


@dataclass
class PageCost:
    queries: int
    median_ms: float


def bench_user() -> User:
    user, _ = User.objects.get_or_create(username="bench-supervisor")
    user.groups.add(Group.objects.get(name=roles.SUPERVISOR))
    return user


def urls() -> dict[str, str]:
    """The pages, with a delivered shipment (a full timeline) for the detail page."""
    shipment = Shipment.objects.filter(status="delivered").order_by("pk").first()
    assert shipment is not None
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
        assert client.get(url).status_code == 200, f"{name}: {url} did not render"
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        costs[name] = PageCost(len(captured), statistics.median(times))
    return costs
