"""The fake carrier's state and HTTP server (see the package's docstring for
its paths and control API): `FakeCarrier` holds the scripts, modes and
request counts; `FakeHandler` routes each request through the tables below
to the answers of `samples` and `modes`.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from shipments.carriers.fake import journeys, samples
from shipments.carriers.fake.journeys import KINDS, PROVIDERS, Script, Step
from shipments.carriers.fake.modes import FAILURES, MODES, Mode


class FakeCarrier:
    """The fake carriers' state and HTTP server. Thread-safe."""

    def __init__(self, port: int = 0, delay_ms: int = 0, host: str = "127.0.0.1"):
        self.delay_ms = delay_ms
        self._lock = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self._anchors: dict[str, datetime] = {}
        self._modes: dict[str, Mode] = {}
        self._counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(
            (host, port), type("Handler", (FakeHandler,), {"fake": self})
        )
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def api_urls(self) -> dict[str, str]:
        return {p: f"{self.url}/{p}" for p in PROVIDERS}

    def start(self) -> FakeCarrier:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-carrier", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def stop_serving(self) -> None:
        """Close the socket after `serve_forever` returned (foreground use)."""
        self._server.server_close()

    def __enter__(self) -> FakeCarrier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control -------------------------------------------------------

    def script(
        self,
        number: str,
        scenario: str = "journey",
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        scenarios = ("journey", "unknown", "delivered", "exception", "label_only")
        if scenario not in (*scenarios, "events"):
            raise ValueError(f"Unknown scenario {scenario!r}")
        for e in events or []:
            if e.get("kind") not in KINDS:
                raise ValueError(f"Unknown event kind {e.get('kind')!r}")
        with self._lock:
            self._scripts[number] = Script(
                scenario="events" if events else scenario, events=list(events or [])
            )

    def set_mode(
        self,
        mode: str,
        provider: str = "",
        endpoint: str = "",
        retry_after: float | None = 7,
        hang_s: float = 30.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}")
        with self._lock:
            for p in [provider] if provider else list(PROVIDERS):
                self._modes[p] = Mode(mode, endpoint, retry_after, hang_s)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._anchors.clear()
            self._modes.clear()
            self._counts.clear()

    # --- journeys ------------------------------------------------------

    def steps(self, provider: str, number: str, now: datetime) -> list[Step] | None:
        """The steps the carrier has scanned by `now`, oldest first (None:
        the number is unknown)."""
        with self._lock:
            script = self._scripts.get(number)
            anchor = self._anchors.setdefault(number, now.replace(microsecond=0))
        return journeys.journey(provider, number, script=script, anchor=anchor, now=now)

    def eta(self, number: str) -> datetime:
        with self._lock:
            anchor = self._anchors.get(number, datetime.now(UTC))
        return journeys.eta(number, anchor)

    # --- HTTP ----------------------------------------------------------

    def mode_for(self, provider: str, endpoint: str) -> Mode:
        with self._lock:
            mode = self._modes.get(provider, Mode())
        if mode.endpoint and mode.endpoint != endpoint:
            return Mode()
        return mode

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1


# --- routes -------------------------------------------------------------------

# A tracking route: (provider, does the path match, the answer for (fake,
# path, body, now)). Paths are under the provider's prefix.
Track = Callable[[FakeCarrier, str, bytes, datetime], tuple[int, Any]]


def _last_part(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _fedex_numbers(body: bytes) -> list[str]:
    request = json.loads(body or b"{}")
    return [
        i["trackingNumberInfo"]["trackingNumber"]
        for i in request.get("trackingInfo", [])
    ]


def _dhl_numbers(body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace")
    return re.findall(r"<AWBNumber>\s*([^<\s]+)\s*</AWBNumber>", text)


TRACK_ROUTES: tuple[tuple[str, Callable[[str], bool], Track], ...] = (
    (
        "ups",
        lambda path: path.startswith("/api/track/v1/details/"),
        lambda fake, path, body, now: samples.ups_track(fake, _last_part(path), now),
    ),
    (
        "fedex",
        lambda path: path == "/track/v1/trackingnumbers",
        lambda fake, path, body, now: samples.fedex_track(
            fake, _fedex_numbers(body), now
        ),
    ),
    (
        "fedex",
        lambda path: "trackingdocuments" in path,
        lambda fake, path, body, now: (
            200,
            {"output": {"documentFormat": "PNG", "document": []}},
        ),
    ),
    (
        "usps",
        lambda path: path.startswith("/tracking/v3/tracking/"),
        lambda fake, path, body, now: samples.usps_track(fake, _last_part(path), now),
    ),
    (
        "dhl_express",
        lambda path: path == "/XMLShippingServlet",
        lambda fake, path, body, now: samples.dhl_track(fake, _dhl_numbers(body), now),
    ),
)


Control = Callable[["FakeCarrier", dict[str, Any], str], dict[str, Any]]
OK = {"ok": True}


def _stats(fake: FakeCarrier, data: dict[str, Any], number: str) -> dict[str, Any]:
    return {"requests": fake.stats()}


def _reset(fake: FakeCarrier, data: dict[str, Any], number: str) -> dict[str, Any]:
    fake.reset()
    return OK


def _set_mode(fake: FakeCarrier, data: dict[str, Any], number: str) -> dict[str, Any]:
    fake.set_mode(
        str(data.get("mode", "ok")),
        provider=str(data.get("provider", "")),
        endpoint=str(data.get("endpoint", "")),
        retry_after=data.get("retry_after", 7),
        hang_s=float(data.get("hang_s", 30)),
    )
    return OK


def _script(fake: FakeCarrier, data: dict[str, Any], number: str) -> dict[str, Any]:
    fake.script(
        number,
        scenario=str(data.get("scenario", "journey")),
        events=data.get("events"),
    )
    return OK


# The control API: (method, path pattern) → what it does, for (fake, the
# JSON body, the number in the path).
CONTROL_ROUTES: tuple[tuple[str, str, Control], ...] = (
    ("GET", r"/_fake/stats", _stats),
    ("POST", r"/_fake/reset", _reset),
    ("POST", r"/_fake/mode", _set_mode),
    ("POST", r"/_fake/numbers/(?P<number>[^/]+)", _script),
)


class FakeHandler(BaseHTTPRequestHandler):
    """One request to the fake; `fake` is set on the class each
    `FakeCarrier` makes for its server."""

    protocol_version = "HTTP/1.1"
    fake: FakeCarrier

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: 50,000 requests a benchmark

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        if isinstance(body, (dict, list)):
            data, kind = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str) and body.lstrip().startswith("<?xml"):
            data, kind = body.encode(), "application/xml"
        else:
            data, kind = str(body).encode(), "text/html"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            path = urlsplit(self.path).path
            if path.startswith("/_fake/"):
                self.control(method, path)
            else:
                self.route(method, path)

    def route(self, method: str, path: str) -> None:
        fake = self.fake
        provider, _, rest = path.lstrip("/").partition("/")
        if provider not in PROVIDERS:
            return self.send(404, {"error": f"no such path {path}"})
        rest = "/" + rest
        body = self.body() if method == "POST" else b""
        endpoint = "token" if "token" in rest else "track"
        if provider == "fedex" and "trackingdocuments" in rest:
            endpoint = "document"
        fake.count(f"{provider}.{endpoint}")
        if fake.delay_ms:
            time.sleep(fake.delay_ms / 1000)
        mode = fake.mode_for(provider, endpoint)
        if mode.mode in FAILURES:
            return self.send(*FAILURES[mode.mode](provider, mode))
        if endpoint == "token":
            return self.send(*samples.token(provider))
        if provider != "dhl_express" and endpoint == "track":
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer fake-"):
                return self.send(*FAILURES["wrong_credentials"](provider, mode))
        now = datetime.now(UTC)
        for route_provider, matches, answer in TRACK_ROUTES:
            if route_provider == provider and matches(rest):
                return self.send(*answer(fake, rest, body, now))
        return self.send(404, {"error": f"no such path {path}"})

    def control(self, method: str, path: str) -> None:
        try:
            data = json.loads(self.body() or b"{}") if method == "POST" else {}
            for route_method, pattern, action in CONTROL_ROUTES:
                found = re.fullmatch(pattern, path)
                if method == route_method and found:
                    number = found.groupdict().get("number", "")
                    return self.send(200, action(self.fake, data, number))
        except (ValueError, KeyError, TypeError) as exc:
            return self.send(400, {"error": str(exc)})
        return self.send(404, {"error": f"no such control {path}"})
