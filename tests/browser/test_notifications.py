"""Messages to customers clicked through in Chromium: history and resend, the
failed list, a delay after an ETA change, the customer's manage link and the
template preview.

No Celery worker runs here: rows written by the pages are published to the
broker on commit and nobody consumes them, so they stay "Pending". The tests
assert what a person sees.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from notifications import links
from notifications.models import (
    Audience,
    Channel,
    Kind,
    Notification,
    Preference,
    Status,
)
from shipments.models import Shipment
from tests.factories import NotificationFactory, dispatched_shipment

pytestmark = pytest.mark.browser


def history_rows(page: Page) -> Locator:
    """The body rows of the message history on the shipment page."""
    return (
        page.get_by_test_id("notification-history").locator("tbody").get_by_role("row")
    )


def message_rows(rows: Locator, page: Page, kind: str, channel: str = "") -> Locator:
    """Rows whose message kind (and channel) read exactly `kind` (`channel`)."""
    found = rows.filter(has=page.get_by_text(kind, exact=True))
    return found.filter(has=page.get_by_text(channel, exact=True)) if channel else found


def failed_sms(shipment: Shipment, **kwargs: Any) -> Notification:
    defaults: dict[str, Any] = {
        "shipment": shipment,
        "kind": Kind.DISPATCHED,
        "channel": Channel.SMS,
        "to": shipment.recipient_phone.as_e164,
        "subject": "",
        "body_text": "Your order is on its way.",
        "status": Status.FAILED,
        "attempts": 8,
        "sent_at": None,
        "last_error": "Gave up after 8 attempts. The SMS gateway timed out.",
    }
    return NotificationFactory(**{**defaults, **kwargs})


def test_customer_service_resend_a_failed_sms_from_the_shipment_page(
    log_in: Any, cs_agent: User
) -> None:
    shipment = dispatched_shipment(recipient_phone="+12025550143")
    # Only the two rows below: not the pending ones the dispatch wrote.
    Notification.objects.filter(shipment=shipment).delete()
    NotificationFactory(shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL)
    failed = failed_sms(shipment)
    page = log_in("cs")
    expect(page.get_by_test_id("failed-count")).to_have_text("1")

    search = page.get_by_role("search").get_by_label("Search shipments")
    search.fill(shipment.tracking_number or "")
    search.press("Enter")
    expect(page.get_by_role("heading", name=shipment.shipment_id)).to_be_visible()

    heading = page.get_by_role("heading", name="Messages to customers")
    heading.scroll_into_view_if_needed()
    expect(heading).to_be_in_viewport()
    rows = history_rows(page)
    expect(rows).to_have_count(2)
    email = message_rows(rows, page, "Dispatched", "Email")
    expect(email).to_contain_text(shipment.recipient_email)
    expect(email.locator("[data-status]")).to_have_text("Sent")
    sms = message_rows(rows, page, "Dispatched", "SMS")
    expect(sms.locator("[data-status]")).to_have_text("Failed")
    expect(sms.get_by_test_id("notification-error")).to_have_text(
        "Gave up after 8 attempts. The SMS gateway timed out."
    )
    expect(sms).to_contain_text("8 attempts")

    page.get_by_role("button", name="Resend Dispatched SMS").click()

    expect(page).to_have_url(
        re.compile(rf"/shipments/{shipment.shipment_id}/#messages$")
    )
    expect(page.get_by_role("status")).to_have_text(
        "Dispatched SMS queued to +12025550143."
    )
    expect(rows).to_have_count(3)
    resent = rows.filter(has_text=f"resent by {cs_agent.get_full_name()}")
    expect(resent).to_have_count(1)
    expect(resent.get_by_text("SMS", exact=True)).to_be_visible()
    expect(resent).to_contain_text("+12025550143")
    expect(resent.locator("[data-status]")).to_have_text("Pending")
    # Still being sent: nothing to resend yet.
    expect(resent.get_by_role("button")).to_have_count(0)
    # The failed row keeps its record; it just no longer counts as open.
    expect(
        rows.filter(has=page.get_by_test_id("notification-error")).locator(
            "[data-status]"
        )
    ).to_have_text("Failed")

    page.get_by_role("link", name="TrackSOP").click()
    expect(page.get_by_test_id("failed-count")).to_have_text("0")
    page.get_by_role("navigation").get_by_role("link", name="Failed messages").click()
    expect(page.get_by_test_id("failed-empty")).to_be_visible()

    failed.refresh_from_db()
    assert failed.superseded_at is not None
    row = Notification.objects.get(resend_of=failed)
    assert (row.status, row.requested_by, row.to) == (
        Status.PENDING,
        cs_agent,
        "+12025550143",
    )


def test_supervisor_send_two_failed_messages_again_from_the_failed_list(
    log_in: Any, supervisor: User
) -> None:
    failed = [
        NotificationFactory(
            status=Status.FAILED,
            sent_at=None,
            attempts=8,
            last_error="550 Mailbox unavailable",
        )
        for _ in range(2)
    ]
    page = log_in("supervisor")
    expect(page.get_by_test_id("failed-count")).to_have_text("2")

    page.get_by_role("navigation").get_by_role("link", name="Failed messages").click()

    expect(page.get_by_role("heading", name="Failed messages")).to_be_visible()
    table = page.get_by_test_id("failed-list")
    expect(table.locator("tbody").get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("550 Mailbox unavailable")
    for row in failed:
        assert row.shipment is not None
        page.get_by_role(
            "checkbox", name=f"Select {row.shipment.shipment_id} Dispatched"
        ).check()
    page.get_by_role("button", name="Send selected again").click()

    expect(page.get_by_role("status")).to_have_text("2 messages queued again.")
    expect(page.get_by_test_id("failed-empty")).to_be_visible()
    expect(page.get_by_test_id("failed-list")).to_have_count(0)
    for row in failed:
        row.refresh_from_db()
        assert row.superseded_at is not None
        assert row.resends.get().status == Status.PENDING


def test_logistics_staff_move_the_eta_later_and_the_customer_gets_a_delay_message(
    log_in: Any, live_server: LiveServer, staff: User
) -> None:
    shipment = dispatched_shipment()
    later = timezone.localdate() + timedelta(days=6)
    page = log_in("logistics")
    page.goto(live_server.url + shipment.get_absolute_url())

    page.get_by_role("link", name="Change ETA").click()
    expect(page.get_by_label("New estimated delivery")).to_have_value(
        (timezone.localdate() + timedelta(days=3)).isoformat()
    )
    page.get_by_label("New estimated delivery").fill(later.isoformat())
    page.get_by_label("Message to the recipient").fill("Severe weather at the hub")
    page.get_by_role("button", name="Change ETA").click()

    expect(page.get_by_role("status")).to_have_text("Estimated delivery saved.")
    expect(page.get_by_role("heading", name=shipment.shipment_id)).to_be_visible()
    event = (
        page.get_by_test_id("timeline")
        .get_by_role("row")
        .filter(has_text="Estimated delivery changed")
    )
    expect(event).to_have_count(1)
    expect(event).to_contain_text("Severe weather at the hub")
    expect(event).to_contain_text(staff.get_full_name())

    rows = history_rows(page)
    expect(message_rows(rows, page, "Delay")).to_have_count(2)
    email = message_rows(rows, page, "Delay", "Email")
    expect(email).to_contain_text(shipment.recipient_email)
    expect(email).to_contain_text(f"Order {shipment.order_number} will arrive later")
    expect(email.locator("[data-status]")).to_have_text("Pending")
    sms = message_rows(rows, page, "Delay", "SMS")
    expect(sms).to_contain_text(shipment.recipient_phone.as_e164)
    expect(sms.locator("[data-status]")).to_have_text("Pending")

    shipment.refresh_from_db()
    assert shipment.estimated_delivery == later
    assert sorted(
        Notification.objects.filter(kind=Kind.DELAY).values_list("channel", "status")
    ) == [(Channel.EMAIL, Status.PENDING), (Channel.SMS, Status.PENDING)]


def test_customer_choose_email_only_then_stop_all_updates_from_the_manage_link(
    page: Page, live_server: LiveServer
) -> None:
    shipment = dispatched_shipment(
        recipient_name="Margaret Hamilton",
        recipient_email="margaret.hamilton@example.net",
        recipient_phone="+12025550143",
        recipient_address="12 Apollo Way",
        recipient_postcode="02139",
    )
    # As in the message: the public URL, opened on this server.
    url = links.manage_url(shipment.public_token, Audience.RECIPIENT)
    page.goto(live_server.url + urlsplit(url).path)

    expect(
        page.get_by_role("heading", name="Updates about your package")
    ).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("Dispatched")
    expect(page.get_by_text(shipment.tracking_number or "", exact=True)).to_be_visible()
    html = page.content()
    for private in (
        "Margaret",
        "Hamilton",
        "margaret.hamilton@example.net",
        "+12025550143",
        "202-555-0143",
        "(202) 555-0143",
        "12 Apollo Way",
        "02139",
    ):
        assert private not in html, private
    expect(page.get_by_text("Now: Email and SMS.")).to_be_visible()

    page.get_by_label("Email only").check()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Saved: Email only.")
    expect(page.get_by_text("Now: Email only.")).to_be_visible()
    expect(page.get_by_label("Email only")).to_be_checked()
    assert Preference.objects.get(shipment=shipment).channels == "email"

    page.get_by_role("button", name="Stop all updates").click()

    expect(page.get_by_role("status")).to_have_text(
        "Done: you will get no more updates about this package."
    )
    expect(page.get_by_text("Now: No updates.")).to_be_visible()
    expect(page.get_by_role("button", name="Stop all updates")).to_have_count(0)
    preference = Preference.objects.get(shipment=shipment, audience=Audience.RECIPIENT)
    assert preference.channels == Preference.Choice.NONE
    assert preference.updated_by is None


def test_supervisor_preview_the_out_for_delivery_sms(
    log_in: Any, supervisor: User
) -> None:
    page = log_in("supervisor")
    page.get_by_role("navigation").get_by_role("link", name="Message templates").click()
    expect(page.get_by_role("heading", name="Message preview")).to_be_visible()

    page.get_by_label("Kind").select_option(label="Out for delivery")
    page.get_by_label("Channel").select_option(label="SMS")
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_test_id("preview-sms")).to_contain_text(
        "order ORD-10042 is out for delivery today"
    )
    expect(page.get_by_test_id("preview-sms")).to_contain_text("Track & manage: http")
    expect(page.get_by_test_id("preview-segments")).to_have_text(
        re.compile(r"^\d+ characters · 1 SMS segment$")
    )
    # The choices stay as picked, to try another channel or kind.
    expect(page.get_by_label("Kind")).to_have_value("out_for_delivery")
    expect(page.get_by_label("Channel")).to_have_value("sms")
