"""Helpers shared by tests (not fixtures)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from django.db import connection

if TYPE_CHECKING:
    from django.db.models.fields.files import FieldFile
    from django.test.client import _MonkeyPatchedWSGIResponse

    from tracksop.models import ApiKey

# What the test client's get/post return: django-stubs names it privately (at
# run time it is the view's response with the client's extras set on it).
type TestResponse = _MonkeyPatchedWSGIResponse


class IssueApiKey(Protocol):
    """The `api_key_for` fixture: `api_key_for(*scopes, name=...)` → a key and
    its plain text."""

    def __call__(self, *scopes: str, name: str = ...) -> tuple[ApiKey, str]: ...


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each returns or raises."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=5)
            outcomes[i] = call()
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return outcomes


def stored_at(folder: Path, file: FieldFile) -> Path:
    """Where a file field's file is, under the storage's folder."""
    assert file.name, "no file stored"
    return folder / file.name


def real_clock_env() -> dict[str, str]:
    """This process's environment without libfaketime, for the programs a test
    starts that are not ours (Chromium, a throwaway redis-server): under
    `make test-future` they hang or abort on a moved clock, and only the
    clock of our own code matters to what the tests assert."""
    return {
        name: value
        for name, value in os.environ.items()
        if name != "LD_PRELOAD" and not name.startswith("FAKETIME")
    }


def karrio_warm_up() -> None:
    """One tracking request to a throwaway fake carrier, so karrio has loaded
    its plugins before a test's *Sync now* starts its clock: a process's first
    request takes longer than Sync now waits for the carrier (15 s) on a busy
    2-core machine."""
    from django.test import override_settings

    from shipments.carriers.adapter.client import track
    from shipments.carriers.fake.server import FakeCarrier
    from shipments.carriers.tracking import Connection

    with (
        FakeCarrier() as fake,
        override_settings(TRACKSOP_CARRIER_API_URLS=fake.api_urls()),
    ):
        track(
            Connection(
                account_id=0,
                provider="ups",
                credentials={"client_id": "warm", "client_secret": "up"},
            ),
            ["1Z999AA10123456793"],
        )


def next_hour_start() -> datetime:
    """One second into the next hour: a test that starts there has a whole
    fixed rate-limit window (a minute, an hour) for its requests."""
    now = datetime.now(UTC)
    return now.replace(minute=0, second=1, microsecond=0) + timedelta(hours=1)
