"""Tests for shipments.tracking_numbers.

Unless noted otherwise, the valid and invalid numbers are the published test
numbers in jkeen/tracking_number_data (couriers/ups.json, fedex.json,
usps.json, dhl.json, s10.json), which are taken from carrier documentation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipments.tracking_numbers import (
    FAMILY_LABELS,
    S10_COUNTRY_CODES,
    Candidate,
    Family,
    InvalidTrackingNumber,
    detect,
    normalize,
    s10_check_digit,
    s10_generate,
    validate,
)

UPS = "UPS 1Z"
FEDEX_12 = "FedEx Express (12 digits)"
FEDEX_34 = "FedEx Express (34 digits)"
FEDEX_96_34 = "FedEx Ground 96 (34 digits)"
FEDEX_96 = "FedEx Ground 96 (22 digits)"
SSCC = "SSCC-18"
USPS_22 = "USPS IMpb (22 digits)"
USPS_26 = "USPS IMpb (26 digits)"
USPS_20 = "USPS IMpb (20 digits)"
USPS_LEGACY = "USPS (20 digits, legacy)"
DHL = "DHL Express (10 digits)"
DHL_11 = "DHL Express (11 digits)"
S10 = "UPU S10"

VALID = [
    # UPS's own published example (UPS developer documentation).
    ("1Z999AA10123456784", Family.UPS, UPS),
    ("1Z5R89390357567127", Family.UPS, UPS),
    ("1Z879E930346834440", Family.UPS, UPS),
    ("1Z410E7W0392751591", Family.UPS, UPS),
    ("1Z8V92A70367203024", Family.UPS, UPS),
    (" 1 Z 8 V 9 2 A 7 0 3 6 7 2 0 3 0 2 4 ", Family.UPS, UPS),
    ("1ZXX3150YW44070023", Family.UPS, UPS),
    ("986578788855", Family.FEDEX, FEDEX_12),
    ("477179081230", Family.FEDEX, FEDEX_12),
    ("799531274483", Family.FEDEX, FEDEX_12),
    ("790535312317", Family.FEDEX, FEDEX_12),
    (" 7 9 0 5 3 5 3 1 2 3 1 7 ", Family.FEDEX, FEDEX_12),
    ("974367662710", Family.FEDEX, FEDEX_12),
    ("1001921334250001000300779017972697", Family.FEDEX, FEDEX_34),
    ("1001921380360001000300639585804382", Family.FEDEX, FEDEX_34),
    ("1001901781990001000300617767839437", Family.FEDEX, FEDEX_34),
    (
        " 1 0 0 1 9 0 1 7 8 1 9 9 0 0 0 1 0 0 0 3 0 0 6 1 7 7 6 7 8 3 9 4 3 7 ",
        Family.FEDEX,
        FEDEX_34,
    ),
    ("1002297871540001000300790695517286", Family.FEDEX, FEDEX_34),
    # The rest of the 34-digit family: any first digit but 9.
    ("1027590111820004833500785458233610", Family.FEDEX, FEDEX_34),
    ("1195266473930007521100871079919940", Family.FEDEX, FEDEX_34),
    ("1 1 9 52 6 64739 3000 75211 00 8710 799 199 40", Family.FEDEX, FEDEX_34),
    ("1195271874060007521100871140316925", Family.FEDEX, FEDEX_34),
    ("1195583874210007521100871140316936", Family.FEDEX, FEDEX_34),
    # FedEx Ground's 34-digit "96" barcode (jkeen: fedex_ground_gsn).
    ("9622001900000000000000776632517510", Family.FEDEX, FEDEX_96_34),
    ("9622001560000000000000794808390594", Family.FEDEX, FEDEX_96_34),
    ("9622001560001234567100794808390594", Family.FEDEX, FEDEX_96_34),
    ("9632001560123456789900794808390594", Family.FEDEX, FEDEX_96_34),
    ("9611020987654312345672", Family.FEDEX, FEDEX_96),
    (" 9 6 1 1 0 2 0 9 8 7 6 5 4 3 1 2 3 4 5 6 7 2 ", Family.FEDEX, FEDEX_96),
    ("00 0123 4500 0000 0027", Family.FEDEX, SSCC),
    (" 0 0   0 1 2 3   4 5 0 0   0 0 0 0   0 0 2 7 ", Family.FEDEX, SSCC),
    # The same SSCC behind its "00" application identifier (our construction).
    ("00 00 0123 4500 0000 0027", Family.FEDEX, SSCC),
    ("0307 1790 0005 2348 3741", Family.USPS, USPS_LEGACY),
    (" 0 3 0 7   1 7 9 0   0 0 0 5   2 3 4 8   3 7 4 1 ", Family.USPS, USPS_LEGACY),
    ("7112 3456 7891 2345 6787", Family.USPS, USPS_LEGACY),
    ("7196 9010 7560 0307 7385", Family.USPS, USPS_20),
    ("9505 5110 6960 5048 6006 24", Family.USPS, USPS_22),
    ("9101 1234 5678 9000 0000 13", Family.USPS, USPS_22),
    ("9400 1112 0108 0805 4830 16", Family.USPS, USPS_22),
    ("9361 2898 7870 0317 6337 95", Family.USPS, USPS_22),
    (" 9 3 6 1   2 8 9 8   7 8 7 0   0 3 1 7   6 3 3 7   9 5 ", Family.USPS, USPS_22),
    ("9405803699300124287899", Family.USPS, USPS_22),
    ("92748931507708513018050063", Family.USPS, USPS_26),
    ("92001903060085300042901077", Family.USPS, USPS_26),
    ("3318810025", Family.DHL_EXPRESS, DHL),
    ("8487135506", Family.DHL_EXPRESS, DHL),
    ("3318810036", Family.DHL_EXPRESS, DHL),
    (" 3 3 1 8 8 1 0 0 3 6 ", Family.DHL_EXPRESS, DHL),
    ("3318810014", Family.DHL_EXPRESS, DHL),
    ("1099255990", Family.DHL_EXPRESS, DHL),
    ("3821724944", Family.DHL_EXPRESS, DHL),
    ("73891051146", Family.DHL_EXPRESS, DHL_11),
    ("RB123456785GB", Family.S10, S10),
    ("RB123456785US", Family.S10, S10),
    ("RB123456785CV", Family.S10, S10),
    ("RB123456785CF", Family.S10, S10),
    (" R B 1 2 3 4 5 6 7 8 5 C F ", Family.S10, S10),
    # Codes ISO 3166-1 reserves for the UPU: Ascension, Tristan da Cunha.
    ("RB123456785AC", Family.S10, S10),
    ("RB123456785TA", Family.S10, S10),
]

# (number, family, format, expected check digit, given check digit)
WRONG_CHECK_DIGIT = [
    ("1Z1111111111111111", Family.UPS, UPS, 8, "1"),
    ("996578788855", Family.FEDEX, FEDEX_12, 6, "5"),
    ("1001901781990001000300617767839438", Family.FEDEX, FEDEX_34, 7, "8"),
    ("1027590111820004833500785458233611", Family.FEDEX, FEDEX_34, 0, "1"),
    ("9622001560001234567100794808390595", Family.FEDEX, FEDEX_96_34, 4, "5"),
    ("9600000000000000000001", Family.FEDEX, FEDEX_96, 0, "1"),
    ("000000000000000001", Family.FEDEX, SSCC, 0, "1"),
    ("0307 1790 0005 2348 3742", Family.USPS, USPS_20, 3, "2"),
    # FedEx SmartPost number; jkeen lists it as an invalid USPS number.
    ("61299998820821171811", Family.USPS, USPS_20, 2, "1"),
    ("9200000000000000000000", Family.USPS, USPS_22, 1, "0"),
    ("92748931507708513018050064", Family.USPS, USPS_26, 3, "4"),
    # Scanned labels: the check digit of the number after "420" and the ZIP.
    ("420787459400111206206406260788", Family.USPS, USPS_22, 7, "8"),
    ("4201028200009261290113185417468511", Family.USPS, USPS_22, 0, "1"),
    ("3318810010", Family.DHL_EXPRESS, DHL, 4, "0"),
    ("3318810034", Family.DHL_EXPRESS, DHL, 6, "4"),
    ("3318810011", Family.DHL_EXPRESS, DHL, 4, "1"),
    ("73891051147", Family.DHL_EXPRESS, DHL_11, 6, "7"),
    ("RB123456786US", Family.S10, S10, 5, "6"),
]

# (as scanned from a USPS label, the number stored, the ZIP code it carried)
SCANNED_USPS = [
    ("420787459400111206206406260787", "9400111206206406260787", "78745"),
    ("420 11213 92 6129098349792366623 8", "9261290983497923666238", "11213"),
    ("420 22153 9101026837331000039521", "9101026837331000039521", "22153"),
    ("420902459261290336128704042634", "9261290336128704042634", "90245"),
    ("4201002334249200190132607600833457", "9200190132607600833457", "100233424"),
    ("4201028200009261290113185417468510", "9261290113185417468510", "102820000"),
    # A 26-digit number behind a 5-digit ZIP (our construction).
    ("4209021092748931507708513018050063", "92748931507708513018050063", "90210"),
]


# --- normalize --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 1z 999-aa1 0123 4567 84 ", "1Z999AA10123456784"),
        ("1z999aa10123456784", "1Z999AA10123456784"),
        ("rr.123.456.785.gb", "RR123456785GB"),
        ("\t9400-1112-0108\t0805 4830 16\n", "9400111201080805483016"),
        ("", ""),
        (" -. \t", ""),
    ],
)
def test_it_normalises_case_spaces_dashes_and_dots(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


# --- published numbers ------------------------------------------------------


@pytest.mark.parametrize(("raw", "family", "format_name"), VALID)
def test_it_accepts_published_valid_numbers(
    raw: str, family: Family, format_name: str
) -> None:
    expected = Candidate(family, format_name, normalize(raw), check_digit_ok=True)

    assert validate(raw) == expected
    assert validate(raw, family) == expected
    assert detect(raw)[0] == expected


@pytest.mark.parametrize(("scanned", "number", "routing_zip"), SCANNED_USPS)
def test_a_scanned_usps_label_reads_as_the_number_and_its_zip_code(
    scanned: str, number: str, routing_zip: str
) -> None:
    format_name = USPS_22 if len(number) == 22 else USPS_26
    expected = Candidate(Family.USPS, format_name, number, True, routing_zip)

    assert validate(scanned) == expected
    assert validate(scanned, Family.USPS) == expected
    assert detect(scanned)[0] == expected
    assert normalize(scanned) == number
    assert validate(number).routing_zip == ""


def test_a_9_digit_zip_comes_only_before_a_22_digit_number() -> None:
    # 420 + ZIP+4 + a valid 26-digit number: USPS prints no such label.
    assert detect("42090210123492748931507708513018050063") == []


def test_a_fedex_number_starting_with_420_is_not_read_as_a_usps_label() -> None:
    # A valid FedEx 34 (our construction: the check digit covers only the
    # serial); what follows 420 fits no USPS number.
    number = "4201921334250001000300779017972697"

    assert validate(number) == Candidate(Family.FEDEX, FEDEX_34, number, True)
    assert normalize(number) == number


@pytest.mark.parametrize("country", ["XX", "UK", "ZZ", "EU", "AA"])
def test_an_s10_number_from_no_country_is_refused_and_says_why(country: str) -> None:
    number = f"RB123456785{country}"
    with pytest.raises(InvalidTrackingNumber) as exc:
        validate(number)
    with pytest.raises(InvalidTrackingNumber):
        validate(number, Family.S10)

    assert str(exc.value) == (
        f"{country} is not a country code: a UPU S10 number ends in the issuing "
        "country's code (ISO 3166-1), like GB in RR123456785GB."
    )
    assert not detect(number)[0].ok


def test_the_s10_country_list_is_iso_3166_plus_the_upu_reservations() -> None:
    assert len(S10_COUNTRY_CODES) == 249 + 2
    assert {"GB", "US", "DE", "SS", "CW", "SX", "BQ", "AC", "TA"} <= S10_COUNTRY_CODES
    # Withdrawn or never assigned.
    assert not {"UK", "AN", "YU", "EU", "XK"} & S10_COUNTRY_CODES


def test_it_accepts_ups_published_example() -> None:
    candidate = validate("1Z 999 AA1 0123 4567 84", Family.UPS)

    assert candidate.number == "1Z999AA10123456784"
    assert candidate.format_name == "UPS 1Z"


@pytest.mark.parametrize(
    ("raw", "family", "format_name", "expected", "given"), WRONG_CHECK_DIGIT
)
def test_it_rejects_a_wrong_check_digit_and_says_so(
    raw: str, family: Family, format_name: str, expected: int, given: str
) -> None:
    article = "an" if format_name.startswith("SSCC") else "a"
    message = (
        f"Check digit is wrong for {article} {format_name} number: "
        f"expected {expected}, got {given}."
    )

    with pytest.raises(InvalidTrackingNumber) as without_family:
        validate(raw)
    with pytest.raises(InvalidTrackingNumber) as with_family:
        validate(raw, family)

    assert str(without_family.value) == message
    assert str(with_family.value) == message


@pytest.mark.parametrize(
    ("raw", "family", "format_name", "expected", "given"), WRONG_CHECK_DIGIT
)
def test_it_still_detects_the_shape_of_a_number_with_a_wrong_check_digit(
    raw: str, family: Family, format_name: str, expected: int, given: str
) -> None:
    best = detect(raw)[0]

    assert (best.family, best.format_name) == (family, format_name)
    assert not best.check_digit_ok


def test_it_uses_the_exact_message_from_the_spec_for_ups() -> None:
    with pytest.raises(InvalidTrackingNumber) as exc:
        validate("1Z999AA10123456785")

    assert str(exc.value) == (
        "Check digit is wrong for a UPS 1Z number: expected 4, got 5."
    )


# --- detection and ranking ---------------------------------------------------


def test_it_ranks_every_fitting_format_for_an_ambiguous_number() -> None:
    # An SSCC behind the "00" identifier is also a well-formed legacy USPS number.
    assert detect("00000123450000000027") == [
        Candidate(Family.FEDEX, SSCC, "00000123450000000027", True),
        Candidate(Family.USPS, USPS_LEGACY, "00000123450000000027", True),
        Candidate(Family.USPS, USPS_20, "00000123450000000027", False),
    ]


def test_it_ranks_a_valid_bare_format_above_an_invalid_one() -> None:
    assert detect("03071790000523483741") == [
        Candidate(Family.USPS, USPS_LEGACY, "03071790000523483741", True),
        Candidate(Family.USPS, USPS_20, "03071790000523483741", False),
    ]
    assert detect("71969010756003077385") == [
        Candidate(Family.USPS, USPS_20, "71969010756003077385", True),
        Candidate(Family.USPS, USPS_LEGACY, "71969010756003077385", False),
    ]


def test_it_ranks_prefixed_formats_first_when_no_check_digit_is_valid() -> None:
    candidates = detect("00000000000000000001")

    assert [c.format_name for c in candidates] == [SSCC, USPS_20, USPS_LEGACY]
    assert not any(c.check_digit_ok for c in candidates)


def test_it_returns_nothing_when_no_shape_fits() -> None:
    assert detect("") == []
    assert detect("HELLO") == []
    assert detect("12345") == []
    assert detect("2Z5R89390357567127") == []


def test_validate_picks_the_family_asked_for_in_an_ambiguous_number() -> None:
    number = "00000123450000000027"

    assert validate(number).format_name == SSCC
    assert validate(number, Family.FEDEX).format_name == SSCC
    assert validate(number, Family.USPS).format_name == USPS_LEGACY


# --- validate() messages ------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   ", " - . "])
def test_it_asks_for_a_number_when_the_input_is_empty(raw: str) -> None:
    with pytest.raises(InvalidTrackingNumber, match=r"^Enter a tracking number\.$"):
        validate(raw)
    with pytest.raises(InvalidTrackingNumber, match=r"^Enter a tracking number\.$"):
        validate(raw, Family.UPS)


@pytest.mark.parametrize(
    "raw", ["HELLO", "12345", "2Z5R89390357567127", "1A5R89390357567127"]
)
def test_it_says_when_no_carrier_format_matches(raw: str) -> None:
    with pytest.raises(InvalidTrackingNumber) as exc:
        validate(raw)

    assert str(exc.value) == (
        "This tracking number does not match any supported carrier format "
        "(UPS, FedEx, USPS, DHL Express, UPU S10)."
    )


def test_it_says_which_shape_a_carrier_expects() -> None:
    with pytest.raises(InvalidTrackingNumber) as exc:
        validate("12345", Family.DHL_EXPRESS)

    assert str(exc.value) == (
        "This is not a valid DHL Express number: it must be 10 or 11 digits."
    )


@pytest.mark.parametrize(
    ("raw", "family"),
    [
        ("1Z5R89390357567127", Family.FEDEX),
        ("1Z5R89390357567127", Family.USPS),
        ("2Z5R89390357567127", Family.UPS),
        ("1A5R89390357567127", Family.UPS),
        ("986578788855", Family.UPS),
        ("RB123456785GB", Family.DHL_EXPRESS),
        ("3318810025", Family.S10),
        ("9611020987654312345672", Family.USPS),
    ],
)
def test_it_rejects_a_number_that_does_not_fit_the_chosen_carrier(
    raw: str, family: Family
) -> None:
    with pytest.raises(InvalidTrackingNumber) as exc:
        validate(raw, family)

    message = str(exc.value)
    assert message.startswith(f"This is not a valid {FAMILY_LABELS[family]} number:")
    assert "it must be" in message
    assert message.endswith(".")


def test_invalid_tracking_number_is_a_value_error() -> None:
    assert issubclass(InvalidTrackingNumber, ValueError)


def test_family_values_are_stable_choice_values() -> None:
    assert [f.value for f in Family] == ["ups", "fedex", "usps", "dhl_express", "s10"]
    assert FAMILY_LABELS == {
        Family.UPS: "UPS",
        Family.FEDEX: "FedEx",
        Family.USPS: "USPS",
        Family.DHL_EXPRESS: "DHL Express",
        Family.S10: "UPU S10 (postal)",
    }


# --- UPU S10 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial8", "expected"),
    [
        ("47312482", 9),  # worked example in the UPU S10 standard
        ("12345678", 5),  # jkeen s10.json RB123456785GB
        ("00000000", 5),  # sum % 11 == 0 -> 11 -> 5
        ("00000008", 0),  # sum % 11 == 1 -> 10 -> 0
    ],
)
def test_it_computes_the_s10_check_digit(serial8: str, expected: int) -> None:
    assert s10_check_digit(serial8) == expected


@pytest.mark.parametrize(
    "serial8", ["", "1234567", "123456789", "1234567A", "١٢٣٤٥٦٧٨"]
)
def test_it_rejects_a_malformed_s10_serial(serial8: str) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        s10_check_digit(serial8)


def test_it_generates_the_s10_example() -> None:
    assert s10_generate(prefix="RR", serial=12345678, country="GB") == ("RR123456785GB")
    assert s10_generate(prefix="RR", serial=0, country="GB") == "RR000000005GB"


def _reference_s10_check(serial8: str) -> int:
    # Independent restatement of the UPU S10 rule, for cross-checking.
    total = sum(
        int(d) * w for d, w in zip(serial8, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)
    )
    remainder = total % 11
    return {0: 5, 1: 0}.get(remainder, 11 - remainder)


def test_generated_s10_numbers_round_trip_through_validate() -> None:
    for serial in range(3000):
        number = s10_generate(prefix="XA", serial=serial, country="US")
        serial8 = f"{serial:08d}"

        assert number == f"XA{serial8}{_reference_s10_check(serial8)}US"
        assert validate(number, Family.S10) == Candidate(
            Family.S10, S10, number, check_digit_ok=True
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": "R", "serial": 1, "country": "GB"},
        {"prefix": "RRR", "serial": 1, "country": "GB"},
        {"prefix": "R1", "serial": 1, "country": "GB"},
        {"prefix": "rr", "serial": 1, "country": "GB"},
        {"prefix": "ÄÖ", "serial": 1, "country": "GB"},
        {"prefix": "RR", "serial": 1, "country": "G"},
        {"prefix": "RR", "serial": 1, "country": "GBR"},
        {"prefix": "RR", "serial": 1, "country": "12"},
        {"prefix": "RR", "serial": 1, "country": "gb"},
        {"prefix": "RR", "serial": 1, "country": "XX"},
        {"prefix": "RR", "serial": -1, "country": "GB"},
        {"prefix": "RR", "serial": 100_000_000, "country": "GB"},
        {"prefix": "RR", "serial": True, "country": "GB"},
        {"prefix": "RR", "serial": "1", "country": "GB"},
        {"prefix": "RR", "serial": 1.0, "country": "GB"},
    ],
)
def test_s10_generate_rejects_bad_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        s10_generate(**kwargs)  # type: ignore[arg-type]


@given(
    serial=st.integers(min_value=0, max_value=99_999_999),
    prefix=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    country=st.sampled_from(sorted(S10_COUNTRY_CODES)),
)
def test_any_generated_s10_number_validates_and_is_detected_as_s10_first(
    serial: int, prefix: str, country: str
) -> None:
    number = s10_generate(prefix=prefix, serial=serial, country=country)

    assert validate(number).family is Family.S10
    best = detect(number)[0]
    assert best.family is Family.S10
    assert best.check_digit_ok
