"""Playwright against pytest-django's live server, in Debian's Chromium.

Playwright's own browser download does not work here, so every launch points at
/usr/bin/chromium. Without the background-networking flags Chromium keeps
dialling out and the closed network refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from playwright.sync_api import Page, expect

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

expect.set_options(timeout=5_000)


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any],
) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # Wide enough that the navigation is not collapsed behind the menu button.
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


def _sync_role_groups() -> None:
    # sync_role_groups is written for the migration's state apps: it sets each
    # app config's models_module to True and then to None. On the global
    # registry that None would stick, and Django's post_migrate handlers (run
    # by the flush after every transactional test) skip apps without a models
    # module, so put the real modules back.
    saved = {config.label: config.models_module for config in apps.get_app_configs()}
    try:
        roles.sync_role_groups(apps)
    finally:
        for config in apps.get_app_configs():
            config.models_module = saved[config.label]


@pytest.fixture(autouse=True)
def role_groups(transactional_db: None) -> None:
    """The role groups for every test.

    The live server needs committed data, so these tests run with a
    transactional db, and pytest-django empties every table after each one.
    The flush re-creates content types and permissions (post_migrate) but not
    the groups, which come from a data migration. Re-creating them here is
    cheaper and simpler than `serialized_rollback`, which reloads a dump of the
    whole database before each test and still leaves it empty afterwards.
    """
    _sync_role_groups()


@pytest.fixture(autouse=True, scope="module")
def _restore_role_groups(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """Leave the groups behind for the tests that run later on this database.

    Module teardown runs after the last test's flush; with --reuse-db the
    database (and a missing group) would otherwise outlive this run too.
    """
    yield
    with django_db_blocker.unblock():
        _sync_role_groups()


@pytest.fixture
def log_in(page: Page, live_server: Any):  # type: ignore[no-untyped-def]
    """Log in through the form, as a person would; returns the page."""

    def log_in_as(username: str) -> Page:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        return page

    return log_in_as
