"""The carrier tracking adapter: karrio's real UPS, FedEx, USPS and DHL Express
connectors over real HTTP to the local fake carrier (shipments.carriers.fake),
which answers with the carriers' documented shapes. Nothing reaches the
internet; no test depends on today's date (journeys are anchored at now, and
the time zone tests freeze the clock)."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from pytest_django import Settings

from shipments.carriers.adapter.client import DjangoTokenCache, karrio_sdk, track
from shipments.carriers.adapter.events import event_id
from shipments.carriers.fake.server import FakeCarrier
from shipments.carriers.status import CarrierEvent, Places, carrier_checkpoint
from shipments.carriers.tracking import (
    CarrierAuthFailed,
    CarrierRateLimited,
    CarrierUnavailable,
    Connection,
    KarrioMissing,
    NotFound,
    Tracked,
)
from shipments.status import EventKind
from tests.factories import LocationFactory

PROVIDERS = ["ups", "fedex", "usps", "dhl_express"]
# The carriers' own codes for the fake's steps, as their APIs send them.
PICKED_UP = {"ups": "PU", "fedex": "PU", "usps": "03", "dhl_express": "PU"}
DELIVERED = {"ups": "FS", "fedex": "DL", "usps": "01", "dhl_express": "OK"}
NUMBER = {
    "ups": "1Z999AA10123456784",
    "fedex": "794644790138",
    "usps": "9400111899223197428490",
    "dhl_express": "3180831640",
}


def connection(provider: str, **overrides: Any) -> Connection:
    """A connection whose credentials no other test used (so no token of
    theirs is in the shared cache)."""
    key = uuid.uuid4().hex
    credentials = {
        "ups": {"client_id": key, "client_secret": "secret"},
        "fedex": {"track_api_key": key, "track_secret_key": "secret"},
        "usps": {"client_id": key, "client_secret": "secret"},
        "dhl_express": {"site_id": key, "password": "password1"},
    }[provider]
    return Connection(account_id=1, provider=provider, credentials=credentials)


def tracked(result: Tracked | NotFound) -> Tracked:
    assert isinstance(result, Tracked), result
    return result


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_carrier_answers_a_journey_oldest_first(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    number = NUMBER[provider]
    before = datetime.now(UTC)
    answer = tracked(track(connection(provider), [number])[number])

    assert answer.tracking_number == number
    assert not answer.delivered
    assert len(answer.events) >= 3
    times = [e.occurred_at for e in answer.events]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) and t <= before for t in times)
    assert PICKED_UP[provider] in [e.code for e in answer.events]
    picked = next(e for e in answer.events if e.code == PICKED_UP[provider])
    assert picked.description  # the carrier's own words
    assert picked.location.city
    assert picked.normalized_status == "picked_up" or provider == "usps"
    if provider != "usps":  # USPS sends no facility code
        assert picked.location.code
    assert answer.estimated_delivery is not None
    assert answer.estimated_delivery >= picked.occurred_at.date()
    assert all(e.event_id.startswith(f"{provider}:") for e in answer.events)
    assert all(len(e.event_id) <= 100 for e in answer.events)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_polling_twice_gives_the_same_event_ids(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    number = NUMBER[provider]
    conn = connection(provider)
    first = tracked(track(conn, [number])[number])
    second = tracked(track(conn, [number])[number])

    assert [e.event_id for e in first.events] == [e.event_id for e in second.events]
    assert len({e.event_id for e in first.events}) == len(first.events)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_delivered_package(fake_carrier: FakeCarrier, provider: str) -> None:
    number = NUMBER[provider]
    fake_carrier.script(number, "delivered")

    answer = tracked(track(connection(provider), [number])[number])

    assert answer.delivered
    assert answer.carrier_status == "delivered"
    assert answer.events[-1].code == DELIVERED[provider]
    if provider == "dhl_express":  # the signatory's name is not the status text
        assert answer.events[-1].description == "Shipment delivered"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_number_the_carrier_does_not_know(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    fake_carrier.script("UNKNOWN1", "unknown")

    answer = track(connection(provider), ["UNKNOWN1"])["UNKNOWN1"]

    assert isinstance(answer, NotFound)
    expected = {
        "ups": "Tracking Information Not Found",
        "fedex": "Tracking number cannot be found",
        "usps": "The tracking number may be incorrect",
        "dhl_express": "No Shipments Found for AWBNumber UNKNOWN1",
    }[provider]
    assert expected in answer.message


@pytest.mark.parametrize("provider", ["fedex", "dhl_express"])
def test_an_unknown_number_leaves_the_others_of_its_request_answered(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    fake_carrier.script("UNKNOWN2", "unknown")
    numbers = [NUMBER[provider], "UNKNOWN2", "5550001111"]

    answers = track(connection(provider), numbers)

    assert isinstance(answers["UNKNOWN2"], NotFound)
    assert tracked(answers[NUMBER[provider]]).events
    assert tracked(answers["5550001111"]).events
    assert fake_carrier.stats()[f"{provider}.track"] == 1  # one request


@pytest.mark.parametrize("provider", ["fedex", "dhl_express"])
def test_a_number_karrio_cannot_parse_leaves_the_batch_answered(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    """karrio's FedEx and DHL parsers fail on a whole answer when one number
    has no scan yet; the others of the batch are still read."""
    fake_carrier.script("LABEL1", "label_only")
    fake_carrier.script("UNKNOWN3", "unknown")
    numbers = [NUMBER[provider], "LABEL1", "UNKNOWN3"]

    answers = track(connection(provider), numbers)

    assert tracked(answers[NUMBER[provider]]).events
    assert tracked(answers["LABEL1"]).events == []
    assert isinstance(answers["UNKNOWN3"], NotFound)
    assert not answers["UNKNOWN3"].unreadable
    assert fake_carrier.stats()[f"{provider}.track"] == 1  # read, not asked again


def test_more_numbers_than_a_request_takes_are_sent_in_several(
    fake_carrier: FakeCarrier,
) -> None:
    numbers = [f"1Z{n:016d}" for n in range(3)]

    answers = track(connection("ups"), numbers)

    assert sorted(answers) == numbers
    assert fake_carrier.stats() == {"ups.token": 1, "ups.track": 3}


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ("ups", "ClientId is Invalid"),
        ("fedex", "The given client credentials were not valid"),
        ("usps", "Client authentication failed."),
        ("dhl_express", "Failed authentication"),
    ],
)
def test_wrong_credentials(
    fake_carrier: FakeCarrier, provider: str, message: str
) -> None:
    fake_carrier.set_mode("wrong_credentials", provider=provider)

    with pytest.raises(CarrierAuthFailed) as refused:
        track(connection(provider), [NUMBER[provider]])

    assert message in refused.value.message


def test_missing_credentials_are_named() -> None:
    conn = Connection(1, "fedex", {"track_api_key": "k"})

    with pytest.raises(CarrierAuthFailed) as refused:
        track(conn, ["794644790138"])

    assert "track_secret_key" in refused.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_too_many_requests_says_when_to_retry(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    fake_carrier.set_mode("rate_limited", provider=provider, retry_after=7)

    with pytest.raises(CarrierRateLimited) as limited:
        track(connection(provider), [NUMBER[provider]])

    assert limited.value.retry_after == 7


def test_too_many_requests_without_retry_after(fake_carrier: FakeCarrier) -> None:
    conn = connection("fedex")
    track(conn, ["794644790138"])  # a token first: the limit hits tracking
    fake_carrier.set_mode("rate_limited", endpoint="track", retry_after=None)

    with pytest.raises(CarrierRateLimited) as limited:
        track(conn, ["794644790138"])

    assert limited.value.retry_after is None
    assert "too many requests" in limited.value.message.lower()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_server_error(fake_carrier: FakeCarrier, provider: str) -> None:
    # Tracking only: karrio retries USPS's token request on 5xx (3 s).
    fake_carrier.set_mode("server_error", provider=provider, endpoint="track")

    with pytest.raises(CarrierUnavailable) as unavailable:
        track(connection(provider), [NUMBER[provider]])

    assert "500" in unavailable.value.message or "refused" in unavailable.value.message


@pytest.mark.parametrize(
    ("provider", "endpoint"),
    [(p, e) for p in PROVIDERS for e in ("track", "token") if p != "dhl_express"]
    + [("dhl_express", "track")],  # DHL's XML-PI has no token
)
def test_garbage_is_unavailable(
    fake_carrier: FakeCarrier, provider: str, endpoint: str
) -> None:
    fake_carrier.set_mode("garbage", provider=provider, endpoint=endpoint)

    with pytest.raises(CarrierUnavailable):
        track(connection(provider), [NUMBER[provider]])


def test_a_carrier_that_hangs_times_out(
    fake_carrier: FakeCarrier, settings: Settings
) -> None:
    settings.TRACKSOP_CARRIER_TIMEOUT = 0.5
    fake_carrier.set_mode("hang", provider="ups", hang_s=5)
    started = time.monotonic()

    with pytest.raises(CarrierUnavailable) as unavailable:
        track(connection("ups"), [NUMBER["ups"]])

    assert time.monotonic() - started < 3
    assert "did not answer" in unavailable.value.message


def test_a_refused_connection(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.TRACKSOP_CARRIER_API_URLS = {"fedex": f"http://127.0.0.1:{port}/fedex"}

    with pytest.raises(CarrierUnavailable) as unavailable:
        track(connection("fedex"), ["794644790138"])

    assert "did not answer" in unavailable.value.message


@pytest.mark.parametrize("provider", ["ups", "fedex", "usps"])
def test_the_oauth_token_is_shared_through_the_django_cache(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    conn = connection(provider)
    track(conn, [NUMBER[provider]])
    # Another worker: a Connection of its own, a fresh karrio gateway and
    # cache; only the Django cache (Redis) is shared.
    other = Connection(2, provider, dict(conn.credentials), conn.test_mode)
    track(other, [NUMBER[provider]])

    stats = fake_carrier.stats()
    assert stats[f"{provider}.token"] == 1
    assert stats[f"{provider}.track"] == 2


def test_cached_token_keys_do_not_hold_the_secret(fake_carrier: FakeCarrier) -> None:
    conn = Connection(
        1, "ups", {"client_id": uuid.uuid4().hex, "client_secret": "s3cr3t"}
    )
    token_cache = DjangoTokenCache()
    track(conn, [NUMBER["ups"]])

    key = f"ups|{conn.credentials['client_id']}|s3cr3t"
    assert cache.get(token_cache.key(key))["access_token"].startswith("fake-ups-")
    assert "s3cr3t" not in token_cache.key(key)


def test_a_cached_token_the_carrier_no_longer_takes_is_replaced(
    fake_carrier: FakeCarrier,
) -> None:
    conn = connection("usps")
    track(conn, [NUMBER["usps"]])
    revoked = {"access_token": "revoked", "expiry": "2999-01-01 00:00:00"}
    token_cache = DjangoTokenCache()
    key = f"access|usps|{conn.credentials['client_id']}|secret"
    cache.set(token_cache.key(key), revoked)

    answer = tracked(track(conn, [NUMBER["usps"]])[NUMBER["usps"]])

    assert answer.events
    assert fake_carrier.stats()["usps.token"] == 2
    assert cache.get(token_cache.key(key))["access_token"].startswith("fake-usps-")


def test_a_refused_token_is_forgotten(fake_carrier: FakeCarrier) -> None:
    conn = connection("ups")
    track(conn, [NUMBER["ups"]])
    fake_carrier.set_mode("wrong_credentials", endpoint="track")

    with pytest.raises(CarrierAuthFailed):
        track(conn, [NUMBER["ups"]])
    fake_carrier.set_mode("ok")
    track(conn, [NUMBER["ups"]])

    # The first token, the one the retry of the refused request took, and a
    # new one after the refusal.
    assert fake_carrier.stats()["ups.token"] == 3


FROZEN = datetime(2031, 3, 29, 15, 0, tzinfo=UTC)
DENVER = {
    "code": "DEN",
    "city": "Denver",
    "region": "CO",
    "postcode": "80201",
    "country": "US",
    "offset": -7,
}


@pytest.mark.parametrize("provider", ["ups", "fedex", "usps"])
def test_local_times_with_their_offset_become_utc(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    """UPS sends local date/time plus gmtDate/gmtTime/gmtOffset, FedEx an ISO
    time with the scan's offset, USPS local eventTimestamp plus GMTTimestamp:
    a scan at 08:00 in Denver (UTC-7) is 15:00 UTC, not 08:00 UTC as karrio's
    own timestamp says."""
    number = NUMBER[provider]
    with time_machine.travel(FROZEN, tick=False):
        fake_carrier.script(
            number,
            events=[
                {"kind": "picked_up", "hours_ago": 7, "place": DENVER},
                {"kind": "departed", "hours_ago": 0, "place": DENVER},
            ],
        )
        answer = tracked(track(connection(provider), [number])[number])

    assert [e.occurred_at for e in answer.events] == [
        FROZEN - timedelta(hours=7),
        FROZEN,
    ]
    assert answer.events[0].location.city.upper() == "DENVER"
    assert answer.events[0].location.region == "CO"
    assert answer.events[0].location.postcode == "80201"
    assert answer.events[0].location.country == "US"


def test_dhl_local_times_are_read_in_the_company_time_zone(
    fake_carrier: FakeCarrier, settings: Settings
) -> None:
    """DHL's XML-PI gives the scan's local date and time and no offset: they
    are read in TIME_ZONE (the fake writes them so)."""
    settings.TIME_ZONE = "Europe/Madrid"
    with time_machine.travel(FROZEN, tick=False):
        fake_carrier.script(
            "3180831640",
            events=[
                {
                    "kind": "picked_up",
                    "hours_ago": 2,
                    "place": {
                        "code": "BCN",
                        "city": "Barcelona",
                        "region": "",
                        "postcode": "",
                        "country": "Spain",
                        "offset": 1,
                    },
                }
            ],
        )
        answer = tracked(track(connection("dhl_express"), ["3180831640"])["3180831640"])

    (event,) = answer.events
    assert event.occurred_at == FROZEN - timedelta(hours=2)
    assert event.location.code == "BCN"
    assert event.location.city == "Barcelona"
    assert event.location.country == "ES"


@pytest.mark.django_db
@pytest.mark.parametrize("provider", PROVIDERS)
def test_polled_events_map_through_the_carrier_tables(
    fake_carrier: FakeCarrier, provider: str
) -> None:
    hub = LocationFactory(code="DEN", city="Denver", country="US")
    number = NUMBER[provider]
    fake_carrier.script(
        number,
        events=[
            {"kind": "label", "hours_ago": 30},
            {"kind": "picked_up", "hours_ago": 20},
            {"kind": "arrived", "hours_ago": 10, "place": DENVER},
            {"kind": "out_for_delivery", "hours_ago": 2},
            {"kind": "exception", "hours_ago": 1},
        ],
    )
    answer = tracked(track(connection(provider), [number])[number])
    places = Places.load()

    results = [carrier_checkpoint(provider, e, places=places) for e in answer.events]

    label, picked, arrived, out, exception = results
    assert label[0] is None
    assert "ignored" in label[1]
    assert picked[0] is not None
    assert picked[0].kind == EventKind.PICKED_UP
    assert arrived[0] is not None
    assert arrived[0].kind == EventKind.ARRIVED_HUB
    assert arrived[0].location == hub.code
    assert out[0] is not None
    assert out[0].kind == EventKind.OUT_FOR_DELIVERY
    assert exception[0] is not None
    assert exception[0].kind == EventKind.NOTE
    assert exception[0].data["carrier_exception"] is True
    # The carrier's own code and words are kept.
    assert picked[0].data["carrier_status"] == PICKED_UP[provider]
    assert picked[0].data["carrier_text"] == answer.events[1].description
    assert picked[0].external_id == answer.events[1].event_id


def test_event_ids_are_deterministic() -> None:
    when = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    one = event_id("ups", "1Z1", "AR", when, "Atlanta, GA")
    assert one == event_id("ups", "1Z1", "AR", when, "Atlanta, GA")
    assert one != event_id(
        "ups", "1Z1", "AR", when + timedelta(minutes=1), "Atlanta, GA"
    )
    assert one.startswith("ups:")
    assert len(one) <= 100


def test_without_the_carriers_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    karrio_sdk.cache_clear()
    monkeypatch.setitem(sys.modules, "karrio.sdk", None)
    try:
        with pytest.raises(KarrioMissing):
            track(connection("ups"), ["1Z1"])
    finally:
        karrio_sdk.cache_clear()


def test_carrier_event_shape_is_what_the_sync_maps() -> None:
    event = CarrierEvent(
        tracking_number="1Z1", event_id="ups:x", code="AR", occurred_at=FROZEN
    )
    assert event.normalized_status == ""


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the local fake
        url, data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_fake_carriers_control_api(fake_carrier: FakeCarrier) -> None:
    """What the demo and the benchmark use against `manage.py fake_carrier`."""
    base = fake_carrier.url
    assert post_json(f"{base}/_fake/numbers/CTRL1", {"scenario": "unknown"})[0] == 200
    assert (
        post_json(f"{base}/_fake/mode", {"mode": "rate_limited", "provider": "fedex"})[
            0
        ]
        == 200
    )

    assert isinstance(track(connection("ups"), ["CTRL1"])["CTRL1"], NotFound)
    with pytest.raises(CarrierRateLimited):
        track(connection("fedex"), ["CTRL1"])
    with urllib.request.urlopen(f"{base}/_fake/stats", timeout=5) as answer:  # noqa: S310
        stats = json.load(answer)["requests"]
    assert stats == {"ups.token": 1, "ups.track": 1, "fedex.token": 1}

    status, error = post_json(f"{base}/_fake/mode", {"mode": "sulk"})
    assert status == 400
    assert "sulk" in error["error"]
    assert post_json(f"{base}/_fake/reset", {})[0] == 200
    assert fake_carrier.stats() == {}
