"""What the fake carrier answers in a failure mode (`POST /_fake/mode`):
the carriers' documented error bodies for refused credentials, a rate limit
and a server error, garbage, and a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

MODES = ("ok", "wrong_credentials", "rate_limited", "server_error", "garbage", "hang")


@dataclass
class Mode:
    mode: str = "ok"
    endpoint: str = ""  # "token", "track" or "" (both)
    retry_after: float | None = 7
    hang_s: float = 30.0


# A status, a body, headers.
Answer = tuple[int, Any, dict[str, str]]


def dhl_error(code: str, text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<req:ShipmentTrackingErrorResponse '
        'xmlns:req="http://www.dhl.com"><Response><ServiceHeader><MessageTime>'
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}+00:00</MessageTime></ServiceHeader><Status>"
        f"<ActionStatus>Failure</ActionStatus><Condition><ConditionCode>{code}"
        f"</ConditionCode><ConditionData>{escape(text)}</ConditionData></Condition>"
        "</Status></Response></req:ShipmentTrackingErrorResponse>"
    )


AUTH_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10401", "message": "ClientId is Invalid"}]}
    },
    "fedex": {
        "transactionId": "fake",
        "errors": [
            {
                "code": "NOT.AUTHORIZED.ERROR",
                "message": "The given client credentials were not valid. "
                "Please modify your request and try again.",
            }
        ],
    },
    "usps": {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#page-45",
    },
}
RATE_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10429", "message": "Too Many Requests"}]}
    },
    "fedex": {
        "errors": [
            {
                "code": "TOO.MANY.REQUESTS",
                "message": "We have received too many requests in a short "
                "duration. Please wait a while to try again.",
            }
        ]
    },
    "usps": {"error": {"code": "429", "message": "Too Many Requests", "errors": []}},
}
SERVER_ERRORS: dict[str, Any] = {
    "ups": {
        "response": {"errors": [{"code": "10500", "message": "General system failure"}]}
    },
    "fedex": {
        "errors": [
            {
                "code": "INTERNAL.SERVER.ERROR",
                "message": "We encountered an unexpected error and are working to "
                "resolve the issue. We apologize for any inconvenience. Please "
                "check back at a later time.",
            }
        ]
    },
    "usps": {
        "error": {"code": "500", "message": "Internal Server Error", "errors": []}
    },
}


def _hang(provider: str, mode: Mode) -> Answer:
    time.sleep(mode.hang_s)
    return 504, "", {}


def _garbage(provider: str, mode: Mode) -> Answer:
    return 200, "<html><body>Bad gateway \x00\x01 {not json", {}


def _rate_limited(provider: str, mode: Mode) -> Answer:
    headers = (
        {} if mode.retry_after is None else {"Retry-After": f"{mode.retry_after:g}"}
    )
    if provider == "dhl_express":
        return 429, "Too Many Requests", headers
    return 429, RATE_ERRORS[provider], headers


def _server_error(provider: str, mode: Mode) -> Answer:
    if provider == "dhl_express":
        return 500, dhl_error("500", "Internal server error"), {}
    return 500, SERVER_ERRORS[provider], {}


def _wrong_credentials(provider: str, mode: Mode) -> Answer:
    if provider == "dhl_express":
        # XML-PI answers a refused login with 200 and an error document.
        return (
            200,
            dhl_error(
                "100", "Failed authentication: the SiteID or Password is not valid."
            ),
            {},
        )
    return 401, AUTH_ERRORS[provider], {}


# Each failure mode's answer ("ok" has none: the request is served).
FAILURES: dict[str, Callable[[str, Mode], Answer]] = {
    "hang": _hang,
    "garbage": _garbage,
    "rate_limited": _rate_limited,
    "server_error": _server_error,
    "wrong_credentials": _wrong_credentials,
}
