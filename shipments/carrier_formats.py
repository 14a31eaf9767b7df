"""Carrier push formats: how each is authenticated and what its body says.

Per format, `verify` checks the raw body and headers against the carrier's
secret (constant-time) and `parse` turns the body into a `Push`: the
provider's event id (what a replay repeats) and its carrier events. Both
raise DRF exceptions, which the API answers as application/problem+json.

- generic: TrackSOP's own. Header `TrackSOP-Signature: t=<unix time>,v1=<hex
  HMAC-SHA256 of "<t>." + body>` (several v1= during a secret rotation);
  a timestamp more than TRACKSOP_CARRIER_WEBHOOK_TOLERANCE seconds away is
  refused. Body: {"id": ..., "events": [{"tracking_number", "event_id",
  "status", "occurred_at", "location": {...}, "description"}]}.
- ups_track_alert: UPS Track Alert. The subscription names a `credential`
  that UPS sends back verbatim in a `credential` header; there is no body
  signature and no event id, so the id is derived from the tracking number,
  status and GMT time (a re-sent event repeats it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions, serializers, status

from shipments.carriers.status import CarrierEvent, CarrierLocation
from shipments.ingest import INGEST_LIMIT
from shipments.models import PushFormat

SIGNATURE_HEADER = "TrackSOP-Signature"
UPS_CREDENTIAL_HEADER = "credential"
# Kept with the stored push, for support; never the credential.
KEPT_HEADERS = ("Content-Type", "User-Agent", SIGNATURE_HEADER)


class PushUnauthorized(exceptions.APIException):
    # Not AuthenticationFailed: DRF turns that into 403 for a view without
    # authenticators.
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "The push is not signed with this carrier's secret."
    default_code = "push_unauthorized"


@dataclass(frozen=True)
class Push:
    event_id: str
    events: list[CarrierEvent]


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def generic_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _verify_generic(
    body: bytes, headers: Mapping[str, str], secret: str, now: datetime
) -> None:
    header = headers.get(SIGNATURE_HEADER, "")
    if not header:
        raise PushUnauthorized(f"The {SIGNATURE_HEADER} header is missing.")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise PushUnauthorized(
            f"The {SIGNATURE_HEADER} header must be t=<unix time>,v1=<hex "
            "HMAC-SHA256 of the timestamp, a dot and the body>."
        )
    expected = generic_signature(secret, timestamp, body)
    # Every candidate is compared, so the time does not tell which one matched.
    matches = [_same(expected, s) for s in signatures]
    if not any(matches):
        raise PushUnauthorized(
            "The signature does not match this carrier's secret and this body."
        )
    age = int(now.timestamp()) - timestamp
    tolerance = settings.TRACKSOP_CARRIER_WEBHOOK_TOLERANCE
    if age > tolerance:
        raise PushUnauthorized(
            f"The signature's timestamp is {age} seconds old; pushes signed more "
            f"than {tolerance} seconds ago are refused (a replay)."
        )
    if -age > tolerance:
        raise PushUnauthorized(
            f"The signature's timestamp is {-age} seconds in the future; check "
            "the sender's clock."
        )


def _verify_ups(
    body: bytes, headers: Mapping[str, str], secret: str, now: datetime
) -> None:
    credential = headers.get(UPS_CREDENTIAL_HEADER, "")
    if not credential:
        raise PushUnauthorized(f"The {UPS_CREDENTIAL_HEADER} header is missing.")
    if not _same(secret, credential):
        raise PushUnauthorized(
            f"The {UPS_CREDENTIAL_HEADER} header does not match the credential "
            "of this carrier's subscription."
        )


def verify(
    push_format: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    now: datetime,
) -> None:
    """Raise PushUnauthorized unless the push is the carrier's."""
    verifiers = {
        PushFormat.GENERIC: _verify_generic,
        PushFormat.UPS_TRACK_ALERT: _verify_ups,
    }
    verifiers[PushFormat(push_format)](body, headers, secret, now)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body(body: bytes) -> Any:
    """The body as JSON, or a 400 that says what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise exceptions.ParseError("The body is not UTF-8 text.") from None
    except (ValueError, RecursionError) as exc:
        raise exceptions.ParseError(f"Malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise exceptions.ParseError("The body must be a JSON object.")
    return data


# --- generic ---------------------------------------------------------------


class AwareDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value: Any) -> datetime:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is not None and parsed.tzinfo is None:
            self.fail("naive")
        return super().to_internal_value(value)

    default_error_messages = {
        "naive": "Give the time with its UTC offset, e.g. 2026-05-04T09:30:00Z."
    }


def _text(max_length: int, *, required: bool = False) -> serializers.CharField:
    return serializers.CharField(
        max_length=max_length, required=required, allow_blank=not required
    )


class GenericLocationSerializer(serializers.Serializer[Any]):
    code = _text(32)
    name = _text(100)
    city = _text(100)
    region = _text(100)
    postcode = _text(16)
    country = _text(2)


class GenericEventSerializer(serializers.Serializer[Any]):
    tracking_number = _text(40, required=True)
    event_id = _text(100, required=True)
    status = _text(40, required=True)
    occurred_at = AwareDateTimeField()
    location = GenericLocationSerializer(required=False)
    description = _text(500)


class GenericPushSerializer(serializers.Serializer[Any]):
    id = _text(200, required=True)
    events = serializers.ListField(
        child=GenericEventSerializer(), min_length=1, max_length=INGEST_LIMIT
    )


def _parse_generic(data: Mapping[str, Any]) -> Push:
    serializer = GenericPushSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    valid = serializer.validated_data
    return Push(
        event_id=valid["id"],
        events=[
            CarrierEvent(
                tracking_number=e["tracking_number"],
                event_id=e["event_id"],
                code=e["status"],
                occurred_at=e["occurred_at"],
                description=e.get("description", ""),
                location=CarrierLocation(**e.get("location", {})),
            )
            for e in valid["events"]
        ],
    )


# --- UPS Track Alert -------------------------------------------------------


class UpsLocationSerializer(serializers.Serializer[Any]):
    city = _text(100)
    stateProvince = _text(100)
    postalCode = _text(16)
    country = _text(2)


class UpsStatusSerializer(serializers.Serializer[Any]):
    type = _text(4, required=True)
    code = _text(4)
    description = _text(200)
    descriptionCode = _text(8)


class UpsEventSerializer(serializers.Serializer[Any]):
    trackingNumber = _text(40, required=True)
    gmtActivityDate = _text(8, required=True)
    gmtActivityTime = _text(6, required=True)
    localActivityDate = _text(8)
    localActivityTime = _text(6)
    activityLocation = UpsLocationSerializer(required=False)
    activityStatus = UpsStatusSerializer()
    scheduledDeliveryDate = _text(8)
    actualDeliveryDate = _text(8)
    actualDeliveryTime = _text(6)
    deliveryStartTime = _text(6)
    deliveryEndTime = _text(6)
    deliveryTimeDescription = _text(100)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        stamp = attrs["gmtActivityDate"] + attrs["gmtActivityTime"]
        try:
            attrs["occurred_at"] = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(
                tzinfo=UTC
            )
        except ValueError:
            raise serializers.ValidationError(
                {"gmtActivityDate": ["Give the GMT date as YYYYMMDD, time HHMMSS."]}
            ) from None
        return attrs


UPS_KEPT = (
    "scheduledDeliveryDate",
    "actualDeliveryDate",
    "actualDeliveryTime",
    "localActivityDate",
    "localActivityTime",
)


def _parse_ups(data: Mapping[str, Any]) -> Push:
    serializer = UpsEventSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    valid = serializer.validated_data
    number = valid["trackingNumber"].replace(" ", "").upper()
    state = valid["activityStatus"]
    place = valid.get("activityLocation", {})
    event_id = ":".join(
        [
            "ups",
            number,
            state["type"],
            state.get("code", ""),
            valid["gmtActivityDate"] + valid["gmtActivityTime"],
        ]
    )
    event = CarrierEvent(
        tracking_number=number,
        event_id=event_id,
        code=state.get("code", ""),
        status_type=state["type"],
        occurred_at=valid["occurred_at"],
        description=state.get("description", ""),
        location=CarrierLocation(
            city=place.get("city", ""),
            region=place.get("stateProvince", ""),
            postcode=place.get("postalCode", ""),
            country=place.get("country", ""),
        ),
        extra={f"ups_{k}": valid[k] for k in UPS_KEPT if valid.get(k)},
    )
    return Push(event_id=event_id, events=[event])


def parse(push_format: str, body: bytes) -> Push:
    """The push in the body, or a 400 naming the first problem."""
    parsers = {
        PushFormat.GENERIC: _parse_generic,
        PushFormat.UPS_TRACK_ALERT: _parse_ups,
    }
    return parsers[PushFormat(push_format)](json_body(body))


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {h: headers[h][:500] for h in KEPT_HEADERS if h in headers}
