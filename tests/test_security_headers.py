"""Response headers: Content-Security-Policy everywhere, no caching of staff
pages, a Permissions-Policy, and no Server header naming the software."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from tests.factories import UserFactory, dispatched_shipment
from tests.notifications.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()  # the public page cache and the login counters


def _directives(response: Any) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part)
    }


@pytest.fixture
def supervisor_client(client: Client, supervisor: User) -> Client:
    client.force_login(supervisor)
    return client


def _staff_pages() -> list[str]:
    return [
        reverse("dashboard"),
        reverse("monitor"),
        reverse("preferences"),
        reverse("exception-queue"),
        reverse("template-preview"),
    ]


# --- Content-Security-Policy -------------------------------------------------


def test_every_kind_of_page_carries_the_content_security_policy(
    client: Client, supervisor: User
) -> None:
    shipment = dispatched_shipment()
    anonymous = [
        reverse("login"),
        reverse("public-tracking", args=[shipment.public_token]),
        reverse("public-lookup"),
        "/no-such-page/",
    ]
    for url in anonymous:
        response = client.get(url)
        directives = _directives(response)
        assert directives["default-src"] == ["'self'"], url
        assert directives["script-src"][0] == "'self'", url
        assert directives["object-src"] == ["'none'"], url
        assert directives["frame-ancestors"] == ["'none'"], url
        assert "'unsafe-inline'" not in directives["script-src"], url
        assert "'unsafe-inline'" not in directives["style-src"], url

    client.force_login(supervisor)
    for url in [*_staff_pages(), shipment.get_absolute_url()]:
        directives = _directives(client.get(url))
        assert "'unsafe-inline'" not in directives["script-src"], url


def test_the_email_preview_may_style_its_sandboxed_frame_but_run_no_script(
    supervisor_client: Client,
) -> None:
    # The page keeps the site's policy; the email's HTML is a page of its own,
    # framed by it, whose policy allows the inline styles emails use and
    # nothing else.
    query = {"kind": "dispatched", "channel": "email"}
    page = supervisor_client.get(reverse("template-preview"), query)
    assert page.status_code == 200
    assert "<iframe" in page.content.decode()
    assert "'unsafe-inline'" not in _directives(page)["style-src"]

    frame = supervisor_client.get(reverse("template-preview-html"), query)
    assert frame.status_code == 200
    directives = _directives(frame)
    assert "'unsafe-inline'" in directives["style-src"]
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives
    assert "sandbox" in directives
    assert directives["frame-ancestors"] == ["'self'"]


# Project templates of pages (not emails): nothing the policy would block.
PAGE_TEMPLATES = [
    p
    for p in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("*/templates/**/*.html")]
    if "/messages/" not in str(p) and ".venv" not in p.parts
]


@pytest.mark.parametrize("path", PAGE_TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_templates_have_no_inline_script_style_or_event_handler(
    path: Path,
) -> None:
    text = path.read_text()
    inline_scripts = re.findall(r"<script(?![^>]*\b(?:src|nonce)=)[^>]*>", text)
    assert not inline_scripts, "move the script to static/js/ or give it a nonce"
    assert not re.search(r"\sstyle=", text), "use a class in static/css/"
    assert not re.search(r"\son[a-z]+=", text), "attach the handler in static/js/"


def test_python_code_puts_no_style_attribute_on_widgets() -> None:
    for path in ROOT.glob("*/forms.py"):
        assert "style=" not in path.read_text(), path


# --- caching, Permissions-Policy ---------------------------------------------


def test_staff_pages_are_never_stored_by_the_browser(
    supervisor_client: Client,
) -> None:
    shipment = dispatched_shipment()
    for url in [*_staff_pages(), shipment.get_absolute_url()]:
        response = supervisor_client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url


def test_the_public_tracking_page_keeps_its_own_caching(
    client: Client, staff: User
) -> None:
    url = reverse("public-tracking", args=[dispatched_shipment().public_token])
    anonymous = client.get(url)
    assert anonymous["Cache-Control"] == "private, max-age=60"
    client.force_login(staff)  # a colleague opening the customer's link
    assert client.get(url)["Cache-Control"] == "private, max-age=60"


def test_every_response_has_a_permissions_policy(client: Client, staff: User) -> None:
    for response in (
        client.get(reverse("login")),
        client.get("/static/css/app.css"),
    ):
        policy = response["Permissions-Policy"]
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
            assert feature in policy


# --- Server header -----------------------------------------------------------


@pytest.fixture
def gunicorn_url(transactional_db: None) -> Iterator[str]:
    """The app under gunicorn, as the image runs it (its config file included)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tracksop.wsgi:application",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tracksop.settings.test",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/accounts/login/", timeout=1)  # noqa: S310
        except OSError:
            time.sleep(0.1)
            return False
        return True

    try:
        wait_for(answers, timeout=30, what="gunicorn to answer")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_gunicorn_sends_no_server_header(gunicorn_url: str) -> None:
    with urllib.request.urlopen(f"{gunicorn_url}/accounts/login/") as response:  # noqa: S310
        assert response.status == 200
        assert response.headers.get("Server") is None
        assert response.headers.get("Content-Security-Policy")


def test_the_development_server_sends_no_server_header(live_server: LiveServer) -> None:
    with urllib.request.urlopen(f"{live_server.url}/accounts/login/") as response:  # noqa: S310
        assert response.status == 200
        assert response.headers.get("Server") is None


def test_admin_pages_carry_the_policy_and_are_not_cached_either(
    client: Client, db: None
) -> None:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for url in (reverse("admin:index"), reverse("admin:auth_user_changelist")):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url
        assert "'unsafe-inline'" not in _directives(response)["script-src"], url
