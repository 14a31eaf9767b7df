"""Carrier tracking on the staff pages: the shipment page's panel, *Sync now*,
carrier checkpoints in the timeline, and the monitor's "Carrier data stale"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from shipments import selectors
from shipments.carriers.credentials import credentials_encrypt
from shipments.carriers.fake.server import FakeCarrier
from shipments.ingest import CheckpointIn, checkpoints_ingest
from shipments.models import Carrier, CarrierAccount, CarrierSync, Shipment, Source
from shipments.status import EventKind
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    UserFactory,
    dispatched_shipment,
)
from tests.helpers import karrio_warm_up

pytestmark = pytest.mark.django_db

UPS_A = "1Z999AA10123456784"
UPS_B = "1Z999AA10123456793"
STALE = timedelta(hours=6)


@pytest.fixture
def ups() -> Carrier:
    return CarrierFactory()


@pytest.fixture
def account(ups: Carrier) -> CarrierAccount:
    return CarrierAccount.objects.create(
        carrier=ups,
        provider="ups",
        credentials=credentials_encrypt({"client_id": "a", "client_secret": "b"}),
    )


@pytest.fixture
def shipment(ups: Carrier, account: CarrierAccount) -> Shipment:
    return dispatched_shipment(carrier=ups, tracking_number=UPS_A)


def _sync(shipment: Shipment, **fields: Any) -> CarrierSync:
    now = timezone.now()
    values: dict[str, Any] = {
        "account": shipment.carrier.account,  # type: ignore[union-attr]
        "next_due_at": now + timedelta(minutes=40),
        "last_attempt_at": now - timedelta(minutes=80),
        "last_synced_at": now - timedelta(minutes=80),
        "last_result": CarrierSync.Result.OK,
    }
    values.update(fields)
    return CarrierSync.objects.create(shipment=shipment, **values)


def _page(client: Client, shipment: Shipment) -> str:
    response = client.get(shipment.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def _panel(html: str) -> str:
    start = html.index('data-testid="carrier-tracking"')
    return html[start : html.index("</div></div>", start)]


# --- the panel ----------------------------------------------------------------


def test_the_panel_says_when_it_was_synced_with_what_result_and_when_next(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    _sync(shipment, last_message="1 new event")
    client.force_login(cs_agent)

    panel = _panel(_page(client, shipment))

    assert "Carrier tracking" in panel
    assert "an hour ago" in panel
    assert "Synced" in panel
    assert "1 new event" in panel
    assert "39\xa0minutes from now" in panel or "40\xa0minutes from now" in panel
    assert "stale" not in panel


def test_the_panel_shows_the_carriers_refusal_in_words(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    _sync(
        shipment,
        last_synced_at=None,
        last_result=CarrierSync.Result.UNKNOWN_NUMBER,
        last_message="Tracking number not found: 151044",
    )
    client.force_login(cs_agent)

    panel = _panel(_page(client, shipment))

    assert "Carrier does not know the number" in panel
    assert "Tracking number not found: 151044" in panel
    assert "never" in panel


def test_the_panel_shows_the_flag_when_the_carrier_contradicts_the_record(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    flag = "UPS says delivered, but the shipment was closed as returned."
    _sync(shipment, flag=flag)
    client.force_login(cs_agent)

    html = _page(client, shipment)

    assert 'data-testid="carrier-flag"' in html
    assert flag in _panel(html)


def test_the_panel_warns_when_the_carriers_account_is_failing(
    client: Client, cs_agent: User, shipment: Shipment, account: CarrierAccount
) -> None:
    CarrierAccount.objects.filter(pk=account.pk).update(
        state=CarrierAccount.State.FAILING,
        state_message="401: Invalid Authentication Information.",
        failing_since=timezone.now(),
    )
    client.force_login(cs_agent)

    panel = _panel(_page(client, shipment))

    assert "account is failing" in panel
    assert "Invalid Authentication Information." in panel


def test_a_shipment_not_synced_yet_waits_for_the_next_poll(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    client.force_login(cs_agent)

    panel = _panel(_page(client, shipment))

    assert "Not synced yet" in panel
    assert "At the next poll." in panel


def test_an_own_fleet_shipment_has_no_carrier_panel(
    client: Client, cs_agent: User
) -> None:
    own = dispatched_shipment()
    client.force_login(cs_agent)

    assert 'data-testid="carrier-tracking"' not in _page(client, own)


@pytest.mark.parametrize(
    ("persona", "sees_button"),
    [("staff", True), ("supervisor", True), ("cs_agent", False)],
)
def test_sync_now_is_offered_to_those_who_record_checkpoints(
    client: Client,
    request: pytest.FixtureRequest,
    shipment: Shipment,
    persona: str,
    sees_button: bool,
) -> None:
    client.force_login(request.getfixturevalue(persona))

    html = _panel(_page(client, shipment))

    assert ("Sync now" in html) is sees_button


def test_no_sync_now_while_the_account_is_off(
    client: Client, staff: User, shipment: Shipment, account: CarrierAccount
) -> None:
    CarrierAccount.objects.filter(pk=account.pk).update(is_active=False)
    client.force_login(staff)

    panel = _panel(_page(client, shipment))

    assert "Sync now" not in panel
    assert "The carrier account is off." in panel


def test_the_panel_costs_no_query_of_its_own(
    client: Client,
    supervisor: User,
    shipment: Shipment,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    _sync(shipment, flag="Delivered after returned")
    client.force_login(supervisor)
    from tests.shipments.test_views import DETAIL_QUERIES

    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(shipment.get_absolute_url())

    assert response.context["carrier_panel"].sync.flag


def test_the_panel_reads_only_what_the_shipment_page_joined(
    shipment: Shipment, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _sync(shipment)
    loaded = selectors.shipment_get(user=None, code=shipment.shipment_id)  # type: ignore[arg-type]

    with django_assert_num_queries(0):
        panel = selectors.carrier_panel(
            shipment=loaded, now=timezone.now(), stale_after=STALE
        )

    assert panel is not None
    assert panel.result == "Synced"


# --- carrier checkpoints in the timeline --------------------------------------


def test_carrier_checkpoints_show_the_carrier_as_responsible_and_its_own_words(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    hub = LocationFactory(code="ups-chi", name="Chicago UPS hub", city="Chicago")
    [result] = checkpoints_ingest(
        [
            CheckpointIn(
                reference=UPS_A,
                kind=EventKind.ARRIVED_HUB,
                occurred_at=timezone.now() - timedelta(minutes=5),
                location=hub.code,
                external_id="ups:1",
                data={"carrier_status": "AR", "carrier_text": "Arrival Scan"},
            )
        ],
        source=Source.CARRIER,
        integration="UPS",
    )
    assert result.status == "created", result
    client.force_login(cs_agent)

    html = _page(client, shipment)
    timeline = html[html.index('data-testid="timeline"') :]
    row = timeline[timeline.index("Arrived at hub") :]
    row = row[: row.index("</tr>")]

    assert "UPS: “Arrival Scan”" in row
    assert "<td>UPS</td>" in row  # responsible: the carrier, not "system"
    assert 'data-testid="from-carrier"' in row
    assert "Carrier tracking" in row


# --- Sync now: who may -----------------------------------------------------------


def _sync_now(client: Client, shipment: Shipment) -> Any:
    return client.post(reverse("shipment-sync-now", args=[shipment.shipment_id]))


def test_sync_now_sends_anonymous_visitors_to_the_login_page(
    client: Client, shipment: Shipment
) -> None:
    url = reverse("shipment-sync-now", args=[shipment.shipment_id])

    response = client.post(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    assert not CarrierSync.objects.exists()


@pytest.mark.parametrize("persona", ["cs_agent", "outsider"])
def test_sync_now_is_refused_to_those_who_do_not_record_checkpoints(
    client: Client, request: pytest.FixtureRequest, shipment: Shipment, persona: str
) -> None:
    client.force_login(request.getfixturevalue(persona))

    assert _sync_now(client, shipment).status_code == 403
    assert not CarrierSync.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_sync_now_takes_only_a_post(
    client: Client, staff: User, shipment: Shipment, method: str
) -> None:
    client.force_login(staff)
    url = reverse("shipment-sync-now", args=[shipment.shipment_id])

    assert getattr(client, method)(url).status_code == 405


def test_sync_now_checks_the_csrf_token(shipment: Shipment, staff: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    assert _sync_now(client, shipment).status_code == 403


def test_sync_now_of_an_unknown_shipment_is_a_404(client: Client, staff: User) -> None:
    client.force_login(staff)

    response = client.post(reverse("shipment-sync-now", args=["SH-NOPE0000"]))

    assert response.status_code == 404


def test_sync_now_without_a_carrier_account_says_why_as_an_error(
    client: Client, staff: User
) -> None:
    own = dispatched_shipment()
    client.force_login(staff)

    response = _sync_now(client, own)

    assert response.status_code == 302
    page = client.get(response["Location"])
    [message] = list(page.context["messages"])
    assert message.level_tag == "error"
    assert message.message
    assert not CarrierSync.objects.exists()


# --- the monitor's "Carrier data stale" ------------------------------------------


def _stale_codes(now: Any = None) -> set[str]:
    queryset = selectors.carrier_stale(
        selectors.monitor_queryset(), now=now or timezone.now(), stale_after=STALE
    )
    return set(queryset.values_list("shipment_id", flat=True))


def test_stale_means_no_successful_sync_for_longer_than_the_setting(
    ups: Carrier, account: CarrierAccount
) -> None:
    now = timezone.now()
    fresh = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    _sync(fresh, last_synced_at=now - timedelta(hours=5))
    old = dispatched_shipment(carrier=ups, tracking_number=UPS_B)
    _sync(
        old,
        last_synced_at=now - timedelta(hours=7),
        last_result=CarrierSync.Result.ERROR,
        last_attempt_at=now - timedelta(minutes=5),
    )

    assert _stale_codes(now) == {old.shipment_id}


def test_never_synced_is_stale_once_dispatched_longer_ago_than_the_setting(
    ups: Carrier, account: CarrierAccount
) -> None:
    late = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    Shipment.objects.filter(pk=late.pk).update(
        dispatched_at=timezone.now() - timedelta(hours=8)
    )
    just_now = dispatched_shipment(carrier=ups, tracking_number=UPS_B)
    _sync(just_now, last_synced_at=None, last_result="")

    assert _stale_codes() == {late.shipment_id}


def test_done_closed_unconnected_and_switched_off_are_never_stale(
    ups: Carrier, account: CarrierAccount
) -> None:
    later = timezone.now() + timedelta(days=2)
    done = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    _sync(done, is_done=True)
    own = dispatched_shipment()  # own fleet: no account
    fedex = CarrierFactory(code="fedex", name="FedEx", tracking_family="fedex")
    unconnected = dispatched_shipment(carrier=fedex, tracking_number="123456789012")
    on = dispatched_shipment(carrier=ups, tracking_number=UPS_B)

    assert _stale_codes(later) == {on.shipment_id}
    assert own.shipment_id not in _stale_codes(later)
    assert unconnected.shipment_id not in _stale_codes(later)

    CarrierAccount.objects.filter(pk=account.pk).update(is_active=False)
    assert _stale_codes(later) == set()


def test_the_monitor_filters_by_carrier_data_stale(
    client: Client, cs_agent: User, ups: Carrier, account: CarrierAccount
) -> None:
    stale = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    _sync(stale, last_synced_at=timezone.now() - timedelta(days=1))
    fresh = dispatched_shipment(carrier=ups, tracking_number=UPS_B)
    _sync(fresh)
    client.force_login(cs_agent)

    everything = client.get(reverse("monitor"))
    filtered = client.get(reverse("monitor"), {"carrier_stale": "on"})

    assert "Carrier data stale" in everything.content.decode()
    assert {s.shipment_id for s in everything.context["page"].object_list} >= {
        stale.shipment_id,
        fresh.shipment_id,
    }
    assert [s.shipment_id for s in filtered.context["page"].object_list] == [
        stale.shipment_id
    ]


@pytest.mark.parametrize("n", [3, 30])
def test_the_stale_filtered_monitor_costs_the_same_queries_for_3_or_30(
    client: Client,
    cs_agent: User,
    ups: Carrier,
    account: CarrierAccount,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    from tests.shipments.test_views import MONITOR_QUERIES

    for i in range(n):
        s = dispatched_shipment(carrier=ups, tracking_number=_ups_number(i))
        _sync(s, last_synced_at=timezone.now() - timedelta(days=1))
    client.force_login(cs_agent)

    with django_assert_max_num_queries(MONITOR_QUERIES):
        response = client.get(reverse("monitor"), {"carrier_stale": "on"})

    assert len(response.context["page"].object_list) == n


def _ups_number(i: int) -> str:
    from shipments import tracking_numbers as tn

    body = f"1Z999AA1{i:09d}"
    for check in "0123456789":
        try:
            return tn.validate(body + check, tn.Family.UPS).number
        except tn.InvalidTrackingNumber:
            continue
    raise AssertionError(body)


def test_an_administrator_may_sync_now_too(client: Client, shipment: Shipment) -> None:
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)

    assert "Sync now" in _panel(_page(client, shipment))


# --- Sync now against the local fake carrier -------------------------------------

LOUISVILLE = {
    "code": "LOU",
    "city": "Louisville",
    "region": "KY",
    "postcode": "40201",
    "country": "US",
    "offset": -5,
}


@pytest.fixture(scope="module")
def karrio_imported() -> None:
    # These tests are about the page, not karrio's start-up (reported).
    karrio_warm_up()


def _messages(client: Client, response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 302, response
    page = client.get(response["Location"])
    return [(m.level_tag, m.message) for m in page.context["messages"]]


def test_sync_now_brings_the_carriers_checkpoints_and_says_how_many(
    client: Client,
    staff: User,
    shipment: Shipment,
    fake_carrier: FakeCarrier,
    karrio_imported: None,
) -> None:
    fake_carrier.script(
        UPS_A,
        events=[
            {"kind": "picked_up", "hours_ago": 0.002, "place": LOUISVILLE},
            {"kind": "arrived", "hours_ago": 0.001, "place": LOUISVILLE},
        ],
    )
    client.force_login(staff)

    said = _messages(client, _sync_now(client, shipment))

    [(level, text)] = said
    assert level == "success"
    assert text.startswith("Synced with UPS: 2 new events"), text
    events = shipment.events.filter(source=Source.CARRIER)
    kinds = sorted(events.values_list("kind", flat=True))
    assert EventKind.PICKED_UP in kinds
    assert EventKind.ARRIVED_HUB in kinds
    assert set(events.values_list("integration", flat=True)) == {"UPS"}
    panel = _panel(_page(client, shipment))
    assert "Synced" in panel
    assert "now" in panel

    # Asked again, the same carrier events are not recorded twice.
    [(level, text)] = _messages(client, _sync_now(client, shipment))
    assert (level, text) == ("success", "Synced with UPS: No new events.")
    assert sorted(events.values_list("kind", flat=True)) == kinds


def test_sync_now_says_when_the_carrier_does_not_know_the_number(
    client: Client,
    staff: User,
    shipment: Shipment,
    fake_carrier: FakeCarrier,
    karrio_imported: None,
) -> None:
    fake_carrier.script(UPS_A, scenario="unknown")
    client.force_login(staff)

    [(level, text)] = _messages(client, _sync_now(client, shipment))

    assert level == "warning"
    assert text.startswith("Not synced with UPS — Carrier does not know the number"), (
        text
    )


@pytest.mark.parametrize("mode", ["wrong_credentials", "server_error", "garbage"])
def test_a_carrier_failing_on_sync_now_is_a_clear_message_not_a_500(
    client: Client,
    staff: User,
    shipment: Shipment,
    fake_carrier: FakeCarrier,
    karrio_imported: None,
    mode: str,
) -> None:
    fake_carrier.set_mode(mode)
    client.force_login(staff)

    [(level, text)] = _messages(client, _sync_now(client, shipment))

    assert level == "error"
    assert text.startswith("Not synced with UPS — "), text
    assert not shipment.events.filter(source=Source.CARRIER).exists()


def test_sync_now_of_a_shipment_not_dispatched_yet_is_refused_with_the_reason(
    client: Client, staff: User, ups: Carrier, account: CarrierAccount
) -> None:
    from tests.factories import ready_shipment

    waiting = ready_shipment()
    client.force_login(staff)

    [(level, text)] = _messages(client, _sync_now(client, waiting))

    assert level == "error"
    assert "dispatch it first" in text
