"""The staff pages clicked through in Chromium: the flows of DESIGN.md end to end."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import (
    LocationFactory,
    OwnFleetFactory,
    ShipmentFactory,
    dispatched_shipment,
)

pytestmark = pytest.mark.browser

S10 = re.compile(r"^[A-Z]{2}\d{9}[A-Z]{2}$")


def fill_new_shipment(page: Page, *, weight: str = "2.5") -> None:
    """Every required field of the new-shipment form."""
    page.get_by_label("Order number").fill("ORD-7781")
    page.get_by_label("Recipient name").fill("Margaret Hamilton")
    page.get_by_label("Recipient address").fill("12 Apollo Way")
    page.get_by_label("Recipient postcode").fill("02139")
    page.get_by_label("Recipient city").fill("Cambridge")
    page.get_by_label("Recipient country").fill("us")
    page.get_by_label("Sender name").fill("Acme Warehouse")
    page.get_by_label("Sender address").fill("1 Dock Road, Newark")
    page.get_by_label("Weight").fill(weight)
    page.get_by_label("Length").fill("30")
    page.get_by_label("Width").fill("20")
    page.get_by_label("Height").fill("10")
    page.get_by_label("Contents").fill("Flight manuals")


def test_logistics_staff_log_in_through_the_form_and_land_on_the_dashboard(
    page: Page, live_server: LiveServer, staff: User
) -> None:
    page.goto(live_server.url)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill("logistics")
    page.get_by_label("Password").fill("pass-word-123")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("link", name="New shipment")).to_be_visible()
    expect(page.get_by_test_id("open-count")).to_have_text("0")


def test_staff_create_check_and_dispatch_a_shipment_with_a_generated_number(
    log_in: Any, staff: User
) -> None:
    OwnFleetFactory()
    page = log_in("logistics")

    page.get_by_role("link", name="New shipment").click()
    expect(page.get_by_role("heading", name="New shipment")).to_be_visible()
    fill_new_shipment(page)
    page.get_by_role("button", name="Save shipment").click()

    expect(page.get_by_role("status")).to_contain_text("recorded")
    expect(page.locator(".badge.status")).to_have_text("Created")
    page.get_by_role("link", name="Check quality & quantity").click()
    page.get_by_role("group", name=re.compile("Quality")).get_by_label("Pass").check()
    page.get_by_role("group", name=re.compile("Quantity")).get_by_label("Pass").check()
    page.get_by_role("button", name="Record check").click()

    expect(page.get_by_role("status")).to_contain_text("ready for dispatch")
    page.get_by_role("link", name="Dispatch", exact=True).click()
    page.get_by_label("Carrier").select_option(label="Own fleet")
    expect(page.get_by_label("Tracking number")).to_be_empty()
    eta = timezone.localdate() + timedelta(days=3)
    page.get_by_label("Estimated delivery").fill(eta.isoformat())
    page.get_by_role("button", name="Dispatch").click()

    expect(page.locator(".badge.status")).to_have_text("Dispatched")
    expect(page.get_by_test_id("tracking-number")).to_have_text(S10)
    # For a person to look at, not an assertion; the path was asked for.
    page.screenshot(path="/tmp/tracksop-detail.png", full_page=True)  # noqa: S108
    shipment = Shipment.objects.get()
    assert shipment.status == "dispatched"
    expect(page.get_by_test_id("tracking-number")).to_have_text(
        shipment.tracking_number or ""
    )


def test_staff_log_a_checkpoint_and_see_it_in_the_timeline(
    log_in: Any, live_server: LiveServer, staff: User
) -> None:
    LocationFactory(code="chi", name="Chicago hub", city="Chicago")
    shipment = dispatched_shipment()
    page = log_in("logistics")
    page.goto(live_server.url + shipment.get_absolute_url())

    page.get_by_role("link", name="Log checkpoint").click()
    page.get_by_label("What happened").select_option(label="Arrived at hub")
    page.get_by_label("Location").select_option(label="Chicago hub (Chicago)")
    page.get_by_role("button", name="Log checkpoint").click()

    expect(page.get_by_role("status")).to_have_text("Logged: Arrived at hub.")
    expect(page.locator(".badge.status")).to_have_text("In transit")
    row = (
        page.get_by_test_id("timeline")
        .get_by_role("row")
        .filter(has_text="Arrived at hub")
    )
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Chicago hub")
    expect(row).to_contain_text(staff.get_full_name())
    expect(row.get_by_role("cell").nth(4)).to_have_text("Form")


def test_staff_bulk_scan_three_packages_by_typing_each_number_and_enter(
    log_in: Any, staff: User
) -> None:
    LocationFactory(code="chi", name="Chicago hub", city="Chicago")
    fleet = OwnFleetFactory()
    shipments = [dispatched_shipment(carrier=fleet) for _ in range(3)]
    unknown = "1Z999AA10123456784"  # a well-formed UPS number nobody shipped
    page = log_in("logistics")

    page.get_by_role("link", name="Bulk scan").click()
    page.get_by_label("What happened").select_option(label="Arrived at hub")
    page.get_by_label("Location").select_option(label="Chicago hub (Chicago)")
    box = page.get_by_label("Tracking numbers")
    for number in [s.tracking_number or "" for s in shipments] + [unknown]:
        box.press_sequentially(number)
        box.press("Enter")
    page.get_by_role("button", name="Save scans").click()

    expect(page.get_by_test_id("scan-saved")).to_have_text("3 scans saved.")
    problems = page.get_by_test_id("scan-problems")
    expect(problems.get_by_role("listitem")).to_have_count(1)
    expect(problems.get_by_role("listitem")).to_have_text(
        f"{unknown}: No shipment has this tracking number."
    )
    expect(page.get_by_label("Tracking numbers")).to_be_empty()
    for shipment in shipments:
        shipment.refresh_from_db()
        assert shipment.status == "in_transit"
        assert shipment.events.filter(
            kind=EventKind.ARRIVED_HUB, source="bulk_scan", location__code="chi"
        ).exists()
    assert TrackingEvent.objects.filter(kind=EventKind.ARRIVED_HUB).count() == 3


def test_customer_service_find_a_package_by_number_or_by_name(
    log_in: Any, cs_agent: User
) -> None:
    shipment = dispatched_shipment(recipient_name="Margaret Hamilton")
    ShipmentFactory(recipient_name="Someone Else")
    number = shipment.tracking_number or ""
    typed = f"{number[:2]} {number[2:6]} {number[6:11]} {number[11:]}".lower()
    page = log_in("cs")
    search = page.get_by_role("search").get_by_label("Search shipments")

    search.fill(typed)
    search.press("Enter")

    expect(page).to_have_url(re.compile(rf"/shipments/{shipment.shipment_id}/$"))
    expect(page.get_by_role("heading", name=shipment.shipment_id)).to_be_visible()
    expect(page.get_by_test_id("tracking-number")).to_have_text(number)

    search = page.get_by_role("search").get_by_label("Search shipments")
    search.fill("hamil")
    search.press("Enter")

    table = page.get_by_test_id("shipment-table")
    expect(table.get_by_role("row")).to_have_count(2)  # header + one shipment
    expect(table.get_by_role("link", name=shipment.shipment_id)).to_be_visible()
    expect(table).to_contain_text("Margaret Hamilton")


def test_staff_see_a_form_error_next_to_the_field_and_nothing_is_saved(
    log_in: Any, staff: User
) -> None:
    page = log_in("logistics")
    page.get_by_role("link", name="New shipment").click()
    fill_new_shipment(page, weight="-1")
    page.get_by_role("button", name="Save shipment").click()

    expect(page.get_by_role("heading", name="New shipment")).to_be_visible()
    weight = page.get_by_label("Weight")
    expect(weight).to_have_attribute("aria-invalid", "true")
    # The message is tied to the input (aria-describedby) and shown in its box.
    expect(weight).to_have_accessible_description(
        re.compile("Weight must be more than zero")
    )
    expect(page.locator("#div_id_weight_kg .invalid-feedback")).to_be_visible()
    expect(page.locator(".is-invalid")).to_have_count(1)
    expect(page.get_by_label("Recipient name")).to_have_value("Margaret Hamilton")
    assert not Shipment.objects.exists()
