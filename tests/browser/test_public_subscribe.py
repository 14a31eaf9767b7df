"""A customer asks for updates on the tracking page, in Chromium at 320 px with
JavaScript off: subscribe by email, confirm with the code from the message,
hear about the next milestone, and stop it with the link in that message.

No Celery worker runs here: the outbox rows are the messages; the test reads
the code and the stop link from them as the customer would from their inbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from notifications import links
from notifications.models import Audience, Channel, Kind, Notification, Subscription
from notifications.subscriptions import subscription_confirm, subscription_request
from shipments.checkpoints import checkpoint_record
from shipments.status import EventKind
from tests.browser.conftest import axe_serious
from tests.factories import dispatched_shipment

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(browser: Browser, settings: Settings) -> Iterator[Page]:
    """A small phone's screen, without JavaScript: the pages must not need it."""
    # The limit counts per client in the shared Redis; every test here comes
    # from 127.0.0.1.
    settings.TRACKSOP_PUBLIC_POST_RATE = "1000/m"
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 320, "height": 640}
    )
    yield context.new_page()
    context.close()


def _fits_the_screen(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"the page scrolls sideways: {width} px"


def test_customer_subscribes_by_email_confirms_gets_the_next_update_and_stops_it(
    phone: Page, live_server: LiveServer
) -> None:
    shipment = dispatched_shipment(
        recipient_name="Margaret Hamilton",
        recipient_email="margaret.hamilton@example.net",
        recipient_phone="+12025550143",
        recipient_address="12 Apollo Way",
        recipient_postcode="02139",
    )
    page = phone
    page.goto(f"{live_server.url}/t/{shipment.public_token}/subscribe/")

    expect(
        page.get_by_role("heading", name="Get updates about this package")
    ).to_be_visible()
    _fits_the_screen(page)
    for private in ("Margaret", "Hamilton", "5550143", "Apollo", "02139"):
        assert private not in page.content(), private

    page.get_by_label("Email", exact=True).check()
    page.get_by_label("Email address or mobile number").fill("Grace@Example.org")
    page.get_by_role("button", name="Send me a code").click()

    expect(page.get_by_role("heading", name="Confirm your address")).to_be_visible()
    expect(page.get_by_text("We sent a code to g•••@example.org.")).to_be_visible()
    _fits_the_screen(page)
    subscription = Subscription.objects.get(shipment=shipment)
    message = Notification.objects.get(
        subscription=subscription, kind=Kind.SUBSCRIPTION_CONFIRM
    )
    assert message.to == "grace@example.org"
    found = re.search(r"^\s+(\d{6})$", message.body_text, re.MULTILINE)
    assert found is not None, message.body_text

    page.get_by_label("Code").fill(found.group(1))
    page.get_by_role("button", name="Confirm", exact=True).click()

    expect(page.get_by_role("heading", name="You will get updates")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(
        "news of this package goes to g•••@example.org"
    )
    subscription.refresh_from_db()
    assert subscription.is_active

    checkpoint_record(shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None)

    update = Notification.objects.get(
        kind=Kind.OUT_FOR_DELIVERY, audience=Audience.SUBSCRIBER
    )
    assert update.channel == Channel.EMAIL
    assert update.to == "grace@example.org"
    assert update.subscription_id == subscription.pk
    stop_link = re.search(r"Stop them: (\S+)", update.body_text)
    assert stop_link is not None, update.body_text

    # As in the message: the public URL, opened on this server.
    page.goto(live_server.url + urlsplit(stop_link.group(1)).path)
    expect(page.get_by_role("heading", name="Stop updates?")).to_be_visible()
    _fits_the_screen(page)
    page.get_by_role("button", name="Stop updates").click()

    expect(page.get_by_role("status")).to_have_text(
        "Done: no more updates about this package go to g•••@example.org."
    )
    subscription.refresh_from_db()
    assert subscription.stopped_at is not None


def test_a_wrong_code_is_told_at_the_field(
    phone: Page, live_server: LiveServer
) -> None:
    shipment = dispatched_shipment()
    page = phone
    page.goto(f"{live_server.url}/t/{shipment.public_token}/subscribe/")
    page.get_by_label("Text message (SMS)").check()
    page.get_by_label("Email address or mobile number").fill("202 555 0188")
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_text("We sent a code to •••• 0188.")).to_be_visible()

    sent = Notification.objects.get(kind=Kind.SUBSCRIPTION_CONFIRM)
    right = re.search(r"\b(\d{6})\b", sent.body_text)
    assert right is not None
    page.get_by_label("Code").fill(f"{(int(right.group(1)) + 1) % 10**6:06d}")
    page.get_by_role("button", name="Confirm", exact=True).click()

    code = page.get_by_label("Code")
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_code_error")).to_contain_text("Wrong code.")
    assert "id_code_error" in (code.get_attribute("aria-describedby") or "")


def test_the_subscribe_pages_pass_an_accessibility_audit(
    browser: Browser, live_server: LiveServer, settings: Settings
) -> None:
    settings.TRACKSOP_PUBLIC_POST_RATE = "1000/m"
    shipment = dispatched_shipment()
    token = shipment.public_token
    pending = subscription_request(
        shipment=shipment, channel=Channel.EMAIL, address="a@example.org", language="en"
    )
    active = subscription_request(
        shipment=shipment, channel=Channel.SMS, address="+12025550188", language="en"
    )
    sent = Notification.objects.get(subscription=active)
    code = re.search(r"\b(\d{6})\b", sent.body_text)
    assert code is not None
    subscription_confirm(subscription=active, code=code.group(1))
    base = f"{live_server.url}/t/{token}"
    context = browser.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    problems: dict[str, list[str]] = {}

    page.goto(f"{base}/subscribe/")
    problems["subscribe"] = axe_serious(page)
    page.get_by_role("button", name="Send me a code").click()
    problems["subscribe with errors"] = axe_serious(page)
    page.goto(f"{base}/subscribe/{links.confirm_ref(token, pending.pk)}/")
    problems["confirm"] = axe_serious(page)
    page.get_by_role("button", name="Confirm", exact=True).click()
    problems["confirm with errors"] = axe_serious(page)
    page.goto(f"{base}/subscribe/{links.confirm_ref(token, active.pk)}/")
    problems["confirmed"] = axe_serious(page)
    page.goto(live_server.url + urlsplit(links.stop_url(token, active.pk)).path)
    problems["stop"] = axe_serious(page)
    context.close()

    assert problems == {name: [] for name in problems}
