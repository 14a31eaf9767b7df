"""The customer's side in Chromium: the link from a message, the lookup,
feedback after delivery, and an accessibility audit (axe-core) of every public
page. No account, a phone-sized screen, and some of it without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from exceptions_mgmt.reporting import exception_report
from notifications.models import Channel, Kind, Notification
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment
from shipments.status import EventKind
from tests.browser.conftest import axe_serious
from tests.factories import CarrierFactory, LocationFactory, dispatched_shipment

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 320, "height": 640}


@pytest.fixture(autouse=True)
def _fresh_cache(live_server: LiveServer, settings: Settings) -> None:
    cache.clear()
    # Links in messages point at the server under test.
    settings.TRACKSOP_PUBLIC_URL = live_server.url


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    yield context.new_page()
    context.close()


@pytest.fixture
def no_js_phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, locale="en-GB", java_script_enabled=False
    )
    yield context.new_page()
    context.close()


@pytest.fixture
def shipment() -> Shipment:
    s = dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        recipient_name="Quixotia Zamberlain",
        recipient_postcode="SW1A 1AA",
        order_number="ORD-4711",
    )
    hub = LocationFactory(
        code="mad",
        name="Madrid hub",
        city="Madrid",
        country="ES",
        timezone="Europe/Madrid",
    )
    checkpoint_record(
        shipment=s,
        kind=EventKind.ARRIVED_HUB,
        user=None,
        location=hub,
    )
    checkpoint_record(shipment=s, kind=EventKind.DEPARTED_HUB, user=None, location=hub)
    return s


def fits(page: Page) -> bool:
    """Nothing wider than the screen: no sideways scrolling at 320 px."""
    fitting: bool = page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    )
    return fitting


def test_a_customer_opens_the_link_from_their_message_and_reads_the_timeline(
    phone: Page, shipment: Shipment, live_server: LiveServer
) -> None:
    sent = Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )
    link = re.search(r"https?://\S+/t/[\w-]+/(?=\s)", sent.body_text)
    assert link, sent.body_text
    phone.goto(link.group(0))

    expect(phone.get_by_test_id("status")).to_have_text("On its way")
    expect(phone.get_by_text("1Z999AA10123456784")).to_be_visible()
    steps = phone.get_by_role("list", name="Progress").get_by_role("listitem")
    expect(steps).to_have_count(4)
    expect(steps.nth(1)).to_have_attribute("aria-current", "step")
    timeline = phone.get_by_test_id("timeline").get_by_role("listitem")
    expect(timeline.first).to_contain_text("Left the sorting centre")
    expect(timeline.first).to_contain_text("Madrid, ES")
    expect(timeline.nth(1)).to_contain_text("Arrived at a sorting centre")
    expect(timeline.nth(2)).to_contain_text("Handed to the carrier")
    expect(timeline.last).to_contain_text("We received the shipment details")
    expect(phone.get_by_text("Quixotia")).to_have_count(0)
    assert fits(phone)


def test_the_page_reads_in_spanish_for_a_spanish_browser(
    browser: Browser, shipment: Shipment, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport=PHONE, locale="es-ES")
    page = context.new_page()
    page.goto(f"{live_server.url}/t/{shipment.public_token}/")
    expect(page.get_by_test_id("status")).to_have_text("En camino")
    expect(page.get_by_role("heading", name="Recorrido")).to_be_visible()
    context.close()


def test_a_customer_looks_their_package_up_without_javascript(
    no_js_phone: Page, shipment: Shipment, live_server: LiveServer
) -> None:
    page = no_js_phone
    page.goto(f"{live_server.url}/track/")
    page.get_by_label("Tracking number").fill("1z999aa1 0123456784")
    page.get_by_label("Delivery postcode or order number").fill("90210")
    page.get_by_role("button", name="Track").click()
    expect(page.get_by_test_id("not-found")).to_be_visible()

    page.get_by_label("Delivery postcode or order number").fill("sw1a 1aa")
    page.get_by_role("button", name="Track").click()
    expect(page.get_by_test_id("status")).to_have_text("On its way")
    assert urlsplit(page.url).path == f"/t/{shipment.public_token}/"
    assert fits(page)


def test_a_customer_rates_the_delivery_once_it_has_arrived(
    no_js_phone: Page, shipment: Shipment, live_server: LiveServer
) -> None:
    checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)
    page = no_js_phone
    page.goto(f"{live_server.url}/t/{shipment.public_token}/")
    expect(page.get_by_test_id("status")).to_have_text("Delivered")
    page.get_by_test_id("feedback-link").click()

    page.get_by_role("button", name="Send").click()  # no rating chosen
    expect(page.get_by_text("Choose a rating from 1 to 5.")).to_be_visible()
    page.get_by_label("4: Good").check()
    page.get_by_label("Anything you would like to tell us? (optional)").fill(
        "Left with the neighbour, <b>fine</b>."
    )
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("thanks")).to_be_visible()

    page.get_by_role("link", name="Back to the package").click()
    expect(
        page.get_by_text("Thank you for telling us how the delivery went.")
    ).to_be_visible()
    expect(page.get_by_test_id("feedback-link")).to_have_count(0)
    assert shipment.feedback.rating == 4


def test_the_public_pages_pass_an_accessibility_audit(
    phone: Page, shipment: Shipment, live_server: LiveServer
) -> None:
    exception_report(
        shipment=shipment,
        user=None,
        cause="weather",
        expected_resolution=timezone.now() + timedelta(days=1),
    )
    delivered = dispatched_shipment()
    checkpoint_record(shipment=delivered, kind=EventKind.DELIVERED, user=None)
    base = live_server.url
    pages = {
        "tracking page with a problem": f"{base}/t/{shipment.public_token}/",
        "delivered page": f"{base}/t/{delivered.public_token}/",
        "feedback form": f"{base}/t/{delivered.public_token}/feedback/",
        "lookup": f"{base}/track/",
        "not found": f"{base}/t/{'Z' * 22}/",
        "subscribe": f"{base}/t/{shipment.public_token}/subscribe/",
    }
    problems: dict[str, list[str]] = {}
    for name, url in pages.items():
        phone.goto(url)
        problems[name] = axe_serious(phone)
    # Forms showing their errors, too.
    phone.goto(f"{base}/track/")
    phone.get_by_role("button", name="Track").click()
    problems["lookup with errors"] = axe_serious(phone)
    phone.goto(f"{base}/t/{delivered.public_token}/feedback/")
    phone.get_by_role("button", name="Send").click()
    problems["feedback with errors"] = axe_serious(phone)
    assert problems == {name: [] for name in problems}
