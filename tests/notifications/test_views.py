"""The message pages: staff resend, the failed list, template previews, the
Change ETA page, the history on the shipment page, and the customer's manage
link (no login), driven through the Django test client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from notifications import links
from notifications.models import (
    CUSTOMER_KINDS,
    Audience,
    Channel,
    Kind,
    Notification,
    Preference,
    Status,
)
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import NotificationFactory, dispatched_shipment
from tests.helpers import TestResponse

pytestmark = pytest.mark.django_db

ROLES = ("staff", "cs_agent", "supervisor", "outsider")
RESENDERS = frozenset({"cs_agent", "supervisor"})
READERS = frozenset({"staff", "cs_agent", "supervisor"})


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _page(response: TestResponse) -> str:
    return response.content.decode()


@pytest.fixture
def shipment() -> Shipment:
    """Dispatched; its dispatch messages have gone out."""
    shipment = dispatched_shipment(order_number="ORD-40001")
    Notification.objects.filter(shipment=shipment).update(
        status=Status.SENT, sent_at=timezone.now(), next_attempt_at=None
    )
    return shipment


def _sent_email(shipment: Shipment) -> Notification:
    return Notification.objects.get(
        shipment=shipment, kind=Kind.DISPATCHED, channel=Channel.EMAIL
    )


def _failed(shipment: Shipment, **kwargs: Any) -> Notification:
    return NotificationFactory(
        shipment=shipment,
        status=Status.FAILED,
        sent_at=None,
        last_error="The mail server refused the address: 550 No such user here",
        **kwargs,
    )


# --- resend -------------------------------------------------------------------


def _resend_url(row: Notification) -> str:
    return reverse("notification-resend", args=[row.pk])


def test_resend_sends_anonymous_visitors_to_the_login_page(
    client: Client, shipment: Shipment
) -> None:
    url = _resend_url(_sent_email(shipment))
    before = Notification.objects.count()

    response = client.post(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    assert Notification.objects.count() == before


@pytest.mark.parametrize("role", ROLES)
def test_resend_is_allowed_to_customer_service_and_supervisors_only(
    client: Client, request: pytest.FixtureRequest, shipment: Shipment, role: str
) -> None:
    original = _sent_email(shipment)
    before = Notification.objects.count()

    response = _as(client, request.getfixturevalue(role)).post(_resend_url(original))

    if role in RESENDERS:
        assert response.status_code == 302
        assert response["Location"] == f"{shipment.get_absolute_url()}#messages"
        resent = Notification.objects.get(resend_of=original)
        assert resent.status == Status.PENDING
        assert resent.requested_by == request.getfixturevalue(role)
    else:
        assert response.status_code == 403
        assert Notification.objects.count() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_resend_refuses_any_method_but_post(
    client: Client, supervisor: User, shipment: Shipment, method: str
) -> None:
    before = Notification.objects.count()

    response = getattr(_as(client, supervisor), method)(
        _resend_url(_sent_email(shipment))
    )

    assert response.status_code == 405
    assert Notification.objects.count() == before


def test_resend_of_an_unknown_message_is_404(client: Client, cs_agent: User) -> None:
    response = _as(client, cs_agent).post(reverse("notification-resend", args=[987654]))
    assert response.status_code == 404


def test_a_refused_resend_says_why_on_the_shipment_page(
    client: Client, cs_agent: User
) -> None:
    busy = dispatched_shipment()
    pending = _sent_email(busy)
    assert pending.status == Status.PENDING
    before = Notification.objects.count()

    response = _as(client, cs_agent).post(_resend_url(pending), follow=True)

    assert response.status_code == 200
    assert "still being sent" in _page(response)
    assert Notification.objects.count() == before


def test_resend_goes_back_to_a_local_next_page_but_never_offsite(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    row = _sent_email(shipment)
    _as(client, cs_agent)

    local = client.post(_resend_url(row), {"next": reverse("notification-failed")})
    offsite = client.post(_resend_url(row), {"next": "https://evil.example/"})

    assert local["Location"] == reverse("notification-failed")
    assert offsite["Location"] == f"{shipment.get_absolute_url()}#messages"


# --- the failed list -----------------------------------------------------------


FAILED_URL = reverse("notification-failed")


def test_the_failed_list_sends_anonymous_visitors_to_the_login_page(
    client: Client,
) -> None:
    response = client.get(FAILED_URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={FAILED_URL}"


@pytest.mark.parametrize("role", ROLES)
def test_the_failed_list_opens_for_every_staff_role_and_not_outsiders(
    client: Client, request: pytest.FixtureRequest, shipment: Shipment, role: str
) -> None:
    failed = _failed(shipment)

    response = _as(client, request.getfixturevalue(role)).get(FAILED_URL)

    if role in READERS:
        assert response.status_code == 200
        assert list(response.context["page"].object_list) == [failed]
        assert "550 No such user here" in _page(response)
        # Only those who may send again get the tick boxes.
        assert (f'name="ids" value="{failed.pk}"' in _page(response)) is (
            role in RESENDERS
        )
    else:
        assert response.status_code == 403


def test_the_failed_list_leaves_out_sent_and_already_resent_messages(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    open_failure = _failed(shipment)
    _failed(shipment, superseded_at=timezone.now())

    response = _as(client, cs_agent).get(FAILED_URL)

    assert list(response.context["page"].object_list) == [open_failure]


@pytest.mark.parametrize("role", ROLES)
def test_sending_failed_messages_again_needs_the_resend_permission(
    client: Client, request: pytest.FixtureRequest, shipment: Shipment, role: str
) -> None:
    first, second = _failed(shipment), _failed(shipment)
    before = Notification.objects.count()

    response = _as(client, request.getfixturevalue(role)).post(
        FAILED_URL, {"ids": [first.pk, second.pk]}
    )

    if role in RESENDERS:
        assert response.status_code == 302
        assert response["Location"] == FAILED_URL
        assert Notification.objects.filter(resend_of__in=[first, second]).count() == 2
        assert not Notification.objects.filter(
            pk__in=[first.pk, second.pk], superseded_at__isnull=True
        ).exists()
    else:
        assert response.status_code == 403
        assert Notification.objects.count() == before


def test_sending_again_reports_each_message_it_could_not_send(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    sendable = _failed(shipment)
    sms = _failed(shipment, channel=Channel.SMS, to="+12025550100")
    Shipment.objects.filter(pk=shipment.pk).update(recipient_phone="")

    response = _as(client, cs_agent).post(
        FAILED_URL, {"ids": [sendable.pk, sms.pk]}, follow=True
    )

    page = _page(response)
    assert "1 message queued again." in page
    assert f"{shipment.shipment_id}: Cannot resend. No phone number" in page
    assert list(response.context["page"].object_list) == [sms]


def test_sending_several_again_counts_them_in_words(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    ids = [_failed(shipment).pk for _ in range(3)]

    response = _as(client, cs_agent).post(FAILED_URL, {"ids": ids}, follow=True)

    assert "3 messages queued again." in _page(response)


def test_the_failed_list_says_the_error_in_words_and_keeps_the_raw_text(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    failed = _failed(shipment)
    Notification.objects.filter(pk=failed.pk).update(
        last_error="Mail server answered 550: b'5.1.1 Mailbox unavailable'"
    )

    page = _page(_as(client, cs_agent).get(FAILED_URL))

    assert "The email address does not exist" in page
    assert "Mail server answered 550: b&#x27;5.1.1 Mailbox unavailable&#x27;" in page


@pytest.mark.parametrize(("role", "edits"), [("cs_agent", False), ("supervisor", True)])
def test_the_failed_list_leads_to_the_shipment_to_fix_the_address(
    client: Client,
    request: pytest.FixtureRequest,
    shipment: Shipment,
    role: str,
    edits: bool,
) -> None:
    _failed(shipment)

    page = _page(_as(client, request.getfixturevalue(role)).get(FAILED_URL))

    assert f'href="{shipment.get_absolute_url()}' in page
    edit = reverse("shipment-edit", args=[shipment.shipment_id])
    assert (f'href="{edit}"' in page) is edits


def test_the_failed_list_has_a_box_that_ticks_every_row(
    client: Client, cs_agent: User, staff: User, shipment: Shipment
) -> None:
    _failed(shipment)

    page = _page(_as(client, cs_agent).get(FAILED_URL))

    assert 'data-select-all="ids"' in page
    assert "js/select-all.js" in page
    assert 'data-select-all="ids"' not in _page(_as(client, staff).get(FAILED_URL))


def test_sending_again_with_nothing_ticked_asks_to_tick(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    _failed(shipment)
    before = Notification.objects.count()

    response = _as(client, cs_agent).post(FAILED_URL, {}, follow=True)

    assert "Tick the messages to send again." in _page(response)
    assert Notification.objects.count() == before


def test_the_failed_list_refuses_a_bad_method(client: Client, supervisor: User) -> None:
    assert _as(client, supervisor).put(FAILED_URL).status_code == 405


# --- template preview -----------------------------------------------------------


PREVIEW_URL = reverse("template-preview")


def _preview(client: Client, **params: str) -> Any:
    return client.get(PREVIEW_URL, {"source": "active", **params})


def test_the_preview_sends_anonymous_visitors_to_the_login_page(
    client: Client,
) -> None:
    response = _preview(client, kind="dispatched", channel="email")
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize("role", ROLES)
def test_only_supervisors_may_preview_templates(
    client: Client, request: pytest.FixtureRequest, role: str
) -> None:
    response = _preview(
        _as(client, request.getfixturevalue(role)), kind="dispatched", channel="email"
    )
    assert response.status_code == (200 if role == "supervisor" else 403)


def test_the_preview_refuses_a_post(client: Client, supervisor: User) -> None:
    assert _as(client, supervisor).post(PREVIEW_URL).status_code == 405


@pytest.mark.parametrize("kind", [*CUSTOMER_KINDS, Kind.ESCALATION])
def test_the_preview_renders_every_email(
    client: Client, supervisor: User, kind: str
) -> None:
    response = _preview(_as(client, supervisor), kind=kind, channel="email")

    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview["rendered"].subject
    assert preview["rendered"].subject in _page(response)
    assert "ORD-10042" in preview["rendered"].text
    assert preview["missing"] == []


@pytest.mark.parametrize(
    ("kind", "segments"),
    [
        (Kind.OUT_FOR_DELIVERY, "1 SMS segment<"),
        (Kind.DELIVERED, "1 SMS segment<"),
        (Kind.DISPATCHED, "2 SMS segments<"),
    ],
)
def test_the_sms_preview_shows_its_length_and_segment_count(
    client: Client, supervisor: User, kind: str, segments: str
) -> None:
    response = _preview(_as(client, supervisor), kind=kind, channel="sms")

    assert response.status_code == 200
    text = response.context["preview"]["rendered"].text
    assert f"{len(text)} characters · {segments}" in _page(response)


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "birthday", "channel": "email"},
        {"kind": "dispatched", "channel": "fax"},
        {"kind": "escalation", "channel": "sms"},
        {"channel": "email"},
    ],
    ids=["unknown kind", "unknown channel", "escalation by sms", "no kind"],
)
def test_the_preview_answers_400_to_a_bad_request(
    client: Client, supervisor: User, params: dict[str, str]
) -> None:
    response = _preview(_as(client, supervisor), **params)

    assert response.status_code == 400
    assert response.context["preview"] is None


def test_the_preview_renders_a_real_shipment_and_warns_of_missing_facts(
    client: Client, supervisor: User, shipment: Shipment
) -> None:
    Shipment.objects.filter(pk=shipment.pk).update(estimated_delivery=None)

    response = _preview(
        _as(client, supervisor),
        kind="dispatched",
        channel="email",
        shipment=shipment.shipment_id.lower(),
    )

    assert response.status_code == 200
    assert "ORD-40001" in response.context["preview"]["rendered"].subject
    assert "Would not be sent: this shipment has no estimated delivery date." in (
        _page(response)
    )


def test_the_preview_of_an_unknown_shipment_is_404(
    client: Client, supervisor: User
) -> None:
    response = _preview(
        _as(client, supervisor), kind="dispatched", channel="sms", shipment="SH-NOPE"
    )
    assert response.status_code == 404


# --- the Change ETA page --------------------------------------------------------


def _eta_url(shipment: Shipment) -> str:
    return reverse("shipment-eta", args=[shipment.shipment_id])


def test_a_later_eta_records_the_change_and_tells_the_customer_of_the_delay(
    client: Client, staff: User, shipment: Shipment
) -> None:
    old = shipment.estimated_delivery
    assert old is not None
    new = old + timedelta(days=2)

    response = _as(client, staff).post(
        _eta_url(shipment),
        {
            "estimated_delivery": new.isoformat(),
            "reason": "Severe weather at the hub",
            "version": shipment.version,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == shipment.get_absolute_url()
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == new
    event = shipment.events.get(kind=EventKind.ETA_CHANGED)
    assert event.data == {
        "from": old.isoformat(),
        "to": new.isoformat(),
        "reason": "Severe weather at the hub",
    }
    assert event.recorded_by == staff
    delays = Notification.objects.filter(event=event, kind=Kind.DELAY)
    assert {row.channel for row in delays} == {Channel.EMAIL, Channel.SMS}
    assert all(row.status == Status.PENDING for row in delays)


def test_an_eta_in_the_past_is_refused_at_its_field_and_nothing_changes(
    client: Client, staff: User, shipment: Shipment
) -> None:
    old = shipment.estimated_delivery
    yesterday = timezone.localdate() - timedelta(days=1)
    events_before = shipment.events.count()

    response = _as(client, staff).post(
        _eta_url(shipment),
        {"estimated_delivery": yesterday.isoformat(), "version": shipment.version},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["estimated_delivery"] == [
        "The estimated delivery date is in the past."
    ]
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == old
    assert shipment.events.count() == events_before
    assert not Notification.objects.filter(kind=Kind.DELAY).exists()


def test_the_shipment_page_offers_the_customers_tracking_link_to_copy(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    link = links.tracking_url(shipment.public_token)

    page = _page(_as(client, cs_agent).get(shipment.get_absolute_url()))

    assert f'id="customer-link" type="url" value="{link}" readonly' in page
    assert f'href="{link}" target="_blank"' in page
    assert 'data-copy="#customer-link"' in page
    assert "js/copy.js" in page
    # The page gets it from a static file: no inline script for it.
    assert "clipboard" not in page


def test_the_change_eta_page_shows_the_current_date(
    client: Client, staff: User, shipment: Shipment
) -> None:
    response = _as(client, staff).get(_eta_url(shipment))

    assert response.status_code == 200
    assert response.context["form"].initial["estimated_delivery"] == (
        shipment.estimated_delivery
    )
    assert "A later date sends the customer a delay message." in _page(response)


def test_customer_service_may_not_change_the_eta(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    old = shipment.estimated_delivery
    assert old is not None

    response = _as(client, cs_agent).post(
        _eta_url(shipment),
        {
            "estimated_delivery": (old + timedelta(days=1)).isoformat(),
            "version": shipment.version,
        },
    )

    assert response.status_code == 403
    shipment.refresh_from_db()
    assert shipment.estimated_delivery == old


# --- the history on the shipment page ---------------------------------------------


def test_the_shipment_page_shows_each_message_with_its_status_and_error(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    failed = _failed(shipment, to="gone@example.net")

    response = _as(client, cs_agent).get(shipment.get_absolute_url())

    page = _page(response)
    assert 'data-testid="notification-history"' in page
    assert f'data-notification="{failed.pk}"' in page
    assert 'data-status="failed"' in page
    assert 'data-status="sent"' in page
    assert "gone@example.net" in page
    assert "550 No such user here" in page
    assert reverse("notification-resend", args=[failed.pk]) in page


def test_logistics_staff_see_the_history_without_resend_buttons(
    client: Client, staff: User, shipment: Shipment
) -> None:
    failed = _failed(shipment)

    page = _page(_as(client, staff).get(shipment.get_absolute_url()))

    assert f'data-notification="{failed.pk}"' in page
    assert reverse("notification-resend", args=[failed.pk]) not in page


def test_a_message_still_being_sent_has_no_resend_button(
    client: Client, cs_agent: User
) -> None:
    busy = dispatched_shipment()
    pending = _sent_email(busy)

    page = _page(_as(client, cs_agent).get(busy.get_absolute_url()))

    assert 'data-status="pending"' in page
    assert reverse("notification-resend", args=[pending.pk]) not in page


# Session, user and two permission queries, then: the shipment, its customer
# inquiries, its timeline and the message history with who resent each (one join).
DETAIL_QUERIES = 4 + 4 + 1  # + the access log INSERT
# Then: the count for the pager and one page of rows with their shipments.
FAILED_QUERIES = 4 + 2


def _history(shipment: Shipment, n: int, user: User) -> None:
    """n messages of every state, every third one resent by a person."""
    states = [Status.SENT, Status.FAILED, Status.SUPPRESSED, Status.PENDING]
    original = _sent_email(shipment)
    for i in range(n - Notification.objects.filter(shipment=shipment).count()):
        status = states[i % len(states)]
        resent = i % 3 == 0
        NotificationFactory(
            shipment=shipment,
            status=status,
            sent_at=timezone.now() if status == Status.SENT else None,
            last_error="" if status == Status.SENT else f"Problem {i}",
            resend_of=original if resent else None,
            requested_by=user if resent else None,
        )


@pytest.mark.parametrize("n", [3, 30])
def test_the_shipment_page_costs_the_same_queries_for_3_or_30_messages(
    client: Client,
    cs_agent: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    shipment = dispatched_shipment()
    _history(shipment, n, cs_agent)
    _as(client, cs_agent)

    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(shipment.get_absolute_url())

    assert response.status_code == 200
    assert _page(response).count("data-notification=") == n
    assert f"resent by {cs_agent.get_full_name()}" in _page(response)


@pytest.mark.parametrize("n", [3, 30])
@pytest.mark.parametrize("role", ["cs_agent", "supervisor"])  # with edit links
def test_the_failed_list_costs_the_same_queries_for_3_or_30_messages(
    client: Client,
    request: pytest.FixtureRequest,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
    role: str,
) -> None:
    for i in range(n):
        _failed(dispatched_shipment() if i % 10 == 0 else Shipment.objects.latest("pk"))
    _as(client, request.getfixturevalue(role))

    with django_assert_max_num_queries(FAILED_QUERIES):
        response = client.get(FAILED_URL)

    assert response.status_code == 200
    assert len(response.context["page"].object_list) == n


def test_the_dashboard_shows_how_many_messages_failed(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    _failed(shipment)
    _failed(shipment)
    _failed(shipment, superseded_at=timezone.now())

    response = _as(client, cs_agent).get(reverse("dashboard"))

    assert response.context["failed_messages"] == 2
    assert '<div class="display-6" data-testid="failed-count">2</div>' in (
        _page(response)
    )


# --- the customer's manage link ---------------------------------------------------


@pytest.fixture
def private() -> Shipment:
    """A shipment with distinctive personal details to look for in pages."""
    return dispatched_shipment(
        order_number="ORD-40002",
        sender_name="Quillfeather Supplies",
        sender_email="orders@quillfeather.example",
        notify_sender=True,
        recipient_name="Zebediah Marchbanks",
        recipient_email="zebediah.m@example.net",
        recipient_phone="+12025550199",
        recipient_address="17 Cherry Tree Lane",
        recipient_postcode="90210",
        recipient_city="Shelbyville",
    )


def _manage(shipment: Shipment, audience: str = Audience.RECIPIENT) -> str:
    return urlsplit(links.manage_url(shipment.public_token, audience)).path


def _unsubscribe(shipment: Shipment, audience: str = Audience.RECIPIENT) -> str:
    return urlsplit(links.unsubscribe_url(shipment.public_token, audience)).path


def _preference(shipment: Shipment, audience: str = Audience.RECIPIENT) -> str | None:
    return (
        Preference.objects.filter(shipment=shipment, audience=audience)
        .values_list("channels", flat=True)
        .first()
    )


@pytest.mark.parametrize("audience", [Audience.RECIPIENT, Audience.SENDER])
def test_the_manage_link_shows_the_status_and_nothing_personal(
    client: Client, private: Shipment, audience: str
) -> None:
    response = client.get(_manage(private, audience))

    assert response.status_code == 200
    page = _page(response)
    assert '<p class="status" data-testid="status">Dispatched</p>' in page
    assert str(private.tracking_number) in page
    for personal in (
        "Zebediah",
        "Marchbanks",
        "zebediah.m",
        "5550199",
        "555-0199",
        "Cherry Tree",
        "90210",
        "Shelbyville",
        "Quillfeather",
        "ORD-40002",
    ):
        assert personal not in page
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda code: code[:-1] + ("A" if code[-1] != "A" else "B"),
        lambda code: "s" + code[1:],
        lambda code: "x" + code[1:],
        lambda code: code[:-2],
    ],
    ids=["changed character", "other party", "unknown party", "cut short"],
)
def test_a_tampered_manage_link_is_404(
    client: Client, private: Shipment, tamper: Any
) -> None:
    token = private.public_token
    code = links.manage_code(token, Audience.RECIPIENT)

    for name in ("notification-manage", "notification-unsubscribe"):
        response = client.post(reverse(name, args=[token, tamper(code)]), {})
        assert response.status_code == 404
        response = client.get(reverse(name, args=[token, tamper(code)]))
        assert response.status_code == 404
    assert not Preference.objects.exists()


def test_a_manage_link_with_an_unknown_token_is_404(
    client: Client, private: Shipment
) -> None:
    # A code genuine for its token, but no shipment has that token.
    token = "A" * 22
    code = links.manage_code(token, Audience.RECIPIENT)

    response = client.get(reverse("notification-manage", args=[token, code]))

    assert response.status_code == 404


def test_choosing_email_only_stores_the_preference(
    client: Client, private: Shipment
) -> None:
    response = client.post(_manage(private), {"channels": "email", "save": ""})

    assert response.status_code == 200
    assert 'data-testid="saved"' in _page(response)
    assert "Saved: Email only." in _page(response)
    assert _preference(private) == Preference.Choice.EMAIL
    assert _preference(private, Audience.SENDER) is None
    stored = Preference.objects.get(shipment=private)
    assert stored.updated_by is None


def test_the_sender_link_changes_only_the_senders_preference(
    client: Client, private: Shipment
) -> None:
    client.post(_manage(private, Audience.SENDER), {"channels": "none"})

    assert _preference(private, Audience.SENDER) == Preference.Choice.NONE
    assert _preference(private) is None


def test_stop_all_updates_turns_everything_off(
    client: Client, private: Shipment
) -> None:
    response = client.post(_manage(private), {"stop": ""})

    assert response.status_code == 200
    assert "you will get no more updates about this package" in _page(response)
    assert "Stop all updates" not in _page(response)
    assert _preference(private) == Preference.Choice.NONE


def test_an_unknown_choice_is_refused_and_nothing_is_stored(
    client: Client, private: Shipment
) -> None:
    response = client.post(_manage(private), {"channels": "carrier-pigeon"})

    assert response.status_code == 400
    assert _preference(private) is None


def test_the_manage_form_needs_its_csrf_token(private: Shipment) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(_manage(private), {"channels": "none"})

    assert response.status_code == 403
    assert _preference(private) is None


def test_the_manage_form_saves_with_its_csrf_token(private: Shipment) -> None:
    client = Client(enforce_csrf_checks=True)
    form = client.get(_manage(private))
    token = form.cookies["csrftoken"].value

    response = client.post(
        _manage(private), {"channels": "sms", "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 200
    assert _preference(private) == Preference.Choice.SMS


def test_one_click_unsubscribe_works_without_a_csrf_token(
    private: Shipment,
) -> None:
    # RFC 8058: the mail client posts with no cookie and no token.
    client = Client(enforce_csrf_checks=True)

    response = client.post(_unsubscribe(private), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert _preference(private) == Preference.Choice.NONE


def test_opening_the_unsubscribe_link_only_shows_the_manage_page(
    client: Client, private: Shipment
) -> None:
    # Link scanners in mail systems fetch every URL they see.
    response = client.get(_unsubscribe(private))

    assert response.status_code == 302
    assert response["Location"] == _manage(private)
    assert _preference(private) is None


def test_a_customer_who_stopped_updates_gets_no_further_messages(
    client: Client, private: Shipment
) -> None:
    client.post(_unsubscribe(private))

    checkpoint_record(shipment=private, kind=EventKind.OUT_FOR_DELIVERY, user=None)

    private.refresh_from_db()
    assert private.status == ShipmentStatus.OUT_FOR_DELIVERY
    rows = Notification.objects.filter(shipment=private, kind=Kind.OUT_FOR_DELIVERY)
    assert rows.count() == 2
    assert {row.status for row in rows} == {Status.SUPPRESSED}
