"""Updates from the tracking page: a customer adds an email address or phone
number, confirms it with the code sent to it, gets every later milestone
message, and stops them with the link in each. The services, the messages, and
the public pages through the Django test client, on the real PostgreSQL and
Redis (the rate limit counts in Redis)."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from ipaddress import IPv4Address
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from notifications import delivery, links, outbox, rendering, subscriptions
from notifications.models import (
    CUSTOMER_KINDS,
    Audience,
    Channel,
    Kind,
    Notification,
    Status,
    Subscription,
)
from notifications.subscriptions import SubscriptionError
from shipments import services as shipment_services
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import CarrierFactory, ShipmentFactory, dispatched_shipment
from tests.helpers import TestResponse, next_hour_start
from tests.notifications.conftest import SmtpSink

pytestmark = pytest.mark.django_db

EMAIL, SMS = Channel.EMAIL, Channel.SMS
NOW = datetime(2026, 11, 23, 16, 45, tzinfo=timezone.get_default_timezone())


@pytest.fixture
def shipment() -> Shipment:
    return dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        order_number="ORD-50001",
        recipient_email="recipient@example.net",
        recipient_phone="+12025550143",
    )


def _request(shipment: Shipment, address: str = "fan@example.org", **kw: Any) -> Any:
    return subscriptions.subscription_request(
        shipment=shipment,
        channel=kw.pop("channel", EMAIL),
        address=address,
        language=kw.pop("language", "en"),
    )


def _codes(subscription: Subscription) -> list[Notification]:
    return list(
        Notification.objects.filter(
            subscription=subscription, kind=Kind.SUBSCRIPTION_CONFIRM
        ).order_by("id")
    )


def _code(subscription: Subscription) -> str:
    """The code in the last message, read as the customer reads it."""
    found = re.search(r"\b(\d{6})\b", _codes(subscription)[-1].body_text)
    assert found is not None
    return found.group(1)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def _confirmed(shipment: Shipment, address: str, channel: str = EMAIL) -> Any:
    subscription = _request(shipment, address, channel=channel)
    return subscriptions.subscription_confirm(
        subscription=subscription, code=_code(subscription)
    )


def _scan(shipment: Shipment, kind: str) -> Any:
    return checkpoint_record(shipment=shipment, kind=kind, user=None)


def _subscriber_rows(shipment: Shipment, kind: str) -> list[Notification]:
    return list(
        Notification.objects.filter(
            shipment=shipment, kind=kind, audience=Audience.SUBSCRIBER
        ).order_by("id")
    )


# --- asking for updates -------------------------------------------------------


def test_a_request_stores_a_pending_address_and_writes_only_a_code_to_it(
    shipment: Shipment,
) -> None:
    subscription = _request(shipment, "fan@example.org")

    assert subscription.address == "fan@example.org"
    assert subscription.confirmed_at is None
    assert subscription.stopped_at is None
    assert not subscription.is_active
    [row] = _codes(subscription)
    assert row.audience == Audience.SUBSCRIBER
    assert row.channel == EMAIL
    assert row.to == "fan@example.org"
    assert row.status == Status.PENDING
    assert row.idempotency_key == f"subscription:{subscription.pk}:1"
    code = _code(subscription)
    assert code in row.subject
    confirm = links.subscribe_confirm_url(shipment.public_token, subscription.pk, code)
    assert confirm in row.body_text
    assert confirm in row.body_html
    # Stored only as a salted HMAC.
    assert code not in subscription.code_hash
    assert len(subscription.code_hash) > 64


def test_the_code_message_tells_a_stranger_nothing_about_the_shipment(
    shipment: Shipment,
) -> None:
    [row] = _codes(_request(shipment))

    for part in (row.subject, row.body_text, row.body_html):
        for private in (
            "ORD-50001",
            "1Z999AA10123456784",
            shipment.recipient_name,
            "recipient@example.net",
            # No manage link of the recipient's or the sender's.
            links.manage_code(shipment.public_token, Audience.RECIPIENT),
            links.manage_code(shipment.public_token, Audience.SENDER),
        ):
            assert private not in part
    assert "If you did not ask for updates, ignore this message" in row.body_text


def test_the_code_goes_out_in_the_language_of_the_page(shipment: Shipment) -> None:
    subscription = _request(shipment, language="es")

    assert subscription.language == "es"
    assert '<html lang="es">' in _codes(subscription)[0].body_html


def test_an_unknown_language_falls_back_to_the_default(shipment: Shipment) -> None:
    assert _request(shipment, language="xx").language == "en"


def test_two_codes_are_not_the_same_hash() -> None:
    first, second = (
        subscriptions.hash_code("123456"),
        subscriptions.hash_code("123456"),
    )

    assert first != second
    assert subscriptions.code_matches(first, "123456")
    assert not subscriptions.code_matches(first, "123457")
    assert not subscriptions.code_matches("", "123456")


@pytest.mark.parametrize(
    ("channel", "typed", "country", "stored"),
    [
        (EMAIL, "  Jane.Doe@Example.COM ", "US", "jane.doe@example.com"),
        (SMS, "(202) 555-0188", "US", "+12025550188"),
        (SMS, "612 34 56 78", "ES", "+34612345678"),
        (SMS, "+34 612 345 678", "US", "+34612345678"),
    ],
    ids=["email lower-cased", "US number", "number of the country", "with +code"],
)
def test_addresses_are_normalised(
    channel: str, typed: str, country: str, stored: str
) -> None:
    shipment = dispatched_shipment(recipient_country=country)

    subscription = _request(shipment, typed, channel=channel)

    assert subscription.address == stored
    assert _codes(subscription)[0].to == stored


@pytest.mark.parametrize(
    ("channel", "typed", "says"),
    [
        (EMAIL, "not-an-email", "Enter a valid email address."),
        (EMAIL, "", "Enter a valid email address."),
        (SMS, "12", "Enter a valid mobile number"),
        (SMS, "call me maybe", "Enter a valid mobile number"),
        (SMS, "91 123 45 67", "landline"),
    ],
)
def test_an_address_that_cannot_take_messages_is_refused_at_its_field(
    channel: str, typed: str, says: str
) -> None:
    shipment = dispatched_shipment(recipient_country="ES")
    before = Notification.objects.count()

    with pytest.raises(SubscriptionError) as refused:
        _request(shipment, typed, channel=channel)

    assert refused.value.field == "address"
    assert says in refused.value.message
    assert not Subscription.objects.exists()
    assert Notification.objects.count() == before


def test_an_unknown_channel_is_refused(shipment: Shipment) -> None:
    with pytest.raises(SubscriptionError) as refused:
        _request(shipment, channel="pigeon")

    assert refused.value.field == "channel"


@pytest.mark.parametrize("status", ["delivered", "returned", "cancelled"])
def test_a_closed_shipment_takes_no_new_addresses(
    status: str, shipment: Shipment, staff: User
) -> None:
    if status == "cancelled":
        shipment = ShipmentFactory()
        shipment_services.shipment_cancel(
            shipment=shipment, user=staff, reason="Customer changed their mind"
        )
    else:
        _scan(shipment, status)
    shipment.refresh_from_db()
    assert shipment.status == status

    with pytest.raises(SubscriptionError) as refused:
        _request(shipment)

    assert "no more updates" in refused.value.message
    assert refused.value.field is None
    assert not Subscription.objects.exists()


def test_asking_again_for_the_same_address_sends_a_new_code_to_the_same_row(
    shipment: Shipment,
) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        first = _request(shipment, "fan@example.org")
        old_code = _code(first)
        clock.shift(timedelta(seconds=61))
        second = _request(shipment, "FAN@example.org")

        assert second.pk == first.pk
        assert Subscription.objects.count() == 1
        rows = _codes(second)
        assert [row.idempotency_key for row in rows] == [
            f"subscription:{first.pk}:1",
            f"subscription:{first.pk}:2",
        ]
        new_code = _code(second)
        with pytest.raises(SubscriptionError):
            subscriptions.subscription_confirm(
                subscription=second, code=old_code if old_code != new_code else "x"
            )
        assert subscriptions.subscription_confirm(
            subscription=second, code=new_code
        ).is_active


def test_a_new_code_goes_at_most_once_a_minute(shipment: Shipment) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _request(shipment)
        clock.shift(timedelta(seconds=59))
        with pytest.raises(SubscriptionError) as refused:
            _request(shipment)
        clock.shift(timedelta(seconds=2))
        _request(shipment)

    assert "Wait a minute" in refused.value.message
    assert len(_codes(subscription)) == 2


def test_an_address_gets_at_most_five_codes_a_day(shipment: Shipment) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        for _ in range(subscriptions.CODES_PER_DAY):
            subscription = _request(shipment)
            clock.shift(timedelta(minutes=5))
        with pytest.raises(SubscriptionError) as refused:
            _request(shipment)
        clock.shift(timedelta(days=1))
        _request(shipment)

    assert "all the codes we may today" in refused.value.message
    assert len(_codes(subscription)) == subscriptions.CODES_PER_DAY + 1


def test_a_shipment_takes_at_most_five_addresses_and_lapsed_requests_free_a_place(
    shipment: Shipment,
) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        for n in range(subscriptions.MAX_PER_SHIPMENT):
            _request(shipment, f"fan{n}@example.org")
        with pytest.raises(SubscriptionError) as refused:
            _request(shipment, "one-too-many@example.org")
        assert "as many addresses as it can" in refused.value.message
        # An address already counted may still ask for a new code.
        clock.shift(timedelta(minutes=2))
        _request(shipment, "fan0@example.org")
        # Unconfirmed requests lapse with their codes; a confirmed one stays.
        subscriptions.subscription_confirm(
            subscription=Subscription.objects.get(address="fan0@example.org"),
            code=_code(Subscription.objects.get(address="fan0@example.org")),
        )
        clock.shift(subscriptions.CODE_TTL + timedelta(seconds=1))
        _request(shipment, "latecomer@example.org")

    assert Subscription.objects.filter(shipment=shipment).count() == 6


def test_a_stopped_address_frees_its_place(shipment: Shipment) -> None:
    stopped = [
        _confirmed(shipment, f"fan{n}@example.org")
        for n in range(subscriptions.MAX_PER_SHIPMENT)
    ]
    subscriptions.subscription_stop(subscription=stopped[0])

    assert _request(shipment, "newcomer@example.org").pk


def test_two_requests_for_one_address_at_once_make_one_row_and_one_code(
    transactional_db: None,
) -> None:
    shipment = dispatched_shipment()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            barrier.wait()
            _request(shipment, "fan@example.org")
            outcomes.append("sent")
        except SubscriptionError as exc:
            outcomes.append(str(exc.message))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes)[-1] == "sent"
    assert "Wait a minute" in sorted(outcomes)[0]
    [subscription] = Subscription.objects.filter(shipment=shipment)
    assert len(_codes(subscription)) == 1


# --- confirming -----------------------------------------------------------------


def test_the_right_code_confirms_the_address(shipment: Shipment) -> None:
    subscription = _request(shipment)

    confirmed = subscriptions.subscription_confirm(
        subscription=subscription,
        code=f" {_code(subscription)[:3]} {_code(subscription)[3:]}",
    )

    assert confirmed.is_active
    assert confirmed.confirmed_at is not None
    assert confirmed.code_hash == ""
    # Confirming twice is harmless.
    assert subscriptions.subscription_confirm(subscription=confirmed, code="").is_active


def test_a_wrong_code_counts_a_try_and_says_how_many_are_left(
    shipment: Shipment,
) -> None:
    subscription = _request(shipment)

    with pytest.raises(SubscriptionError) as refused:
        subscriptions.subscription_confirm(
            subscription=subscription, code=_wrong(_code(subscription))
        )

    assert refused.value.field == "code"
    assert refused.value.message == "Wrong code. 4 tries left."
    subscription.refresh_from_db()
    assert subscription.failed_tries == 1
    assert subscription.confirmed_at is None


def test_after_five_wrong_codes_even_the_right_one_is_void(shipment: Shipment) -> None:
    subscription = _request(shipment)
    code = _code(subscription)
    messages = []
    for _ in range(subscriptions.MAX_TRIES):
        with pytest.raises(SubscriptionError) as refused:
            subscriptions.subscription_confirm(
                subscription=subscription, code=_wrong(code)
            )
        messages.append(refused.value.message)

    with pytest.raises(SubscriptionError) as refused:
        subscriptions.subscription_confirm(subscription=subscription, code=code)

    assert messages[-2] == "Wrong code. 1 try left."
    assert "that was the last try" in messages[-1]
    assert "no longer works" in refused.value.message
    subscription.refresh_from_db()
    assert not subscription.is_active
    assert subscription.code_hash == ""


def test_a_new_code_after_too_many_tries_works(shipment: Shipment) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _request(shipment)
        for _ in range(subscriptions.MAX_TRIES):
            with pytest.raises(SubscriptionError):
                subscriptions.subscription_confirm(
                    subscription=subscription, code=_wrong(_code(subscription))
                )
        clock.shift(timedelta(minutes=1, seconds=1))
        _request(shipment)

        assert subscriptions.subscription_confirm(
            subscription=subscription, code=_code(subscription)
        ).is_active


def test_a_code_expires_after_30_minutes(shipment: Shipment) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _request(shipment)
        clock.shift(subscriptions.CODE_TTL)
        with pytest.raises(SubscriptionError) as refused:
            subscriptions.subscription_confirm(
                subscription=subscription, code=_code(subscription)
            )

    assert "expired" in refused.value.message
    subscription.refresh_from_db()
    assert not subscription.is_active
    assert subscription.failed_tries == 0


def test_a_code_works_until_its_last_second(shipment: Shipment) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _request(shipment)
        clock.shift(subscriptions.CODE_TTL - timedelta(seconds=1))
        assert subscriptions.subscription_confirm(
            subscription=subscription, code=_code(subscription)
        ).is_active


# --- milestones to confirmed addresses ------------------------------------------


def test_confirmed_addresses_get_every_later_milestone_on_their_own_channel(
    shipment: Shipment,
) -> None:
    email = _confirmed(shipment, "fan@example.org")
    phone = _confirmed(shipment, "+12025550188", channel=SMS)

    _scan(shipment, EventKind.OUT_FOR_DELIVERY)

    rows = _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)
    assert [(r.channel, r.to, r.subscription_id) for r in rows] == [
        (EMAIL, "fan@example.org", email.pk),
        (SMS, "+12025550188", phone.pk),
    ]
    for row in rows:
        assert row.status == Status.PENDING
        assert row.subscription_id is not None
        stop = links.stop_url(shipment.public_token, row.subscription_id)
        assert row.body_text.endswith(stop) or stop in row.body_text
        assert links.manage_url(shipment.public_token, Audience.RECIPIENT) not in (
            row.body_text + row.body_html
        )
        assert shipment.recipient_name not in row.body_text + row.body_html
    [email_row, sms_row] = rows
    assert stop_of(email_row) in email_row.body_html
    assert "Stop them" in email_row.body_html
    assert email_row.body_text.startswith("Hello,")
    assert sms_row.body_text.endswith(stop_of(sms_row))
    # The recipient hears as before, once per channel.
    recipient = Notification.objects.filter(
        shipment=shipment, kind=Kind.OUT_FOR_DELIVERY, audience=Audience.RECIPIENT
    )
    assert sorted(recipient.values_list("to", flat=True)) == [
        "+12025550143",
        "recipient@example.net",
    ]

    _scan(shipment, EventKind.DELIVERED)

    assert len(_subscriber_rows(shipment, Kind.DELIVERED)) == 2


def stop_of(row: Notification) -> str:
    assert row.subscription_id is not None
    assert row.shipment is not None
    return links.stop_url(row.shipment.public_token, row.subscription_id)


def test_unconfirmed_and_stopped_addresses_get_no_milestones(
    shipment: Shipment,
) -> None:
    _request(shipment, "pending@example.org")
    stopped = _confirmed(shipment, "stopped@example.org")
    subscriptions.subscription_stop(subscription=stopped)

    _scan(shipment, EventKind.OUT_FOR_DELIVERY)

    assert _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY) == []


def test_the_recipients_own_address_gets_one_message_not_two(
    shipment: Shipment,
) -> None:
    _confirmed(shipment, "Recipient@Example.net")
    _confirmed(shipment, "(202) 555-0143", channel=SMS)

    _scan(shipment, EventKind.OUT_FOR_DELIVERY)

    rows = Notification.objects.filter(shipment=shipment, kind=Kind.OUT_FOR_DELIVERY)
    assert sorted(rows.values_list("audience", "to")) == [
        (Audience.RECIPIENT, "+12025550143"),
        (Audience.RECIPIENT, "recipient@example.net"),
    ]


def test_handling_an_event_twice_writes_nothing_new_for_subscribers(
    shipment: Shipment,
) -> None:
    _confirmed(shipment, "fan@example.org")
    event = _scan(shipment, EventKind.OUT_FOR_DELIVERY)

    again = outbox.notifications_for_event(
        event=event, shipment=shipment, previous_status=ShipmentStatus.DISPATCHED
    )

    assert again == []
    assert len(_subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)) == 1


def test_a_subscribers_email_goes_out_with_a_one_click_stop_header(
    mail_server: SmtpSink, shipment: Shipment
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    _scan(shipment, EventKind.OUT_FOR_DELIVERY)
    [row] = _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)

    assert delivery.notification_deliver(notification_id=row.pk) is None

    [message] = mail_server.to("fan@example.org")
    one_click = links.stop_one_click_url(shipment.public_token, subscription.pk)
    assert message["List-Unsubscribe"] == f"<{one_click}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    row.refresh_from_db()
    assert row.status == Status.SENT


def test_the_code_email_goes_out_too(mail_server: SmtpSink, shipment: Shipment) -> None:
    subscription = _request(shipment, "fan@example.org")
    [row] = _codes(subscription)

    delivery.notification_deliver(notification_id=row.pk)

    [message] = mail_server.to("fan@example.org")
    assert _code(subscription) in message["Subject"]


def test_a_message_written_before_the_stop_is_not_sent_after_it(
    mail_server: SmtpSink, shipment: Shipment
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    _scan(shipment, EventKind.OUT_FOR_DELIVERY)
    [row] = _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)
    subscriptions.subscription_stop(subscription=subscription)

    assert delivery.notification_deliver(notification_id=row.pk) is None

    assert mail_server.to("fan@example.org") == []
    row.refresh_from_db()
    assert row.status == Status.SUPPRESSED
    assert row.last_error == "The subscriber stopped these updates before sending."


def test_stopping_twice_changes_nothing(shipment: Shipment) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    first = subscriptions.subscription_stop(subscription=subscription).stopped_at

    again = subscriptions.subscription_stop(subscription=subscription)

    assert again.stopped_at == first
    assert not again.is_active


def test_asking_again_after_stopping_needs_a_new_confirmation(
    shipment: Shipment,
) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _confirmed(shipment, "fan@example.org")
        subscriptions.subscription_stop(subscription=subscription)
        clock.shift(timedelta(minutes=2))
        again = _request(shipment, "fan@example.org")
        assert again.pk == subscription.pk
        assert again.stopped_at is None
        assert not again.is_active
        _scan(shipment, EventKind.OUT_FOR_DELIVERY)
        assert _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY) == []
        assert subscriptions.subscription_confirm(
            subscription=again, code=_code(again)
        ).is_active


def test_staff_resend_a_subscribers_message_to_the_subscriber(
    shipment: Shipment, cs_agent: User
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    _scan(shipment, EventKind.OUT_FOR_DELIVERY)
    [row] = _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)
    Notification.objects.filter(pk=row.pk).update(
        status=Status.FAILED, next_attempt_at=None
    )

    copy = delivery.notification_resend(notification=row, user=cs_agent)

    assert copy.to == "fan@example.org"
    assert copy.audience == Audience.SUBSCRIBER
    assert copy.subscription_id == subscription.pk

    subscriptions.subscription_stop(subscription=subscription)
    Notification.objects.filter(pk=copy.pk).update(
        status=Status.SENT, next_attempt_at=None
    )
    with pytest.raises(ValidationError):
        delivery.notification_resend(notification=row, user=cs_agent)
    code_row = _codes(subscription)[0]
    Notification.objects.filter(pk=code_row.pk).update(
        status=Status.SENT, next_attempt_at=None
    )
    with pytest.raises(ValidationError):
        delivery.notification_resend(notification=code_row, user=cs_agent)


# --- message texts ---------------------------------------------------------------


# As tests/notifications/test_templates.py: these two may take two segments.
SMS_BUDGET: dict[str, int] = {
    **dict.fromkeys(CUSTOMER_KINDS, 1),
    Kind.DISPATCHED: 2,
    Kind.EXCEPTION: 2,
}


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.usefixtures("frozen")
def test_the_code_sms_fits_one_gsm7_segment_in_one_line(shipment: Shipment) -> None:
    subscription = _request(shipment, "+12025550188", channel=SMS)
    [row] = _codes(subscription)

    assert "\n" not in row.body_text
    assert row.subject == row.body_html == ""
    assert row.body_text.startswith(f"{_code(subscription)} is your TrackSOP code")
    assert rendering.sms_segments(row.body_text) == 1, row.body_text
    assert row.body_text.encode("gsm03.38")


@pytest.mark.parametrize("channel", [EMAIL, SMS])
def test_the_code_message_renders_from_its_files(channel: str) -> None:
    context: dict[str, Any] = {
        "company": "TrackSOP",
        "code": "042042",
        "minutes": 30,
        "confirm_url": "http://127.0.0.1:8000/t/AbCdEfGhIjKlMnOpQrStUv/subscribe/12/?code=042042",
    }

    message = rendering.render(Kind.SUBSCRIPTION_CONFIRM, channel, context)

    for part in (message.subject, message.text, message.html):
        for leftover in ("{{", "}}", "{%", "%}", "None"):
            assert leftover not in part
    if channel == EMAIL:
        assert message.subject == "042042 is your TrackSOP code for package updates"
        assert context["confirm_url"] in message.text
        assert context["confirm_url"] in message.html
        assert "30 minutes" in message.text
        # No footer: the address is nobody's subscriber yet.
        assert "Stop them" not in message.html
    else:
        assert "042042" in message.text


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_every_milestone_sms_to_a_subscriber_fits_its_budget_with_the_stop_link(
    shipment: Shipment, kind: str
) -> None:
    subscription = _confirmed(shipment, "+12025550188", channel=SMS)
    subscription.pk = 999_999  # a long id: the longest stop link for years
    event = shipment.events.latest("id")
    event.data = {
        "cause": "Address label damaged",
        "expected_resolution": (NOW + timedelta(days=1)).isoformat(),
        "reason": "Severe weather at the hub",
    }
    context = rendering.message_context(
        shipment=shipment,
        audience=Audience.SUBSCRIBER,
        event=event,
        subscription=subscription,
    )

    sms = rendering.render(kind, SMS, context)

    assert sms.text.endswith(links.stop_url(shipment.public_token, 999_999))
    assert rendering.sms_segments(sms.text) <= SMS_BUDGET[kind], (
        f"{len(sms.text)} characters: {sms.text}"
    )


# --- the stop link ---------------------------------------------------------------


def test_a_stop_code_names_its_subscription_and_only_for_its_token() -> None:
    code = links.stop_code("TokenOfPackageOne12345", 42)

    assert links.stop_subscription_id("TokenOfPackageOne12345", code) == 42
    assert links.stop_subscription_id("TokenOfPackageTwo12345", code) is None
    assert len(code) == 2 + 16


@pytest.mark.parametrize(
    "tamper",
    [
        lambda code: code[:-1] + ("A" if code[-1] != "A" else "B"),
        lambda code: "2" + code[1:],  # id 42 is "16"
        lambda code: code[:-2],
        lambda code: "",
        lambda code: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        lambda code: "-" + code,
    ],
    ids=["changed mac", "other id", "cut short", "empty", "junk", "negative id"],
)
def test_a_tampered_stop_code_is_not_genuine(tamper: Any) -> None:
    code = links.stop_code("TokenOfPackageOne12345", 42)

    assert links.stop_subscription_id("TokenOfPackageOne12345", tamper(code)) is None


# --- the pages ---------------------------------------------------------------------


def _client(**kwargs: Any) -> Client:
    # A client address of its own: the rate limit counts per address in the
    # shared Redis, across tests and runs.
    address = str(IPv4Address("10.0.0.0") + random.getrandbits(24))
    return Client(REMOTE_ADDR=address, **kwargs)


@pytest.fixture
def client() -> Client:
    return _client()


@pytest.fixture
def private() -> Shipment:
    """Distinctive personal details to look for in the pages."""
    return dispatched_shipment(
        order_number="ORD-40003",
        sender_name="Quillfeather Supplies",
        sender_email="orders@quillfeather.example",
        recipient_name="Zebediah Marchbanks",
        recipient_email="zebediah.m@example.net",
        recipient_phone="+12025550199",
        recipient_address="17 Cherry Tree Lane",
        recipient_postcode="90210",
        recipient_city="Shelbyville",
    )


PERSONAL = (
    "Zebediah",
    "Marchbanks",
    "zebediah.m",
    "5550199",
    "555-0199",
    "Cherry Tree",
    "90210",
    "Shelbyville",
    "Quillfeather",
    "ORD-40003",
)


def _subscribe_url(shipment: Shipment) -> str:
    return reverse("public-subscribe", args=[shipment.public_token])


def _confirm_url(subscription: Subscription) -> str:
    return reverse(
        "public-subscribe-confirm",
        args=[
            subscription.shipment.public_token,
            links.confirm_ref(subscription.shipment.public_token, subscription.pk),
        ],
    )


def _stop_path(subscription: Subscription) -> str:
    return urlsplit(
        links.stop_url(subscription.shipment.public_token, subscription.pk)
    ).path


def _html(response: TestResponse) -> str:
    return response.content.decode()


def test_the_subscribe_page_offers_email_and_sms_with_labelled_fields(
    client: Client, shipment: Shipment
) -> None:
    response = client.get(_subscribe_url(shipment))

    assert response.status_code == 200
    page = _html(response)
    assert '<label for="id_channel_0">Email</label>' in page
    assert '<label for="id_channel_1">Text message (SMS)</label>' in page
    assert '<label for="id_address">Email address or mobile number:</label>' in page
    assert 'aria-describedby="id_address_helptext"' in page
    assert 'id="id_address_helptext"' in page
    assert "no-store" in response["Cache-Control"]


def test_subscribing_writes_the_code_and_goes_to_the_confirm_page(
    client: Client, shipment: Shipment
) -> None:
    response = client.post(
        _subscribe_url(shipment), {"channel": "email", "address": "Fan@Example.org"}
    )

    subscription = Subscription.objects.get(shipment=shipment)
    assert response.status_code == 302
    assert response["Location"] == _confirm_url(subscription)
    assert subscription.address == "fan@example.org"
    assert len(_codes(subscription)) == 1


def test_the_code_goes_out_in_the_language_the_page_was_in(
    client: Client, shipment: Shipment
) -> None:
    client.post(
        _subscribe_url(shipment),
        {"channel": "email", "address": "fan@example.org"},
        headers={"accept-language": "es"},
    )

    assert Subscription.objects.get().language == "es"


def test_a_bad_address_shows_the_form_again_with_the_message_at_the_field(
    client: Client, shipment: Shipment
) -> None:
    response = client.post(
        _subscribe_url(shipment), {"channel": "sms", "address": "12"}
    )

    assert response.status_code == 400
    page = _html(response)
    assert 'id="id_address_error"' in page
    assert "Enter a valid mobile number" in page
    assert 'aria-describedby="id_address_helptext id_address_error"' in page
    assert 'aria-invalid="true"' in page
    assert 'value="12"' in page
    assert not Subscription.objects.exists()


def test_a_missing_channel_is_shown_at_the_choice(
    client: Client, shipment: Shipment
) -> None:
    response = client.post(_subscribe_url(shipment), {"address": "fan@example.org"})

    assert response.status_code == 400
    assert 'aria-describedby="id_channel_error"' in _html(response)
    assert not Subscription.objects.exists()


def test_a_closed_shipment_shows_no_form_and_refuses_a_post(
    client: Client, shipment: Shipment
) -> None:
    _scan(shipment, EventKind.DELIVERED)

    page = client.get(_subscribe_url(shipment))
    posted = client.post(
        _subscribe_url(shipment), {"channel": "email", "address": "fan@example.org"}
    )

    assert page.status_code == 200
    assert 'data-testid="closed"' in _html(page)
    assert "<form" not in _html(page)
    assert posted.status_code == 400
    assert "no more updates" in _html(posted)
    assert not Subscription.objects.exists()


def test_an_unknown_token_is_404_on_every_page(client: Client) -> None:
    token = "A" * 22
    paths = [
        reverse("public-subscribe", args=[token]),
        reverse("public-subscribe-confirm", args=[token, links.confirm_ref(token, 1)]),
        reverse("public-subscription-stop", args=[token, links.stop_code(token, 1)]),
        reverse(
            "public-subscription-unsubscribe", args=[token, links.stop_code(token, 1)]
        ),
    ]
    for path in paths:
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 404, path
    assert "We cannot find this page" in _html(client.get(paths[0]))


def test_a_subscription_of_another_package_is_404(
    client: Client, shipment: Shipment
) -> None:
    other = _request(dispatched_shipment(), "fan@example.org")
    token = shipment.public_token

    confirm = client.get(
        reverse(
            "public-subscribe-confirm",
            args=[token, links.confirm_ref(other.shipment.public_token, other.pk)],
        )
    )
    # A code genuine for the other package's token, used under this one's.
    stop = client.get(
        reverse(
            "public-subscription-stop",
            args=[token, links.stop_code(other.shipment.public_token, other.pk)],
        )
    )

    assert confirm.status_code == 404
    assert stop.status_code == 404


def test_the_confirm_link_in_the_email_fills_in_the_code_but_confirms_nothing(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment)
    code = _code(subscription)

    response = client.get(f"{_confirm_url(subscription)}?code={code}")

    assert response.status_code == 200
    page = _html(response)
    assert f'value="{code}"' in page
    assert "f•••@example.org" in page
    assert 'autocomplete="one-time-code"' in page
    subscription.refresh_from_db()
    assert not subscription.is_active


def test_the_right_code_confirms_and_the_page_says_so(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment)

    response = client.post(_confirm_url(subscription), {"code": _code(subscription)})

    assert response.status_code == 302
    assert response["Location"] == _confirm_url(subscription)
    subscription.refresh_from_db()
    assert subscription.is_active
    page = _html(client.get(_confirm_url(subscription)))
    assert 'data-testid="confirmed"' in page
    assert "<form" not in page


def test_a_wrong_code_is_shown_at_the_code_field(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment)

    response = client.post(
        _confirm_url(subscription), {"code": _wrong(_code(subscription))}
    )

    assert response.status_code == 400
    page = _html(response)
    assert 'id="id_code_error"' in page
    assert "Wrong code. 4 tries left." in page
    assert 'aria-describedby="id_code_helptext id_code_error"' in page


def test_a_code_that_is_not_six_digits_costs_no_try(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment)

    response = client.post(_confirm_url(subscription), {"code": "12ab"})

    assert response.status_code == 400
    assert "Enter the 6 digits of the code." in _html(response)
    subscription.refresh_from_db()
    assert subscription.failed_tries == 0


def test_a_new_code_is_sent_on_request_but_not_twice_a_minute(
    client: Client, shipment: Shipment
) -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        subscription = _request(shipment)
        too_soon = client.post(_confirm_url(subscription), {"resend": ""})
        clock.shift(timedelta(seconds=61))
        sent = client.post(_confirm_url(subscription), {"resend": ""})
        page = client.get(sent["Location"])

    assert too_soon.status_code == 400
    assert "Wait a minute" in _html(too_soon)
    assert sent.status_code == 302
    assert sent["Location"] == _confirm_url(subscription) + "?sent=1"
    assert 'data-testid="sent"' in _html(page)
    assert len(_codes(subscription)) == 2


def test_the_pages_show_nothing_personal_about_the_shipment(
    client: Client, private: Shipment
) -> None:
    form = client.get(_subscribe_url(private))
    client.post(
        _subscribe_url(private), {"channel": "email", "address": "fan@example.org"}
    )
    subscription = Subscription.objects.get(shipment=private)
    pending = client.get(_confirm_url(subscription))
    client.post(_confirm_url(subscription), {"code": _code(subscription)})
    confirmed = client.get(_confirm_url(subscription))
    stop = client.get(_stop_path(subscription))

    for response in (form, pending, confirmed, stop):
        assert response.status_code == 200
        page = _html(response)
        for personal in PERSONAL:
            assert personal not in page
        # Only the address they typed, masked.
        assert "fan@example.org" not in page
        assert "Log out" not in page
    assert "f•••@example.org" in _html(pending)


def test_the_forms_need_their_csrf_token(shipment: Shipment) -> None:
    client = _client(enforce_csrf_checks=True)
    subscription = _request(shipment, "fan@example.org")

    refused = [
        client.post(
            _subscribe_url(shipment), {"channel": "email", "address": "a@b.org"}
        ),
        client.post(_confirm_url(subscription), {"code": _code(subscription)}),
        client.post(_stop_path(subscription)),
    ]

    assert [r.status_code for r in refused] == [403, 403, 403]
    subscription.refresh_from_db()
    assert subscription.confirmed_at is None
    assert subscription.stopped_at is None
    assert Subscription.objects.count() == 1


def test_the_forms_work_with_their_csrf_token(shipment: Shipment) -> None:
    client = _client(enforce_csrf_checks=True)
    client.get(_subscribe_url(shipment))
    token = client.cookies["csrftoken"].value

    response = client.post(
        _subscribe_url(shipment),
        {"channel": "sms", "address": "202 555 0188", "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302
    assert Subscription.objects.get().address == "+12025550188"


@time_machine.travel(next_hour_start(), tick=True)  # no hour ends halfway
def test_too_many_posts_from_one_client_get_a_try_later_page(
    client: Client, shipment: Shipment, settings: Settings
) -> None:
    settings.TRACKSOP_PUBLIC_POST_RATE = "2/h"
    bad = {"channel": "email", "address": "nope"}

    statuses = [
        client.post(_subscribe_url(shipment), bad).status_code for _ in range(2)
    ]
    limited = client.post(
        _subscribe_url(shipment), {"channel": "email", "address": "fan@example.org"}
    )

    assert statuses == [400, 400]
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 3600 + 5
    assert "try again later" in _html(limited)
    assert not Subscription.objects.exists()
    # Another client is not held back, and pages still open.
    other = _client()
    assert client.get(_subscribe_url(shipment)).status_code == 200
    assert (
        other.post(
            _subscribe_url(shipment),
            {"channel": "email", "address": "fan@example.org"},
        ).status_code
        == 302
    )


def test_the_subscribe_pages_refuse_other_methods(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment)

    for path in (
        _subscribe_url(shipment),
        _confirm_url(subscription),
        _stop_path(subscription),
    ):
        assert client.put(path).status_code == 405


def test_the_stop_link_asks_first_and_stops_on_post(
    client: Client, shipment: Shipment
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    path = _stop_path(subscription)

    asked = client.get(path)
    subscription.refresh_from_db()
    assert asked.status_code == 200
    assert subscription.is_active
    assert "Stop updates</button>" in _html(asked)
    assert "f•••@example.org" in _html(asked)

    stopped = client.post(path)

    assert stopped.status_code == 302
    assert stopped["Location"] == path
    subscription.refresh_from_db()
    assert subscription.stopped_at is not None
    after = _html(client.get(path))
    assert 'data-testid="stopped"' in after
    assert "<button" not in after


def test_a_tampered_stop_link_is_404_and_stops_nothing(
    client: Client, shipment: Shipment
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    code = links.stop_code(shipment.public_token, subscription.pk)
    forged = code[:-1] + ("A" if code[-1] != "A" else "B")

    for name in ("public-subscription-stop", "public-subscription-unsubscribe"):
        path = reverse(name, args=[shipment.public_token, forged])
        assert client.get(path).status_code == 404
        assert client.post(path).status_code == 404
    subscription.refresh_from_db()
    assert subscription.is_active


def test_one_click_stop_works_without_a_csrf_token(shipment: Shipment) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    client = Client(enforce_csrf_checks=True)
    one_click = urlsplit(
        links.stop_one_click_url(shipment.public_token, subscription.pk)
    ).path

    opened = client.get(one_click)
    subscription.refresh_from_db()
    assert opened.status_code == 302
    assert opened["Location"] == _stop_path(subscription)
    assert subscription.is_active

    response = client.post(one_click, {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.stopped_at is not None


def test_the_manage_link_still_works_beside_the_new_routes(
    client: Client, shipment: Shipment
) -> None:
    manage = urlsplit(links.manage_url(shipment.public_token, Audience.RECIPIENT)).path

    assert client.get(manage).status_code == 200
    assert reverse("public-subscribe", args=[shipment.public_token]) == (
        f"/t/{shipment.public_token}/subscribe/"
    )


def test_the_admin_lists_addresses_and_stops_them(
    admin_client: Client, shipment: Shipment
) -> None:
    subscription = _confirmed(shipment, "fan@example.org")
    pending = _request(shipment, "pending@example.org")
    url = reverse("admin:notifications_subscription_changelist")

    listed = admin_client.get(url)
    stopped = admin_client.post(
        url, {"action": "stop", "_selected_action": [subscription.pk]}
    )

    assert listed.status_code == 200
    assert "fan@example.org" in _html(listed)
    change = reverse("admin:notifications_subscription_change", args=[pending.pk])
    assert pending.code_hash.split("$")[1] not in _html(admin_client.get(change))
    assert stopped.status_code == 302
    subscription.refresh_from_db()
    assert subscription.stopped_at is not None


def test_the_confirmation_page_cannot_be_found_by_stepping_through_ids(
    client: Client, shipment: Shipment
) -> None:
    subscription = _request(shipment, "fan@example.org")
    token = shipment.public_token
    for ref in (str(subscription.pk), links.stop_code(token, subscription.pk)):
        response = client.get(f"/t/{token}/subscribe/{ref}/")
        assert response.status_code == 404
        assert "f•••@example.org" not in _html(response)


def test_a_subscriber_is_never_told_the_order_number(shipment: Shipment) -> None:
    """The order number is the look-up's second factor: a subscriber, who may
    be anyone with the link, reads the tracking number in its place."""
    _confirmed(shipment, "fan@example.org")
    _confirmed(shipment, "+12025550188", channel=SMS)
    _scan(shipment, EventKind.OUT_FOR_DELIVERY)

    rows = _subscriber_rows(shipment, Kind.OUT_FOR_DELIVERY)
    assert {row.channel for row in rows} == {EMAIL, SMS}
    for row in rows:
        for part in (row.subject, row.body_text, row.body_html):
            assert "ORD-50001" not in part
    by_channel = {row.channel: row for row in rows}
    assert "1Z999AA10123456784" in by_channel[EMAIL].subject
    assert "your package is out for delivery" in by_channel[SMS].body_text
    [recipients] = Notification.objects.filter(
        shipment=shipment,
        kind=Kind.OUT_FOR_DELIVERY,
        audience=Audience.RECIPIENT,
        channel=EMAIL,
    )
    assert "ORD-50001" in recipients.subject + recipients.body_text


def test_staff_see_that_a_code_was_sent_but_never_the_code(
    client: Client, cs_agent: User, shipment: Shipment
) -> None:
    subscription = _request(shipment, "fan@example.org")
    code = _code(subscription)
    client.force_login(cs_agent)

    page = _html(client.get(shipment.get_absolute_url()))

    [row] = _codes(subscription)
    assert f'data-notification="{row.pk}"' in page
    assert "its text is not shown" in page
    assert code not in page


def test_the_admin_lists_messages_without_loading_their_bodies(
    admin_client: Client, shipment: Shipment
) -> None:
    _confirmed(shipment, "fan@example.org")
    url = reverse("admin:notifications_notification_changelist")

    with CaptureQueriesContext(connection) as captured:
        listed = admin_client.get(url)

    assert listed.status_code == 200
    assert "fan@example.org" in _html(listed)
    [listing] = [
        q["sql"]
        for q in captured
        if "ORDER BY" in q["sql"] and '"notifications_notification"."to"' in q["sql"]
    ]
    assert '"mime"' not in listing
    assert '"body_html"' not in listing
