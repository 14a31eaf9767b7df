"""What went over the wire: the HTTP exchanges of one karrio call, read from
its tracer, and what they say of the request as a whole.

karrio's HTTP helper swallows status codes (it hands the error body to the
carrier's parser); the client's urlopen wrapper adds the status to the
response headers (`STATUS_HEADER`), so each call's own tracer tells what
every request got: 401, 429 + Retry-After, 5xx, nothing at all, a body we
cannot read. `classify` turns that into the `CarrierError` the request got.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from shipments.carriers.tracking import (
    PROVIDER_NAMES,
    CarrierAuthFailed,
    CarrierRateLimited,
    CarrierUnavailable,
)

# Header the urlopen wrapper adds so karrio's tracer records the status.
STATUS_HEADER = "X-Tracksop-Http-Status"


@dataclass
class Exchange:
    """One HTTP request karrio made, and what came back (from its tracer)."""

    url: str
    answered: bool = False
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    parsed: tuple[Any] | None = None

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return str(value)
        return ""

    @property
    def is_token(self) -> bool:
        return "oauth" in self.url.lower() or "/security/" in self.url.lower()

    def text(self) -> str:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body)
        return "" if self.body is None else str(self.body)

    def json(self) -> Any:
        """The body as JSON (None when it is not), parsed once."""
        if isinstance(self.body, (dict, list)):
            return self.body
        if self.parsed is None:
            try:
                self.parsed = (json.loads(self.text()),)
            except ValueError:
                self.parsed = (None,)
        return self.parsed[0]


def exchanges(gateway: Any) -> list[Exchange]:
    by_id: dict[str, Exchange] = {}
    for record in gateway.tracer.records:
        data = record.data if isinstance(record.data, dict) else {}
        exchange = by_id.setdefault(str(data.get("request_id", "")), Exchange(url=""))
        if record.key == "request":
            exchange.url = str(data.get("url", ""))
        elif record.key in ("response", "error"):
            exchange.answered = True
            exchange.headers = dict(data.get("response_headers") or {})
            exchange.body = data.get(record.key)
            status = exchange.header(STATUS_HEADER)
            exchange.status = int(status) if status.isdigit() else None
    return [ex for ex in by_id.values() if ex.url]


def _retry_after(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def text_of(messages: Iterable[Any], fallback: str = "") -> str:
    parts = []
    for m in messages:
        text = str(m.message or "").strip()
        if text:
            parts.append(f"{text} ({m.code})" if m.code else text)
    return "; ".join(dict.fromkeys(parts))[:500] or fallback


def _body_message(exchange: Exchange) -> str:
    """The carrier's own words in an error body, whatever its format."""
    data = exchange.json()
    if isinstance(data, dict):
        errors = (
            (data.get("response") or {}).get("errors")  # UPS
            or data.get("errors")  # FedEx
            or (
                (data.get("error") or {}).get("errors")
                if isinstance(data.get("error"), dict)
                else None
            )
        )
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(
                first.get("message") or first.get("detail") or first.get("title") or ""
            )
        if isinstance(data.get("error"), dict):
            return str(data["error"].get("message") or "")
        if data.get("error_description") or data.get("error"):
            return str(data.get("error_description") or data.get("error"))
    if data is None:
        found = re.search(
            r"<ConditionData>(.*?)</ConditionData>", exchange.text(), re.S
        )
        if found:
            return " ".join(found.group(1).split())
    return ""


def _readable(provider: str, exchange: Exchange) -> bool:
    text = exchange.text().strip()
    if exchange.body is not None and not isinstance(exchange.body, (str, dict, list)):
        return False
    if text == "undecoded bytes...":
        # karrio traces a body its decoder turned into a dict this way, and
        # an undecodable one too: its parser's messages tell which.
        return True
    if not text:
        return False
    if provider == "dhl_express":
        return text.startswith("<") and (
            "TrackingResponse" in text or "ErrorResponse" in text
        )
    return exchange.json() is not None


def classify(
    provider: str, exchanges: Sequence[Exchange], messages: Sequence[Any]
) -> None:
    """Raise the CarrierError the request as a whole got, if any."""
    name = PROVIDER_NAMES[provider]
    for ex in exchanges:
        if not ex.answered:
            detail = next(
                (
                    str(m.message)
                    for m in messages
                    if re.search(r"no answer within|cannot connect", str(m.message))
                ),
                "no answer (timed out or connection refused)",
            )
            raise CarrierUnavailable(f"{name} did not answer: {detail}.")
        status = ex.status or 0
        said = _body_message(ex) or text_of(messages)
        if status in (401, 403) or (
            ex.is_token and 400 <= status < 500 and status != 429
        ):
            raise CarrierAuthFailed(
                said or f"{name} refused the credentials ({status})."
            )
        if status == 429:
            raise CarrierRateLimited(
                f"{name} asked us to slow down" + (f": {said}" if said else "."),
                retry_after=_retry_after(ex.header("Retry-After")),
            )
        if status >= 500:
            raise CarrierUnavailable(
                f"{name} answered {status}" + (f": {said}" if said else ".")
            )
        if 200 <= status < 300 and not _readable(provider, ex):
            raise CarrierUnavailable(f"{name} answered something unreadable.")
    if provider == "dhl_express":
        # XML-PI answers every failure with 200 and an error document.
        for ex in exchanges:
            text = ex.text()
            if "ErrorResponse" in text[:400]:
                said = _body_message(ex)
                if re.search(r"auth|password|site ?id|login|credential", said, re.I):
                    raise CarrierAuthFailed(said)
                raise CarrierUnavailable(f"{name} refused the request: {said}")
