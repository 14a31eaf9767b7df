"""Chromium enforces the Content-Security-Policy: the pages still work and it
reports nothing blocked on them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect
from pytest_django.live_server_helper import LiveServer

from tests.factories import dispatched_shipment

pytestmark = pytest.mark.browser


def test_staff_and_public_pages_break_no_rule_of_the_policy(
    log_in: Any, live_server: LiveServer, supervisor: User
) -> None:
    shipment = dispatched_shipment()
    blocked: list[str] = []
    page = log_in("supervisor")
    page.on(
        "console",
        lambda m: (
            blocked.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )
    preview = "/notifications/templates/preview/?kind=dispatched&channel=email"
    for path in (
        "/",
        shipment.get_absolute_url(),
        "/shipments/monitor/",
        f"/t/{shipment.public_token}/",
        "/track/",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
    # The email preview page too (its frame is allowed inline styles).
    response = page.goto(f"{live_server.url}{preview}")
    assert response is not None
    assert response.ok
    expect(page.locator("iframe")).to_be_visible()
    assert blocked == []
