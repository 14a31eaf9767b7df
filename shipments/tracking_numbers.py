"""Recognise and validate carrier tracking numbers.

Formats, check-digit parameters and the published test numbers follow the
jkeen/tracking_number_data repository (couriers/*.json and
CHECKSUM_ALGORITHMS.md), which collects them from carrier documentation.

A scanner reading a USPS label returns the whole IMpb barcode: "420", the
destination ZIP code (5 or 9 digits), then the tracking number (USPS
Publication 199). Such a scan is read as the tracking number alone, with the
ZIP code kept aside (`Candidate.routing_zip`), so a scanned and a typed number
are one number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "FAMILY_LABELS",
    "S10_COUNTRY_CODES",
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
    number: str  # as stored: without a USPS label's routing prefix
    check_digit_ok: bool
    # The destination ZIP code a scanned USPS label carried (5 or 9 digits).
    routing_zip: str = ""
    # Why a number with a right check digit is still refused (an S10 number
    # whose country code is not a country), else "".
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.check_digit_ok and not self.problem


_SEPARATORS = re.compile(r"[\s.\-]+")


def _squeeze(raw: str) -> str:
    return _SEPARATORS.sub("", raw).upper()


def normalize(raw: str) -> str:
    """The number as stored: no spaces, dashes or dots, upper case, and a
    scanned USPS label's routing prefix ("420" and the ZIP code) taken off."""
    number = _squeeze(raw)
    matches = _matches(number)
    return matches[0].candidate.number if matches else number


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


def _fedex_34_check(number: str) -> int:
    # Only the 13-digit serial before the check digit is weighted (1,7,3 ...);
    # the prefix, routing data and destination ZIP are not covered. FedEx
    # Express and the FedEx Ground "96" GSN barcode share this layout.
    return _weighted_mod11_mod10(number[20:33], (1, 7, 3))


def _fedex_ground_96_check(number: str) -> int:
    # "96" + SCNC + service type are not covered: the check digit belongs to
    # the embedded 15-digit FedEx Ground number (shipper id + package id).
    return _gs1_mod10(number[7:21])


def _sscc_check(number: str) -> int:
    # The "00" application identifier, when present, is not part of the SSCC.
    return _gs1_mod10(number[-18:-1])


def _usps_impb_check(number: str) -> int:
    # 22 and 26 digits alike: GS1 mod 10 over all digits before the check.
    return _gs1_mod10(number[:-1])


def _usps_impb_20_check(number: str) -> int:
    # USPS Publication 199: a 20-digit IMpb omits the "91" application
    # identifier, but the check digit is computed as if it were present.
    return _gs1_mod10("91" + number[:19])


def _usps_legacy_20_check(number: str) -> int:
    return _gs1_mod10(number[:19])


def _dhl_express_check(number: str) -> int:
    # DHL Express waybills (10 or 11 digits): the digits before the check
    # digit, read as one number, mod 7.
    return int(number[:-1]) % 7


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
        "FedEx Ground 96 (34 digits)",
        re.compile(r"96[0-9]{32}"),
        _fedex_34_check,
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
        _usps_impb_check,
        True,
    ),
    _Format(
        Family.USPS,
        "USPS IMpb (26 digits)",
        re.compile(r"9[2-5][0-9]{24}"),
        _usps_impb_check,
        True,
    ),
    # Any first digit but 9 (jkeen: [0-8]); not a fixed prefix, so a scanned
    # USPS label ("420" ...) of the same length ranks first when both fit.
    _Format(
        Family.FEDEX,
        "FedEx Express (34 digits)",
        re.compile(r"[0-8][0-9]{33}"),
        _fedex_34_check,
        False,
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
    _Format(
        Family.DHL_EXPRESS,
        "DHL Express (11 digits)",
        re.compile(r"[0-9]{11}"),
        _dhl_express_check,
        False,
    ),
)

# What may follow "420" and the ZIP code on a USPS label.
_ROUTED_FORMATS = tuple(
    f
    for f in _FORMATS
    if f.family is Family.USPS and f.name.startswith("USPS IMpb") and f.prefixed
)
_ROUTING = re.compile(r"420[0-9]{5}")

_SHAPE_HINTS: dict[Family, str] = {
    Family.UPS: 'it must be "1Z" followed by 16 letters or digits',
    Family.FEDEX: (
        "it must be 12 digits, 22 digits starting with 96, 34 digits, "
        "or an 18-digit SSCC (20 digits with the 00 prefix)"
    ),
    Family.USPS: (
        "it must be 20 digits, 22 digits starting with 91 to 95, or 26 digits "
        "starting with 92 to 95 (as scanned, after 420 and the ZIP code)"
    ),
    Family.DHL_EXPRESS: "it must be 10 or 11 digits",
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


def _match(fmt: _Format, number: str, routing_zip: str = "") -> _Match:
    expected = fmt.expected_check(number)
    given = number[fmt.check_index]
    problem = ""
    if fmt.family is Family.S10 and number[-2:] not in S10_COUNTRY_CODES:
        problem = (
            f"{number[-2:]} is not a country code: a UPU S10 number ends in the "
            "issuing country's code (ISO 3166-1), like GB in RR123456785GB."
        )
    candidate = Candidate(
        family=fmt.family,
        format_name=fmt.name,
        number=number,
        check_digit_ok=given == str(expected),
        routing_zip=routing_zip,
        problem=problem,
    )
    return _Match(candidate, expected, given, fmt.prefixed)


def _routed(number: str) -> list[_Match]:
    # USPS prints a 9-digit ZIP only before a 22-digit number (jkeen's usps.json
    # after Publication 199): scans are 30 or 34 digits, and a 34-digit one is
    # 420 + 9 + 22 or 420 + 5 + 26, whichever check digit fits (the first on
    # a tie).
    found: list[_Match] = []
    if not _ROUTING.match(number):
        return found
    for zip_length, lengths in ((9, (22,)), (5, (22, 26))):
        routing_zip, rest = number[3 : 3 + zip_length], number[3 + zip_length :]
        if len(rest) in lengths:
            found += [
                _match(fmt, rest, routing_zip)
                for fmt in _ROUTED_FORMATS
                if fmt.shape.fullmatch(rest)
            ]
    return found


def _matches(number: str) -> list[_Match]:
    # A scanned label's reading comes first: "420" is a fixed prefix.
    found = _routed(number) + [
        _match(fmt, number) for fmt in _FORMATS if fmt.shape.fullmatch(number)
    ]
    # sorted() is stable, so the order above breaks the remaining ties.
    return sorted(found, key=lambda m: (not m.candidate.ok, not m.prefixed))


def detect(raw: str) -> list[Candidate]:
    """Every format whose shape fits, best first.

    Ranking: valid check digit first, then formats with a fixed prefix or
    letter pattern, then a fixed format order.
    """
    return [m.candidate for m in _matches(_squeeze(raw))]


def _wrong_check_digit(match: _Match) -> InvalidTrackingNumber:
    name = match.candidate.format_name
    article = "an" if name.startswith("SSCC") else "a"
    return InvalidTrackingNumber(
        f"Check digit is wrong for {article} {name} number: "
        f"expected {match.expected}, got {match.given}."
    )


def validate(raw: str, family: Family | None = None) -> Candidate:
    number = _squeeze(raw)
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
    if best.candidate.problem:
        raise InvalidTrackingNumber(best.candidate.problem)
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
    if country not in S10_COUNTRY_CODES:
        raise ValueError(
            f"S10 country must be an ISO 3166-1 country code, got {country!r}."
        )
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise ValueError(f"S10 serial must be an integer, got {serial!r}.")
    if not 0 <= serial <= 99_999_999:
        raise ValueError(f"S10 serial must be 0 to 99999999, got {serial}.")
    serial8 = f"{serial:08d}"
    return f"{prefix}{serial8}{s10_check_digit(serial8)}{country}"


# ISO 3166-1 alpha-2, the 249 officially assigned codes (ISO 3166 Maintenance
# Agency list; no update since SS, South Sudan, 2011), plus AC (Ascension) and
# TA (Tristan da Cunha), which ISO reserves at the UPU's request for their
# postal services. Frozen here rather than a dependency: it changes about
# once a decade, and a code missing here refuses a real number, so add it.
_COUNTRY_TABLE = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ
    VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    AC TA
"""
S10_COUNTRY_CODES = frozenset(_COUNTRY_TABLE.split())
