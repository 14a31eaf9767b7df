"""The customer service desk: inquiries logged and answered on the shipment
page, the open-inquiries list, and reporting an exception from an inquiry.

Inquiries are staff-only records: they write no event, change no shipment,
and never reach the public page or the customer's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt.models import DeliveryException
from notifications.models import Notification
from shipments import selectors
from shipments.checkpoints import checkpoint_record
from shipments.inquiries import InquiryAlreadyAnswered, inquiry_answer, inquiry_log
from shipments.models import Inquiry, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    LocationFactory,
    ShipmentFactory,
    UserFactory,
    dispatched_shipment,
)
from tests.helpers import TestResponse, race

pytestmark = pytest.mark.django_db

PHONE = Inquiry.Channel.PHONE
OPEN = Inquiry.Status.OPEN
ANSWERED = Inquiry.Status.ANSWERED


def _log(
    shipment: Shipment, user: User, question: str = "Where is my parcel?", **kw: Any
) -> Inquiry:
    kw.setdefault("channel", PHONE)
    return inquiry_log(shipment=shipment, user=user, question=question, **kw)


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _page(response: TestResponse) -> str:
    return response.content.decode()


def _delivered() -> Shipment:
    shipment = dispatched_shipment()
    checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)
    shipment.refresh_from_db()
    return shipment


# --- services ----------------------------------------------------------------


def test_a_question_logged_without_an_answer_stays_open(cs_agent: User) -> None:
    inquiry = _log(ShipmentFactory(), cs_agent, "  Where is my parcel?  ")

    assert inquiry.status == OPEN
    assert inquiry.question == "Where is my parcel?"
    assert inquiry.created_by == cs_agent
    assert (inquiry.answer, inquiry.answered_by, inquiry.answered_at) == (
        "",
        None,
        None,
    )


def test_a_question_logged_with_its_answer_is_answered_at_once(
    cs_agent: User,
) -> None:
    inquiry = _log(ShipmentFactory(), cs_agent, answer="Arrives Friday.")

    assert inquiry.status == ANSWERED
    assert inquiry.answer == "Arrives Friday."
    assert inquiry.answered_by == cs_agent
    assert inquiry.answered_at is not None


def test_customers_may_call_after_delivery(cs_agent: User) -> None:
    shipment = _delivered()
    assert shipment.status == ShipmentStatus.DELIVERED

    inquiry = _log(shipment, cs_agent, "The box was wet, who do I talk to?")

    assert inquiry.pk is not None


def test_logging_and_answering_leave_the_event_log_and_the_shipment_alone(
    cs_agent: User,
) -> None:
    # The event log drives the status, the customer's messages and the public
    # page: an inquiry must not touch any of them, nor stale an open edit form.
    shipment = dispatched_shipment()
    events, messages = TrackingEvent.objects.count(), Notification.objects.count()
    version = shipment.version

    inquiry = _log(shipment, cs_agent)
    inquiry_answer(inquiry=inquiry, user=cs_agent, answer="Friday.")

    shipment.refresh_from_db()
    assert TrackingEvent.objects.count() == events
    assert Notification.objects.count() == messages
    assert shipment.version == version


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"question": "   "}, "question", "Write what the customer asked."),
        ({"question": "x" * 2001}, "question", "Keep the question to 2000"),
        ({"channel": "pigeon"}, "channel", "Choose how the customer reached us."),
        ({"answer": "y" * 4001}, "answer", "Keep the answer to 4000"),
    ],
)
def test_logging_refuses_bad_input_at_the_field_and_saves_nothing(
    cs_agent: User, kwargs: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _log(ShipmentFactory(), cs_agent, **kwargs)

    assert message in refused.value.message_dict[field][0]
    assert not Inquiry.objects.exists()


def test_a_question_of_exactly_2000_characters_is_taken(cs_agent: User) -> None:
    assert len(_log(ShipmentFactory(), cs_agent, "x" * 2000).question) == 2000


def test_answering_records_the_answer_who_and_when(
    cs_agent: User, supervisor: User
) -> None:
    inquiry = _log(ShipmentFactory(), cs_agent)

    answered = inquiry_answer(
        inquiry=inquiry, user=supervisor, answer=" It left the hub today. "
    )

    assert answered.status == ANSWERED
    assert answered.answer == "It left the hub today."
    assert answered.answered_by == supervisor
    assert answered.answered_at is not None
    assert answered.answered_at >= inquiry.created_at


def test_an_empty_answer_is_refused_and_the_inquiry_stays_open(
    cs_agent: User,
) -> None:
    inquiry = _log(ShipmentFactory(), cs_agent)

    with pytest.raises(ValidationError) as refused:
        inquiry_answer(inquiry=inquiry, user=cs_agent, answer="  ")

    assert refused.value.message_dict == {
        "answer": ["Write what the customer was told."]
    }
    inquiry.refresh_from_db()
    assert inquiry.status == OPEN


def test_answering_twice_says_who_answered_first_and_changes_nothing(
    cs_agent: User, supervisor: User
) -> None:
    supervisor.first_name, supervisor.last_name = "Grace", "Hopper"
    supervisor.save()
    inquiry = _log(ShipmentFactory(), cs_agent)
    inquiry_answer(inquiry=inquiry, user=supervisor, answer="First.")

    with pytest.raises(InquiryAlreadyAnswered) as refused:
        inquiry_answer(inquiry=inquiry, user=cs_agent, answer="Second.")

    assert "already answered by Grace Hopper" in str(refused.value)
    inquiry.refresh_from_db()
    assert (inquiry.answer, inquiry.answered_by) == ("First.", supervisor)


@pytest.mark.django_db(transaction=True)
def test_two_agents_answering_at_once_one_wins_and_the_other_is_told(
    cs_agent: User, supervisor: User
) -> None:
    inquiry = _log(ShipmentFactory(), cs_agent)

    outcomes = race(
        lambda: inquiry_answer(inquiry=inquiry, user=cs_agent, answer="A"),
        lambda: inquiry_answer(inquiry=inquiry, user=supervisor, answer="B"),
    )

    won = [o for o in outcomes if isinstance(o, Inquiry)]
    lost = [o for o in outcomes if isinstance(o, InquiryAlreadyAnswered)]
    assert (len(won), len(lost)) == (1, 1), outcomes
    inquiry.refresh_from_db()
    assert inquiry.answer == won[0].answer
    assert inquiry.answered_by == won[0].answered_by
    assert "your answer was not saved" in str(lost[0])


# --- selectors ---------------------------------------------------------------


def test_the_staff_timeline_interleaves_inquiries_with_events_by_time(
    cs_agent: User, staff: User
) -> None:
    shipment = ShipmentFactory()
    first = _log(shipment, cs_agent, "First call")
    note = checkpoint_record(
        shipment=shipment, kind=EventKind.NOTE, user=staff, notes="Seen"
    )
    second = _log(shipment, cs_agent, "Second call")

    inquiries = selectors.shipment_inquiries(user=cs_agent, shipment=shipment)
    merged = selectors.timeline_with_inquiries(
        selectors.shipment_timeline(shipment=shipment), inquiries
    )

    shown = [
        e.inquiry if isinstance(e, selectors.InquiryEntry) else e.event for e in merged
    ]
    assert shown[1:] == [first, note, second]
    assert isinstance(shown[0], TrackingEvent)
    assert shown[0].kind == EventKind.CREATED


def test_someone_who_may_not_see_inquiries_gets_none_and_no_query(
    cs_agent: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    shipment = ShipmentFactory()
    _log(shipment, cs_agent)
    reader = UserFactory()
    reader.user_permissions.add(Permission.objects.get(codename="view_shipment"))
    reader = User.objects.get(pk=reader.pk)  # fresh permission cache
    reader.has_perm("shipments.view_shipment")

    with django_assert_num_queries(0):
        assert selectors.shipment_inquiries(user=reader, shipment=shipment) == []


# --- views: who may do what ----------------------------------------------------

WRITE_URLS: list[tuple[str, Callable[[Inquiry], list[Any]]]] = [
    ("inquiry-create", lambda i: [i.shipment.shipment_id]),
    ("inquiry-answer", lambda i: [i.shipment.shipment_id, i.pk]),
]
WRITERS = {
    "inquiry-create": {"cs_agent", "supervisor"},
    "inquiry-answer": {"cs_agent", "supervisor"},
}


@pytest.fixture
def inquiry(cs_agent: User) -> Inquiry:
    return _log(dispatched_shipment(), cs_agent)


def _post_data(name: str) -> dict[str, str]:
    if name == "inquiry-create":
        return {"channel": "email", "question": "Can you deliver to my office?"}
    return {"answer": "Yes, from tomorrow."}


def _snapshot() -> list[tuple[Any, ...]]:
    return list(Inquiry.objects.order_by("pk").values_list("pk", "status", "answer"))


@pytest.mark.parametrize("name", [n for n, _ in WRITE_URLS])
def test_write_urls_send_anonymous_visitors_to_the_login_page(
    client: Client, inquiry: Inquiry, name: str
) -> None:
    before = _snapshot()
    url = reverse(name, args=dict(WRITE_URLS)[name](inquiry))

    response = client.post(url, _post_data(name))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    assert _snapshot() == before


@pytest.mark.parametrize("role", ["staff", "cs_agent", "supervisor", "outsider"])
@pytest.mark.parametrize("name", [n for n, _ in WRITE_URLS])
def test_write_urls_take_the_desk_roles_and_refuse_the_others(
    client: Client,
    request: pytest.FixtureRequest,
    inquiry: Inquiry,
    name: str,
    role: str,
) -> None:
    # Logistics staff see inquiries (they may field a call) but the desk logs
    # and answers them: roles.py gives logistics view_inquiry only.
    before = _snapshot()
    _as(client, request.getfixturevalue(role))

    response = client.post(
        reverse(name, args=dict(WRITE_URLS)[name](inquiry)), _post_data(name)
    )

    if role in WRITERS[name]:
        assert response.status_code == 302
        assert _snapshot() != before
    else:
        assert response.status_code == 403
        assert _snapshot() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("name", [n for n, _ in WRITE_URLS])
def test_write_urls_take_only_post(
    client: Client, cs_agent: User, inquiry: Inquiry, name: str, method: str
) -> None:
    before = _snapshot()
    url = reverse(name, args=dict(WRITE_URLS)[name](inquiry))

    response = getattr(_as(client, cs_agent), method)(url)

    assert response.status_code == 405
    assert _snapshot() == before


def test_write_urls_check_the_csrf_token(cs_agent: User, inquiry: Inquiry) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cs_agent)
    url = reverse("inquiry-create", args=[inquiry.shipment.shipment_id])

    assert client.post(url, _post_data("inquiry-create")).status_code == 403
    assert Inquiry.objects.count() == 1


@pytest.mark.parametrize(
    ("role", "expected"),
    [("staff", 200), ("cs_agent", 200), ("supervisor", 200), ("outsider", 403)],
)
def test_the_open_inquiries_list_opens_for_staff_roles(
    client: Client, request: pytest.FixtureRequest, role: str, expected: int
) -> None:
    _as(client, request.getfixturevalue(role))
    assert client.get(reverse("inquiry-list")).status_code == expected


def test_the_open_inquiries_list_requires_login(client: Client) -> None:
    url = reverse("inquiry-list")
    assert client.get(url)["Location"] == f"{reverse('login')}?next={url}"


def test_the_open_inquiries_list_rejects_posts(client: Client, cs_agent: User) -> None:
    assert _as(client, cs_agent).post(reverse("inquiry-list")).status_code == 405


def test_the_answer_url_refuses_an_inquiry_of_another_shipment(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    other = ShipmentFactory()
    url = reverse("inquiry-answer", args=[other.shipment_id, inquiry.pk])

    assert _as(client, cs_agent).post(url, {"answer": "Hi"}).status_code == 404
    inquiry.refresh_from_db()
    assert inquiry.status == OPEN


# --- views: logging and answering on the shipment page ---------------------------


def test_an_agent_logs_a_call_from_the_shipment_page(
    client: Client, cs_agent: User
) -> None:
    shipment = dispatched_shipment()
    _as(client, cs_agent)

    response = client.post(
        reverse("inquiry-create", args=[shipment.shipment_id]),
        {"channel": "chat", "question": "Is it insured?", "answer": ""},
    )

    assert response.status_code == 302
    assert response["Location"] == shipment.get_absolute_url()
    inquiry = Inquiry.objects.get()
    assert (inquiry.channel, inquiry.question, inquiry.status) == (
        "chat",
        "Is it insured?",
        OPEN,
    )
    page = client.get(shipment.get_absolute_url())
    assert [str(m) for m in page.context["messages"]] == [
        f"Inquiry #{inquiry.pk} logged; it stays open until answered."
    ]
    # The next call on a chat shift starts on Chat.
    assert page.context["log_form"]["channel"].value() == "chat"
    assert "Is it insured?" in _page(page)


def test_an_agent_logs_a_call_answered_on_the_spot(
    client: Client, cs_agent: User
) -> None:
    shipment = _delivered()

    response = _as(client, cs_agent).post(
        reverse("inquiry-create", args=[shipment.shipment_id]),
        {"channel": "phone", "question": "Delivered?", "answer": "Yes, at 10:02."},
        follow=True,
    )

    inquiry = Inquiry.objects.get()
    assert (inquiry.status, inquiry.answered_by) == (ANSWERED, cs_agent)
    assert [str(m) for m in response.context["messages"]] == [
        f"Inquiry #{inquiry.pk} logged as answered."
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"channel": "phone", "question": ""}, "question", "This field is required."),
        (
            {"channel": "phone", "question": "q" * 2001},
            "question",
            "Ensure this value has at most 2000 characters (it has 2001).",
        ),
        (
            {"channel": "fax", "question": "Where?"},
            "channel",
            "Select a valid choice. fax is not one of the available choices.",
        ),
    ],
)
def test_bad_input_to_the_log_form_answers_400_at_the_field_and_saves_nothing(
    client: Client,
    cs_agent: User,
    data: dict[str, str],
    field: str,
    message: str,
) -> None:
    shipment = dispatched_shipment()

    response = _as(client, cs_agent).post(
        reverse("inquiry-create", args=[shipment.shipment_id]), data
    )

    assert response.status_code == 400
    assert response.context["log_form"].errors[field] == [message]
    assert message.replace("'", "&#x27;") in _page(response)
    assert not Inquiry.objects.exists()


def test_an_agent_answers_an_open_inquiry_from_the_shipment_page(
    client: Client, cs_agent: User, supervisor: User, inquiry: Inquiry
) -> None:
    shipment = inquiry.shipment
    page = _as(client, supervisor).get(shipment.get_absolute_url())
    assert f'id="inquiry-{inquiry.pk}"' in _page(page)
    assert reverse("inquiry-answer", args=[shipment.shipment_id, inquiry.pk]) in (
        _page(page)
    )

    response = client.post(
        reverse("inquiry-answer", args=[shipment.shipment_id, inquiry.pk]),
        {"answer": "It is out for delivery."},
    )

    assert response.status_code == 302
    inquiry.refresh_from_db()
    assert (inquiry.status, inquiry.answered_by) == (ANSWERED, supervisor)
    page = client.get(shipment.get_absolute_url())
    assert reverse("inquiry-answer", args=[shipment.shipment_id, inquiry.pk]) not in (
        _page(page)
    )


def test_an_empty_answer_answers_400_at_the_field_and_keeps_it_open(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    url = reverse("inquiry-answer", args=[inquiry.shipment.shipment_id, inquiry.pk])

    response = _as(client, cs_agent).post(url, {"answer": "   "})

    assert response.status_code == 400
    [row] = [r for r in response.context["inquiry_rows"] if r.form is not None]
    assert row.form.errors["answer"] == ["This field is required."]
    inquiry.refresh_from_db()
    assert inquiry.status == OPEN


def test_an_answer_after_a_colleagues_answers_409_and_keeps_both_texts_visible(
    client: Client, cs_agent: User, supervisor: User, inquiry: Inquiry
) -> None:
    inquiry_answer(inquiry=inquiry, user=supervisor, answer="Theirs.")
    url = reverse("inquiry-answer", args=[inquiry.shipment.shipment_id, inquiry.pk])

    response = _as(client, cs_agent).post(url, {"answer": "Mine."})

    assert response.status_code == 409
    errors = response.context["inquiry_errors"]
    assert f"Inquiry #{inquiry.pk} was already answered by" in errors[0]
    assert "Mine." in errors[1]
    assert "Theirs." in _page(response)
    inquiry.refresh_from_db()
    assert (inquiry.answer, inquiry.answered_by) == ("Theirs.", supervisor)


def test_logistics_staff_see_inquiries_but_get_no_forms(
    client: Client, staff: User, inquiry: Inquiry
) -> None:
    response = _as(client, staff).get(inquiry.shipment.get_absolute_url())

    assert response.context["log_form"] is None
    assert [r.form for r in response.context["inquiry_rows"]] == [None]
    assert inquiry.question in _page(response)


def test_the_inquiries_panel_is_left_out_for_whom_it_has_nothing(
    client: Client, staff: User
) -> None:
    response = _as(client, staff).get(dispatched_shipment().get_absolute_url())
    assert 'data-testid="inquiries"' not in _page(response)


# --- the staff timeline, and nowhere else --------------------------------------


def test_the_staff_timeline_shows_inquiries_marked_as_such(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    response = _as(client, cs_agent).get(inquiry.shipment.get_absolute_url())

    entries = [e for e in response.context["timeline"] if e.is_inquiry]
    assert [e.inquiry for e in entries] == [inquiry]
    assert 'data-testid="timeline-inquiry"' in _page(response)


def test_a_reader_without_view_inquiry_sees_no_inquiries_on_the_shipment_page(
    client: Client, inquiry: Inquiry
) -> None:
    reader = UserFactory()
    reader.user_permissions.add(Permission.objects.get(codename="view_shipment"))

    response = _as(client, reader).get(inquiry.shipment.get_absolute_url())

    assert response.status_code == 200
    assert not any(e.is_inquiry for e in response.context["timeline"])
    assert inquiry.question not in _page(response)


def test_the_public_tracking_page_never_shows_inquiries(
    client: Client, cs_agent: User
) -> None:
    shipment = dispatched_shipment()
    _log(shipment, cs_agent, "Secret-question-7731", answer="Secret-answer-7731")

    response = client.get(reverse("public-tracking", args=[shipment.public_token]))

    assert response.status_code == 200
    assert "7731" not in _page(response)


# The shipment, its inquiries and the exceptions reported from them, the
# timeline, the message history (joins incl.).
DETAIL_QUERIES = 4 + 5 + 1  # + the access log INSERT


@pytest.mark.parametrize("n", [3, 30])
def test_the_shipment_page_costs_the_same_queries_for_3_or_30_inquiries(
    client: Client,
    cs_agent: User,
    supervisor: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    shipment = dispatched_shipment()
    for i in range(n):
        inquiry = _log(shipment, cs_agent, f"Call {i}")
        if i % 2:
            inquiry_answer(inquiry=inquiry, user=supervisor, answer="Done")
        if i % 3 == 0:  # some led to an exception, each shown with its link
            reported = exception_reporting.exception_report(
                shipment=shipment,
                user=cs_agent,
                cause="damaged",
                expected_resolution=timezone.now() + timedelta(hours=6),
                inquiry=inquiry,
            )
            exception_services.exception_resolve(
                exception=reported, user=supervisor, notes="Sorted."
            )
    _as(client, supervisor)

    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(shipment.get_absolute_url())

    assert response.status_code == 200
    assert len(response.context["inquiry_rows"]) == n
    assert _page(response).count('data-testid="inquiry-exception"') == (n + 2) // 3


# --- the open-inquiries list ---------------------------------------------------


def test_the_list_shows_open_inquiries_the_oldest_first(
    client: Client, cs_agent: User, supervisor: User
) -> None:
    older = _log(dispatched_shipment(), cs_agent, "Older")
    _log(dispatched_shipment(), cs_agent, "Answered", answer="Done")
    newer = _log(_delivered(), supervisor, "Newer", channel="email")

    response = _as(client, cs_agent).get(reverse("inquiry-list"))

    assert list(response.context["page"].object_list) == [older, newer]
    page = _page(response)
    assert f"{newer.shipment.get_absolute_url()}#inquiry-{newer.pk}" in page
    assert "Delivered" in page  # the shipment's status


def test_the_list_filters_by_channel_and_by_who_logged_it(
    client: Client, cs_agent: User, supervisor: User
) -> None:
    mine_by_phone = _log(dispatched_shipment(), cs_agent, channel="phone")
    mine_by_email = _log(dispatched_shipment(), cs_agent, channel="email")
    theirs = _log(dispatched_shipment(), supervisor, channel="email")
    _as(client, cs_agent)

    def rows(query: dict[str, str]) -> list[Inquiry]:
        response = client.get(reverse("inquiry-list"), query)
        return list(response.context["page"].object_list)

    assert rows({"channel": "email"}) == [mine_by_email, theirs]
    assert rows({"mine": "on"}) == [mine_by_phone, mine_by_email]
    assert rows({"channel": "email", "mine": "on"}) == [mine_by_email]


def test_the_list_is_paginated(
    client: Client, cs_agent: User, settings: Settings
) -> None:
    settings.TRACKSOP_PAGE_SIZE = 2
    shipment = dispatched_shipment()
    made = [_log(shipment, cs_agent, f"Call {i}") for i in range(3)]
    _as(client, cs_agent)

    second = client.get(reverse("inquiry-list"), {"page": 2})

    assert list(second.context["page"].object_list) == made[2:]


LIST_QUERIES = 4 + 2  # the count and one page of rows, joins included


@pytest.mark.parametrize("n", [3, 30])
def test_the_list_costs_the_same_queries_for_3_or_30_inquiries(
    client: Client,
    cs_agent: User,
    supervisor: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    hub = LocationFactory()
    for i in range(n):
        shipment = dispatched_shipment()
        checkpoint_record(
            shipment=shipment, kind=EventKind.ARRIVED_HUB, user=None, location=hub
        )
        _log(shipment, cs_agent if i % 2 else supervisor, f"Call {i}")
    _as(client, cs_agent)

    with django_assert_max_num_queries(LIST_QUERIES):
        response = client.get(reverse("inquiry-list"), {"channel": "phone"})

    assert response.status_code == 200
    assert len(response.context["page"].object_list) == n


def test_the_dashboard_counts_open_inquiries_and_the_nav_links_the_list(
    client: Client, cs_agent: User, outsider: User
) -> None:
    _log(dispatched_shipment(), cs_agent)
    _log(dispatched_shipment(), cs_agent)
    _log(dispatched_shipment(), cs_agent, answer="Done")

    response = _as(client, cs_agent).get(reverse("dashboard"))

    assert response.context["open_inquiries"] == 2
    assert 'data-testid="inquiries-open">2<' in _page(response)
    assert f'href="{reverse("inquiry-list")}"' in _page(response)
    other = _as(Client(), outsider).get(reverse("dashboard"))
    assert other.context["open_inquiries"] is None
    assert f'href="{reverse("inquiry-list")}"' not in _page(other)


# --- reporting an exception from an inquiry --------------------------------------


def _report_url(inquiry: Inquiry | None, shipment: Shipment | None = None) -> str:
    code = (shipment or inquiry.shipment).shipment_id  # type: ignore[union-attr]
    url = reverse("exception-report", args=[code])
    return f"{url}?inquiry={inquiry.pk}" if inquiry else url


def _report_form(**overrides: Any) -> dict[str, Any]:
    later = timezone.localtime(timezone.now() + timedelta(hours=6))
    return {
        "cause": "damaged",
        "cause_other": "",
        "severity": "high",
        "expected_resolution": later.strftime("%Y-%m-%dT%H:%M"),
        **overrides,
    }


def test_an_open_inquiry_offers_to_report_an_exception(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    response = _as(client, cs_agent).get(inquiry.shipment.get_absolute_url())
    assert _report_url(inquiry) in _page(response)


def test_the_report_form_starts_from_the_inquiry(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    response = _as(client, cs_agent).get(_report_url(inquiry))

    assert response.status_code == 200
    form = response.context["form"]
    description = form.initial["description"]
    assert description.startswith(f"Customer inquiry #{inquiry.pk} (Phone, ")
    assert description.endswith(": Where is my parcel?")
    assert form.fields["answer_inquiry"].initial is True


def test_reporting_from_an_inquiry_links_the_two(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    _as(client, cs_agent)
    description = (
        client.get(_report_url(inquiry)).context["form"].initial["description"]
    )

    response = client.post(
        _report_url(inquiry),
        _report_form(description=description, answer_inquiry="on"),
    )

    exception = DeliveryException.objects.get()
    assert response.status_code == 302
    assert response["Location"] == exception.get_absolute_url()
    assert f"Customer inquiry #{inquiry.pk}" in exception.description
    inquiry.refresh_from_db()
    assert (inquiry.status, inquiry.answered_by) == (ANSWERED, cs_agent)
    assert inquiry.answer.startswith(f"Reported as exception #{exception.pk}: Damaged")
    assert exception.inquiry == inquiry
    # Each page links to the other.
    detail = _page(client.get(exception.get_absolute_url()))
    assert (
        f'href="{inquiry.shipment.get_absolute_url()}#inquiry-{inquiry.pk}"' in detail
    )
    shipment_page = _page(client.get(inquiry.shipment.get_absolute_url()))
    assert (
        f'<a href="{exception.get_absolute_url()}">Exception #{exception.pk}</a>'
        in (shipment_page)
    )


def test_an_exception_cannot_name_an_inquiry_about_another_shipment(
    cs_agent: User, inquiry: Inquiry
) -> None:
    from django.core.exceptions import ValidationError

    from exceptions_mgmt import reporting as exception_reporting

    other = dispatched_shipment()
    with pytest.raises(ValidationError) as refused:
        exception_reporting.exception_report(
            shipment=other,
            user=cs_agent,
            cause="damaged",
            expected_resolution=timezone.now() + timedelta(hours=6),
            inquiry=inquiry,
        )

    assert refused.value.message_dict == {
        "inquiry": ["That inquiry is about another shipment."]
    }
    assert not DeliveryException.objects.exists()
    other.refresh_from_db()
    assert other.status == "dispatched"


def test_reporting_from_an_inquiry_may_leave_it_open(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    response = _as(client, cs_agent).post(_report_url(inquiry), _report_form())

    assert response.status_code == 302
    assert DeliveryException.objects.count() == 1
    inquiry.refresh_from_db()
    assert inquiry.status == OPEN


def test_logistics_staff_report_from_an_inquiry_without_answering_it(
    client: Client, staff: User, inquiry: Inquiry
) -> None:
    _as(client, staff)
    assert (
        "answer_inquiry" not in client.get(_report_url(inquiry)).context["form"].fields
    )

    client.post(_report_url(inquiry), _report_form(answer_inquiry="on"))

    assert DeliveryException.objects.count() == 1
    inquiry.refresh_from_db()
    assert inquiry.status == OPEN


def test_the_report_form_refuses_an_inquiry_of_another_shipment(
    client: Client, cs_agent: User, inquiry: Inquiry
) -> None:
    other = dispatched_shipment()
    url = (
        f"{reverse('exception-report', args=[other.shipment_id])}?inquiry={inquiry.pk}"
    )

    assert _as(client, cs_agent).get(url).status_code == 404


@pytest.mark.parametrize("junk", ["abc", "-1", "99999999999999999999999", "²"])
def test_the_report_form_ignores_a_mangled_inquiry_parameter(
    client: Client, cs_agent: User, junk: str
) -> None:
    shipment = dispatched_shipment()
    url = f"{reverse('exception-report', args=[shipment.shipment_id])}?inquiry={junk}"

    response = _as(client, cs_agent).get(url)

    assert response.status_code == 200
    assert "description" not in response.context["form"].initial
