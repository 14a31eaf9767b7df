"""Which number got which answer: karrio's tracking details and messages of
one request, attributed to the numbers asked about (`answers`), and the
fallback that reads a batch's raw answer number by number when karrio's
parser fails on the whole of it for one odd number (`parse_each`).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from shipments.carriers.adapter.events import tracked
from shipments.carriers.adapter.wire import Exchange, text_of
from shipments.carriers.tracking import (
    PROVIDER_NAMES,
    CarrierUnavailable,
    NotFound,
    Tracked,
)

logger = logging.getLogger(__name__)


NOT_FOUND_CODES: dict[str, set[str]] = {
    # Track API: "Tracking Information Not Found", "Invalid inquiry number".
    "ups": {"TW0001", "TV1002", "TW0002", "TV1001"},
    "fedex": {
        "TRACKING.TRACKINGNUMBER.NOTFOUND",
        "TRACKING.TRACKINGNUMBER.INVALID",
        "TRACKING.TRACKINGNUMBER.EMPTY",
    },
    "usps": set(),  # any 4xx answer for the number
    "dhl_express": {"103"},  # "No Shipments Found for AWBNumber …"
}


def _normal(number: str) -> str:
    return re.sub(r"\s+", "", number).upper()


def answers(
    provider: str,
    numbers: Sequence[str],
    details: Sequence[Any],
    messages: Sequence[Any],
    exchanges: Sequence[Exchange],
) -> dict[str, Tracked | NotFound]:
    """One answer per number asked, from karrio's details and messages of
    one request; CarrierUnavailable when they say nothing of some number
    because the request as a whole went wrong."""
    asked = {_normal(n): n for n in numbers}
    out: dict[str, Tracked | NotFound] = {}
    for d in details:
        number = asked.get(_normal(str(d.tracking_number or "")))
        if number is None and len(numbers) == 1:
            number = numbers[0]  # the carrier spelled it its way
        if number is not None and number not in out:
            out[number] = tracked(provider, number, d, exchanges)
    internal = [m for m in messages if str(m.code or "").startswith("SHIPPING_SDK")]
    if internal and not out:
        # karrio failed on the answer (or before it): not the number's fault.
        raise CarrierUnavailable(
            f"{PROVIDER_NAMES[provider]}'s answer could not be read: "
            + text_of(internal)
        )
    unattributed = _not_found(
        provider, numbers, asked, [m for m in messages if m not in internal], out
    )
    for number in numbers:
        if number in out:
            continue
        if provider == "dhl_express" and any(str(m.code) == "103" for m in messages):
            out[number] = NotFound(
                number, text_of([m for m in messages if str(m.code) == "103"])
            )
        elif internal or unattributed:
            raise CarrierUnavailable(
                f"{PROVIDER_NAMES[provider]} refused the request: "
                + text_of(internal or unattributed)
            )
        else:
            # Known to the carrier, nothing scanned yet (a label only).
            out[number] = Tracked(tracking_number=number, events=[])
    return out


def _message_number(
    message: Any, asked: dict[str, str], numbers: Sequence[str]
) -> str | None:
    """The number asked about that a carrier message is of, if it tells."""
    details = message.details or {}
    number = asked.get(_normal(str(details.get("tracking_number") or "")))
    if number is None:
        found = re.search(r"AWBNumber (\S+)", str(message.message or ""))
        number = asked.get(_normal(found.group(1))) if found else None
    if number is None and len(numbers) == 1:
        number = numbers[0]
    return number


def _not_found(
    provider: str,
    numbers: Sequence[str],
    asked: dict[str, str],
    messages: Sequence[Any],
    out: dict[str, Tracked | NotFound],
) -> list[Any]:
    """Record in `out` the numbers the carrier's messages say it does not
    know; return the error messages that name no number."""
    unattributed = []
    for m in messages:
        code, level = str(m.code or ""), m.level or "error"
        number = _message_number(m, asked, numbers)
        if number is None:
            if level == "error" and code not in NOT_FOUND_CODES[provider]:
                unattributed.append(m)
            continue
        if number in out:
            continue
        # What the carrier says of one number when it has no details for it:
        # it does not know it (or not by that number).
        if code in NOT_FOUND_CODES[provider] or level in ("error", "warning"):
            out[number] = NotFound(
                number, text_of([m], "The carrier does not know it.")
            )
    return unattributed


def _slice(provider: str, exchanges: Sequence[Exchange], number: str) -> str | None:
    """The batch's raw answer with only `number` in it."""
    lib = importlib.import_module("karrio.lib")
    for ex in exchanges:
        if provider == "fedex" and ex.url.endswith("/track/v1/trackingnumbers"):
            data = ex.json()
            if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
                return None
            results = data["output"].get("completeTrackResults") or []
            mine = [r for r in results if str(r.get("trackingNumber")) == number]
            output = {**data["output"], "completeTrackResults": mine}
            return json.dumps({**data, "output": output})
        if provider == "dhl_express" and "<AWBInfo" in ex.text():
            etree = importlib.import_module("lxml.etree")
            root = lib.to_element(ex.text())
            for info in lib.find_element("AWBInfo", root):
                if (info.findtext("AWBNumber") or "").strip() != number:
                    info.getparent().remove(info)
            return str(etree.tostring(root, encoding="unicode"))
    return None


def _without_events(provider: str, text: str) -> bool:
    """Whether one number's answer says the carrier knows it but has scanned
    nothing yet (a label only), which karrio cannot parse."""
    if provider == "fedex":
        data = json.loads(text)
        results = data["output"]["completeTrackResults"]
        tracks = [t for r in results for t in r.get("trackResults") or []]
        return bool(tracks) and all(
            "error" not in t and not t.get("scanEvents") for t in tracks
        )
    return "<ShipmentInfo" in text and "<ShipmentEvent" not in text


def parse_each(
    gateway: Any, provider: str, numbers: Sequence[str], exchanges: Sequence[Exchange]
) -> dict[str, Tracked | NotFound] | None:
    lib = importlib.import_module("karrio.lib")
    decoder = lib.to_element if provider == "dhl_express" else lib.to_dict
    out: dict[str, Tracked | NotFound] = {}
    for number in numbers:
        text = _slice(provider, exchanges, number)
        if text is None:
            return None
        try:
            details, messages = gateway.mapper.parse_tracking_response(
                lib.Deserializable(text, decoder)
            )
            out.update(
                answers(
                    provider,
                    [number],
                    list(details or []),
                    list(messages or []),
                    exchanges,
                )
            )
        except Exception as exc:
            if _without_events(provider, text):
                out[number] = Tracked(tracking_number=number, events=[])
                continue
            logger.warning("karrio cannot read %s's answer for %s", provider, number)
            out[number] = NotFound(
                number,
                f"{PROVIDER_NAMES[provider]}'s answer for this number cannot be "
                f"read: {exc}",
                unreadable=True,
            )
    return out
