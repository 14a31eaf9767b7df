"""An administrator sets up a webhook endpoint in the admin, sends it a test
event, rotates its secret and replays a message from the delivery log:
clicked through in Chromium, delivered by a real Celery worker to a real
local receiver, and verified with the `standardwebhooks` package."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer
from standardwebhooks import Webhook

from notifications.models import WebhookEndpoint
from tests.notifications.conftest import start_worker as start_worker  # fixture
from tests.notifications.conftest import wait_for
from tests.notifications.webhook_receiver import Receiver, receiver
from tracksop.models import Integration

__all__ = ["receiver"]

pytestmark = pytest.mark.browser

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def _secret_in(page: Page, text: str) -> str:
    shown = page.get_by_text(re.compile(text)).first
    expect(shown).to_be_visible()
    found = SECRET.search(shown.inner_text())
    assert found is not None
    return found.group(0)


def _run_action(page: Page, label: str) -> None:
    page.get_by_label("Action:").select_option(label=label)
    page.get_by_role("button", name="Run").click()


def test_an_admin_adds_an_endpoint_tests_it_rotates_its_secret_and_replays(
    page: Page,
    live_server: LiveServer,
    receiver: Receiver,
    start_worker: Any,
    settings: Settings,
) -> None:
    settings.TRACKSOP_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    start_worker(TRACKSOP_WEBHOOK_ALLOW_PRIVATE="true")
    User.objects.create_superuser("root", "root@example.com", "pass-word-123")
    Integration.objects.create(name="Web shop", contact_email="it@shop.example")
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pass-word-123")
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="Webhook endpoints").click()
    page.get_by_role("link", name=re.compile("Add webhook endpoint")).click()
    page.get_by_label("Integration").select_option(label="Web shop")
    page.get_by_label("Url").fill(receiver.url)
    page.get_by_label("Shipment created").check()
    page.get_by_role("button", name="Save", exact=True).click()
    first_secret = _secret_in(page, "The signing secret is whsec_")
    assert WebhookEndpoint.objects.get().secret == first_secret

    page.get_by_role("checkbox", name=re.compile("Select this object")).check()
    _run_action(page, "Send a test event")
    expect(page.get_by_text(re.compile("Test event queued for"))).to_be_visible()
    wait_for(lambda: len(receiver.delivered()) == 1, what="the test event")
    [test_event] = receiver.delivered()
    assert Webhook(first_secret).verify(test_event.body, test_event.headers)[
        "type"
    ] == ("webhook.test")

    page.get_by_role("checkbox", name=re.compile("Select this object")).check()
    _run_action(page, "Rotate the signing secret (the old one signs 24 h)")
    new_secret = _secret_in(page, "New signing secret of")
    assert new_secret != first_secret

    page.get_by_role("link", name="Messages", exact=True).click()
    expect(page.get_by_role("cell", name="webhook.test", exact=True)).to_be_visible()
    page.get_by_role("checkbox", name=re.compile("Select this object")).check()
    _run_action(page, "Replay: send the selected messages again")
    expect(page.get_by_text("1 message(s) queued again.")).to_be_visible()
    wait_for(lambda: len(receiver.delivered()) == 2, what="the replay")
    replayed = receiver.delivered()[1]
    # The same message under its own id, signed by both secrets while the
    # old one overlaps: receivers with either verify it.
    assert replayed.body == test_event.body
    assert replayed.headers["webhook-id"] == test_event.headers["webhook-id"]
    for secret in (first_secret, new_secret):
        assert Webhook(secret).verify(replayed.body, replayed.headers)

    # The delivery log shows both attempts, answered 200.
    row = page.get_by_role("row").filter(has_text="webhook.test")
    row.get_by_role("link").first.click()
    expect(page.get_by_text("Webhook attempts")).to_be_visible()
    expect(page.locator("td.field-response_status", has_text="200")).to_have_count(2)
