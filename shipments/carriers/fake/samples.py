"""The fake carrier's answers, in the shapes of the carriers' documented
samples (karrio's connector tests; UPS Track API, FedEx Track API, USPS
Tracking 3.0, DHL XML-PI KnownTrackingRequest): each provider's tracking
answer for a journey's steps, its unknown-number answer, and its OAuth
token. Pure functions of the journeys (`journeys.Journeys`); the HTTP
server (`server`) sends them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape

from shipments.carriers.fake.journeys import DHL_HUBS, Journeys, Place

# The carriers' own code, type and text for each kind of step.
UPS_STEPS = {
    "label": (
        "MP",
        "M",
        "Shipper created a label, UPS has not received the package yet.",
    ),
    "picked_up": ("PU", "P", "Pickup Scan"),
    "arrived": ("AR", "I", "Arrived at Facility"),
    "departed": ("DP", "I", "Departed from Facility"),
    "in_transit": ("IT", "I", "On the Way"),
    "out_for_delivery": ("OT", "I", "Out For Delivery Today"),
    "delivered": ("FS", "D", "DELIVERED"),
    "attempted": (
        "48",
        "X",
        "The receiver was not available for delivery. "
        "We'll make a second attempt the next business day.",
    ),
    "exception": ("DJ", "X", "Severe weather conditions have delayed delivery."),
    "returned": ("RS", "I", "Returned to shipper"),
}
FEDEX_STEPS = {
    "label": ("OC", "Shipment information sent to FedEx"),
    "picked_up": ("PU", "Picked up"),
    "arrived": ("AR", "Arrived at FedEx location"),
    "departed": ("DP", "Departed FedEx location"),
    "in_transit": ("IT", "In transit"),
    "out_for_delivery": ("OD", "On FedEx vehicle for delivery"),
    "delivered": ("DL", "Delivered"),
    "attempted": ("DE", "Delivery exception"),
    "exception": ("SE", "Shipment exception"),
    "returned": ("RS", "Return to shipper"),
}
USPS_STEPS = {
    "label": ("GX", "Shipping Label Created, USPS Awaiting Item"),
    "picked_up": ("03", "USPS in possession of item"),
    "arrived": ("A1", "Arrived at USPS Regional Facility"),
    "departed": ("T1", "Departed USPS Regional Facility"),
    "in_transit": ("TL", "In Transit to Next Facility"),
    "out_for_delivery": ("OF", "Out for Delivery"),
    "delivered": ("01", "Delivered, In/At Mailbox"),
    "attempted": ("02", "Notice Left (No Authorized Recipient Available)"),
    "exception": ("05", "Undeliverable as Addressed"),
    "returned": ("09", "Return to Sender"),
}
DHL_STEPS = {
    "label": ("SA", "Shipment information received"),
    "picked_up": ("PU", "Shipment picked up"),
    "arrived": ("AF", "Arrived at DHL facility"),
    "departed": ("DF", "Departed from DHL facility"),
    "in_transit": ("PL", "Processed at location"),
    "out_for_delivery": ("WC", "With delivery courier"),
    "delivered": ("OK", "Shipment delivered"),
    "attempted": ("NH", "Recipient not home"),
    "exception": ("OH", "Shipment on hold"),
    "returned": ("RT", "Returned to shipper"),
}


def _local(at: datetime, place: Place) -> datetime:
    return at.astimezone(timezone(timedelta(hours=place.offset)))


def _offset(place: Place) -> str:
    minutes = int(place.offset * 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def ups_track(fake: Journeys, number: str, now: datetime) -> tuple[int, Any]:
    steps = fake.steps("ups", number, now)
    if steps is None:
        # karrio's UPS sample of an unknown number (HTTP 200, a warning).
        return 200, {
            "trackResponse": {
                "shipment": [
                    {
                        "warnings": [
                            {
                                "code": "TW0001",
                                "message": "Tracking Information Not Found",
                            }
                        ]
                    }
                ]
            }
        }
    activity = []
    for s in reversed(steps):
        code, type_, text = UPS_STEPS[s.kind]
        local, gmt = _local(s.at, s.place), s.at.astimezone(UTC)
        activity.append(
            {
                "date": local.strftime("%Y%m%d"),
                "time": local.strftime("%H%M%S"),
                "gmtDate": gmt.strftime("%Y%m%d"),
                "gmtTime": gmt.strftime("%H:%M:%S"),
                "gmtOffset": _offset(s.place),
                "location": {
                    "address": {
                        "city": s.place.city,
                        "stateProvince": s.place.region,
                        "postalCode": s.place.postcode,
                        "country": s.place.country,
                        "countryCode": s.place.country,
                    },
                    "slic": s.place.code,
                },
                "status": {
                    "code": code,
                    "description": text,
                    "simplifiedTextDescription": text,
                    "statusCode": "003",
                    "type": type_,
                },
            }
        )
    delivered = any(s.kind == "delivered" for s in steps)
    latest = activity[0]["status"] if activity else {}
    dates = [{"date": fake.eta(number).strftime("%Y%m%d"), "type": "SDD"}]
    if delivered:
        dates.append({"date": str(activity[0]["date"]), "type": "DEL"})
    return 200, {
        "trackResponse": {
            "shipment": [
                {
                    "inquiryNumber": number,
                    "package": [
                        {
                            "trackingNumber": number,
                            "activity": activity,
                            "currentStatus": latest,
                            "deliveryDate": dates,
                            "packageAddress": [],
                            "service": {"code": "003", "description": "UPS Ground"},
                            "weight": {"unitOfMeasurement": "LBS", "weight": "2.00"},
                        }
                    ],
                    "userRelation": "SHIPPER",
                }
            ]
        }
    }


def fedex_track(fake: Journeys, numbers: list[str], now: datetime) -> tuple[int, Any]:
    results = []
    for number in numbers:
        steps = fake.steps("fedex", number, now)
        if steps is None:
            results.append(
                {
                    "trackingNumber": number,
                    "trackResults": [
                        {
                            "trackingNumberInfo": {
                                "trackingNumber": number,
                                "carrierCode": "",
                                "trackingNumberUniqueId": "",
                            },
                            "error": {
                                "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                                "message": "Tracking number cannot be found. "
                                "Please correct the tracking number and try again.",
                            },
                        }
                    ],
                }
            )
            continue
        scans = []
        for s in reversed(steps):
            code, text = FEDEX_STEPS[s.kind]
            scans.append(
                {
                    "date": _local(s.at, s.place).isoformat(),
                    "derivedStatus": text,
                    "scanLocation": {
                        "city": s.place.city,
                        "stateOrProvinceCode": s.place.region,
                        "postalCode": s.place.postcode,
                        "countryCode": s.place.country,
                        "residential": False,
                        "countryName": "United States",
                    },
                    "locationId": s.place.code,
                    "locationType": "FEDEX_FACILITY",
                    "exceptionDescription": (
                        "Customer not available or business closed"
                        if s.kind == "attempted"
                        else ""
                    ),
                    "eventDescription": text,
                    "eventType": code,
                    "derivedStatusCode": code,
                    "exceptionCode": "",
                }
            )
        latest = scans[0] if scans else {}
        eta = fake.eta(number)
        results.append(
            {
                "trackingNumber": number,
                "trackResults": [
                    {
                        "trackingNumberInfo": {
                            "trackingNumber": number,
                            "carrierCode": "FDXG",
                            "trackingNumberUniqueId": f"12024~{number}~FDEG",
                        },
                        "latestStatusDetail": {
                            "code": latest.get("eventType", "OC"),
                            "derivedCode": latest.get("eventType", "OC"),
                            "statusByLocale": latest.get("eventDescription", ""),
                            "description": latest.get("eventDescription", ""),
                            "scanLocation": latest.get("scanLocation", {}),
                        },
                        "serviceDetail": {
                            "description": "FedEx Ground",
                            "shortDescription": "FG",
                            "type": "FEDEX_GROUND",
                        },
                        "standardTransitTimeWindow": {
                            "window": {"ends": eta.isoformat()}
                        },
                        "estimatedDeliveryTimeWindow": {
                            "window": {
                                "begins": eta.isoformat(),
                                "ends": eta.isoformat(),
                            }
                        },
                        "scanEvents": scans,
                    }
                ],
            }
        )
    return 200, {
        "transactionId": str(uuid.uuid4()),
        "output": {"completeTrackResults": results},
    }


def usps_track(fake: Journeys, number: str, now: datetime) -> tuple[int, Any]:
    steps = fake.steps("usps", number, now)
    if steps is None:
        return 404, {
            "apiVersion": "v3",
            "error": {
                "code": "404",
                "message": "Not Found",
                "errors": [
                    {
                        "status": "404",
                        "code": "1000",
                        "title": "Not Found",
                        "detail": "The tracking number may be incorrect or "
                        "the status update is not yet available.",
                    }
                ],
            },
        }
    events = []
    for s in reversed(steps):
        code, text = USPS_STEPS[s.kind]
        events.append(
            {
                "eventType": text,
                "eventTimestamp": _local(s.at, s.place).strftime("%Y-%m-%dT%H:%M:%S"),
                "GMTTimestamp": s.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "GMTOffset": _offset(s.place),
                "eventCountry": None,
                "eventCity": s.place.city.upper(),
                "eventState": s.place.region,
                "eventZIP": s.place.postcode,
                "firm": None,
                "name": None,
                "authorizedAgent": "false",
                "eventCode": code,
                "additionalProp": None,
            }
        )
    latest = events[0]["eventType"] if events else "Pre-Shipment"
    return 200, {
        "trackingNumber": number,
        "destinationCity": steps[-1].place.city.upper() if steps else "",
        "mailClass": "USPS Ground Advantage",
        "mailType": "DM",
        "status": latest,
        "statusCategory": latest,
        "expectedDeliveryTimeStamp": fake.eta(number).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trackingEvents": events,
    }


def dhl_track(fake: Journeys, numbers: list[str], now: datetime) -> tuple[int, str]:
    from django.utils import timezone as dj_timezone

    local_zone = dj_timezone.get_default_timezone()
    infos = []
    for number in numbers:
        steps = fake.steps("dhl_express", number, now)
        if steps is None:
            infos.append(
                f"<AWBInfo><AWBNumber>{escape(number)}</AWBNumber><Status>"
                "<ActionStatus>No Shipments Found</ActionStatus><Condition>"
                "<ConditionCode>103</ConditionCode><ConditionData>No Shipments Found "
                f"for AWBNumber {escape(number)}</ConditionData></Condition>"
                "</Status></AWBInfo>"
            )
            continue
        events = []
        for s in steps:  # XML-PI lists them oldest first
            code, text = DHL_STEPS[s.kind]
            # XML-PI times carry no offset; the fake writes them in TIME_ZONE,
            # which is how the adapter reads them.
            local = s.at.astimezone(local_zone)
            where = f"{s.place.city} - {s.place.country}"
            signatory = "CAMPAGNA" if s.kind == "delivered" else ""  # who signed
            events.append(
                f"<ShipmentEvent><Date>{local:%Y-%m-%d}</Date><Time>{local:%H:%M:%S}</Time>"
                f"<ServiceEvent><EventCode>{code}</EventCode><Description>{escape(text)}"
                f"</Description></ServiceEvent><Signatory>{signatory}</Signatory>"
                "<ServiceArea><ServiceAreaCode>"
                f"{s.place.code}</ServiceAreaCode><Description>{escape(where)}</Description>"
                "</ServiceArea></ShipmentEvent>"
            )
        eta = fake.eta(number).astimezone(UTC)
        origin = steps[0].place if steps else DHL_HUBS[0]
        shipped = steps[0].at if steps else now
        infos.append(
            f"<AWBInfo><AWBNumber>{escape(number)}</AWBNumber><Status><ActionStatus>success"
            "</ActionStatus></Status><ShipmentInfo><OriginServiceArea><ServiceAreaCode>"
            f"{origin.code}</ServiceAreaCode><Description>{escape(origin.city)}"
            "</Description></OriginServiceArea><ShipperName>TrackSOP demo</ShipperName>"
            f"<ShipmentDate>{shipped:%Y-%m-%dT%H:%M:%S}</ShipmentDate><Pieces>1</Pieces>"
            "<Weight>0.74</Weight><WeightUnit>K</WeightUnit>"
            f"<EstDlvyDate>{eta:%Y-%m-%d %H:%M:%S} GMT+00:00</EstDlvyDate>"
            + "".join(events)
            + "</ShipmentInfo></AWBInfo>"
        )
    return 200, (
        '<?xml version="1.0" encoding="UTF-8"?>\n<req:TrackingResponse '
        'xmlns:req="http://www.dhl.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.dhl.com TrackingResponse.xsd"><Response>'
        f"<ServiceHeader><MessageTime>{now:%Y-%m-%dT%H:%M:%S}+00:00</MessageTime>"
        "<MessageReference>1234567890123456789012345678</MessageReference>"
        "<SiteID>TrackSOP</SiteID></ServiceHeader></Response>"
        + "".join(infos)
        + "</req:TrackingResponse>"
    )


def token(provider: str) -> tuple[int, dict[str, Any]]:
    """A fresh token in the provider's shape (any credentials are taken;
    the fake's track endpoints take any token "fake-…")."""
    value = f"fake-{provider}-{uuid.uuid4().hex}"
    issued = str(int(time.time() * 1000))
    if provider == "ups":
        return 200, {
            "token_type": "Bearer",
            "issued_at": issued,
            "client_id": "fake",
            "access_token": value,
            "expires_in": "14399",
            "status": "approved",
        }
    if provider == "fedex":
        return 200, {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": 3599,
            "scope": "CXS-TP",
        }
    return 200, {
        "access_token": value,
        "token_type": "Bearer",
        "issued_at": issued,
        "expires_in": 28799,
        "status": "approved",
        "scope": "tracking",
        "issuer": "api.usps.com",
        "client_id": "fake",
    }
