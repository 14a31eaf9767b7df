"""Recognise and validate carrier tracking numbers.

Formats, check-digit parameters and the published test numbers follow the
jkeen/tracking_number_data repository (couriers/*.json and
CHECKSUM_ALGORITHMS.md), which collects them from carrier documentation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "FAMILY_LABELS",
    "Candidate",
    "Family",
    "InvalidTrackingNumber",
    "detect",
    "normalize",
    "s10_check_digit",
    "s10_generate",
    "validate",
]


class Family(StrEnum):
    UPS = "ups"
    FEDEX = "fedex"
    USPS = "usps"
    DHL_EXPRESS = "dhl_express"
    S10 = "s10"


FAMILY_LABELS: dict[Family, str] = {
    Family.UPS: "UPS",
    Family.FEDEX: "FedEx",
    Family.USPS: "USPS",
    Family.DHL_EXPRESS: "DHL Express",
    Family.S10: "UPU S10 (postal)",
}


class InvalidTrackingNumber(ValueError):
    """A tracking number was rejected.

    ``str(exc)`` is a complete, user-facing sentence, e.g.
    'Check digit is wrong for a UPS 1Z number: expected 4, got 5.' or
    'This is not a valid DHL Express number: it must be 10 digits.'
    """


@dataclass(frozen=True)
class Candidate:
    family: Family
    format_name: str
    number: str
    check_digit_ok: bool


_SEPARATORS = re.compile(r"[\s.\-]+")


def normalize(raw: str) -> str:
    return _SEPARATORS.sub("", raw).upper()


# --- check-digit algorithms -------------------------------------------------


def _gs1_mod10(digits: str) -> int:
    # GS1 General Specifications, check digit calculation: weights 3,1,3,...
    # starting from the rightmost digit, check = (10 - sum % 10) % 10.
    total = sum(
        int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits))
    )
    return (10 - total % 10) % 10


def _weighted_mod11_mod10(digits: str, weights: tuple[int, ...]) -> int:
    # FedEx Express: sum of products with repeating weights, then mod 11, mod 10.
    total = sum(int(d) * weights[i % len(weights)] for i, d in enumerate(digits))
    return total % 11 % 10


def _ups_value(char: str) -> int:
    # UPS maps letters onto digits as (ord(c) - 63) % 10, i.e. A=2, B=3, ... .
    return int(char) if char.isdigit() else (ord(char) - 63) % 10


def _ups_check(number: str) -> int:
    # UPS 1Z: over the 15 characters after "1Z", odd positions (2nd, 4th, ...)
    # are doubled, then check = (10 - sum % 10) % 10 (no Luhn digit folding).
    total = sum(_ups_value(c) * (2 if i % 2 else 1) for i, c in enumerate(number[2:17]))
    return (10 - total % 10) % 10


def _fedex_express_12_check(number: str) -> int:
    return _weighted_mod11_mod10(number[:11], (3, 1, 7))


def _fedex_express_34_check(number: str) -> int:
    # Only the 13-digit serial before the check digit is weighted (1,7,3 ...);
    # the prefix, routing data and destination ZIP are not covered.
    return _weighted_mod11_mod10(number[20:33], (1, 7, 3))


def _fedex_ground_96_check(number: str) -> int:
    # "96" + SCNC + service type are not covered: the check digit belongs to
    # the embedded 15-digit FedEx Ground number (shipper id + package id).
    return _gs1_mod10(number[7:21])


def _sscc_check(number: str) -> int:
    # The "00" application identifier, when present, is not part of the SSCC.
    return _gs1_mod10(number[-18:-1])


def _usps_impb_22_check(number: str) -> int:
    return _gs1_mod10(number[:21])


def _usps_impb_20_check(number: str) -> int:
    # USPS Publication 199: a 20-digit IMpb omits the "91" application
    # identifier, but the check digit is computed as if it were present.
    return _gs1_mod10("91" + number[:19])


def _usps_legacy_20_check(number: str) -> int:
    return _gs1_mod10(number[:19])


def _dhl_express_check(number: str) -> int:
    return int(number[:9]) % 7


def _s10_check(number: str) -> int:
    return s10_check_digit(number[2:10])


# --- formats ----------------------------------------------------------------


@dataclass(frozen=True)
class _Format:
    family: Family
    name: str
    shape: re.Pattern[str]
    expected_check: Callable[[str], int]
    prefixed: bool
    check_index: int = -1


# Order matters only as the final tie-breaker in detect().
_FORMATS: tuple[_Format, ...] = (
    _Format(Family.UPS, "UPS 1Z", re.compile(r"1Z[A-Z0-9]{16}"), _ups_check, True),
    _Format(
        Family.S10,
        "UPU S10",
        re.compile(r"[A-Z]{2}[0-9]{9}[A-Z]{2}"),
        _s10_check,
        True,
        check_index=10,
    ),
    _Format(
        Family.FEDEX,
        "FedEx Express (34 digits)",
        re.compile(r"100[0-9]{31}"),
        _fedex_express_34_check,
        True,
    ),
    _Format(
        Family.FEDEX,
        "FedEx Ground 96 (22 digits)",
        re.compile(r"96[0-9]{20}"),
        _fedex_ground_96_check,
        True,
    ),
    _Format(
        Family.USPS,
        "USPS IMpb (22 digits)",
        re.compile(r"9[1-5][0-9]{20}"),
        _usps_impb_22_check,
        True,
    ),
    _Format(Family.FEDEX, "SSCC-18", re.compile(r"00[0-9]{18}"), _sscc_check, True),
    _Format(Family.FEDEX, "SSCC-18", re.compile(r"[0-9]{18}"), _sscc_check, False),
    _Format(
        Family.FEDEX,
        "FedEx Express (12 digits)",
        re.compile(r"[0-9]{12}"),
        _fedex_express_12_check,
        False,
    ),
    _Format(
        Family.USPS,
        "USPS IMpb (20 digits)",
        re.compile(r"[0-9]{20}"),
        _usps_impb_20_check,
        False,
    ),
    _Format(
        Family.USPS,
        "USPS (20 digits, legacy)",
        re.compile(r"[0-9]{20}"),
        _usps_legacy_20_check,
        False,
    ),
    _Format(
        Family.DHL_EXPRESS,
        "DHL Express (10 digits)",
        re.compile(r"[0-9]{10}"),
        _dhl_express_check,
        False,
    ),
)

_SHAPE_HINTS: dict[Family, str] = {
    Family.UPS: 'it must be "1Z" followed by 16 letters or digits',
    Family.FEDEX: (
        "it must be 12 digits, 22 digits starting with 96, 34 digits starting "
        "with 100, or an 18-digit SSCC (20 digits with the 00 prefix)"
    ),
    Family.USPS: "it must be 20 digits, or 22 digits starting with 91 to 95",
    Family.DHL_EXPRESS: "it must be 10 digits",
    Family.S10: (
        "it must be 2 letters, 9 digits and a 2-letter country code, like RR123456785GB"
    ),
}


@dataclass(frozen=True)
class _Match:
    candidate: Candidate
    expected: int
    given: str
    prefixed: bool


def _matches(number: str) -> list[_Match]:
    found: list[_Match] = []
    for fmt in _FORMATS:
        if not fmt.shape.fullmatch(number):
            continue
        expected = fmt.expected_check(number)
        given = number[fmt.check_index]
        candidate = Candidate(
            family=fmt.family,
            format_name=fmt.name,
            number=number,
            check_digit_ok=given == str(expected),
        )
        found.append(_Match(candidate, expected, given, fmt.prefixed))
    # sorted() is stable, so _FORMATS order breaks the remaining ties.
    return sorted(found, key=lambda m: (not m.candidate.check_digit_ok, not m.prefixed))


def detect(raw: str) -> list[Candidate]:
    """Every format whose shape fits, best first.

    Ranking: valid check digit first, then formats with a fixed prefix or
    letter pattern, then a fixed format order.
    """
    return [m.candidate for m in _matches(normalize(raw))]


def _wrong_check_digit(match: _Match) -> InvalidTrackingNumber:
    name = match.candidate.format_name
    article = "an" if name.startswith("SSCC") else "a"
    return InvalidTrackingNumber(
        f"Check digit is wrong for {article} {name} number: "
        f"expected {match.expected}, got {match.given}."
    )


def validate(raw: str, family: Family | None = None) -> Candidate:
    number = normalize(raw)
    if not number:
        raise InvalidTrackingNumber("Enter a tracking number.")
    matches = _matches(number)
    if family is not None:
        family = Family(family)
        matches = [m for m in matches if m.candidate.family is family]
        if not matches:
            raise InvalidTrackingNumber(
                f"This is not a valid {FAMILY_LABELS[family]} number: "
                f"{_SHAPE_HINTS[family]}."
            )
    if not matches:
        raise InvalidTrackingNumber(
            "This tracking number does not match any supported carrier format "
            "(UPS, FedEx, USPS, DHL Express, UPU S10)."
        )
    best = matches[0]
    if not best.candidate.check_digit_ok:
        raise _wrong_check_digit(best)
    return best.candidate


# --- UPU S10 ----------------------------------------------------------------

_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_TWO_LETTERS = re.compile(r"[A-Z]{2}")
_EIGHT_DIGITS = re.compile(r"[0-9]{8}")


def s10_check_digit(serial8: str) -> int:
    # UPU S10 standard: weights 8,6,4,2,3,5,9,7; c = 11 - (sum % 11),
    # where 10 becomes 0 and 11 becomes 5.
    if not _EIGHT_DIGITS.fullmatch(serial8):
        raise ValueError(f"S10 serial must be exactly 8 digits, got {serial8!r}.")
    total = sum(int(d) * w for d, w in zip(serial8, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def s10_generate(*, prefix: str, serial: int, country: str) -> str:
    if not _TWO_LETTERS.fullmatch(prefix):
        raise ValueError(
            f"S10 prefix must be two uppercase letters A-Z, got {prefix!r}."
        )
    if not _TWO_LETTERS.fullmatch(country):
        raise ValueError(
            f"S10 country must be two uppercase letters A-Z, got {country!r}."
        )
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise ValueError(f"S10 serial must be an integer, got {serial!r}.")
    if not 0 <= serial <= 99_999_999:
        raise ValueError(f"S10 serial must be 0 to 99999999, got {serial}.")
    serial8 = f"{serial:08d}"
    return f"{prefix}{serial8}{s10_check_digit(serial8)}{country}"
