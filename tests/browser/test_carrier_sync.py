"""Carrier tracking sync clicked through in Chromium: an administrator
connects a carrier by typing its credentials, staff press *Sync now*, and the
carrier's checkpoints appear in the timeline marked as the carrier's. The
shipment page with the carrier panel fits 1280, 768 and 375 px."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from shipments.carriers.credentials import credentials_encrypt
from shipments.carriers.fake.server import FakeCarrier
from shipments.ingest import CheckpointIn, checkpoints_ingest
from shipments.models import CarrierAccount, CarrierSync, Shipment, Source
from shipments.status import EventKind
from tests.browser.conftest import PASSWORD
from tests.browser.test_layout import LONG_NAME, layout_problems
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    UserFactory,
    dispatched_shipment,
)
from tests.helpers import karrio_warm_up

pytestmark = pytest.mark.browser

UPS_A = "1Z999AA10123456784"
LONG_TEXT = (
    "Your package is delayed due to an emergency situation or severe weather "
    "conditions at the UPS facility in Louisville-Jefferson County International "
    "Hub: https://www.ups.com/track?loc=en_US&tracknum=" + UPS_A + "&requester=ST/"
)


@pytest.fixture
def synced(staff: User) -> Shipment:
    """A UPS shipment synced with long carrier words everywhere they show."""
    ups = CarrierFactory()
    account = CarrierAccount.objects.create(
        carrier=ups,
        provider="ups",
        credentials=credentials_encrypt({"client_id": "a", "client_secret": "b"}),
        state=CarrierAccount.State.FAILING,
        state_message="401 Unauthorized: " + LONG_TEXT,
        failing_since=timezone.now() - timedelta(hours=3),
    )
    shipment = dispatched_shipment(
        carrier=ups, tracking_number=UPS_A, recipient_name=LONG_NAME
    )
    hub = LocationFactory(code="sdf", name="Louisville Worldport", city="Louisville")
    now = timezone.now()
    checkpoints_ingest(
        [
            CheckpointIn(
                reference=UPS_A,
                kind=EventKind.ARRIVED_HUB,
                occurred_at=now - timedelta(hours=2),
                location=hub.code,
                external_id="ups:1",
                data={"carrier_status": "AR", "carrier_text": LONG_TEXT},
            ),
            CheckpointIn(
                reference=UPS_A,
                kind=EventKind.IN_TRANSIT_SCAN,
                occurred_at=now - timedelta(hours=1),
                external_id="ups:2",
                data={
                    "carrier_status": "I",
                    "carrier_text": "On the Way",
                    "carrier_location": "Louisville, KY, 40213, US, "
                    "Jefferson County International Sorting Annex",
                },
            ),
        ],
        source=Source.CARRIER,
        integration="UPS",
    )
    CarrierSync.objects.create(
        shipment=shipment,
        account=account,
        next_due_at=now + timedelta(minutes=20),
        last_attempt_at=now - timedelta(minutes=10),
        last_synced_at=now - timedelta(hours=9),
        last_result=CarrierSync.Result.ERROR,
        last_message=LONG_TEXT,
        flag="UPS says delivered, but the shipment was closed as returned: "
        + LONG_TEXT,
    )
    return shipment


@pytest.mark.parametrize("width", [1280, 768, 375])
def test_the_carrier_panel_fits_the_screen(
    log_in: Any, live_server: LiveServer, synced: Shipment, width: int
) -> None:
    page: Page = log_in("logistics")
    page.set_viewport_size({"width": width, "height": 800})

    problems = layout_problems(
        page, live_server.url + synced.get_absolute_url(), [synced.shipment_id]
    )

    panel = page.get_by_test_id("carrier-tracking")
    expect(panel).to_be_visible()
    expect(panel.get_by_test_id("carrier-flag")).to_contain_text("closed as returned")
    expect(panel.get_by_role("button", name="Sync now")).to_be_visible()
    box = panel.get_by_role("button", name="Sync now").bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= width
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def karrio_loaded() -> None:
    # The flow is about the pages, not karrio's start-up time (reported).
    karrio_warm_up()


def test_an_administrator_connects_ups_and_staff_sync_a_shipment_from_the_carrier(
    page: Page,
    live_server: LiveServer,
    log_in: Any,
    staff: User,
    fake_carrier: FakeCarrier,
    karrio_loaded: None,
) -> None:
    ups = CarrierFactory()
    shipment = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    place = {
        "code": "SDF",
        "city": "Louisville",
        "region": "KY",
        "postcode": "40213",
        "country": "US",
        "offset": -5,
    }
    fake_carrier.script(
        UPS_A,
        events=[
            {
                "kind": "picked_up",
                "hours_ago": 0.003,
                "place": place,
            },
            {
                "kind": "arrived",
                "hours_ago": 0.002,
                "place": place,
            },
        ],
    )
    UserFactory(username="root", is_staff=True, is_superuser=True)
    secret = "fake-ups-secret-7f3a"

    # The administrator enters the account's credentials in the admin.
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Carrier accounts").click()
    page.get_by_role("link", name="Add carrier account").click()
    page.get_by_label("Carrier:", exact=True).select_option(label="UPS")
    page.get_by_label("Provider:").select_option(label="UPS")
    page.get_by_label("Credentials (JSON)").fill(
        f'{{"client_id": "tracksop-demo", "client_secret": "{secret}"}}'
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.get_by_role("link", name="UPS (UPS)").click()
    expect(page.get_by_text("stored ✓ (last changed")).to_be_visible()
    assert secret not in page.content()
    expect(page.get_by_label("Credentials (JSON)")).to_be_empty()

    # Staff open the shipment and sync it with the carrier.
    page.context.clear_cookies()
    log_in("logistics")
    page.goto(live_server.url + shipment.get_absolute_url())
    panel = page.get_by_test_id("carrier-tracking")
    expect(panel.get_by_test_id("carrier-result")).to_have_text("Not synced yet")
    panel.get_by_role("button", name="Sync now").click()

    expect(page.get_by_role("status")).to_contain_text("Synced with UPS: 2 new events")
    expect(panel.get_by_test_id("carrier-result")).to_have_text("Synced")
    timeline = page.get_by_test_id("timeline")
    for kind, words in (("Picked up", "Pickup Scan"), ("Arrived at hub", "Arrived")):
        row = timeline.get_by_role("row").filter(has_text=kind)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(f"UPS: “{words}")
        expect(row.get_by_role("cell").nth(3)).to_have_text("UPS")
        expect(row.get_by_test_id("from-carrier")).to_have_text("Carrier tracking")
