"""*Sync now* on a shipment: the carrier is asked while staff wait, or staff
are told why not."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone
from pytest_django import Settings

from shipments.carriers.accounts import rate_take
from shipments.carriers.fake.server import FakeCarrier
from shipments.carriers.sync import SyncRefused, carrier_sync_shipment
from shipments.models import CarrierAccount, CarrierSync, Source, TrackingEvent
from shipments.status import EventKind
from tests.factories import dispatched_shipment, ready_shipment
from tests.shipments.carrier_sync_support import connect, shipments_with

pytestmark = pytest.mark.django_db

R = CarrierSync.Result


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.fixture(autouse=True)
def _patient(settings: Settings) -> None:
    """The first request of a process loads karrio, slow on a busy machine:
    a generous wait (the timeout itself has its own test)."""
    settings.TRACKSOP_CARRIER_SYNC = {
        **settings.TRACKSOP_CARRIER_SYNC,
        "sync_now_timeout_seconds": 120,
    }


def test_sync_now_asks_the_carrier_and_answers_with_the_result(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    with time_machine.travel(timezone.now() - timedelta(hours=3), tick=False):
        [shipment] = shipments_with(ups)
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False):
        fake_carrier.script(
            shipment.tracking_number or "",
            events=[{"kind": "picked_up", "hours_ago": 2}],
        )

    # One `now` for the sync and the count: the counter is per minute.
    now = timezone.now()
    sync = carrier_sync_shipment(shipment=shipment, now=now)

    assert sync.last_result == R.OK, sync.last_message
    assert sync.last_message.startswith("1 new event")
    assert sync.last_synced_at is not None
    assert sync.next_due_at > timezone.now()
    assert TrackingEvent.objects.filter(
        shipment=shipment, source=Source.CARRIER, kind=EventKind.PICKED_UP
    ).exists()
    # The request counted against the account's minute.
    assert rate_take(ups.pk, limit=ups.requests_per_minute, wanted=10**6, now=now) == (
        ups.requests_per_minute - 1
    )


def test_sync_now_of_a_number_the_carrier_does_not_know_says_so(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = shipments_with(ups)
    fake_carrier.script(shipment.tracking_number or "", scenario="unknown")

    sync = carrier_sync_shipment(shipment=shipment)

    assert sync.last_result == R.UNKNOWN_NUMBER
    assert "Not Found" in sync.last_message


# Not run again with the clock moved (make test-future): under libfaketime
# the thread pool's timed wait came back when the carrier answered (4 s),
# not at the 1 s timeout; no date is involved here.
@pytest.mark.clock_free
def test_sync_now_gives_up_waiting_for_a_carrier_that_hangs(
    fake_carrier: FakeCarrier, settings: Settings
) -> None:
    settings.TRACKSOP_CARRIER_SYNC = {
        **settings.TRACKSOP_CARRIER_SYNC,
        "sync_now_timeout_seconds": 1,
    }
    ups = connect()
    [shipment] = shipments_with(ups)
    fake_carrier.set_mode("hang", provider="ups", hang_s=4)

    started = time.monotonic()
    sync = carrier_sync_shipment(shipment=shipment)

    assert time.monotonic() - started < 3
    assert sync.last_result == R.ERROR
    assert sync.last_message == "UPS did not answer within 1 second."


def test_sync_now_is_refused_for_a_carrier_without_an_account() -> None:
    shipment = dispatched_shipment()  # the own fleet

    with pytest.raises(SyncRefused, match="carrier is not connected"):
        carrier_sync_shipment(shipment=shipment)
    assert not CarrierSync.objects.exists()


def test_sync_now_is_refused_before_dispatch() -> None:
    ups = connect()
    shipment = ready_shipment(carrier=ups.carrier)

    with pytest.raises(SyncRefused, match="no carrier tracking number yet"):
        carrier_sync_shipment(shipment=shipment)


def test_sync_now_is_refused_while_the_account_is_switched_off() -> None:
    ups = connect(is_active=False)
    [shipment] = shipments_with(ups)

    with pytest.raises(SyncRefused, match="switched off"):
        carrier_sync_shipment(shipment=shipment)


def test_sync_now_is_refused_while_the_carrier_asked_us_to_slow_down(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect(backoff_until=timezone.now() + timedelta(seconds=150))
    [shipment] = shipments_with(ups)

    with pytest.raises(SyncRefused, match="slow down: try again in 3 minutes"):
        carrier_sync_shipment(shipment=shipment)
    assert fake_carrier.stats() == {}


def test_sync_now_is_refused_when_this_minutes_requests_are_used_up(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect(requests_per_minute=2)
    [shipment] = shipments_with(ups)
    now = timezone.now()  # one minute's counter for both
    assert rate_take(ups.pk, limit=2, wanted=2, now=now) == 2

    with pytest.raises(SyncRefused, match="try again in a minute"):
        carrier_sync_shipment(shipment=shipment, now=now)
    assert "ups.track" not in fake_carrier.stats()


def test_sync_now_may_check_a_failing_account_once_its_credentials_are_fixed(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect(
        state=CarrierAccount.State.FAILING,
        state_message="UPS refused the account: Invalid Authentication Information.",
        failing_since=timezone.now() - timedelta(hours=2),
        alerted_at=timezone.now() - timedelta(hours=2),
        backoff_until=timezone.now() + timedelta(minutes=20),
    )
    [shipment] = shipments_with(ups)

    sync = carrier_sync_shipment(shipment=shipment)

    assert sync.last_result == R.OK
    ups.refresh_from_db()
    assert ups.state == CarrierAccount.State.OK
    assert ups.backoff_until is None
