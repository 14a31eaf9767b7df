"""The cause customers read is the exceptions app's to word: its events carry
it (`public_cause`), and events written before that key read as they did."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone, translation

from exceptions_mgmt import reporting
from exceptions_mgmt.models import Cause
from shipments.public import public_cause
from tests.factories import dispatched_shipment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("escalation_rules")]

VAGUE = "A problem with the delivery"


def _report_data(
    staff: User, *, cause: str, cause_other: str = ""
) -> dict[str, object]:
    exception = reporting.exception_report(
        shipment=dispatched_shipment(),
        user=staff,
        expected_resolution=timezone.now() + timedelta(days=1),
        cause=cause,
        cause_other=cause_other,
    )
    assert exception.report_event is not None
    return dict(exception.report_event.data)


def test_a_listed_cause_is_written_as_its_msgid_whatever_the_reporters_language(
    staff: User,
) -> None:
    with translation.override("es"):
        data = _report_data(staff, cause=Cause.ADDRESS)

    assert data["public_cause"] == "Address issue"
    with translation.override("es"):
        assert public_cause(data) == "Problema con la dirección"
    assert public_cause(data) == "Address issue"


def test_a_cause_typed_by_staff_is_written_empty_and_read_vaguely(
    staff: User,
) -> None:
    data = _report_data(staff, cause=Cause.OTHER, cause_other="Neighbour Bob has it")

    assert data["public_cause"] == ""
    assert public_cause(data) == VAGUE


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"cause": "Weather", "cause_code": "weather"}, "Weather"),
        ({"cause": "Neighbour Bob has it", "cause_code": "other"}, VAGUE),
        ({"cause": "Neighbour Bob has it"}, VAGUE),
        ({"cause": "Weather", "cause_code": "weather", "public_cause": ""}, VAGUE),
    ],
    ids=["listed", "typed-by-staff", "no-code", "key-wins"],
)
def test_events_written_before_the_key_read_as_they_did(
    data: dict[str, str], shown: str
) -> None:
    assert public_cause(data) == shown
