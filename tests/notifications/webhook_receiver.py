"""A real HTTP server that receives webhooks, for the webhook tests.

`answers` holds statuses to give, one per request, before answering 200;
`hang` makes it wait that long before answering; `stop()` and `start()` take
it down and bring it back on the same port (connections are refused between).
`tls`, a server-side SSL context, makes it an HTTPS receiver.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.notifications.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    redirect_to: str = ""
    hang: float = 0.0
    tls: ssl.SSLContext | None = None
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.hang:
                    time.sleep(receiver.hang)
                with receiver.lock:
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to or "/elsewhere")
                data = b"ok" if status < 300 else b"not today"
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(
                self.server.socket, server_side=True
            )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.headers["webhook-id"] for r in self.requests)

    def delivered(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(port=free_port())
    server.start()
    yield server
    server.stop()


# What a worker needs to deliver to the local receiver quickly.
WORKER_ENV = {
    "TRACKSOP_WEBHOOK_ALLOW_PRIVATE": "true",
    "TRACKSOP_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3,0.5,0.5,1,1,1,1,1",
    "TRACKSOP_WEBHOOK_CONNECT_TIMEOUT": "1",
    "TRACKSOP_WEBHOOK_READ_TIMEOUT": "1",
    "TRACKSOP_WEBHOOK_LEASE_SECONDS": "5",
}
