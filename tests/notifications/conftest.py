"""Real services for notification tests: an aiosmtpd server, a Celery worker
subprocess on the real Redis broker and the test database, and a local HTTP
server that speaks Twilio's Messages API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from pytest_django import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20.0, what: str = ""
) -> Any:
    """Poll until condition() is truthy; fail the test with `what` if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"Timed out after {timeout}s waiting for {what or condition}")


# --- SMTP ---------------------------------------------------------------


@dataclass
class SmtpSink:
    """Messages the server accepted. `refuse` holds addresses it answers 550
    for, `defer` those it answers 450 for (try later); `delay` makes it wait
    before accepting each RCPT (a slow server); `rcpts` lists every RCPT TO
    address it was offered, refused or not; `sessions` counts connections."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    sessions: int = 0
    delay: float = 0.0
    rcpt_seen: threading.Event = field(default_factory=threading.Event)
    rcpts: list[str] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.rcpts.append(address)
        self.rcpt_seen.set()
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        if address in self.defer:
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: Any
    ) -> Any:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.content)
        self.messages.append(
            message_from_bytes(envelope.content, policy=policy.default)
        )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mail_server(settings: Settings, smtp_sink: SmtpSink) -> SmtpSink:
    """Email from this process goes to the local SMTP sink."""
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": smtp_sink.port, "timeout": 5},
        }
    }
    return smtp_sink


@pytest.fixture
def no_marks() -> Iterator[None]:
    """The fast path's "already taken" marks are per process; a test using
    this starts and ends without any."""
    from notifications import sending

    sending.FAST.taken.clear()
    yield
    sending.FAST.taken.clear()


# --- Celery worker ------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no chance to finish or acknowledge."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracksop.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TRACKSOP_NOTIFY_RETRY_BASE_SECONDS": "0.3",
        "TRACKSOP_NOTIFY_RETRY_MAX_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # The worker keeps the broker it is given (see tracksop/settings/test.py).
    env.pop("TRACKSOP_TEST_BROKER", None)
    env.update(extra)
    return env


def purge_broker() -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `celery worker` as its own process group; stopped at teardown.
    Other keyword arguments become its environment (EMAIL_URL=..., etc.)."""
    started: list[Worker] = []

    def start(
        *,
        purge: bool = True,
        concurrency: int = 4,
        quiet: bool = True,
        **env: str,
    ) -> Worker:
        if purge:
            purge_broker()
        log = tmp_path / f"worker-{len(started)}.log"
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tracksop",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                # quiet=False: gossip, mingle and heartbeats as in production.
                *(
                    ("--without-gossip", "--without-mingle", "--without-heartbeat")
                    if quiet
                    else ()
                ),
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=worker_env(**env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(process, log)
        started.append(worker)
        wait_for(
            lambda: "ready." in worker.output() or process.poll() is not None,
            # Generous: importing Django alone takes 20 s on a busy machine.
            timeout=120,
            what="the Celery worker to start",
        )
        if process.poll() is not None:
            pytest.fail(f"The worker exited:\n{worker.output()}")
        return worker

    yield start
    for worker in started:
        worker.stop()


# --- Twilio -------------------------------------------------------------


@dataclass
class FakeTwilio:
    """Answers POST /2010-04-01/Accounts/<sid>/Messages.json like Twilio.
    `fail_next` holds (status, code) answers to give before succeeding."""

    port: int
    messages: list[dict[str, str]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    fail_next: list[tuple[int, int]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {
                    k: v[0]
                    for k, v in parse_qs(self.rfile.read(length).decode()).items()
                }
                fake.auth.append(self.headers.get("Authorization", ""))
                sid = self.path.split("/")[3]
                if not self.path.endswith("/Messages.json"):
                    return self._answer(404, {"code": 20404, "message": "Not found"})
                if fake.fail_next:
                    status, code = fake.fail_next.pop(0)
                    return self._answer(
                        status,
                        {"code": code, "message": f"Error {code}", "status": status},
                    )
                message_sid = f"SM{len(fake.messages):032d}"
                fake.messages.append(form)
                self._answer(
                    201,
                    {
                        "sid": message_sid,
                        "account_sid": sid,
                        "to": form.get("To"),
                        "from": form.get("From"),
                        "body": form.get("Body"),
                        "status": "queued",
                        "num_segments": "1",
                    },
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


TWILIO_SETTINGS = {
    "TRACKSOP_SMS_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "test-auth-token",
    "TWILIO_FROM": "+15005550006",
}


@pytest.fixture
def fake_twilio(settings: Settings) -> Iterator[FakeTwilio]:
    server = FakeTwilio(port=free_port())
    server.start()
    for key, value in TWILIO_SETTINGS.items():
        setattr(settings, key, value)
    settings.TWILIO_API_URL = server.url
    yield server
    server.stop()
