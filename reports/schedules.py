"""Who gets a schedule's report: pure rules (the runs are in services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

RELEASE = time(6, 0)
# Failed runs of one period after which the schedule stops trying it.
MAX_TRIES = 3


@dataclass(frozen=True)
class Recipient:
    name: str
    address: str


def address_lines(text: str) -> tuple[list[str], list[str]]:
    """The schedule's extra addresses, one per line: (valid, invalid)."""
    valid, invalid = [], []
    for line in text.splitlines():
        address = line.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            invalid.append(address)
        else:
            valid.append(address.lower())
    return valid, invalid


def recipients(users: list[tuple[str, str]], addresses_text: str) -> list[Recipient]:
    """Users (name, email) of the schedule's roles and its extra addresses,
    each address once; users without an email are left out."""
    seen: set[str] = set()
    found = []
    for name, email in users:
        address = (email or "").strip().lower()
        if address and address not in seen:
            seen.add(address)
            found.append(Recipient(name, address))
    for address in address_lines(addresses_text)[0]:
        if address not in seen:
            seen.add(address)
            found.append(Recipient("", address))
    return found
