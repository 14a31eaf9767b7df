"""The carrier status tables of the tracking sync: each provider's real codes
(UPS Track API, FedEx eventType, USPS eventCode, DHL Express checkpoint codes)
and karrio's normalized status for codes no table knows yet. The push
formats keep working beside them."""

from __future__ import annotations

import pytest

from shipments.carriers.status import (
    DHL_CODES,
    EXCEPTION,
    FEDEX_CODES,
    IGNORE,
    NORMALIZED,
    USPS_CODES,
    Rule,
    status_rule,
)
from shipments.models import PushFormat, TrackingProvider
from shipments.status import CHECKPOINT_KINDS, EventKind

K = EventKind
P = TrackingProvider


@pytest.mark.parametrize(
    ("provider", "code", "status_type", "expected"),
    [
        # UPS Track API: the code first, then the type letter.
        (P.UPS, "MP", "M", IGNORE),
        (P.UPS, "OR", "I", Rule(K.PICKED_UP)),
        (P.UPS, "AR", "I", Rule(K.ARRIVED_HUB)),
        (P.UPS, "DP", "I", Rule(K.DEPARTED_HUB)),
        (P.UPS, "OT", "I", Rule(K.OUT_FOR_DELIVERY)),
        (P.UPS, "FS", "D", Rule(K.DELIVERED)),
        (P.UPS, "KB", "D", Rule(K.DELIVERED)),  # by its type: delivered
        (P.UPS, "DJ", "X", EXCEPTION),  # severe weather delay
        (P.UPS, "SR", "X", EXCEPTION),  # released by customs, type exception
        # FedEx Track API eventType
        (P.FEDEX, "OC", "", IGNORE),
        (P.FEDEX, "PU", "", Rule(K.PICKED_UP)),
        (P.FEDEX, "AR", "", Rule(K.ARRIVED_HUB)),
        (P.FEDEX, "DP", "", Rule(K.DEPARTED_HUB)),
        (P.FEDEX, "IT", "", Rule(K.IN_TRANSIT_SCAN)),
        (P.FEDEX, "OD", "", Rule(K.OUT_FOR_DELIVERY)),
        (P.FEDEX, "DL", "", Rule(K.DELIVERED)),
        (P.FEDEX, "HL", "", Rule(K.AVAILABLE_FOR_PICKUP)),
        (P.FEDEX, "RS", "", Rule(K.RETURNED)),
        (P.FEDEX, "DE", "", EXCEPTION),
        (P.FEDEX, "SE", "", EXCEPTION),
        # USPS Tracking eventCode
        (P.USPS, "GX", "", IGNORE),
        (P.USPS, "03", "", Rule(K.PICKED_UP)),
        (P.USPS, "10", "", Rule(K.ARRIVED_HUB)),
        (P.USPS, "A1", "", Rule(K.ARRIVED_HUB)),
        (P.USPS, "T1", "", Rule(K.DEPARTED_HUB)),
        (P.USPS, "TL", "", Rule(K.IN_TRANSIT_SCAN)),
        (P.USPS, "OF", "", Rule(K.OUT_FOR_DELIVERY)),
        (P.USPS, "01", "", Rule(K.DELIVERED)),
        (P.USPS, "02", "", Rule(K.DELIVERY_ATTEMPTED)),
        (P.USPS, "16", "", Rule(K.AVAILABLE_FOR_PICKUP)),
        (P.USPS, "09", "", Rule(K.RETURNED)),
        (P.USPS, "05", "", EXCEPTION),
        # DHL Express checkpoint codes
        (P.DHL_EXPRESS, "PU", "", Rule(K.PICKED_UP)),
        (P.DHL_EXPRESS, "AF", "", Rule(K.ARRIVED_HUB)),
        (P.DHL_EXPRESS, "DF", "", Rule(K.DEPARTED_HUB)),
        (P.DHL_EXPRESS, "WC", "", Rule(K.OUT_FOR_DELIVERY)),
        (P.DHL_EXPRESS, "OK", "", Rule(K.DELIVERED)),
        (P.DHL_EXPRESS, "NH", "", Rule(K.DELIVERY_ATTEMPTED)),
        (P.DHL_EXPRESS, "CC", "", Rule(K.AVAILABLE_FOR_PICKUP)),
        (P.DHL_EXPRESS, "RT", "", Rule(K.RETURNED)),
        (P.DHL_EXPRESS, "OH", "", EXCEPTION),
        (P.DHL_EXPRESS, "RW", "", IGNORE),
    ],
)
def test_provider_codes(
    provider: str, code: str, status_type: str, expected: Rule
) -> None:
    assert status_rule(provider, code=code, status_type=status_type) == expected


def test_codes_are_matched_whatever_their_case_and_spaces() -> None:
    assert status_rule(P.DHL_EXPRESS, code=" ok ") == Rule(K.DELIVERED)
    assert status_rule(P.FEDEX, code="dl") == Rule(K.DELIVERED)


@pytest.mark.parametrize(
    ("normalized", "expected"),
    [
        ("pending", IGNORE),
        ("picked_up", Rule(K.PICKED_UP)),
        ("in_transit", Rule(K.IN_TRANSIT_SCAN)),
        ("out_for_delivery", Rule(K.OUT_FOR_DELIVERY)),
        ("delivered", Rule(K.DELIVERED)),
        ("delivery_failed", Rule(K.DELIVERY_ATTEMPTED)),
        ("ready_for_pickup", Rule(K.AVAILABLE_FOR_PICKUP)),
        ("return_to_sender", Rule(K.RETURNED)),
        ("on_hold", EXCEPTION),
        ("delivery_delayed", EXCEPTION),
        ("unknown", Rule(K.NOTE)),
    ],
)
def test_an_unlisted_code_falls_back_on_karrios_status(
    normalized: str, expected: Rule
) -> None:
    for provider in P.values:
        rule = status_rule(provider, code="ZZ9", normalized=normalized)
        assert rule == expected


def test_a_listed_code_wins_over_karrios_status() -> None:
    # karrio calls FedEx's DE (delivery exception) "delivery_failed".
    assert status_rule(P.FEDEX, code="DE", normalized="delivery_failed") == EXCEPTION


def test_nothing_known_is_no_rule() -> None:
    assert status_rule(P.USPS, code="ZZ9") is None
    assert status_rule(P.UPS, code="ZZ", status_type="Q") is None


def test_push_formats_still_work() -> None:
    assert status_rule(PushFormat.GENERIC, code="delivered") == Rule(K.DELIVERED)
    assert status_rule(PushFormat.UPS_TRACK_ALERT, code="OR") == Rule(K.PICKED_UP)
    with pytest.raises(ValueError, match="Unknown push format"):
        status_rule("carrier_pigeon", code="x")


@pytest.mark.parametrize("table", [FEDEX_CODES, USPS_CODES, DHL_CODES, NORMALIZED])
def test_every_rule_is_a_checkpoint_ingest_accepts(table: dict[str, Rule]) -> None:
    for rule in table.values():
        assert rule.kind is None or rule.kind in CHECKPOINT_KINDS
