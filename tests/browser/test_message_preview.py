"""A supervisor previews a message's HTML version in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_supervisor_preview_the_dispatch_email_as_the_customer_sees_it(
    log_in: Any, supervisor: User
) -> None:
    page = log_in("supervisor")
    page.get_by_role("navigation").get_by_role("link", name="Message templates").click()

    page.get_by_label("Kind").select_option(label="Dispatched")
    page.get_by_label("Channel").select_option(label="Email")
    page.get_by_role("button", name="Preview").click()

    email = page.frame_locator("iframe[title='HTML version']")
    expect(email.get_by_text("1Z999AA10123456784")).to_be_visible()
    expect(email.get_by_text("Your order ORD-10042 is on its way.")).to_be_visible()
    expect(page.get_by_test_id("preview-text")).to_contain_text("1Z999AA10123456784")
