"""The customer service desk clicked through in Chromium: a call logged from
the shipment page, found in the open-inquiries list, answered, and a call that
turns into a delivery exception."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from exceptions_mgmt.models import DeliveryException
from shipments.models import Inquiry
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.browser


def find(page: Page, code: str) -> None:
    """As an agent does with the customer on the line: the search box."""
    search = page.get_by_role("search").get_by_label("Search shipments")
    search.fill(code)
    search.press("Enter")
    expect(page.get_by_role("heading", name=code, exact=True)).to_be_visible()


def inquiry_item(page: Page, inquiry: Inquiry) -> Locator:
    return page.get_by_test_id(f"inquiry-{inquiry.pk}")


def test_an_agent_logs_a_call_and_answers_it_from_the_open_inquiries_list(
    log_in: Any, live_server: LiveServer, cs_agent: User
) -> None:
    shipment = dispatched_shipment()
    code = shipment.shipment_id
    page = log_in("cs")
    find(page, code)

    # The cursor waits in the question box; Phone is the default channel.
    panel = page.get_by_test_id("inquiries")
    expect(panel.get_by_label("Channel")).to_have_value("phone")
    expect(panel.get_by_label("Question")).to_be_focused()
    page.keyboard.type("Will it arrive before the weekend?")
    panel.get_by_role("button", name="Log inquiry").click()

    inquiry = Inquiry.objects.get()
    expect(page.get_by_role("status")).to_have_text(
        f"Inquiry #{inquiry.pk} logged; it stays open until answered."
    )
    expect(inquiry_item(page, inquiry)).to_contain_text("Open")
    expect(page.get_by_test_id("timeline-inquiry")).to_contain_text(
        "Will it arrive before the weekend?"
    )

    page.get_by_role("link", name="Inquiries").click()
    expect(page.get_by_role("heading", name="Open inquiries")).to_be_visible()
    row = page.get_by_test_id("inquiry-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(code)
    expect(row).to_contain_text("Phone")
    expect(row).to_contain_text("Will it arrive before the weekend?")

    row.get_by_role("link", name=re.compile("^Answer")).click()
    expect(page).to_have_url(re.compile(rf"/shipments/{code}/#inquiry-{inquiry.pk}$"))
    box = inquiry_item(page, inquiry).get_by_label("Answer")
    box.fill("Yes: it is due on Friday.")
    box.press("Control+Enter")  # saves without reaching for the mouse

    expect(page.get_by_role("status")).to_have_text(f"Inquiry #{inquiry.pk} answered.")
    item = inquiry_item(page, inquiry)
    expect(item).to_contain_text("Answered")
    expect(item).to_contain_text("Yes: it is due on Friday.")
    expect(item.get_by_role("button", name="Save answer")).to_have_count(0)

    page.get_by_role("link", name="Inquiries").click()
    expect(page.get_by_test_id("inquiry-row")).to_have_count(0)
    expect(page.get_by_text("No open inquiries")).to_be_visible()
    page.get_by_role("link", name="TrackSOP").click()
    expect(page.get_by_test_id("inquiries-open")).to_have_text("0")


def test_an_agent_reports_an_exception_from_a_customers_call(
    log_in: Any, live_server: LiveServer, cs_agent: User
) -> None:
    shipment = dispatched_shipment()
    code = shipment.shipment_id
    page = log_in("cs")
    find(page, code)

    panel = page.get_by_test_id("inquiries")
    panel.get_by_label("Question").fill("The box arrived at my neighbour's crushed.")
    panel.get_by_role("button", name="Log inquiry").click()
    inquiry = Inquiry.objects.get()

    inquiry_item(page, inquiry).get_by_role(
        "link", name=f"Report exception from inquiry #{inquiry.pk}"
    ).click()
    expect(
        page.get_by_role("heading", name=f"Report an exception — {code}")
    ).to_be_visible()
    expect(page.get_by_label("Description")).to_have_value(
        re.compile(
            rf"^Customer inquiry #{inquiry.pk} \(Phone, .+\): "
            r"The box arrived at my neighbour's crushed\.$"
        )
    )
    answer = page.get_by_label(f"Answer inquiry #{inquiry.pk} with this report")
    expect(answer).to_be_checked()
    page.get_by_label(re.compile(r"^\s*Cause")).select_option(label="Damaged")
    page.get_by_role("button", name="Report exception").click()

    exception = DeliveryException.objects.get()
    expect(page.get_by_role("heading", name=f"Damaged — {code}")).to_be_visible()
    # Each record leads to the other.
    page.get_by_role("link", name=f"customer inquiry #{inquiry.pk}").click()
    item = inquiry_item(page, inquiry)
    expect(item).to_contain_text("Answered")
    expect(item).to_contain_text(f"Reported as exception #{exception.pk}: Damaged")
    expect(page.get_by_test_id("open-exception")).to_contain_text("Damaged")
    item.get_by_role("link", name=f"Exception #{exception.pk}").click()
    expect(page.get_by_role("heading", name=f"Damaged — {code}")).to_be_visible()
