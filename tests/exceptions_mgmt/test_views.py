"""The exception pages, driven through the Django test client.

Reads as the spec: who may open which page, the queue and its filters, one
exception worked from its page, reporting from a shipment and by scan, every
kind of bad input (message at the field, status 4xx, nothing saved), constant
query counts, and the dashboard figures.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, Settings

from exceptions_mgmt import detection, reporting, services, sweep
from exceptions_mgmt.models import (
    Cause,
    DeliveryException,
    ExceptionChange,
    ExceptionNote,
    ExceptionStatus,
    Severity,
)
from notifications.models import Audience, Kind, Notification, Status
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment
from shipments.status import EventKind, ShipmentStatus
from tests.factories import (
    CarrierFactory,
    ShipmentFactory,
    StaffProfileFactory,
    UserFactory,
    dispatched_shipment,
)
from tests.helpers import TestResponse
from tracksop import roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

S = ShipmentStatus
K = EventKind
E = ExceptionStatus

ROLES = ("staff", "cs_agent", "supervisor", "outsider")
WORKERS = frozenset({"staff", "cs_agent", "supervisor"})


# --- helpers -----------------------------------------------------------------


def _later(hours: float = 24) -> datetime:
    return timezone.now() + timedelta(hours=hours)


def _local(moment: datetime) -> str:
    """As a datetime-local box sends it, in the server's zone."""
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def _report(
    shipment: Shipment | None = None, user: User | None = None, **kwargs: Any
) -> DeliveryException:
    kwargs.setdefault("cause", Cause.WEATHER)
    kwargs.setdefault("expected_resolution", _later())
    return reporting.exception_report(
        shipment=shipment or dispatched_shipment(), user=user, **kwargs
    )


def _as(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def _page(response: TestResponse) -> str:
    return response.content.decode()


def _fresh(exception: DeliveryException) -> DeliveryException:
    return DeliveryException.objects.get(pk=exception.pk)


@pytest.fixture
def exception(staff: User) -> DeliveryException:
    return _report(user=staff)


# --- who may open which page -------------------------------------------------


def _pk(e: DeliveryException) -> list[Any]:
    return [e.pk]


def _code(e: DeliveryException) -> list[Any]:
    return [e.shipment.shipment_id]


def _none(e: DeliveryException) -> list[Any]:
    return []


GET_PAGES: list[tuple[str, Callable[[DeliveryException], list[Any]]]] = [
    ("exception-queue", _none),
    ("exception-detail", _pk),
    ("exception-scan", _none),
    ("exception-report", _code),
]

# The actions on one exception (POST only) and a valid post for each.
ACTIONS: dict[str, Callable[[DeliveryException, User], dict[str, Any]]] = {
    "exception-assign": lambda e, user: {"assignee": user.pk},
    "exception-note": lambda e, user: {"text": "Called the depot"},
    "exception-reschedule": lambda e, user: {
        "expected_resolution": _local(_later(48)),
        "reason": "The depot reopens on Monday",
    },
    "exception-resolve": lambda e, user: {
        "notes": "Address corrected with the customer",
        "version": e.version,
    },
}


def _url(name: str, e: DeliveryException) -> str:
    build = dict(GET_PAGES).get(name, _pk)
    return reverse(name, args=build(e))


ALL_NAMES = [name for name, _ in GET_PAGES] + list(ACTIONS)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_page_sends_anonymous_visitors_to_the_login_page(
    client: Client, exception: DeliveryException, name: str
) -> None:
    url = _url(name, exception)
    response = client.post(url) if name in ACTIONS else client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize(
    ("name", "role", "expected"),
    [
        (name, role, 200 if role in WORKERS else 403)
        for name, _ in GET_PAGES
        for role in ROLES
    ],
    ids=str,
)
def test_each_page_opens_for_the_roles_allowed_and_refuses_the_others(
    client: Client,
    request: pytest.FixtureRequest,
    name: str,
    role: str,
    expected: int,
) -> None:
    # Not yet held: the report page is for a package on its way.
    e = _report(user=None)
    client.force_login(request.getfixturevalue(role))
    assert client.get(_url(name, e)).status_code == expected


@pytest.mark.parametrize(
    ("name", "role", "expected"),
    [
        (name, role, 302 if role in WORKERS else 403)
        for name in ACTIONS
        for role in ROLES
    ],
    ids=str,
)
def test_each_action_works_for_the_roles_allowed_and_refuses_the_others(
    client: Client,
    request: pytest.FixtureRequest,
    exception: DeliveryException,
    name: str,
    role: str,
    expected: int,
) -> None:
    user = request.getfixturevalue(role)
    before = ExceptionChange.objects.count()
    response = _as(client, user).post(
        _url(name, exception), ACTIONS[name](exception, user)
    )
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"] == exception.get_absolute_url()
        assert ExceptionChange.objects.count() == before + 1
    else:
        assert ExceptionChange.objects.count() == before


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_page_rejects_a_bad_method(
    client: Client,
    supervisor: User,
    exception: DeliveryException,
    name: str,
    method: str,
) -> None:
    response = getattr(_as(client, supervisor), method)(_url(name, exception))
    assert response.status_code == 405


@pytest.mark.parametrize("name", list(ACTIONS))
def test_actions_reject_a_get(
    client: Client, supervisor: User, exception: DeliveryException, name: str
) -> None:
    response = _as(client, supervisor).get(_url(name, exception))
    assert response.status_code == 405


def test_the_detail_page_rejects_a_post(
    client: Client, supervisor: User, exception: DeliveryException
) -> None:
    response = _as(client, supervisor).post(exception.get_absolute_url())
    assert response.status_code == 405


def test_an_unknown_exception_is_404(client: Client, staff: User) -> None:
    response = _as(client, staff).get(reverse("exception-detail", args=[999999]))
    assert response.status_code == 404


def test_an_outsider_cannot_bulk_work_the_queue(
    client: Client, outsider: User, exception: DeliveryException
) -> None:
    response = _as(client, outsider).post(
        reverse("exception-queue"), {"action": "assign_me", "ids": [exception.pk]}
    )
    assert response.status_code == 403
    assert _fresh(exception).assignee is None


# --- the queue -----------------------------------------------------------------


def _rows(response: Any) -> list[DeliveryException]:
    return list(response.context["page"].object_list)


def test_the_queue_lists_unresolved_exceptions_most_overdue_first(
    client: Client, cs_agent: User, staff: User
) -> None:
    later = _report(expected_resolution=_later(30))
    sooner = _report(expected_resolution=_later(2))
    latest = _report(expected_resolution=_later(50))
    done = _report()
    services.exception_resolve(exception=done, user=staff, notes="Fixed")

    with time_machine.travel(timezone.now() + timedelta(hours=10)):
        response = _as(client, cs_agent).get(reverse("exception-queue"))

    assert response.status_code == 200
    assert _rows(response) == [sooner, later, latest]
    html = _page(response)
    assert html.count('class="overdue"') == 1  # only `sooner` is past its time
    assert sooner.shipment.get_absolute_url() in html
    assert sooner.get_absolute_url() in html


def test_the_queue_filters_by_cause_severity_carrier_status_and_age(
    client: Client, staff: User
) -> None:
    ups = CarrierFactory()
    weather = _report(cause=Cause.WEATHER, severity=Severity.LOW)
    damaged = _report(
        dispatched_shipment(carrier=ups, tracking_number="1Z999AA10123456784"),
        cause=Cause.DAMAGED,
        severity=Severity.HIGH,
    )
    services.exception_note_add(exception=damaged, user=staff, text="Photos taken")
    _as(client, staff)

    def listed(**params: Any) -> list[DeliveryException]:
        response = client.get(reverse("exception-queue"), params)
        assert response.status_code == 200
        return _rows(response)

    assert listed(cause="damaged") == [damaged]
    assert listed(severity="low") == [weather]
    assert listed(carrier=ups.pk) == [damaged]
    assert listed(status="in_progress") == [damaged]
    assert listed(status="open") == [weather]
    assert listed(older_than=1) == []
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        _as(client, staff)  # three hours idle would have ended the session
        assert len(listed(older_than=2)) == 2
        assert listed(older_than=2, cause="weather") == [weather]


def test_the_queue_filters_by_assignee_me_and_unassigned(
    client: Client, staff: User, cs_agent: User
) -> None:
    mine = _report()
    theirs = _report()
    nobodys = _report()
    services.exception_assign(exception=mine, user=staff, assignee=staff)
    services.exception_assign(exception=theirs, user=cs_agent, assignee=cs_agent)
    _as(client, staff)

    def listed(value: Any) -> list[DeliveryException]:
        return _rows(client.get(reverse("exception-queue"), {"assignee": value}))

    assert listed("me") == [mine]
    assert listed("unassigned") == [nobodys]
    assert listed(cs_agent.pk) == [theirs]


def test_the_queue_filters_those_past_their_expected_resolution(
    client: Client, staff: User
) -> None:
    overdue = _report(expected_resolution=_later(1))
    _report(expected_resolution=_later(5))
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        response = _as(client, staff).get(
            reverse("exception-queue"), {"overdue": "true"}
        )
    assert _rows(response) == [overdue]


def test_the_queue_is_paginated(
    client: Client, staff: User, settings: Settings
) -> None:
    settings.TRACKSOP_PAGE_SIZE = 2
    made = [_report(expected_resolution=_later(10 + i)) for i in range(3)]
    _as(client, staff)
    first = client.get(reverse("exception-queue"), {"severity": "medium"})
    second = client.get(reverse("exception-queue"), {"severity": "medium", "page": "2"})
    assert _rows(first) == made[:2]
    assert _rows(second) == made[2:]
    assert "severity=medium&amp;page=2" in _page(first)


def _escalated() -> DeliveryException:
    e = _report(severity=Severity.MEDIUM)
    # Medium, not acknowledged for four hours: level 1 (the default rules).
    sweep.exceptions_escalate(now=timezone.now() + timedelta(hours=5))
    return _fresh(e)


def test_the_escalation_level_column_is_for_supervisors_only(
    client: Client, cs_agent: User, staff: User, supervisor: User
) -> None:
    e = _escalated()
    assert e.escalation_level == 1

    for user in (cs_agent, staff):
        html = _page(_as(client, user).get(reverse("exception-queue")))
        assert "Escalated" in html  # the status, which everyone works by
        assert "Escalation</th>" not in html
        assert "Level 1" not in html
    html = _page(_as(client, supervisor).get(reverse("exception-queue")))
    assert "Escalation</th>" in html
    assert "Level 1" in html


def test_the_escalation_level_on_the_detail_page_is_for_supervisors_only(
    client: Client, cs_agent: User, supervisor: User
) -> None:
    e = _escalated()
    cs_page = _as(client, cs_agent).get(e.get_absolute_url())
    assert "Level 1" not in _page(cs_page)
    assert [h.text for h in cs_page.context["history"]] == ["Reported", "Escalated"]
    sup_page = _as(client, supervisor).get(e.get_absolute_url())
    assert "Level 1: supervisors" in _page(sup_page)
    assert sup_page.context["history"][-1].text == "Escalated: Level 1: supervisors"


def test_the_detail_page_says_when_the_exception_escalates_next(
    client: Client, cs_agent: User, supervisor: User
) -> None:
    e = _report(severity=Severity.MEDIUM)
    due = e.reported_at + timedelta(hours=4)  # the default medium rule

    cs_page = _as(client, cs_agent).get(e.get_absolute_url())
    upcoming = cs_page.context["next_escalation"]
    assert (upcoming.at, upcoming.level) == (due, 1)
    assert "if not acknowledged by then" in _page(cs_page)
    assert "Level 1" not in _page(cs_page)  # levels are for supervisors
    sup_page = _as(client, supervisor).get(e.get_absolute_url())
    assert "if not acknowledged by then: to Level 1: supervisors" in _page(sup_page)

    services.exception_resolve(exception=_fresh(e), user=supervisor, notes="Fixed")
    assert client.get(e.get_absolute_url()).context["next_escalation"] is None


def test_the_row_button_assigns_that_exception_to_me(
    client: Client, cs_agent: User
) -> None:
    first, second = _report(), _report()
    response = _as(client, cs_agent).post(
        reverse("exception-queue") + "?severity=medium",
        # A ticked row does not widen the row's own button.
        {"assign_one": second.pk, "ids": [first.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("exception-queue") + "?severity=medium"
    assert _fresh(second).assignee == cs_agent
    assert _fresh(first).assignee is None
    shown = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert shown == [f"Assigned to you: {second.shipment.shipment_id}."]


def test_bulk_assign_to_me_reports_each_row_and_refused_rows_change_nothing(
    client: Client, cs_agent: User, staff: User
) -> None:
    free, taken, done = _report(), _report(), _report()
    services.exception_assign(exception=taken, user=staff, assignee=staff)
    services.exception_resolve(exception=done, user=staff, notes="Sorted")

    response = _as(client, cs_agent).post(
        reverse("exception-queue"),
        {"action": "assign_me", "ids": [free.pk, taken.pk, done.pk]},
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert (
        shown[0]
        == f"{taken.shipment.shipment_id}: Only supervisors reassign an exception."
    )
    assert shown[1].startswith(
        f"{done.shipment.shipment_id}: This exception was already resolved by"
    )
    assert shown[2] == f"Assigned to you: {free.shipment.shipment_id}."
    assert _fresh(free).assignee == cs_agent
    assert _fresh(taken).assignee == staff
    assert _fresh(done).assignee is None


def test_a_supervisor_bulk_assigns_to_a_colleague(
    client: Client, supervisor: User, cs_agent: User
) -> None:
    a, b = _report(), _report()
    response = _as(client, supervisor).post(
        reverse("exception-queue"),
        {"action": "assign_to", "assignee": cs_agent.pk, "ids": [a.pk, b.pk]},
    )
    assert response.status_code == 302
    assert _fresh(a).assignee == _fresh(b).assignee == cs_agent


def test_customer_service_cannot_bulk_assign_to_someone_else(
    client: Client, cs_agent: User, staff: User
) -> None:
    e = _report()
    response = _as(client, cs_agent).post(
        reverse("exception-queue"),
        {"action": "assign_to", "assignee": staff.pk, "ids": [e.pk]},
    )
    assert response.status_code == 403
    assert "Only supervisors assign exceptions to others." in _page(response)
    assert _fresh(e).assignee is None


def test_bulk_resolve_needs_notes_and_then_resolves_each(
    client: Client, staff: User
) -> None:
    a, b = _report(), _report()
    _as(client, staff)

    refused = client.post(
        reverse("exception-queue"), {"action": "resolve", "ids": [a.pk, b.pk]}
    )
    assert refused.status_code == 400
    assert refused.context["bulk"].errors["notes"] == ["Say how they were resolved."]
    assert f'value="{a.pk}" id="pick-{a.pk}" aria-label' in _page(refused)
    assert "checked" in _page(refused)
    assert not DeliveryException.objects.filter(status=E.RESOLVED).exists()

    done = client.post(
        reverse("exception-queue"),
        {"action": "resolve", "ids": [a.pk, b.pk], "notes": "Depot reopened"},
    )
    assert done.status_code == 302
    for e in (a, b):
        e = _fresh(e)
        assert (e.status, e.resolution_notes, e.resolved_by) == (
            E.RESOLVED,
            "Depot reopened",
            staff,
        )
        assert e.shipment.status == S.DISPATCHED


def test_a_bulk_action_without_ticked_rows_is_refused(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, staff).post(
        reverse("exception-queue"), {"action": "assign_me"}
    )
    assert response.status_code == 400
    assert "Tick the exceptions to work on." in _page(response)


# --- one exception -------------------------------------------------------------


def test_the_detail_page_shows_facts_notes_and_history(
    client: Client, staff: User, cs_agent: User
) -> None:
    e = _report(
        user=staff,
        cause=Cause.ADDRESS,
        severity=Severity.HIGH,
        description="House number missing",
    )
    services.exception_assign(exception=e, user=cs_agent, assignee=cs_agent)
    services.exception_note_add(
        exception=e,
        user=cs_agent,
        text="Customer gave the house number",
        customer_contacted=True,
        contact_channel=ExceptionNote.Contact.PHONE,
    )

    response = _as(client, staff).get(e.get_absolute_url())

    assert response.status_code == 200
    html = _page(response)
    assert "Address issue" in html
    assert "House number missing" in html
    assert e.shipment.get_absolute_url() in html
    assert "Customer gave the house number" in html
    assert "customer contacted by Phone" in html
    assert cs_agent.get_full_name() in html
    assert [h.text for h in response.context["history"]] == [
        "Reported",
        f"Assigned to {cs_agent.get_full_name()}",
        "Added a note",
    ]
    assert response.context["history"][0].change.actor == staff


def test_staff_assign_an_exception_to_themselves(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, staff).post(
        reverse("exception-assign", args=[exception.pk]), {"assignee": staff.pk}
    )
    assert response.status_code == 302
    e = _fresh(exception)
    assert (e.assignee, e.status) == (staff, E.IN_PROGRESS)
    follow = client.get(response["Location"])
    assert [str(m) for m in follow.context["messages"]] == ["Assigned to you."]


def test_customer_service_cannot_assign_an_exception_to_someone_else(
    client: Client, cs_agent: User, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, cs_agent).post(
        reverse("exception-assign", args=[exception.pk]), {"assignee": staff.pk}
    )
    assert response.status_code == 403
    assert "Only supervisors assign exceptions to others." in _page(response)
    assert _fresh(exception).assignee is None


def test_a_supervisor_assigns_to_a_colleague_but_not_to_someone_without_the_role(
    client: Client,
    supervisor: User,
    cs_agent: User,
    outsider: User,
    exception: DeliveryException,
) -> None:
    url = reverse("exception-assign", args=[exception.pk])
    _as(client, supervisor)

    refused = client.post(url, {"assignee": outsider.pk})
    assert refused.status_code == 400
    assert refused.context["assign_form"].errors["assignee"] == [
        "That person does not work exceptions."
    ]
    assert _fresh(exception).assignee is None

    assert client.post(url, {"assignee": cs_agent.pk}).status_code == 302
    assert _fresh(exception).assignee == cs_agent


def test_a_note_records_how_the_customer_was_contacted(
    client: Client, cs_agent: User, exception: DeliveryException
) -> None:
    url = reverse("exception-note", args=[exception.pk])
    _as(client, cs_agent)

    refused = client.post(url, {"text": "Rang them", "customer_contacted": "on"})
    assert refused.status_code == 400
    assert refused.context["note_form"].errors["contact_channel"] == [
        "Say how the customer was contacted."
    ]
    empty = client.post(url, {"text": "  "})
    assert empty.status_code == 400
    assert "text" in empty.context["note_form"].errors
    assert not ExceptionNote.objects.exists()

    done = client.post(
        url,
        {"text": "Rang them", "customer_contacted": "on", "contact_channel": "phone"},
    )
    assert done.status_code == 302
    note = ExceptionNote.objects.get()
    assert (note.author, note.text, note.customer_contacted, note.contact_channel) == (
        cs_agent,
        "Rang them",
        True,
        "phone",
    )


def test_a_new_expected_resolution_is_saved_and_the_customer_is_told(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    new_time = (_later(72)).replace(second=0, microsecond=0)
    response = _as(client, staff).post(
        reverse("exception-reschedule", args=[exception.pk]),
        {"expected_resolution": _local(new_time), "reason": "Customs closed"},
    )
    assert response.status_code == 302
    assert _fresh(exception).expected_resolution == new_time
    assert exception.shipment.events.filter(kind=K.EXCEPTION_UPDATED).exists()
    assert (
        Notification.objects.filter(
            shipment=exception.shipment,
            kind=Kind.EXCEPTION,
            audience=Audience.RECIPIENT,
        ).count()
        == 4
    )  # email and SMS for the report, and again for the new time


def test_a_resolution_time_in_the_past_is_refused_at_the_field(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    before = _fresh(exception).expected_resolution
    response = _as(client, staff).post(
        reverse("exception-reschedule", args=[exception.pk]),
        {"expected_resolution": _local(timezone.now() - timedelta(hours=1))},
    )
    assert response.status_code == 400
    assert response.context["reschedule_form"].errors["expected_resolution"] == [
        "The expected resolution time is in the past."
    ]
    assert _fresh(exception).expected_resolution == before


def test_resolving_needs_notes(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, staff).post(
        reverse("exception-resolve", args=[exception.pk]),
        {"notes": "", "version": exception.version},
    )
    assert response.status_code == 400
    assert response.context["resolve_form"].errors["notes"] == [
        "Say how it was resolved."
    ]
    assert _fresh(exception).status == E.OPEN


def test_resolving_returns_the_shipment_to_its_status_and_tells_the_customer(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, staff).post(
        reverse("exception-resolve", args=[exception.pk]),
        {"notes": "Re-routed via Leeds", "version": exception.version},
    )
    assert response.status_code == 302
    e = _fresh(exception)
    assert (e.status, e.resolved_by, e.resolution_notes) == (
        E.RESOLVED,
        staff,
        "Re-routed via Leeds",
    )
    assert e.shipment.status == S.DISPATCHED
    assert Notification.objects.filter(
        shipment=e.shipment, kind=Kind.EXCEPTION_RESOLVED
    ).exists()
    page = client.get(e.get_absolute_url())
    assert "Re-routed via Leeds" in _page(page)
    assert "resolve-card" not in _page(page)  # nothing left to work


def test_resolving_twice_is_refused_with_409_and_says_who_did_it(
    client: Client, staff: User, supervisor: User, exception: DeliveryException
) -> None:
    version = exception.version
    services.exception_resolve(exception=exception, user=supervisor, notes="Done")

    response = _as(client, staff).post(
        reverse("exception-resolve", args=[exception.pk]),
        {"notes": "Me too", "version": version},
    )

    assert response.status_code == 409
    assert "already resolved by" in _page(response)
    assert supervisor.get_full_name() in response.context["action_errors"][0]
    assert _fresh(exception).resolution_notes == "Done"


def test_resolving_over_someone_elses_change_is_refused_with_409(
    client: Client, staff: User, cs_agent: User, exception: DeliveryException
) -> None:
    seen = exception.version
    services.exception_note_add(exception=exception, user=cs_agent, text="Called")

    response = _as(client, staff).post(
        reverse("exception-resolve", args=[exception.pk]),
        {"notes": "Sorted", "version": seen},
    )

    assert response.status_code == 409
    assert "Someone changed this exception" in _page(response)
    assert _fresh(exception).status == E.IN_PROGRESS


def test_working_an_exception_of_a_delivered_shipment_is_refused_with_409(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    checkpoint_record(shipment=exception.shipment, kind=K.DELIVERED, user=staff)
    assert _fresh(exception).status == E.RESOLVED  # closed with the record

    for name, data in [
        ("exception-note", {"text": "Still chasing"}),
        ("exception-assign", {"assignee": staff.pk}),
    ]:
        response = _as(client, staff).post(reverse(name, args=[exception.pk]), data)
        assert response.status_code == 409
        assert "already resolved by" in _page(response)
    assert not ExceptionNote.objects.exists()


def test_a_supervisor_voiding_the_report_on_the_shipment_page_voids_the_exception(
    client: Client, staff: User, supervisor: User, exception: DeliveryException
) -> None:
    shipment = exception.shipment
    assert exception.report_event is not None
    _as(client, supervisor)
    with time_machine.travel(timezone.now(), tick=False):
        response = client.post(
            reverse(
                "event-void", args=[shipment.shipment_id, exception.report_event.pk]
            ),
            {"reason": "Reported on the wrong package", "version": shipment.version},
        )
        voided_at = timezone.now()

    assert response.status_code == 302
    shipment.refresh_from_db()
    assert shipment.status == S.DISPATCHED
    voided = _fresh(exception)
    assert (voided.status, voided.resolved_by, voided.resolved_at) == (
        E.VOID,
        supervisor,
        voided_at,
    )
    assert not Notification.objects.filter(kind=Kind.EXCEPTION_RESOLVED).exists()
    queue = client.get(reverse("exception-queue"))
    assert exception not in _rows(queue)
    page = client.get(exception.get_absolute_url())
    assert page.status_code == 200
    assert "resolve-card" not in _page(page)
    assert "Reported on the wrong package" in _page(page)
    last = page.context["history"][-1]
    assert (last.change.actor, last.change.at) == (supervisor, voided_at)
    assert last.text == "Voided with its report: Reported on the wrong package"
    response = _as(client, staff).post(
        reverse("exception-note", args=[exception.pk]), {"text": "Still chasing"}
    )
    assert response.status_code == 409
    assert "voided by" in _page(response)


# --- reporting -----------------------------------------------------------------


def _report_form(**overrides: Any) -> dict[str, Any]:
    return {
        "cause": "address",
        "cause_other": "",
        "severity": "high",
        "expected_resolution": _local(_later(6)),
        "description": "House number missing on the label",
        **overrides,
    }


def test_the_report_form_offers_people_causes_and_tomorrow_by_default(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    response = _as(client, staff).get(
        reverse("exception-report", args=[shipment.shipment_id])
    )
    causes = [value for value, _ in response.context["form"].fields["cause"].choices]
    assert Cause.WEATHER in causes
    assert Cause.LATE not in causes
    assert Cause.NO_SCAN not in causes


def test_report_times_are_shown_and_read_in_the_users_zone(
    client: Client, staff: User
) -> None:
    StaffProfileFactory(user=staff, timezone="Asia/Tokyo")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    shipment = dispatched_shipment()
    url = reverse("exception-report", args=[shipment.shipment_id])
    now = datetime(2030, 3, 1, 22, 30, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        page = _as(client, staff).get(url)
        tomorrow = (now + timedelta(hours=24)).astimezone(tokyo)
        assert f'value="{tomorrow:%Y-%m-%dT%H:%M}"' in _page(page)

        response = client.post(
            url, _report_form(expected_resolution="2030-03-03T09:15")
        )
    assert response.status_code == 302
    assert DeliveryException.objects.get().expected_resolution == datetime(
        2030, 3, 3, 9, 15, tzinfo=tokyo
    )


def test_staff_report_an_exception_and_the_customer_is_notified(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()

    response = _as(client, staff).post(
        reverse("exception-report", args=[shipment.shipment_id]), _report_form()
    )

    e = DeliveryException.objects.get()
    assert response.status_code == 302
    assert response["Location"] == e.get_absolute_url()
    assert (e.cause, e.severity, e.reported_by) == (Cause.ADDRESS, "high", staff)
    assert e.description == "House number missing on the label"
    shipment.refresh_from_db()
    assert shipment.status == S.EXCEPTION
    rows = Notification.objects.filter(shipment=shipment, kind=Kind.EXCEPTION)
    assert sorted(rows.values_list("channel", "status")) == [
        ("email", Status.PENDING),
        ("sms", Status.PENDING),
    ]
    shown = [str(m) for m in client.get(e.get_absolute_url()).context["messages"]]
    assert shown == [
        "Exception reported. The customer was notified by email and SMS of the "
        "cause and the expected resolution."
    ]


def test_a_report_says_so_when_no_message_could_go_to_the_customer(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment(recipient_email="", recipient_phone="")
    response = _as(client, staff).post(
        reverse("exception-report", args=[shipment.shipment_id]),
        _report_form(),
        follow=True,
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Exception reported. No message went to the customer")


def test_a_report_refuses_bad_input_at_the_field_and_saves_nothing(
    client: Client, staff: User
) -> None:
    shipment = dispatched_shipment()
    url = reverse("exception-report", args=[shipment.shipment_id])
    _as(client, staff)

    past = client.post(url, _report_form(expected_resolution=_local(_later(-1))))
    assert past.status_code == 400
    assert past.context["form"].errors["expected_resolution"] == [
        "The expected resolution time is in the past."
    ]
    other = client.post(url, _report_form(cause="other"))
    assert other.status_code == 400
    assert other.context["form"].errors["cause_other"] == ["Say what the cause is."]
    late = client.post(url, _report_form(cause="late"))
    assert late.status_code == 400
    assert "cause" in late.context["form"].errors
    assert not DeliveryException.objects.exists()
    shipment.refresh_from_db()
    assert shipment.status == S.DISPATCHED


def test_a_second_report_on_a_held_shipment_is_refused_with_409(
    client: Client, staff: User, exception: DeliveryException
) -> None:
    response = _as(client, staff).post(
        reverse("exception-report", args=[exception.shipment.shipment_id]),
        _report_form(),
    )
    assert response.status_code == 409
    assert "already has an open exception" in _page(response)
    assert DeliveryException.objects.count() == 1


def test_a_report_before_dispatch_is_refused_with_409(
    client: Client, staff: User
) -> None:
    shipment = ShipmentFactory()
    response = _as(client, staff).post(
        reverse("exception-report", args=[shipment.shipment_id]), _report_form()
    )
    assert response.status_code == 409
    assert "packages on their way" in _page(response)
    assert not DeliveryException.objects.exists()


def test_each_scanned_package_gets_its_own_exception_and_problems_are_listed(
    client: Client, staff: User
) -> None:
    by_number = dispatched_shipment()
    by_id = dispatched_shipment()
    held = _report()
    unknown = "1Z999AA10123456784"  # well formed, nobody shipped it
    numbers = [
        by_number.tracking_number or "",
        by_id.shipment_id.lower(),
        by_number.tracking_number or "",
        held.shipment.shipment_id,
        unknown,
    ]

    response = _as(client, staff).post(
        reverse("exception-scan"),
        _report_form(cause="weather", numbers="\n".join(numbers) + "\n"),
    )

    assert response.status_code == 200
    result = response.context["result"]
    assert sorted(e.shipment_id for e in result.reported) == sorted(
        [by_number.pk, by_id.pk]
    )
    assert result.problems == [
        (by_number.tracking_number, "Scanned twice in this batch; reported once."),
        (
            held.shipment.shipment_id,
            "This shipment already has an open exception; work that one.",
        ),
        (unknown, "No shipment has this tracking number."),
    ]
    for shipment in (by_number, by_id):
        shipment.refresh_from_db()
        assert shipment.status == S.EXCEPTION
        assert shipment.events.filter(
            kind=K.EXCEPTION_REPORTED, source="bulk_scan"
        ).exists()
    # The cause and time stay for the next batch; the numbers are cleared.
    assert response.context["form"]["cause"].value() == "weather"
    assert not response.context["form"]["numbers"].value()


def _scan_report(staff: User, numbers: list[str]) -> reporting.ScanReport:
    return reporting.exceptions_report_scanned(
        user=staff,
        numbers=numbers,
        cause="weather",
        expected_resolution=timezone.now() + timedelta(hours=6),
    )


def test_scanning_twelve_packages_costs_the_same_queries_as_two(
    staff: User,
) -> None:
    """A hub closed by weather: the whole lot in a fixed number of statements."""
    few = [dispatched_shipment().shipment_id for _ in range(2)]
    many = [dispatched_shipment().shipment_id for _ in range(12)]

    with CaptureQueriesContext(connection) as for_few:
        assert len(_scan_report(staff, few).reported) == 2
    with CaptureQueriesContext(connection) as for_many:
        report = _scan_report(staff, many)

    assert len(for_many) == len(for_few)
    assert [e.shipment.shipment_id for e in report.reported] == many
    assert report.problems == []
    assert Notification.objects.filter(kind=Kind.EXCEPTION).count() == 2 * 14


def test_a_scanned_package_refused_by_the_database_is_listed_and_the_rest_reported(
    staff: User,
) -> None:
    first, clashing, last = (dispatched_shipment() for _ in range(3))
    # As if someone reported it at this very moment: the one-open-exception
    # constraint trips on the batch's INSERT.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION pg_temp.clash() RETURNS trigger AS $$
            BEGIN RAISE unique_violation USING MESSAGE = 'clash in the test'; END $$
            LANGUAGE plpgsql;
            CREATE TRIGGER clash BEFORE INSERT ON exceptions_mgmt_deliveryexception
            FOR EACH ROW WHEN (NEW.shipment_id = %s)
            EXECUTE FUNCTION pg_temp.clash();
            """,
            [clashing.pk],
        )

    report = _scan_report(staff, [s.shipment_id for s in (first, clashing, last)])

    assert [e.shipment_id for e in report.reported] == [first.pk, last.pk]
    assert report.problems == [
        (clashing.shipment_id, "This shipment already has an open exception.")
    ]
    clashing.refresh_from_db()
    assert clashing.status == S.DISPATCHED
    assert not Notification.objects.filter(
        shipment=clashing, kind=Kind.EXCEPTION
    ).exists()
    for shipment in (first, last):
        shipment.refresh_from_db()
        assert shipment.status == S.EXCEPTION


def test_a_scan_where_nothing_could_be_reported_answers_422(
    client: Client, staff: User
) -> None:
    response = _as(client, staff).post(
        reverse("exception-scan"), _report_form(numbers="NOT-A-NUMBER")
    )
    assert response.status_code == 422
    [(number, reason)] = response.context["result"].problems
    assert number == "NOT-A-NUMBER"
    assert reason.startswith("No shipment has this ID.")
    assert not DeliveryException.objects.exists()


def test_a_scan_without_numbers_is_refused_at_the_field(
    client: Client, staff: User
) -> None:
    response = _as(client, staff).post(
        reverse("exception-scan"), _report_form(numbers="  \n ")
    )
    assert response.status_code == 400
    assert "numbers" in response.context["form"].errors


def test_the_bulk_scan_page_links_to_reporting_by_scan(
    client: Client, staff: User
) -> None:
    html = _page(_as(client, staff).get(reverse("bulk-scan")))
    assert reverse("exception-scan") in html
    assert "Report exceptions by scan" in html


# --- the shipment page ---------------------------------------------------------


def test_the_shipment_page_offers_a_report_button_only_for_a_moving_package(
    client: Client, staff: User, outsider: User
) -> None:
    moving = dispatched_shipment()
    recorded = ShipmentFactory()
    held = _report().shipment
    delivered = dispatched_shipment()
    checkpoint_record(shipment=delivered, kind=K.DELIVERED, user=staff)
    _as(client, staff)

    def offers(shipment: Shipment) -> bool:
        html = _page(client.get(shipment.get_absolute_url()))
        return reverse("exception-report", args=[shipment.shipment_id]) in html

    assert offers(moving)
    assert not offers(recorded)
    assert not offers(held)
    assert not offers(delivered)


def test_the_shipment_page_shows_its_open_exception(
    client: Client, cs_agent: User
) -> None:
    e = _report(cause=Cause.CUSTOMS)
    response = _as(client, cs_agent).get(e.shipment.get_absolute_url())
    html = _page(response)
    assert 'data-testid="open-exception"' in html
    assert e.get_absolute_url() in html
    assert "Customs hold" in html
    assert timezone.localtime(e.expected_resolution).strftime("%Y-%m-%d %H:%M") in html


# --- query counts ----------------------------------------------------------------

# Session, user and the two permission lookups, then what each page reads.
QUEUE_QUERIES = 4 + 5  # count, rows (joins incl.), carriers, workers (twice)
# The exception (joins incl.), notes, history, the assignees' names, workers,
# the escalation rules (for the next escalation).
DETAIL_QUERIES = 4 + 6 + 1  # + the access log INSERT


@pytest.mark.parametrize("n", [3, 30])
@pytest.mark.parametrize("role", ["cs_agent", "supervisor"])
def test_the_queue_costs_the_same_queries_for_3_or_30_exceptions(
    client: Client,
    request: pytest.FixtureRequest,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
    role: str,
) -> None:
    vans = CarrierFactory(
        code="vans", name="Vans", tracking_family="s10", is_own_fleet=True
    )
    assignee = UserFactory(role=roles.LOGISTICS)
    for i in range(n):
        e = _report(dispatched_shipment(carrier=vans if i % 2 else None))
        if i % 3 == 0:
            services.exception_assign(exception=e, user=assignee, assignee=assignee)
    _as(client, request.getfixturevalue(role))
    with django_assert_max_num_queries(QUEUE_QUERIES):
        response = client.get(reverse("exception-queue"))
    assert response.status_code == 200
    assert len(_rows(response)) == n


@pytest.mark.parametrize("n", [3, 30])
def test_the_detail_page_costs_the_same_queries_for_3_or_30_notes(
    client: Client,
    supervisor: User,
    staff: User,
    cs_agent: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    n: int,
) -> None:
    e = _report(user=staff)
    services.exception_assign(exception=e, user=cs_agent, assignee=cs_agent)
    for i in range(n):
        services.exception_note_add(
            exception=e, user=(staff, cs_agent)[i % 2], text=f"Note {i}"
        )
    _as(client, supervisor)
    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(e.get_absolute_url())
    assert response.status_code == 200
    assert len(response.context["notes"]) == n
    assert len(response.context["history"]) == n + 2


# --- dashboard and navigation ----------------------------------------------------


def test_the_dashboard_counts_exceptions_and_links_each_figure_to_the_queue(
    client: Client, staff: User, supervisor: User
) -> None:
    escalated = _escalated()
    assigned = _report(expected_resolution=_later(100))
    services.exception_assign(exception=assigned, user=staff, assignee=staff)
    _report(expected_resolution=_later(1))  # will be overdue
    resolved = _report()
    services.exception_resolve(exception=resolved, user=staff, notes="Done")
    assert escalated.status == E.ESCALATED

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        response = _as(client, staff).get(reverse("dashboard"))

    assert response.context["exception_counts"] == {
        "open": 3,
        "escalated": 1,
        "unassigned": 2,
        "overdue": 1,
    }
    html = _page(response)
    queue = reverse("exception-queue")
    for link in ("", "?status=escalated", "?assignee=unassigned", "?overdue=true"):
        assert f'href="{queue}{link}"' in html
    assert 'data-testid="exceptions-open">3<' in html


def test_the_dashboard_and_navigation_show_no_exceptions_to_an_outsider(
    client: Client, outsider: User
) -> None:
    response = _as(client, outsider).get(reverse("dashboard"))
    assert response.context["exception_counts"] is None
    assert reverse("exception-queue") not in _page(response)


def test_the_navigation_links_to_the_queue(client: Client, cs_agent: User) -> None:
    html = _page(_as(client, cs_agent).get(reverse("dashboard")))
    assert f'href="{reverse("exception-queue")}">Exceptions</a>' in html


def test_a_late_package_shows_its_missed_delivery_date_and_how_late_it_is(
    client: Client, staff: User
) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        shipment = dispatched_shipment()  # due in three days
        clock.shift(timedelta(days=5))
        assert detection.exceptions_detect() == 1
        exception = DeliveryException.objects.get(shipment=shipment)

        page = _page(_as(client, staff).get(exception.get_absolute_url()))

    assert shipment.estimated_delivery is not None
    due = shipment.estimated_delivery.isoformat()
    assert f'data-testid="estimated-delivery">{due} <span' in page
    assert "2\xa0days late" in page
