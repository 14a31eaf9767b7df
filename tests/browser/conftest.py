"""Playwright against pytest-django's live server, in Debian's Chromium.

Playwright's own browser download does not work here, so every launch points at
/usr/bin/chromium. Without the background-networking flags Chromium keeps
dialling out and the closed network refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.apps import apps
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.helpers import real_clock_env
from tracksop import roles

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pass-word-123"  # tests.factories.UserFactory


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any],
) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": CHROMIUM_ARGS,
        "env": real_clock_env(),
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # Wide enough that the navigation is not collapsed behind the menu button
    # (it is below 1400 px: the base template's navbar-expand-xxl).
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture(autouse=True)
def role_groups(transactional_db: None) -> None:
    """The role groups, before every test.

    The live server needs committed data, so these tests run with a
    transactional db, and pytest-django empties every table after each one,
    the groups of the data migration included. tracksop.apps re-syncs them on
    post_migrate, which the flush sends; syncing here as well keeps the tests
    independent of that hook and of a database left empty by an earlier run.
    Cheaper than `serialized_rollback`, which reloads a dump of the whole
    database before each test and skips post_migrate, leaving it empty after.
    """
    roles.sync_role_groups(apps)


@pytest.fixture
def log_in(page: Page, live_server: LiveServer) -> Callable[[str], Page]:
    """Log in through the form, as a person would; returns the page."""

    def log_in_as(username: str) -> Page:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        return page

    return log_in_as


def axe_serious(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
