"""A delivery exception clicked through in Chromium, from the report on the
shipment page to the supervisor's resolution.

No Celery worker runs here: the messages the pages write are published on
commit and nobody consumes them, so they stay "Pending"; the tests assert the
records a person sees. Time passes by running the escalation sweep with a
later `now` (the live server shares this process and its database).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from exceptions_mgmt import sweep
from exceptions_mgmt.models import DeliveryException, ExceptionStatus
from notifications.models import Audience, Kind, Notification, Status
from shipments.models import Shipment
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _rules(role_groups: None, escalation_rules: None) -> None:
    """The default rules, after the groups: each live-server test's flush
    empties both."""


def history_rows(page: Page) -> Locator:
    return (
        page.get_by_test_id("notification-history").locator("tbody").get_by_role("row")
    )


def message_rows(page: Page, kind: str, channel: str = "Email") -> Locator:
    rows = history_rows(page).filter(has=page.get_by_text(kind, exact=True))
    return rows.filter(has=page.get_by_text(channel, exact=True))


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def test_an_exception_is_reported_escalated_and_resolved_by_a_supervisor(
    log_in: Any, live_server: LiveServer, staff: User, supervisor: User
) -> None:
    shipment = dispatched_shipment()
    code = shipment.shipment_id

    # Logistics staff report it from the shipment page.
    page = log_in("logistics")
    page.goto(live_server.url + shipment.get_absolute_url())
    page.get_by_role("link", name="Report exception").click()
    expect(
        page.get_by_role("heading", name=f"Report an exception — {code}")
    ).to_be_visible()
    page.get_by_label(re.compile(r"^\s*Cause")).select_option(label="Address issue")
    page.get_by_label("Severity").select_option(label="Medium")
    expect(page.get_by_label("Expected resolution")).not_to_be_empty()
    page.get_by_label("Description").fill("House number missing on the label")
    page.get_by_role("button", name="Report exception").click()

    expect(page.get_by_role("status")).to_have_text(
        "Exception reported. The customer was notified by email and SMS of the "
        "cause and the expected resolution."
    )
    expect(page.get_by_role("heading", name=f"Address issue — {code}")).to_be_visible()
    expect(page.get_by_test_id("exception-status")).to_have_text("Open")

    page.get_by_test_id("exception-facts").get_by_role("link", name=code).click()
    expect(page.locator(".badge.status")).to_have_text("Exception")
    expect(page.get_by_test_id("open-exception")).to_contain_text("Address issue")
    expect(page.get_by_role("link", name="Report exception")).to_have_count(0)
    told = message_rows(page, "Exception")
    expect(told).to_have_count(1)
    expect(told).to_contain_text(shipment.recipient_email)
    expect(told.locator("[data-status]")).to_have_text("Pending")
    log_out(page)

    # Nobody acknowledged it for five hours: the sweep escalates it (medium:
    # four hours unacknowledged → level 1) and emails the supervisors.
    assert sweep.exceptions_escalate(now=timezone.now() + timedelta(hours=5)) == 1
    alert = Notification.objects.get(kind=Kind.ESCALATION)
    assert (alert.to, alert.audience, alert.status) == (
        supervisor.email,
        Audience.STAFF,
        Status.PENDING,
    )

    # A supervisor works the queue.
    page = log_in("supervisor")
    page.get_by_role("navigation").get_by_role("link", name="Exceptions").click()
    expect(page.get_by_role("heading", name="Exceptions")).to_be_visible()
    row = (
        page.get_by_test_id("exception-queue").locator("tbody tr").filter(has_text=code)
    )
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("escalation-level")).to_have_text("Level 1")
    expect(row).to_contain_text("Escalated")
    row.get_by_role("button", name=f"Assign {code} to me").click()

    expect(page.get_by_role("status")).to_have_text(f"Assigned to you: {code}.")
    expect(row).to_contain_text(supervisor.get_full_name())
    expect(row.get_by_role("button", name=f"Assign {code} to me")).to_have_count(0)

    row.get_by_role("link", name="Address issue").click()
    expect(page.get_by_test_id("escalation-level")).to_have_text("Level 1: supervisors")
    page.get_by_label(re.compile(r"^\s*Note")).fill(
        "Rang the customer: it is number 12"
    )
    page.get_by_label("I contacted the customer").check()
    page.get_by_label("Channel").select_option(label="Phone")
    page.get_by_role("button", name="Add note").click()

    expect(page.get_by_role("status")).to_have_text(
        "Note added. Customer contact recorded."
    )
    notes = page.get_by_test_id("exception-notes")
    expect(notes).to_contain_text("Rang the customer: it is number 12")
    expect(notes).to_contain_text("customer contacted by Phone")
    expect(notes).to_contain_text(supervisor.get_full_name())

    page.get_by_label("How it was resolved").fill("Label corrected at the depot")
    page.get_by_role("button", name="Resolve").click()

    expect(page.get_by_role("status")).to_have_text(
        "Exception resolved. The customer is told."
    )
    expect(page.get_by_test_id("exception-status")).to_have_text("Resolved")
    expect(page.get_by_test_id("resolution-notes")).to_have_text(
        "Label corrected at the depot"
    )
    history = page.get_by_test_id("exception-history")
    for what in ("Reported", "Escalated: Level 1: supervisors", "Resolved"):
        expect(history.get_by_role("cell", name=what, exact=True)).to_have_count(1)

    # The package is back where its scans left it and the customer is told.
    page.get_by_test_id("exception-facts").get_by_role("link", name=code).click()
    expect(page.locator(".badge.status")).to_have_text("Dispatched")
    expect(page.get_by_test_id("open-exception")).to_have_count(0)
    resolved = message_rows(page, "Exception resolved")
    expect(resolved).to_have_count(1)
    expect(resolved.locator("[data-status]")).to_have_text("Pending")
    escalation = message_rows(page, "Escalation (staff)")
    expect(escalation).to_contain_text(supervisor.email)
    expect(
        page.get_by_test_id("timeline")
        .get_by_role("row")
        .filter(has_text="Exception resolved")
    ).to_contain_text("Label corrected at the depot")

    exception = DeliveryException.objects.get()
    assert (exception.status, exception.resolved_by, exception.assignee) == (
        ExceptionStatus.RESOLVED,
        supervisor,
        supervisor,
    )
    assert Shipment.objects.get(pk=shipment.pk).status == "dispatched"


def test_customer_service_report_exceptions_by_scanning_and_see_the_problems(
    log_in: Any, cs_agent: User
) -> None:
    shipments = [dispatched_shipment() for _ in range(2)]
    unknown = "1Z999AA10123456784"
    page = log_in("cs")
    page.get_by_role("navigation").get_by_role("link", name="Exceptions").click()
    page.get_by_role("link", name="Report exceptions by scan").click()

    page.get_by_label(re.compile(r"^\s*Cause")).select_option(label="Weather")
    page.get_by_label("Severity").select_option(label="High")
    box = page.get_by_label("Tracking numbers or shipment IDs")
    for number in [s.tracking_number or "" for s in shipments] + [unknown]:
        box.press_sequentially(number)
        box.press("Enter")
    page.get_by_role("button", name="Report exceptions").click()

    reported = page.get_by_test_id("scan-reported")
    expect(reported).to_contain_text("2 exceptions reported")
    for shipment in shipments:
        expect(reported.get_by_role("link", name=shipment.shipment_id)).to_be_visible()
    problems = page.get_by_test_id("scan-problems")
    expect(problems.get_by_role("listitem")).to_have_text(
        [f"{unknown}: No shipment has this tracking number."]
    )
    expect(box).to_be_empty()
    expect(page.get_by_label(re.compile(r"^\s*Cause"))).to_have_value("weather")

    page.get_by_role("navigation").get_by_role("link", name="Exceptions").click()
    rows = page.get_by_test_id("exception-queue").locator("tbody tr")
    expect(rows).to_have_count(2)
    # Customer service work exceptions but do not see escalation levels.
    expect(page.get_by_test_id("escalation-level")).to_have_count(0)
    expect(page.get_by_role("button", name="Assign to…")).to_have_count(0)
    assert DeliveryException.objects.filter(severity="high").count() == 2
    assert re.search(r"High", rows.first.inner_text())
