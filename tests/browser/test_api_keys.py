"""An administrator issues an API key in the admin, the shop uses it, and
the administrator revokes it: clicked through in Chromium."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tracksop.models import ApiKey, Integration

pytestmark = pytest.mark.browser


def status_with(live_server: Any, key: str) -> int:
    request = urllib.request.Request(  # noqa: S310  # the live server, http
        f"{live_server.url}/api/v1/shipments/",
        headers={"Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            json.load(response)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_admin_issues_a_key_sees_it_once_and_revokes_it(
    page: Page, live_server: LiveServer
) -> None:
    User.objects.create_superuser("root", "root@example.com", "pass-word-123")
    Integration.objects.create(name="Web shop", contact_email="it@shop.example")
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pass-word-123")
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name="API keys").click()
    page.get_by_role("link", name=re.compile("Add API key")).click()
    page.get_by_label("Integration").select_option(label="Web shop")
    page.get_by_label("Name").fill("order sync")
    page.get_by_label("Read shipments and tracking").check()
    page.get_by_role("button", name="Save", exact=True).click()

    shown = page.get_by_text(re.compile(r"The API key is tsk_"))
    expect(shown).to_be_visible()
    key = re.search(r"tsk_\w+_[\w-]+", shown.inner_text())
    assert key is not None
    raw = key.group(0).rstrip("—").strip()
    stored = ApiKey.objects.get()
    assert stored.scopes == ["shipments:read"]
    assert raw not in stored.secret_hash
    assert status_with(live_server, raw) == 200

    # Shown once: the key's own page has only the prefix.
    page.get_by_role("link", name=re.compile("order sync")).first.click()
    expect(page.get_by_text(stored.prefix, exact=True)).to_be_visible()
    assert raw not in page.content()

    page.goto(f"{live_server.url}/admin/tracksop/apikey/")
    page.get_by_role("checkbox", name=re.compile("Select this object")).check()
    page.get_by_label("Action:").select_option(label="Revoke the selected keys now")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("1 key(s) revoked.")).to_be_visible()
    assert status_with(live_server, raw) == 401


def test_the_api_reference_page_renders_under_our_csp(
    page: Page, live_server: LiveServer
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.get_by_text("TrackSOP integration API").first).to_be_visible()
    expect(page.get_by_text("/api/v1/checkpoints/").first).to_be_visible()
    assert not [e for e in errors if "Content Security Policy" in e]
