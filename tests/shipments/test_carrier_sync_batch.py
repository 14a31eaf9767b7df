"""A poll of the carrier: karrio's connectors against the local fake carrier
server (the carriers' documented answers, their errors and rate limits),
recorded through the same ingest as the push webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from exceptions_mgmt.models import DeliveryException
from notifications.models import Kind, Notification
from shipments.carriers.fake.server import FakeCarrier
from shipments.carriers.sync import carrier_sync_batch
from shipments.checkpoints import checkpoint_record
from shipments.models import (
    CarrierAccount,
    CarrierSync,
    Location,
    Shipment,
    Source,
    TrackingEvent,
    TrackingProvider,
)
from shipments.status import EventKind, ShipmentStatus
from tests.factories import UserFactory
from tests.shipments.carrier_sync_support import connect, shipments_with, sync_of
from tracksop import roles

pytestmark = pytest.mark.django_db

S = ShipmentStatus
R = CarrierSync.Result
ATLANTA = {
    "code": "ATL",
    "city": "Atlanta",
    "region": "GA",
    "postcode": "30301",
    "country": "US",
    "offset": -5,
}
LOUISVILLE = {
    "code": "LOU",
    "city": "Louisville",
    "region": "KY",
    "postcode": "40201",
    "country": "US",
    "offset": -5,
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()  # request counters and karrio's OAuth tokens


def dispatched_earlier(
    account: CarrierAccount, count: int = 1, *, hours: float = 6, **fields: Any
) -> list[Shipment]:
    """Shipments dispatched some hours ago, so the carrier's scans since are
    news (not late scans), with their sync rows due."""
    with time_machine.travel(timezone.now() - timedelta(hours=hours), tick=False):
        shipments = shipments_with(account, count, **fields)
    CarrierSync.objects.bulk_create(
        [
            CarrierSync(shipment=s, account=account, next_due_at=timezone.now())
            for s in shipments
        ]
    )
    return shipments


def poll(account: CarrierAccount, *shipments: Shipment, **kw: Any) -> list[CarrierSync]:
    return carrier_sync_batch(
        account_id=account.pk, shipment_ids=[s.pk for s in shipments], **kw
    )


def events_of(shipment: Shipment) -> list[TrackingEvent]:
    """The carrier's scans in the timeline (its ETA changes apart)."""
    return list(
        TrackingEvent.objects.filter(shipment=shipment, source=Source.CARRIER)
        .exclude(kind=EventKind.ETA_CHANGED)
        .order_by("occurred_at", "pk")
    )


def script(fake: FakeCarrier, number: str | None, **kw: Any) -> None:
    """Tell the fake carrier what it has scanned for a number, as of a whole
    second (the carriers' answers carry no fractions of one)."""
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False):
        fake.script(number or "", **kw)


def journey(*steps: tuple[str, float, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"kind": k, "hours_ago": h, "place": p} for k, h, p in steps]


# --- what the carrier says reaches the timeline ---------------------------------


def test_a_poll_puts_the_carriers_scans_in_the_timeline_marked_as_the_carriers(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    number = shipment.tracking_number or ""
    script(
        fake_carrier,
        number,
        events=journey(
            ("picked_up", 5, ATLANTA),
            ("departed", 4, ATLANTA),
            ("arrived", 1, LOUISVILLE),
        ),
    )

    [sync] = poll(ups, shipment)

    events = events_of(shipment)
    assert len(events) == 3
    assert {e.integration for e in events} == {"UPS"}
    assert all(e.data.get("carrier_text") for e in events)
    assert events[-1].data["carrier_location"].startswith("Louisville")
    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    sync.refresh_from_db()
    assert sync.last_result == R.OK
    assert sync.last_synced_at is not None
    assert sync.last_message.startswith("3 new events")
    assert sync.last_movement_at == events[-1].occurred_at
    assert sync.queued_at is None
    assert not sync.is_done
    wait = sync.next_due_at - sync.last_synced_at
    assert timedelta(minutes=108) <= wait <= timedelta(minutes=132)
    ups.refresh_from_db()
    assert ups.state == CarrierAccount.State.OK
    assert ups.last_poll_at is not None


def test_polling_the_same_answer_twice_records_each_scan_once(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA), ("arrived", 1, LOUISVILLE)),
    )
    poll(ups, shipment)
    notified = Notification.objects.filter(shipment=shipment).count()

    [sync] = poll(ups, shipment)

    assert len(events_of(shipment)) == 2
    assert Notification.objects.filter(shipment=shipment).count() == notified
    sync.refresh_from_db()
    assert sync.last_result == R.OK
    assert sync.last_message.startswith("No new events")


def test_carrier_places_become_locations_that_later_scans_find(
    fake_carrier: FakeCarrier, settings: Settings
) -> None:
    settings.TIME_ZONE = "America/New_York"  # the company's: US places get it
    ups = connect()
    first, second = dispatched_earlier(ups, 2)
    script(fake_carrier, first.tracking_number, events=journey(("arrived", 2, ATLANTA)))
    script(
        fake_carrier,
        second.tracking_number,
        events=journey(("picked_up", 3, LOUISVILLE), ("arrived", 1, ATLANTA)),
    )

    poll(ups, first)
    atlanta = Location.objects.get(city="Atlanta")
    assert atlanta.code == "ups-atlanta-us"
    assert atlanta.kind == Location.Kind.HUB
    assert atlanta.country == "US"
    assert atlanta.timezone == "America/New_York"
    assert atlanta.name == "UPS Atlanta"
    [scan] = events_of(first)
    assert scan.kind == EventKind.ARRIVED_HUB
    assert scan.location == atlanta
    first.refresh_from_db()
    assert first.current_location == atlanta

    poll(ups, second)
    assert Location.objects.filter(city="Atlanta").count() == 1
    assert Location.objects.filter(code="ups-louisville-us").exists()
    second.refresh_from_db()
    assert second.current_location == atlanta
    assert second.origin is not None
    assert second.origin.city == "Louisville"


def test_a_place_in_a_country_of_one_time_zone_gets_that_zone(
    fake_carrier: FakeCarrier,
) -> None:
    dhl = connect(TrackingProvider.DHL_EXPRESS)
    [shipment] = dispatched_earlier(dhl)
    leipzig = {
        "code": "LEJ",
        "city": "Leipzig",
        "region": "",
        "postcode": "",
        "country": "Germany",
        "offset": 1,
    }
    script(
        fake_carrier, shipment.tracking_number, events=journey(("arrived", 1, leipzig))
    )

    poll(dhl, shipment)

    location = Location.objects.get(city__iexact="Leipzig")
    assert location.code == "dhl-express-leipzig-de"
    assert location.country == "DE"
    assert location.timezone == "Europe/Berlin"
    assert location.name == "DHL Express Leipzig"
    assert events_of(shipment)[0].location == location


def test_a_known_hub_in_the_carriers_city_is_used_not_copied(
    fake_carrier: FakeCarrier,
) -> None:
    hub = Location.objects.create(
        code="atl-hub",
        name="Atlanta hub",
        city="Atlanta",
        country="US",
        timezone="America/New_York",
    )
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier, shipment.tracking_number, events=journey(("arrived", 1, ATLANTA))
    )

    poll(ups, shipment)

    assert Location.objects.filter(city="Atlanta").count() == 1
    assert events_of(shipment)[0].location == hub


def test_out_for_delivery_is_asked_about_every_twenty_minutes(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(
            ("picked_up", 5, LOUISVILLE), ("out_for_delivery", 0.5, ATLANTA)
        ),
    )

    [sync] = poll(ups, shipment)

    sync.refresh_from_db()
    assert sync.last_synced_at is not None
    wait = sync.next_due_at - sync.last_synced_at
    assert timedelta(minutes=18) <= wait <= timedelta(minutes=22)
    # Its place is a last-mile depot.
    assert Location.objects.get(city="Atlanta").kind == Location.Kind.DEPOT


def test_the_carriers_delivery_closes_the_record_and_ends_following(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA), ("delivered", 0.2, ATLANTA)),
    )

    [sync] = poll(ups, shipment)

    shipment.refresh_from_db()
    assert shipment.status == S.DELIVERED
    assert Notification.objects.filter(shipment=shipment, kind=Kind.DELIVERED).exists()
    sync.refresh_from_db()
    assert sync.is_done
    assert sync.last_result == R.OK


def test_a_carrier_exception_opens_one_exception_in_the_queue(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA), ("exception", 1, LOUISVILLE)),
    )

    poll(ups, shipment)
    poll(ups, shipment)

    assert DeliveryException.objects.filter(shipment=shipment).count() == 1
    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION


def test_a_later_eta_from_the_carrier_is_an_eta_change_with_the_delay_notice(
    fake_carrier: FakeCarrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    promised = shipment.estimated_delivery
    assert promised is not None
    later = timezone.now() + timedelta(days=5)
    # The carrier's answer carries its new scheduled delivery date (a
    # calendar date, as the carrier's UTC day).
    monkeypatch.setattr(fake_carrier, "eta", lambda number: later)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA)),
    )

    [sync] = poll(ups, shipment)

    shipment.refresh_from_db()
    assert shipment.estimated_delivery == later.astimezone(UTC).date()
    change = TrackingEvent.objects.get(shipment=shipment, kind=EventKind.ETA_CHANGED)
    assert change.source == Source.CARRIER
    assert change.integration == "UPS"
    assert change.data["from"] == promised.isoformat()
    assert Notification.objects.filter(shipment=shipment, kind=Kind.DELAY).exists()
    sync.refresh_from_db()
    assert f"ETA now {later.astimezone(UTC).date():%Y-%m-%d}" in sync.last_message

    # Asked again: the same date is no change.
    poll(ups, shipment)
    assert (
        TrackingEvent.objects.filter(
            shipment=shipment, kind=EventKind.ETA_CHANGED
        ).count()
        == 1
    )


def test_an_earlier_eta_moves_the_date_without_a_delay_notice(
    fake_carrier: FakeCarrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    sooner = timezone.now() + timedelta(days=1)
    monkeypatch.setattr(fake_carrier, "eta", lambda number: sooner)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA)),
    )

    poll(ups, shipment)

    shipment.refresh_from_db()
    assert shipment.estimated_delivery == sooner.astimezone(UTC).date()
    assert not Notification.objects.filter(shipment=shipment, kind=Kind.DELAY).exists()


# --- bad input -------------------------------------------------------------------


def test_a_number_the_carrier_does_not_know_is_marked_and_asked_less_often(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(fake_carrier, shipment.tracking_number, scenario="unknown")

    [sync] = poll(ups, shipment)

    sync.refresh_from_db()
    assert sync.last_result == R.UNKNOWN_NUMBER
    assert "Tracking Information Not Found" in sync.last_message
    assert sync.unknown_since is not None
    wait = sync.next_due_at - sync.unknown_since
    assert timedelta(hours=5.4) <= wait <= timedelta(hours=6.6)
    assert not events_of(shipment)
    assert not DeliveryException.objects.filter(shipment=shipment).exists()
    first_seen = sync.unknown_since

    poll(ups, shipment)
    sync.refresh_from_db()
    assert sync.unknown_since == first_seen
    assert not DeliveryException.objects.filter(shipment=shipment).exists()


def test_an_unknown_number_is_given_up_after_a_week(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(fake_carrier, shipment.tracking_number, scenario="unknown")
    CarrierSync.objects.filter(shipment=shipment).update(
        unknown_since=timezone.now() - timedelta(days=7, minutes=1)
    )

    [sync] = poll(ups, shipment)

    sync.refresh_from_db()
    assert sync.is_done
    assert "following it stopped" in sync.last_message


@pytest.fixture
def supervisors(db: None) -> list[str]:
    UserFactory(username="sam", email="sam@example.com", role=roles.SUPERVISOR)
    UserFactory(username="mia", email="mia@example.com", role=roles.MANAGER)
    UserFactory(username="cs", email="cs@example.com", role=roles.CUSTOMER_SERVICE)
    return ["mia@example.com", "sam@example.com"]


def alerts() -> list[Any]:
    return [m for m in mail.outbox if m.subject.startswith("Carrier tracking stopped")]


def test_wrong_credentials_mark_the_account_failing_and_alert_staff_once(
    fake_carrier: FakeCarrier,
    supervisors: list[str],
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    ups = connect()
    shipments = dispatched_earlier(ups, 2)
    fake_carrier.set_mode("wrong_credentials", provider="ups")

    for _ in range(3):  # three polls of a failing account
        with django_capture_on_commit_callbacks(execute=True):
            poll(ups, *shipments)

    ups.refresh_from_db()
    assert ups.state == CarrierAccount.State.FAILING
    assert ups.failing_since is not None
    assert "UPS refused the account" in ups.state_message
    assert ups.backoff_until is not None
    assert ups.backoff_until - ups.last_poll_at == timedelta(minutes=30)  # type: ignore[operator]
    [alert] = alerts()
    assert sorted(alert.to) == supervisors
    assert "UPS" in alert.subject
    assert ups.state_message in alert.body
    assert ups.alerted_at is not None
    for shipment in shipments:
        sync = sync_of(shipment)
        assert sync.last_result == R.ACCOUNT_FAILING
        assert sync.next_due_at >= ups.backoff_until
    assert not TrackingEvent.objects.filter(source=Source.CARRIER).exists()

    # Fixed: the next poll works and clears the failing state.
    fake_carrier.set_mode("ok")
    with django_capture_on_commit_callbacks(execute=True):
        poll(ups, *shipments)
    ups.refresh_from_db()
    assert ups.state == CarrierAccount.State.OK
    assert ups.state_message == ""
    assert ups.failing_since is None
    assert ups.alerted_at is None
    assert ups.backoff_until is None
    assert {sync_of(s).last_result for s in shipments} == {R.OK}

    # A new failing spell is a new alert.
    fake_carrier.set_mode("wrong_credentials", provider="ups")
    with django_capture_on_commit_callbacks(execute=True):
        poll(ups, *shipments)
    assert len(alerts()) == 2


def test_a_429_backs_the_account_off_as_long_as_the_carrier_asks(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    fake_carrier.set_mode("rate_limited", provider="ups", retry_after=90)

    [sync] = poll(ups, shipment)

    ups.refresh_from_db()
    assert ups.last_poll_at is not None
    assert ups.backoff_until == ups.last_poll_at + timedelta(seconds=90)
    assert ups.state != CarrierAccount.State.FAILING
    sync.refresh_from_db()
    assert sync.last_result == R.RATE_LIMITED
    assert sync.failures == 0
    assert ups.backoff_until <= sync.next_due_at
    assert sync.next_due_at < ups.backoff_until + timedelta(minutes=5)


def test_a_429_without_retry_after_backs_off_doubling(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    fake_carrier.set_mode("rate_limited", provider="ups", retry_after=None)

    waits = []
    for _ in range(3):
        poll(ups, shipment)
        ups.refresh_from_db()
        waits.append(ups.backoff_until - ups.last_poll_at)  # type: ignore[operator]

    assert waits == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
    ]


def test_a_carrier_answering_500_backs_off_and_marks_the_shipments_error(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    fake_carrier.set_mode("server_error", provider="ups", endpoint="track")

    poll(ups, shipment)
    poll(ups, shipment)

    ups.refresh_from_db()
    assert ups.failures == 2
    assert ups.backoff_until == ups.last_poll_at + timedelta(seconds=60)  # type: ignore[operator]
    sync = sync_of(shipment)
    assert sync.last_result == R.ERROR
    assert "UPS is not answering properly" in sync.last_message
    assert sync.failures == 2
    assert sync.next_due_at >= ups.backoff_until

    # It answers again: the back-off ends with the first good answer.
    fake_carrier.set_mode("ok")
    poll(ups, shipment)
    ups.refresh_from_db()
    assert ups.failures == 0
    assert ups.backoff_until is None
    assert sync_of(shipment).failures == 0


def test_a_carrier_answering_garbage_is_an_error_not_a_crash(
    fake_carrier: FakeCarrier,
) -> None:
    fedex = connect(TrackingProvider.FEDEX)
    shipments = dispatched_earlier(fedex, 3)
    fake_carrier.set_mode("garbage", provider="fedex", endpoint="track")

    poll(fedex, *shipments)

    assert {sync_of(s).last_result for s in shipments} == {R.ERROR}
    assert not events_of(shipments[0])


def test_a_carrier_delivery_after_staff_closed_it_as_returned_is_kept_and_flagged(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect()
    [shipment] = dispatched_earlier(ups)
    script(
        fake_carrier,
        shipment.tracking_number,
        events=journey(("picked_up", 5, ATLANTA), ("delivered", 0.5, ATLANTA)),
    )
    checkpoint_record(
        shipment=shipment,
        kind=EventKind.RETURNED,
        user=None,
        occurred_at=timezone.now() - timedelta(hours=1),
    )

    [sync] = poll(ups, shipment)

    shipment.refresh_from_db()
    assert shipment.status == S.RETURNED
    note = TrackingEvent.objects.get(
        shipment=shipment, source=Source.CARRIER, kind=EventKind.NOTE
    )
    assert note.integration == "UPS"
    assert note.data["carrier_said"] == "delivered"
    assert note.data["carrier_text"]
    assert "the record stays returned to sender" in note.notes
    sync.refresh_from_db()
    assert "says this package was delivered" in sync.flag
    assert "returned to sender" in sync.flag

    # Asked again (Sync now): still one note, the flag unchanged.
    poll(ups, shipment)
    assert (
        TrackingEvent.objects.filter(shipment=shipment, kind=EventKind.NOTE).count()
        == 1
    )


def test_one_shipment_failing_to_record_does_not_stop_the_others(
    fake_carrier: FakeCarrier,
) -> None:
    fedex = connect(TrackingProvider.FEDEX)
    good, bad, unknown = dispatched_earlier(fedex, 3)
    for shipment in (good, bad):
        script(
            fake_carrier,
            shipment.tracking_number,
            events=journey(("picked_up", 2, ATLANTA)),
        )
    script(fake_carrier, unknown.tracking_number, scenario="unknown")
    # The database refuses this one shipment's events (a fault, injected in
    # PostgreSQL itself).
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON shipments_trackingevent "
            f"FOR EACH ROW WHEN (NEW.shipment_id = {int(bad.pk)}) "
            "EXECUTE FUNCTION refuse_event()"
        )

    poll(fedex, good, bad, unknown)

    assert sync_of(good).last_result == R.OK
    assert len(events_of(good)) == 1
    assert sync_of(unknown).last_result == R.UNKNOWN_NUMBER
    failed = sync_of(bad)
    assert failed.last_result == R.ERROR
    assert "could not be recorded" in failed.last_message
    assert "disk full" in failed.last_message
    assert failed.failures == 1
    assert not events_of(bad)


def test_a_batch_makes_no_more_requests_than_the_minute_allows(
    fake_carrier: FakeCarrier,
) -> None:
    ups = connect(requests_per_minute=2)
    shipments = dispatched_earlier(ups, 5)
    now = timezone.now()

    poll(ups, *shipments, now=now)

    assert fake_carrier.stats().get("ups.track") == 2
    results = [sync_of(s) for s in shipments]
    asked = [s for s in results if s.last_attempt_at is not None]
    waiting = [s for s in results if s.last_attempt_at is None]
    assert len(asked) == 2
    assert len(waiting) == 3
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert all(s.next_due_at == next_minute and s.queued_at is None for s in waiting)


def _moments(syncs: list[CarrierSync]) -> list[datetime]:
    return sorted(s.next_due_at for s in syncs)


def test_a_batch_synced_at_one_instant_falls_due_again_spread_out(
    fake_carrier: FakeCarrier,
) -> None:
    fedex = connect(TrackingProvider.FEDEX)
    shipments = dispatched_earlier(fedex, 20)
    for shipment in shipments:
        script(
            fake_carrier,
            shipment.tracking_number,
            events=journey(("picked_up", 2, ATLANTA)),
        )

    poll(fedex, *shipments)

    dues = _moments([sync_of(s) for s in shipments])
    assert len(set(dues)) == 20
    assert dues[-1] - dues[0] > timedelta(minutes=15)
