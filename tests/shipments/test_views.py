"""The staff pages, driven through the Django test client.

Reads as the spec: who may open which page, the SOP walked end to end, every
kind of bad input (message at the field, status 4xx, nothing saved), constant
query counts on the list pages, and the account pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks

from shipments import services
from shipments import tracking_numbers as tn
from shipments.checkpoints import checkpoint_record, event_void
from shipments.models import Carrier, Location, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    ShipmentFactory,
    dispatched_shipment,
    ready_shipment,
)
from tests.helpers import TestResponse

pytestmark = pytest.mark.django_db

S = ShipmentStatus
K = EventKind

ROLES = ("staff", "cs_agent", "supervisor", "outsider")
EVERYONE = frozenset(ROLES)
READERS = frozenset({"staff", "cs_agent", "supervisor"})
WORKERS = frozenset({"staff", "supervisor"})
SUPERVISORS = frozenset({"supervisor"})

# Valid UPS 1Z numbers sharing the prefix 1Z999AA101234567.
UPS_A = "1Z999AA10123456784"
UPS_B = "1Z999AA10123456793"
UPS_UNUSED = "1Z999AA10123456702"
UPS_WRONG_CHECK_DIGIT = "1Z999AA10123456785"


def _code(s: Shipment) -> list[Any]:
    return [s.shipment_id]


def _first_event(s: Shipment) -> list[Any]:
    event = s.events.exclude(kind=K.CREATED).first()
    assert event is not None
    return [s.shipment_id, event.pk]


def _none(s: Shipment) -> list[Any]:
    return []


# The spec: every staff page, how to address it, and who may open it.
PAGES: list[tuple[str, Callable[[Shipment], list[Any]], frozenset[str]]] = [
    ("dashboard", _none, EVERYONE),
    ("preferences", _none, EVERYONE),
    ("shipment-search", _none, READERS),
    ("monitor", _none, READERS),
    ("shipment-detail", _code, READERS),
    ("shipment-create", _none, WORKERS),
    ("shipment-edit", _code, WORKERS),
    ("shipment-check", _code, WORKERS),
    ("shipment-dispatch", _code, WORKERS),
    ("checkpoint-create", _code, WORKERS),
    ("shipment-cancel", _code, WORKERS),
    ("bulk-scan", _none, WORKERS),
    ("event-void", _first_event, SUPERVISORS),
]
PAGE_NAMES = [name for name, _, _ in PAGES]


def _url(name: str, shipment: Shipment) -> str:
    args = next(build for page, build, _ in PAGES if page == name)(shipment)
    return reverse(name, args=args)


@pytest.fixture
def shipment() -> Shipment:
    """Ready for dispatch, so it has an event besides CREATED to void."""
    return ready_shipment()


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


# --- who may open which page -------------------------------------------------


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_each_page_sends_anonymous_visitors_to_the_login_page(
    client: Client, shipment: Shipment, name: str
) -> None:
    url = _url(name, shipment)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize(
    ("name", "role", "expected"),
    [
        (name, role, 200 if role in allowed else 403)
        for name, _, allowed in PAGES
        for role in ROLES
    ],
    ids=lambda v: str(v),
)
def test_each_page_opens_for_the_roles_allowed_and_refuses_the_others(
    client: Client,
    request: pytest.FixtureRequest,
    shipment: Shipment,
    name: str,
    role: str,
    expected: int,
) -> None:
    client.force_login(request.getfixturevalue(role))
    assert client.get(_url(name, shipment)).status_code == expected


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_each_page_rejects_a_bad_method(
    client: Client, supervisor: User, shipment: Shipment, name: str, method: str
) -> None:
    _as(client, supervisor)
    before = TrackingEvent.objects.count()
    response = getattr(client, method)(_url(name, shipment))
    assert response.status_code == 405
    assert TrackingEvent.objects.count() == before


@pytest.mark.parametrize(
    "name", ["shipment-search", "monitor", "shipment-detail", "dashboard"]
)
def test_read_only_pages_reject_a_post(
    client: Client, supervisor: User, shipment: Shipment, name: str
) -> None:
    response = _as(client, supervisor).post(_url(name, shipment))
    assert response.status_code == 405


def test_a_forbidden_role_gets_403_on_post_and_nothing_is_saved(
    client: Client, cs_agent: User, shipment: Shipment, own_fleet: Carrier
) -> None:
    response = _as(client, cs_agent).post(
        reverse("shipment-dispatch", args=[shipment.shipment_id]),
        {
            "carrier": own_fleet.pk,
            "estimated_delivery": timezone.localdate().isoformat(),
            "version": shipment.version,
        },
    )
    assert response.status_code == 403
    shipment.refresh_from_db()
    assert shipment.status == S.READY


def test_an_unknown_shipment_code_is_404(client: Client, staff: User) -> None:
    response = _as(client, staff).get(reverse("shipment-detail", args=["SH-NOPE"]))
    assert response.status_code == 404


# --- the procedure, end to end -----------------------------------------------


def _shipment_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "shipment_id": "",
        "order_number": "ORD-7781",
        "sender_name": "Acme Warehouse",
        "sender_email": "dispatch@acme.example",
        "sender_phone": "",
        "sender_address": "1 Dock Road, Newark",
        "recipient_name": "Margaret Hamilton",
        "recipient_email": "Margaret.Hamilton@Example.net",
        "recipient_phone": "+1 212 555 0100",
        "recipient_address": "742 Evergreen Terrace",
        "recipient_postcode": "62704",
        "recipient_city": "Springfield",
        "recipient_country": "us",
        "weight_kg": "2.5",
        "length_cm": "30",
        "width_cm": "20",
        "height_cm": "10",
        "contents": "Books",
        "pieces": "1",
    }
    data.update(overrides)
    return data


def _minute(when: Any) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%dT%H:%M")


def test_logistics_staff_walk_a_shipment_from_entry_to_the_first_hub(
    client: Client, staff: User, own_fleet: Carrier, hub: Location
) -> None:
    _as(client, staff)
    two_hours_ago = timezone.now() - timedelta(hours=2)

    with time_machine.travel(two_hours_ago, tick=False):
        response = client.post(reverse("shipment-create"), _shipment_form())
        shipment = Shipment.objects.get(order_number="ORD-7781")
        assert response.status_code == 302
        assert response["Location"] == shipment.get_absolute_url()
        assert re.fullmatch(r"SH-[2-9A-Z]{8}", shipment.shipment_id)
        assert shipment.status == S.CREATED
        assert shipment.recipient_country == "US"
        assert str(shipment.recipient_phone) == "+12125550100"
        assert shipment.created_by == staff

        response = client.post(
            reverse("shipment-check", args=[shipment.shipment_id]),
            {"quality": "pass", "quantity": "pass", "version": shipment.version},
        )
        assert response.status_code == 302
        shipment.refresh_from_db()
        assert shipment.status == S.READY
        assert shipment.checked_by == staff

        eta = timezone.localdate() + timedelta(days=3)
        response = client.post(
            reverse("shipment-dispatch", args=[shipment.shipment_id]),
            {
                "carrier": own_fleet.pk,
                "tracking_number": "",
                "estimated_delivery": eta.isoformat(),
                "version": shipment.version,
            },
        )
        assert response.status_code == 302
        shipment.refresh_from_db()
        assert shipment.status == S.DISPATCHED
        assert shipment.carrier == own_fleet
        assert shipment.estimated_delivery == eta
        assert shipment.tracking_number is not None
        candidate = tn.validate(shipment.tracking_number, tn.Family.S10)
        assert candidate.check_digit_ok
        assert shipment.tracking_number.startswith("TS")

    response = client.post(
        reverse("checkpoint-create", args=[shipment.shipment_id]),
        {
            "kind": K.ARRIVED_HUB,
            "location": hub.pk,
            "occurred_at": _minute(timezone.now() - timedelta(hours=1)),
            "notes": "Unloaded at dock 4",
            "version": shipment.version,
        },
    )
    assert response.status_code == 302
    shipment.refresh_from_db()
    assert shipment.status == S.IN_TRANSIT
    assert shipment.current_location == hub
    assert list(shipment.events.values_list("kind", flat=True)) == [
        K.CREATED,
        K.CHECK_PASSED,
        K.DISPATCHED,
        K.ARRIVED_HUB,
    ]
    assert set(shipment.events.values_list("recorded_by", flat=True)) == {staff.pk}

    detail = client.get(response["Location"])
    assert detail.status_code == 200
    assert "Logged: Arrived at hub." in detail.content.decode()
    assert shipment.tracking_number is not None
    assert shipment.tracking_number in detail.content.decode()


@pytest.fixture
def found() -> Shipment:
    """A dispatched shipment customer service will look for."""
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number=UPS_A,
        order_number="ORD-2024-0042",
        recipient_name="Margaret Hamilton",
        recipient_email="Margaret.Hamilton@example.net",
        recipient_phone="+12025550142",
    )


def _search(client: Client, query: str) -> Any:
    return client.get(reverse("shipment-search"), {"q": query})


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("1z 999 aa1 0123 4567 84", id="tracking number, normalised"),
        pytest.param("ord-2024-0042", id="order number, any case"),
        pytest.param("MARGARET.HAMILTON@EXAMPLE.NET", id="email, any case"),
        pytest.param("(202) 555-0142", id="phone, national format"),
        pytest.param("+1 202-555-0142", id="phone, international format"),
        pytest.param("202.555.0142", id="phone, dotted"),
    ],
)
def test_customer_service_is_taken_straight_to_an_exact_match(
    client: Client, cs_agent: User, found: Shipment, query: str
) -> None:
    ShipmentFactory(recipient_name="Someone Else")
    response = _search(_as(client, cs_agent), query)
    assert response.status_code == 302
    assert response["Location"] == found.get_absolute_url()


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(lambda s: s.shipment_id, id="as shown"),
        pytest.param(lambda s: s.shipment_id.lower(), id="lower case"),
    ],
)
def test_customer_service_finds_a_shipment_by_its_shipment_id(
    client: Client,
    cs_agent: User,
    found: Shipment,
    query: Callable[[Shipment], str],
) -> None:
    response = _search(_as(client, cs_agent), query(found))
    assert response.status_code == 302
    assert response["Location"] == found.get_absolute_url()


def test_customer_service_finds_a_shipment_by_the_start_of_its_tracking_number(
    client: Client, cs_agent: User, found: Shipment
) -> None:
    ShipmentFactory()
    response = _search(_as(client, cs_agent), "1z999 aa10")
    assert response.status_code == 200
    assert [s.pk for s in response.context["result"].shipments] == [found.pk]
    assert found.shipment_id in response.content.decode()


def test_customer_service_finds_a_shipment_by_a_fragment_of_the_recipient_name(
    client: Client, cs_agent: User, found: Shipment
) -> None:
    ShipmentFactory(recipient_name="Someone Else")
    response = _search(_as(client, cs_agent), "hamil")
    assert response.status_code == 200
    assert [s.pk for s in response.context["result"].shipments] == [found.pk]


def test_search_lists_every_shipment_when_several_match(
    client: Client, cs_agent: User, found: Shipment
) -> None:
    other = dispatched_shipment(carrier=found.carrier, tracking_number=UPS_B)
    ShipmentFactory()
    response = _search(_as(client, cs_agent), "1Z999AA1012345")
    assert response.status_code == 200
    page = response.content.decode()
    assert {s.pk for s in response.context["result"].shipments} == {
        found.pk,
        other.pk,
    }
    assert found.shipment_id in page
    assert other.shipment_id in page
    assert "2 shipments match" in page


def test_search_answers_404_with_a_message_when_nothing_matches(
    client: Client, cs_agent: User, found: Shipment
) -> None:
    response = _search(_as(client, cs_agent), "nobody-like-this")
    assert response.status_code == 404
    assert "Nothing matches “nobody-like-this”" in response.content.decode()


def test_an_empty_search_shows_the_search_box(client: Client, cs_agent: User) -> None:
    response = _search(_as(client, cs_agent), "")
    assert response.status_code == 200
    assert 'name="q"' in response.content.decode()


# --- bad input: a message at the field, a 4xx, nothing saved --------------------


def _errors(response: Any, field: str) -> list[str]:
    return list(response.context["form"].errors.get(field, []))


def _page(response: TestResponse) -> str:
    return response.content.decode()


def test_an_empty_shipment_form_is_refused_field_by_field(
    client: Client, staff: User
) -> None:
    response = _as(client, staff).post(reverse("shipment-create"), {})
    assert response.status_code == 400
    for field in (
        "order_number",
        "sender_name",
        "sender_address",
        "recipient_name",
        "recipient_address",
        "recipient_postcode",
        "recipient_city",
        "recipient_country",
        "weight_kg",
        "contents",
    ):
        assert _errors(response, field) == ["This field is required."], field
    assert 'id="error_1_id_order_number"' in _page(response)
    assert Shipment.objects.count() == 0
    assert TrackingEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "order_number",
            "9" * 5000,
            "Ensure this value has at most 64 characters (it has 5000).",
        ),
        (
            "recipient_name",
            "x" * 5000,
            "Ensure this value has at most 200 characters (it has 5000).",
        ),
        ("shipment_id", "S" * 40, "Ensure this value has at most 32 characters"),
        ("shipment_id", "-bad id!", "Use 3 to 32 letters, digits or dashes"),
        ("recipient_email", "margaret@", "Enter a valid email address."),
        ("recipient_email", "not an email", "Enter a valid email address."),
        ("recipient_phone", "12ab", "Enter a valid phone number"),
        ("recipient_phone", "+1 555", "Enter a valid phone number"),
        ("weight_kg", "-1", "Weight must be more than zero"),
        ("weight_kg", "0", "Weight must be more than zero"),
        ("weight_kg", "heavy", "Enter a number."),
        ("length_cm", "0", "Length must be more than zero"),
        ("pieces", "0", "at least one piece"),
        ("recipient_country", "USA", "at most 2 characters (it has 3)"),
        ("recipient_country", "1X", "Use the two-letter country code"),
        ("recipient_country", "ÄÖ", "Use the two-letter country code"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_the_shipment_form_refuses_a_bad_value_at_its_field(
    client: Client, staff: User, field: str, value: str, message: str
) -> None:
    response = _as(client, staff).post(
        reverse("shipment-create"), _shipment_form(**{field: value})
    )
    assert response.status_code == 400
    errors = _errors(response, field)
    assert any(message in e for e in errors), errors
    assert set(response.context["form"].errors) == {field}
    assert Shipment.objects.count() == 0


def test_the_shipment_form_refuses_a_shipment_id_already_in_use(
    client: Client, staff: User
) -> None:
    ShipmentFactory(shipment_id="SH-TAKEN01")
    response = _as(client, staff).post(
        reverse("shipment-create"), _shipment_form(shipment_id="sh-taken01")
    )
    assert response.status_code == 400
    assert _errors(response, "shipment_id") == [
        "A shipment with this shipment ID already exists."
    ]
    assert Shipment.objects.count() == 1


def test_editing_refuses_bad_input_and_keeps_the_old_details(
    client: Client, staff: User
) -> None:
    shipment = ShipmentFactory(recipient_email="old@example.net")
    response = _as(client, staff).post(
        reverse("shipment-edit", args=[shipment.shipment_id]),
        _shipment_form(recipient_email="broken@", version=shipment.version),
    )
    assert response.status_code == 400
    assert _errors(response, "recipient_email") == ["Enter a valid email address."]
    shipment.refresh_from_db()
    assert shipment.recipient_email == "old@example.net"
    assert shipment.events.count() == 1


def _dispatch(client: Client, shipment: Shipment, **data: Any) -> Any:
    payload = {
        "tracking_number": "",
        "estimated_delivery": (timezone.localdate() + timedelta(days=2)).isoformat(),
        "version": shipment.version,
        **data,
    }
    return client.post(
        reverse("shipment-dispatch", args=[shipment.shipment_id]), payload
    )


def _assert_not_dispatched(shipment: Shipment, status: str = S.READY) -> None:
    events = shipment.events.count()
    shipment.refresh_from_db()
    assert shipment.status == status
    assert shipment.tracking_number is None
    assert shipment.carrier is None
    assert shipment.events.count() == events
    assert not shipment.events.filter(kind=K.DISPATCHED).exists()


@pytest.mark.parametrize("choose_carrier", [True, False], ids=["chosen", "detected"])
def test_dispatch_refuses_a_wrong_ups_check_digit(
    client: Client, staff: User, choose_carrier: bool
) -> None:
    ups = CarrierFactory()
    shipment = ready_shipment()
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=ups.pk if choose_carrier else "",
        tracking_number=UPS_WRONG_CHECK_DIGIT,
    )
    assert response.status_code == 400
    [message] = _errors(response, "tracking_number")
    assert "check digit" in message.lower()
    assert message in _page(response)
    _assert_not_dispatched(shipment)


def test_dispatch_refuses_a_number_that_does_not_fit_the_carrier(
    client: Client, staff: User
) -> None:
    shipment = ready_shipment()
    response = _dispatch(
        _as(client, staff), shipment, carrier=CarrierFactory().pk, tracking_number="12"
    )
    assert response.status_code == 400
    assert "not a valid UPS number" in _errors(response, "tracking_number")[0]
    _assert_not_dispatched(shipment)


def test_dispatch_asks_for_the_number_of_an_external_carrier(
    client: Client, staff: User
) -> None:
    shipment = ready_shipment()
    response = _dispatch(_as(client, staff), shipment, carrier=CarrierFactory().pk)
    assert response.status_code == 400
    assert _errors(response, "tracking_number") == [
        "Enter the tracking number UPS gave for this shipment."
    ]
    _assert_not_dispatched(shipment)


def test_dispatch_refuses_a_tracking_number_another_shipment_has(
    client: Client, staff: User
) -> None:
    ups = CarrierFactory()
    first = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    shipment = ready_shipment()
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=ups.pk,
        tracking_number="1z 999 aa1 0123 4567 84",
    )
    assert response.status_code == 400
    assert _errors(response, "tracking_number") == [
        f"Shipment {first.shipment_id} already has this number."
    ]
    _assert_not_dispatched(shipment)


def test_dispatch_refuses_an_eta_in_the_past(
    client: Client, staff: User, own_fleet: Carrier
) -> None:
    shipment = ready_shipment()
    yesterday = timezone.localdate() - timedelta(days=1)
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=own_fleet.pk,
        estimated_delivery=yesterday.isoformat(),
    )
    assert response.status_code == 400
    assert _errors(response, "estimated_delivery") == [
        "The estimated delivery date is in the past."
    ]
    _assert_not_dispatched(shipment)


def test_dispatch_of_a_shipment_that_is_not_ready_is_refused_with_409(
    client: Client, staff: User, own_fleet: Carrier
) -> None:
    shipment = ShipmentFactory()
    response = _dispatch(_as(client, staff), shipment, carrier=own_fleet.pk)
    assert response.status_code == 409
    [message] = response.context["form"].non_field_errors()
    assert message == "A shipment that is Created cannot become Dispatched."
    assert message in _page(response)
    _assert_not_dispatched(shipment, status=S.CREATED)


def _checkpoint(client: Client, shipment: Shipment, **data: Any) -> Any:
    payload = {
        "kind": K.IN_TRANSIT_SCAN,
        "location": "",
        "occurred_at": _minute(timezone.now()),
        "notes": "",
        "version": shipment.version,
        **data,
    }
    return client.post(
        reverse("checkpoint-create", args=[shipment.shipment_id]), payload
    )


def test_a_checkpoint_far_in_the_future_is_refused(client: Client, staff: User) -> None:
    shipment = dispatched_shipment()
    events = shipment.events.count()
    response = _checkpoint(
        _as(client, staff),
        shipment,
        occurred_at=_minute(timezone.now() + timedelta(days=2)),
    )
    assert response.status_code == 400
    assert _errors(response, "occurred_at") == [
        "This time is in the future. Enter when it happened."
    ]
    shipment.refresh_from_db()
    assert shipment.status == S.DISPATCHED
    assert shipment.events.count() == events


def test_a_hub_scan_without_its_hub_is_refused(client: Client, staff: User) -> None:
    shipment = dispatched_shipment()
    events = shipment.events.count()
    response = _checkpoint(_as(client, staff), shipment, kind=K.ARRIVED_HUB)
    assert response.status_code == 400
    assert _errors(response, "location") == [
        "Choose the hub or facility for this scan."
    ]
    assert shipment.events.count() == events


def test_a_checkpoint_after_delivery_is_refused_with_409(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    checkpoint_record(shipment=shipment, kind=K.DELIVERED, user=None)
    shipment.refresh_from_db()
    events = shipment.events.count()
    response = _checkpoint(
        _as(client, staff),
        shipment,
        kind=K.OUT_FOR_DELIVERY,
        occurred_at=_minute(timezone.now() + timedelta(minutes=1)),
    )
    assert response.status_code == 409
    [message] = response.context["form"].non_field_errors()
    assert message == "A shipment that is Delivered cannot become Out for delivery."
    assert message in _page(response)
    shipment.refresh_from_db()
    assert shipment.status == S.DELIVERED
    assert shipment.events.count() == events


def _edit_details(shipment: Shipment, user: User) -> None:
    services.shipment_update(
        shipment=shipment, user=user, details={"contents": "Books and a lamp"}
    )


def _log_scan(shipment: Shipment, user: User) -> None:
    checkpoint_record(shipment=shipment, kind=K.IN_TRANSIT_SCAN, user=user)


# Each versioned form, a shipment it applies to, what it posts, and what
# "someone else" does to the shipment between loading and submitting the form.
STALE_CASES = [
    (
        "shipment-edit",
        ShipmentFactory,
        lambda: _shipment_form(recipient_city="Shelbyville"),
        _edit_details,
    ),
    (
        "shipment-check",
        ShipmentFactory,
        lambda: {"quality": "pass", "quantity": "pass"},
        _edit_details,
    ),
    (
        "shipment-dispatch",
        ready_shipment,
        lambda: {
            "carrier": CarrierFactory(
                code="fleet", name="Own fleet", tracking_family="s10", is_own_fleet=True
            ).pk,
            "estimated_delivery": timezone.localdate().isoformat(),
        },
        _edit_details,
    ),
    (
        "checkpoint-create",
        dispatched_shipment,
        lambda: {"kind": K.OUT_FOR_DELIVERY, "occurred_at": _minute(timezone.now())},
        _log_scan,
    ),
    ("shipment-cancel", ready_shipment, lambda: {"reason": "Customer"}, _edit_details),
]


@pytest.mark.parametrize(
    ("name", "make", "form", "meanwhile"), STALE_CASES, ids=[c[0] for c in STALE_CASES]
)
def test_a_form_submitted_over_someone_elses_change_is_refused_with_409(
    client: Client,
    staff: User,
    supervisor: User,
    name: str,
    make: Callable[[], Shipment],
    form: Callable[[], dict[str, Any]],
    meanwhile: Callable[[Shipment, User], None],
) -> None:
    shipment = make()
    url = reverse(name, args=[shipment.shipment_id])
    _as(client, staff)
    seen = client.get(url).context["form"]["version"].value()
    assert seen == shipment.version

    meanwhile(shipment, supervisor)
    shipment.refresh_from_db()
    before = {
        "status": shipment.status,
        "version": shipment.version,
        "events": list(shipment.events.values_list("pk", flat=True)),
        "city": shipment.recipient_city,
        "checked_at": shipment.checked_at,
        "tracking_number": shipment.tracking_number,
    }

    response = client.post(url, {**form(), "version": seen})

    assert response.status_code == 409
    [message] = response.context["form"].non_field_errors()
    assert "was changed by someone else" in message
    assert "changed by someone else" in _page(response)
    shipment.refresh_from_db()
    assert {
        "status": shipment.status,
        "version": shipment.version,
        "events": list(shipment.events.values_list("pk", flat=True)),
        "city": shipment.recipient_city,
        "checked_at": shipment.checked_at,
        "tracking_number": shipment.tracking_number,
    } == before


def test_cancelling_asks_for_a_reason(client: Client, staff: User) -> None:
    shipment = ShipmentFactory()
    response = _as(client, staff).post(
        reverse("shipment-cancel", args=[shipment.shipment_id]),
        {"reason": "", "version": shipment.version},
    )
    assert response.status_code == 400
    assert _errors(response, "reason") == ["This field is required."]
    shipment.refresh_from_db()
    assert shipment.status == S.CREATED


def test_a_failed_check_needs_a_note(client: Client, staff: User) -> None:
    shipment = ShipmentFactory()
    response = _as(client, staff).post(
        reverse("shipment-check", args=[shipment.shipment_id]),
        {"quality": "fail", "quantity": "pass", "notes": "", "version": 1},
    )
    assert response.status_code == 400
    assert _errors(response, "notes") == ["Say what is wrong when a check fails."]
    shipment.refresh_from_db()
    assert shipment.checked_at is None
    assert shipment.events.count() == 1


# --- bulk scan -----------------------------------------------------------------


def _scan(client: Client, numbers: str, location: Any) -> Any:
    return client.post(
        reverse("bulk-scan"),
        {"kind": K.ARRIVED_HUB, "location": location.pk, "numbers": numbers},
    )


@pytest.mark.parametrize("numbers", ["", "\n \n\t\n"], ids=["empty", "blank lines"])
def test_a_bulk_scan_without_numbers_is_refused(
    client: Client, staff: User, hub: Location, numbers: str
) -> None:
    dispatched_shipment()
    events = TrackingEvent.objects.count()
    response = _scan(_as(client, staff), numbers, hub)
    assert response.status_code == 400
    assert _errors(response, "numbers")
    assert TrackingEvent.objects.count() == events


def test_a_bulk_scan_of_more_than_500_numbers_is_refused(
    client: Client, staff: User, hub: Location
) -> None:
    known = dispatched_shipment()
    events = TrackingEvent.objects.count()
    assert known.tracking_number is not None
    numbers = [known.tracking_number] + [
        tn.s10_generate(prefix="RR", serial=n, country="GB") for n in range(500)
    ]
    response = _scan(_as(client, staff), "\n".join(numbers), hub)
    assert response.status_code == 400
    assert _errors(response, "numbers") == [
        "Scan at most 500 packages in one batch (501 given)."
    ]
    assert TrackingEvent.objects.count() == events


def test_a_bulk_scan_saves_the_known_numbers_and_lists_the_rest_with_reasons(
    client: Client, staff: User, hub: Location
) -> None:
    ups = CarrierFactory()
    first = dispatched_shipment(carrier=ups, tracking_number=UPS_A)
    second = dispatched_shipment()
    assert first.tracking_number is not None
    assert second.tracking_number is not None
    events = TrackingEvent.objects.count()
    lines = [
        first.tracking_number,
        "",
        f"  {second.tracking_number.lower()}  ",
        UPS_UNUSED,
        "NOT-A-NUMBER",
        "1z 999 aa1 0123 4567 84",
    ]

    response = _scan(_as(client, staff), "\n".join(lines), hub)

    assert response.status_code == 200
    result = response.context["result"]
    assert {e.shipment_id for e in result.saved} == {first.pk, second.pk}
    assert TrackingEvent.objects.count() == events + 2
    for shipment in (first, second):
        shipment.refresh_from_db()
        assert shipment.status == S.IN_TRANSIT
        assert shipment.current_location == hub
        assert shipment.events.filter(kind=K.ARRIVED_HUB, source="bulk_scan").count()
    problems = dict(result.problems)
    assert problems == {
        UPS_UNUSED: "No shipment has this tracking number.",
        "NOT-A-NUMBER": problems["NOT-A-NUMBER"],
        "1z 999 aa1 0123 4567 84": "Scanned twice in this batch; logged once.",
    }
    assert "does not match any supported carrier format" in problems["NOT-A-NUMBER"]
    page = _page(response)
    assert "2 scans saved." in page
    assert "3 not saved" in page
    for raw, reason in problems.items():
        assert raw in page
        assert reason in page
    # The next batch keeps kind and location but starts with an empty box.
    assert response.context["form"]["numbers"].value() in (None, "")
    assert response.context["form"]["location"].value() == hub.pk


def test_a_bulk_scan_where_nothing_could_be_saved_is_422(
    client: Client, staff: User, hub: Location
) -> None:
    response = _scan(_as(client, staff), UPS_UNUSED, hub)
    assert response.status_code == 422
    assert "No shipment has this tracking number." in _page(response)
    assert TrackingEvent.objects.count() == 0


# --- constant query counts -------------------------------------------------------

# Session, user, the user's and the groups' permissions (4), then the page's
# own reads; the same however many rows it shows.
MONITOR_QUERIES = 4 + 4 + 1  # count, carrier and hub filters, one page; log
SEARCH_QUERIES = 4 + 1 + 1  # one query, joins included; the access log INSERT
# The shipment, its inquiries, the timeline, the message history (joins incl.).
DETAIL_QUERIES = 4 + 4 + 1  # + the access log INSERT


def _shipments(n: int) -> list[Shipment]:
    hub = LocationFactory()
    fleet = CarrierFactory(
        code="fleet", name="Own fleet", tracking_family="s10", is_own_fleet=True
    )
    made = []
    for i in range(n):
        if i % 3 == 0:
            made.append(ShipmentFactory(recipient_name=f"Pat Example {i}"))
            continue
        shipment = dispatched_shipment(carrier=fleet, recipient_name=f"Pat Example {i}")
        checkpoint_record(
            shipment=shipment, kind=K.ARRIVED_HUB, user=None, location=hub
        )
        made.append(shipment)
    return made


@pytest.mark.parametrize("n", [3, 30])
def test_the_monitor_costs_the_same_queries_for_3_or_30_shipments(
    client: Client,
    cs_agent: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    _shipments(n)
    _as(client, cs_agent)
    with django_assert_max_num_queries(MONITOR_QUERIES):
        response = client.get(reverse("monitor"))
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == n


@pytest.mark.parametrize("n", [3, 30])
def test_the_search_results_cost_the_same_queries_for_3_or_30_shipments(
    client: Client,
    cs_agent: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    _shipments(n)
    _as(client, cs_agent)
    with django_assert_max_num_queries(SEARCH_QUERIES):
        response = _search(client, "pat example")
    assert response.status_code == 200
    assert len(response.context["result"].shipments) == n


@pytest.mark.parametrize("n", [3, 30])
def test_the_detail_page_costs_the_same_queries_for_3_or_30_events(
    client: Client,
    staff: User,
    supervisor: User,
    hub: Location,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    # Recorded, a located note by a person, and a supervisor's correction of
    # it: every kind of join the timeline shows, then plain notes up to n.
    shipment = ShipmentFactory()
    wrong = checkpoint_record(
        shipment=shipment, kind=K.NOTE, user=staff, location=hub, notes="Wrong"
    )
    event_void(event=wrong, user=supervisor, reason="Scanned by mistake")
    while shipment.events.count() < n:
        checkpoint_record(
            shipment=shipment, kind=K.NOTE, user=staff, location=hub, notes="Seen"
        )
    _as(client, supervisor)
    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(shipment.get_absolute_url())
    assert response.status_code == 200
    assert len(response.context["timeline"]) == n


# --- signing in and out, resetting the password ----------------------------------


def test_the_login_page_signs_a_user_in(client: Client, staff: User) -> None:
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "Forgot your password?" in _page(page)

    response = client.post(
        reverse("login"), {"username": "logistics", "password": "pass-word-123"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200


def test_the_login_page_refuses_a_wrong_password(client: Client, staff: User) -> None:
    response = client.post(
        reverse("login"), {"username": "logistics", "password": "guess"}
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "_auth_user_id" not in client.session


def test_logging_out_takes_a_post_and_ends_the_session(
    client: Client, staff: User
) -> None:
    _as(client, staff)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_a_password_reset_mails_a_link_that_sets_a_new_password(
    client: Client,
    staff: User,
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the mail's task
        response = client.post(reverse("password_reset"), {"email": staff.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [staff.email]
    assert message.subject == "Reset your TrackSOP password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", str(message.body))
    assert link, message.body

    form = client.get(link.group(1), follow=True)
    assert form.status_code == 200
    assert form.context["validlink"]
    set_password_url = form.redirect_chain[-1][0]
    done = client.post(
        set_password_url,
        {"new_password1": "A-new-secret-42", "new_password2": "A-new-secret-42"},
    )
    assert done.status_code == 302
    assert done["Location"] == reverse("password_reset_complete")

    old = Client().post(
        reverse("login"), {"username": "logistics", "password": "pass-word-123"}
    )
    assert old.status_code == 200
    fresh = Client()
    response = fresh.post(
        reverse("login"), {"username": "logistics", "password": "A-new-secret-42"}
    )
    assert response.status_code == 302
    assert fresh.get(reverse("dashboard")).status_code == 200
    # The link works once.
    assert not client.get(link.group(1), follow=True).context["validlink"]


def test_a_password_reset_for_an_unknown_email_sends_nothing(
    client: Client,
    staff: User,
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("password_reset"), {"email": "nobody@example.com"}
        )
    assert response.status_code == 302
    assert mail.outbox == []


# --- scanned USPS labels: "420" + ZIP code + the tracking number ---------------

USPS_NUMBER = "9400111206206406260787"
USPS_SCAN = "420 78745 " + USPS_NUMBER  # as a scanner reads the label
USPS_SCAN_WRONG_DIGIT = "42078745" + USPS_NUMBER[:-1] + "8"


def _usps() -> Any:
    return CarrierFactory(code="usps", name="USPS", tracking_family="usps")


@pytest.mark.parametrize("choose_carrier", [True, False], ids=["chosen", "detected"])
def test_dispatch_of_a_scanned_usps_label_stores_the_number_alone(
    client: Client, staff: User, choose_carrier: bool
) -> None:
    usps = _usps()
    shipment = ready_shipment(recipient_postcode="78745-1234")
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=usps.pk if choose_carrier else "",
        tracking_number=USPS_SCAN,
    )
    assert response.status_code == 302
    shipment.refresh_from_db()
    assert shipment.tracking_number == USPS_NUMBER
    assert shipment.carrier == usps
    event = shipment.events.get(kind=K.DISPATCHED)
    assert event.data["routing_zip"] == "78745"


def test_dispatch_refuses_a_scanned_usps_label_with_one_wrong_digit(
    client: Client, staff: User
) -> None:
    shipment = ready_shipment(recipient_postcode="78745")
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=_usps().pk,
        tracking_number=USPS_SCAN_WRONG_DIGIT,
    )
    assert response.status_code == 400
    assert _errors(response, "tracking_number") == [
        "Check digit is wrong for a USPS IMpb (22 digits) number: expected 7, got 8."
    ]
    _assert_not_dispatched(shipment)


def test_dispatch_refuses_a_usps_label_routed_to_another_zip_code(
    client: Client, staff: User
) -> None:
    shipment = ready_shipment(recipient_postcode="62704")
    response = _dispatch(
        _as(client, staff), shipment, carrier=_usps().pk, tracking_number=USPS_SCAN
    )
    assert response.status_code == 400
    assert _errors(response, "tracking_number") == [
        "This label is routed to ZIP code 78745, but the shipment goes to "
        "62704: check that it is this package's label."
    ]
    _assert_not_dispatched(shipment)


def test_a_scanned_label_gives_its_zip_code_to_a_shipment_without_a_postcode(
    client: Client, staff: User
) -> None:
    shipment = ready_shipment()
    # The form requires a postcode; rows from before it, or imported, may
    # lack one.
    Shipment.objects.filter(pk=shipment.pk).update(recipient_postcode="")
    response = _dispatch(
        _as(client, staff),
        shipment,
        carrier=_usps().pk,
        tracking_number="4201002334249200190132607600833457",
    )
    assert response.status_code == 302
    shipment.refresh_from_db()
    assert shipment.tracking_number == "9200190132607600833457"
    assert shipment.recipient_postcode == "10023-3424"


def test_a_bulk_scan_of_usps_labels_finds_the_shipment_by_its_number(
    client: Client, staff: User, hub: Location
) -> None:
    shipment = dispatched_shipment(carrier=_usps(), tracking_number=USPS_NUMBER)
    response = _scan(
        _as(client, staff),
        "\n".join([USPS_SCAN, USPS_NUMBER, USPS_SCAN_WRONG_DIGIT]),
        hub,
    )
    assert response.status_code == 200
    result = response.context["result"]
    assert [e.shipment_id for e in result.saved] == [shipment.pk]
    assert dict(result.problems) == {
        USPS_NUMBER: "Scanned twice in this batch; logged once.",
        USPS_SCAN_WRONG_DIGIT: "Check digit is wrong for a USPS IMpb (22 digits) "
        "number: expected 7, got 8.",
    }


def test_search_finds_a_shipment_by_its_scanned_usps_label(
    client: Client, cs_agent: User
) -> None:
    shipment = dispatched_shipment(carrier=_usps(), tracking_number=USPS_NUMBER)
    response = _search(_as(client, cs_agent), USPS_SCAN)
    # One exact match opens the shipment.
    assert response.status_code == 302
    assert response["Location"] == shipment.get_absolute_url()
    assert _search(client, USPS_SCAN_WRONG_DIGIT).status_code == 404
