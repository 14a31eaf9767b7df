"""The history of an exception names people by user id and shows their names;
rows written before the ids (a login) read as they did."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.utils import timezone

from exceptions_mgmt import reporting, selectors, services
from exceptions_mgmt.models import Cause, DeliveryException, ExceptionChange
from tests.factories import UserFactory, dispatched_shipment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

A = ExceptionChange.Action
assignment_ids = importlib.import_module(
    "exceptions_mgmt.migrations.0007_assignment_user_ids"
)


def _report(user: User) -> DeliveryException:
    return reporting.exception_report(
        shipment=dispatched_shipment(),
        user=user,
        cause=Cause.WEATHER,
        expected_resolution=timezone.now() + timedelta(days=1),
    )


def _texts(exception: DeliveryException) -> list[str]:
    return [
        entry.text
        for entry in selectors.exception_history(exception=exception, show_levels=True)
    ]


def test_an_assignment_shows_the_assignees_name_from_their_id(
    staff: User, supervisor: User
) -> None:
    exception = _report(staff)
    services.exception_assign(exception=exception, user=supervisor, assignee=staff)

    assert exception.changes.get(action=A.ASSIGNED).data["to"] == staff.pk
    assert _texts(exception) == ["Reported", f"Assigned to {staff.get_full_name()}"]


def test_an_assignment_written_with_a_login_still_reads(staff: User) -> None:
    exception = _report(staff)
    ExceptionChange.objects.create(
        exception=exception, action=A.ASSIGNED, data={"to": "gone", "previous": None}
    )

    assert _texts(exception) == ["Reported", "Assigned to gone"]


def test_the_migration_turns_logins_into_ids_and_back(staff: User) -> None:
    exception = _report(staff)
    other = UserFactory(username="other")
    rows = [
        ExceptionChange.objects.create(
            exception=exception, action=A.ASSIGNED, data={"to": login}
        )
        for login in (staff.username, other.username, "gone")
    ]

    assignment_ids.logins_to_ids(apps, None)
    assert [ExceptionChange.objects.get(pk=r.pk).data["to"] for r in rows] == [
        staff.pk,
        other.pk,
        "gone",
    ]

    assignment_ids.ids_to_logins(apps, None)
    assert [ExceptionChange.objects.get(pk=r.pk).data["to"] for r in rows] == [
        staff.username,
        "other",
        "gone",
    ]
