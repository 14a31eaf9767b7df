"""Every dashboard card opens the list it counts, showing the same number."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt import sweep as exception_sweep
from exceptions_mgmt.models import Cause, DeliveryException, Severity
from notifications.models import Status
from shipments.checkpoints import checkpoint_record
from shipments.inquiries import inquiry_log
from shipments.models import Shipment
from shipments.status import EventKind
from tests.factories import (
    NotificationFactory,
    ShipmentFactory,
    dispatched_shipment,
    ready_shipment,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

CARD = re.compile(
    r'<a class="card[^"]*" href="(?P<href>[^"]+)"><div class="card-body">'
    r'<div class="display-6"[^>]*>(?P<count>\d+)</div>(?P<what>[^<]+)</div>'
)


def _a_bit_of_everything(cs_agent: User) -> None:
    """At least one row, and not every row, behind each card."""
    ShipmentFactory()
    ready_shipment()
    on_time = dispatched_shipment()
    checkpoint_record(shipment=on_time, kind=EventKind.OUT_FOR_DELIVERY, user=None)
    late = dispatched_shipment()
    Shipment.objects.filter(pk=late.pk).update(
        estimated_delivery=timezone.localdate() - timedelta(days=2)
    )
    soon = timezone.now() + timedelta(hours=24)
    for severity in (Severity.MEDIUM, Severity.LOW):
        exception_reporting.exception_report(
            shipment=dispatched_shipment(),
            user=None,
            cause=Cause.WEATHER,
            severity=severity,
            expected_resolution=soon,
        )
    # Medium, four hours unacknowledged: level 1 (low takes 72 hours).
    exception_sweep.exceptions_escalate(now=timezone.now() + timedelta(hours=5))
    taken = exception_reporting.exception_report(
        shipment=dispatched_shipment(),
        user=None,
        cause=Cause.DAMAGED,
        expected_resolution=soon,
    )
    exception_services.exception_assign(
        exception=taken, user=cs_agent, assignee=cs_agent
    )
    DeliveryException.objects.filter(pk=taken.pk).update(
        expected_resolution=timezone.now() - timedelta(hours=1)
    )
    for question in ("Where is it?", "Can I change the address?"):
        inquiry_log(shipment=on_time, user=cs_agent, channel="phone", question=question)
    inquiry_log(
        shipment=on_time,
        user=cs_agent,
        channel="phone",
        question="When?",
        answer="Soon",
    )
    NotificationFactory(shipment=late, status=Status.FAILED, sent_at=None)
    NotificationFactory(
        shipment=late, status=Status.FAILED, sent_at=None, superseded_at=timezone.now()
    )


def test_each_card_opens_its_list_with_as_many_rows_as_it_counts(
    client: Client, supervisor: User, cs_agent: User
) -> None:
    _a_bit_of_everything(cs_agent)
    client.force_login(supervisor)

    cards = list(CARD.finditer(client.get(reverse("dashboard")).content.decode()))

    assert len(cards) == 12
    for card in cards:
        href, count = card["href"].replace("&amp;", "&"), int(card["count"])
        what = f"{count} {card['what'].strip()} → {href}"
        assert count > 0, what
        listed = client.get(href)
        assert listed.status_code == 200, what
        assert listed.context["page"].paginator.count == count, what
        # The filter it names exists: a filter that does not would be ignored.
        bar = listed.context.get("filter")
        if "?" in href:
            assert bar is not None, what
            assert bar.is_bound, what
            assert bar.is_valid(), what
            assert set(bar.data) <= set(bar.filters), what
