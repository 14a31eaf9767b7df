"""The list pages clicked through in Chromium: a dashboard card to the list
it counts, ticking every failed message at once, copying a tracking link."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from notifications import links
from notifications.models import Notification, Status
from shipments.models import Shipment
from tests.factories import NotificationFactory, ShipmentFactory, dispatched_shipment

pytestmark = pytest.mark.browser


def test_customer_service_open_the_late_packages_from_the_dashboard(
    log_in: Any, cs_agent: User
) -> None:
    ShipmentFactory()  # no ETA yet: listed after the late ones, not before
    dispatched_shipment()
    late = [dispatched_shipment() for _ in range(2)]
    for days, shipment in enumerate(late, start=1):
        Shipment.objects.filter(pk=shipment.pk).update(
            estimated_delivery=timezone.localdate() - timedelta(days=days)
        )
    page = log_in("cs")

    page.get_by_role("link", name="2 past their ETA").click()

    expect(page.get_by_role("heading", name="In-transit monitor")).to_be_visible()
    expect(page.get_by_label("ETA passed")).to_be_checked()
    expect(page.get_by_text("2 open shipments")).to_be_visible()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    # The later one first: it has been late longest.
    expect(rows.nth(0)).to_contain_text(late[1].shipment_id)
    expect(rows.nth(1)).to_contain_text(late[0].shipment_id)
    expect(page.get_by_text("---------")).to_have_count(0)


def test_customer_service_send_every_failed_message_again_at_once(
    log_in: Any, cs_agent: User
) -> None:
    failed = [
        NotificationFactory(
            status=Status.FAILED,
            sent_at=None,
            attempts=1,
            last_error="Mail server answered 550: b'5.1.1 Mailbox unavailable'",
        )
        for _ in range(3)
    ]
    page = log_in("cs")

    page.get_by_role("link", name="3 failed messages to customers").click()
    # The tick-all script is deferred: wait until it has run.
    page.wait_for_load_state("load")

    table = page.get_by_test_id("failed-list")
    expect(table.get_by_text("The email address does not exist")).to_have_count(3)
    boxes = table.locator('tbody input[name="ids"]')
    select_all = page.get_by_role("checkbox", name="Select all messages on this page")
    select_all.check()
    for i in range(3):
        expect(boxes.nth(i)).to_be_checked()
    boxes.nth(0).uncheck()
    expect(select_all).not_to_be_checked()
    boxes.nth(0).check()
    expect(select_all).to_be_checked()
    page.get_by_role("button", name="Send selected again").click()

    expect(page.get_by_role("status")).to_have_text("3 messages queued again.")
    expect(page.get_by_test_id("failed-empty")).to_be_visible()
    assert Notification.objects.filter(resend_of__in=failed).count() == 3


def test_customer_service_copy_the_customers_tracking_link(
    log_in: Any, cs_agent: User
) -> None:
    shipment = dispatched_shipment()
    page = log_in("cs")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(page.url.rstrip("/") + shipment.get_absolute_url())

    link = links.tracking_url(shipment.public_token)
    expect(page.get_by_label("Customer's tracking link")).to_have_value(link)
    page.get_by_role("button", name="Copy").click()

    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link
