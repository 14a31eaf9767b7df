"""Signing in: throttled logins, password rules, password reset, session lengths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from tests.factories import UserFactory

PASSWORD = "pass-word-123"  # tests.factories.UserFactory
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LOGIN_URLS = [pytest.param("login", id="site"), pytest.param("admin:login", id="admin")]


def _log_in(
    client: Client, url: str, username: str, password: str, **extra: Any
) -> Any:
    return client.post(
        reverse(url), {"username": username, "password": password}, **extra
    )


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def admin_user(db: None) -> User:
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


def _fail(client: Client, url: str, username: str, times: int, **extra: Any) -> Any:
    response = None
    for _ in range(times):
        response = _log_in(client, url, username, "wrong-password", **extra)
    return response


# --- throttled logins --------------------------------------------------------


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_after_too_many_failures_the_right_password_waits_for_the_cool_off(
    client: Client, admin_user: User, url: str
) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    cool_off = settings.AXES_COOLOFF_TIME
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(limit - 1):
            response = _log_in(client, url, "boss", "wrong-password")
            assert response.status_code == 200  # the form again, with its error
        assert _fail(client, url, "boss", 1).status_code == 429

        clock.shift(cool_off - timedelta(minutes=1))
        refused = _log_in(client, url, "boss", PASSWORD)
        assert refused.status_code == 429
        assert not _signed_in(client)

        # Trying during the lock-out does not make it last longer.
        clock.shift(timedelta(minutes=1, seconds=1))
        response = _log_in(client, url, "boss", PASSWORD)
        assert response.status_code == 302
        assert _signed_in(client)


def test_sixty_wrong_passwords_then_the_right_one_do_not_sign_in(
    client: Client, staff: User
) -> None:
    with time_machine.travel(START, tick=False):
        _fail(client, "login", "logistics", 60)
        response = _log_in(client, "login", "logistics", PASSWORD)
    assert response.status_code == 429
    assert not _signed_in(client)


def test_an_account_guessed_at_from_many_addresses_is_locked_everywhere(
    client: Client, staff: User
) -> None:
    with time_machine.travel(START, tick=False):
        for n in range(settings.AXES_FAILURE_LIMIT):
            _fail(client, "login", "logistics", 1, REMOTE_ADDR=f"192.0.2.{n + 1}")
        response = _log_in(
            Client(), "login", "logistics", PASSWORD, REMOTE_ADDR="198.51.100.9"
        )
    assert response.status_code == 429


def test_an_address_guessing_at_many_accounts_is_locked_for_all_of_them(
    client: Client, staff: User
) -> None:
    with time_machine.travel(START, tick=False):
        for n in range(settings.AXES_FAILURE_LIMIT):
            _fail(client, "login", f"guess{n}", 1, REMOTE_ADDR="192.0.2.1")
        locked = _log_in(
            client, "login", "logistics", PASSWORD, REMOTE_ADDR="192.0.2.1"
        )
        elsewhere = _log_in(
            Client(), "login", "logistics", PASSWORD, REMOTE_ADDR="192.0.2.2"
        )
    assert locked.status_code == 429
    assert elsewhere.status_code == 302


def test_behind_a_proxy_the_forwarded_client_address_is_the_one_locked(
    client: Client, staff: User, settings: Settings
) -> None:
    settings.TRACKSOP_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    with time_machine.travel(START, tick=False):
        for n in range(settings.AXES_FAILURE_LIMIT):
            _fail(
                client,
                "login",
                f"guess{n}",
                1,
                HTTP_X_FORWARDED_FOR="203.0.113.7",
                **proxy,
            )
        guesser = _log_in(
            Client(),
            "login",
            "logistics",
            PASSWORD,
            HTTP_X_FORWARDED_FOR="203.0.113.7",
            **proxy,
        )
        colleague = _log_in(
            Client(),
            "login",
            "logistics",
            PASSWORD,
            HTTP_X_FORWARDED_FOR="203.0.113.8",
            **proxy,
        )
    assert guesser.status_code == 429
    assert colleague.status_code == 302


def test_the_lock_out_page_is_the_same_for_known_and_unknown_accounts(
    staff: User,
) -> None:
    pages = []
    with time_machine.travel(START, tick=False):
        for username, address in (("logistics", "192.0.2.1"), ("nobody", "192.0.2.2")):
            client = Client(REMOTE_ADDR=address)
            _fail(client, "login", username, settings.AXES_FAILURE_LIMIT)
            pages.append(_log_in(client, "login", username, PASSWORD))
    known, unknown = pages
    assert known.status_code == unknown.status_code == 429
    assert known.content == unknown.content
    text = known.content.decode()
    assert "Too many failed sign-ins" in text
    assert "logistics" not in text


# --- password rules ----------------------------------------------------------


def test_a_new_password_needs_at_least_twelve_characters(
    client: Client, staff: User
) -> None:
    client.force_login(staff)
    url = reverse("password_change")
    short = "Kq7-zx!mP2a"  # 11 characters
    response = client.post(
        url,
        {"old_password": PASSWORD, "new_password1": short, "new_password2": short},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["new_password2"]
    assert any("at least 12 characters" in e for e in errors)

    twelve = short + "9"
    response = client.post(
        url,
        {"old_password": PASSWORD, "new_password1": twelve, "new_password2": twelve},
    )
    assert response.status_code == 302
    staff.refresh_from_db()
    assert staff.check_password(twelve)


# --- password reset ----------------------------------------------------------


def _reset(client: Client, email: str, capture: Any, *, execute: bool) -> Any:
    with (
        CaptureQueriesContext(connection) as queries,
        capture(execute=execute) as callbacks,
    ):
        response = client.post(reverse("password_reset"), {"email": email})
    return response, callbacks, len(queries)


def test_a_password_reset_does_the_same_for_known_and_unknown_addresses(
    client: Client,
    staff: User,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    known, known_queued, known_queries = _reset(
        client, staff.email, django_capture_on_commit_callbacks, execute=False
    )
    unknown, unknown_queued, unknown_queries = _reset(
        client, "nobody@example.com", django_capture_on_commit_callbacks, execute=False
    )
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("password_reset_done")
    # Neither request looks the address up: the worker does, so both take as long.
    assert known_queries == unknown_queries
    assert len(known_queued) == len(unknown_queued) == 1
    assert mail.outbox == []


def test_the_reset_mail_is_sent_to_a_known_address_after_the_request(
    client: Client,
    staff: User,
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    _reset(
        client, staff.email.upper(), django_capture_on_commit_callbacks, execute=True
    )
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [staff.email]
    assert "http://testserver/accounts/reset/" in mail.outbox[0].body


def test_no_reset_mail_goes_to_an_unknown_address(
    client: Client,
    staff: User,
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    _reset(
        client, "nobody@example.com", django_capture_on_commit_callbacks, execute=True
    )
    assert mail.outbox == []


# --- session lengths ---------------------------------------------------------


def _dashboard(client: Client) -> int:
    return int(client.get(reverse("dashboard")).status_code)


def test_a_session_ends_after_an_idle_period(client: Client, staff: User) -> None:
    idle = timedelta(minutes=settings.TRACKSOP_SESSION_IDLE_MINUTES)
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(staff)
        for _ in range(3):  # each visit within the idle period keeps it going
            clock.shift(idle - timedelta(minutes=1))
            assert _dashboard(client) == 200
        clock.shift(idle + timedelta(minutes=2))
        response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_session_ends_after_a_working_day_however_busy(
    client: Client, staff: User
) -> None:
    day = timedelta(hours=settings.TRACKSOP_SESSION_MAX_HOURS)
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(staff)
        while datetime.now(UTC) + timedelta(minutes=20) < START + day:
            clock.shift(timedelta(minutes=20))
            assert _dashboard(client) == 200
        clock.move_to(START + day + timedelta(seconds=1))
        response = client.get(reverse("dashboard"), follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("login"))
    assert not _signed_in(client)
    assert "sign in again" in response.content.decode()


def test_sessions_last_a_working_day_and_an_idle_hour_by_default() -> None:
    assert settings.TRACKSOP_SESSION_MAX_HOURS == 12
    assert settings.TRACKSOP_SESSION_IDLE_MINUTES == 60
    # A little over the idle period: a visit refreshes it at most once a minute.
    assert 60 * 60 <= settings.SESSION_COOKIE_AGE <= 61 * 60
