"""`make run`'s demo data: what someone trying TrackSOP first sees."""

from __future__ import annotations

import shlex
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from exceptions_mgmt.models import UNRESOLVED, DeliveryException, ExceptionStatus
from notifications.models import Kind, Notification, Status
from notifications.selectors import failed_count
from shipments.carriers.credentials import credentials_for
from shipments.carriers.fake.server import FakeCarrier
from shipments.models import (
    CarrierAccount,
    CarrierSync,
    Feedback,
    Inquiry,
    Shipment,
    Source,
)
from shipments.status import MOVING, EventKind, ShipmentStatus
from shipments.tasks import carrier_sync_due_task
from tests.helpers import karrio_warm_up
from tracksop.models import ApiKey

pytestmark = pytest.mark.django_db


def test_the_demo_has_every_role_and_a_message_history_with_some_failures() -> None:
    call_command("seed_demo", shipments=150, verbosity=0)
    call_command("seed_demo_notifications", shipments=100, verbosity=0)

    assert set(User.objects.values_list("username", flat=True)) >= {
        "admin",
        "logistics",
        "cs",
        "supervisor",
        "manager",
    }
    assert Notification.objects.filter(status=Status.SENT).count() > 100
    assert failed_count() > 0
    # Nothing was queued: the demo history is already sent, not a flood of mail.
    assert not Notification.objects.filter(status=Status.PENDING).exists()

    # A message is sent after it was written, never before.
    assert not Notification.objects.filter(sent_at__lt=F("created_at")).exists()

    # Run again (a second `make run`): nothing is added.
    seeded = Notification.objects.count()
    call_command("seed_demo_notifications", verbosity=0)
    assert Notification.objects.count() == seeded


def test_the_demo_has_inquiries_feedback_and_prints_a_public_link_to_try() -> None:
    call_command("seed_demo", shipments=300, verbosity=0)
    out = StringIO()
    call_command("seed_demo_desk", stdout=out)

    assert Inquiry.objects.filter(status=Inquiry.Status.OPEN).exists()
    assert Inquiry.objects.filter(status=Inquiry.Status.ANSWERED).exists()
    assert Feedback.objects.count() > 10
    # Customers ask about packages on their way, not only delivered ones:
    # every open question is about a package still moving.
    open_inquiries = Inquiry.objects.filter(status=Inquiry.Status.OPEN)
    assert {i.shipment.status for i in open_inquiries} <= MOVING
    assert Inquiry.objects.filter(shipment__status__in=MOVING).exists()
    assert "/t/" in out.getvalue()
    assert "/track/" in out.getvalue()
    # A second `make run` adds nothing.
    counts = Inquiry.objects.count(), Feedback.objects.count()
    call_command("seed_demo_desk", stdout=StringIO())
    assert (Inquiry.objects.count(), Feedback.objects.count()) == counts


@pytest.mark.usefixtures("escalation_rules")
def test_the_demo_gives_the_escalation_queue_work_at_every_level() -> None:
    call_command("seed_demo", shipments=600, verbosity=0)
    out = StringIO()
    call_command("seed_demo_exceptions", stdout=out)

    unresolved = DeliveryException.objects.filter(status__in=UNRESOLVED)
    assert unresolved.count() >= 6
    assert set(unresolved.values_list("escalation_level", flat=True)) >= {0, 1, 2}
    assert unresolved.filter(assignee__username="supervisor").exists()
    assert unresolved.filter(notes__customer_contacted=True).exists()
    assert DeliveryException.objects.filter(status=ExceptionStatus.RESOLVED).exists()
    # Someone is working on every exception that is in progress.
    in_progress = DeliveryException.objects.filter(status=ExceptionStatus.IN_PROGRESS)
    assert in_progress.exists()
    assert not in_progress.filter(assignee__isnull=True).exists()
    assert not Notification.objects.filter(sent_at__lt=F("created_at")).exists()
    # The customers' and supervisors' messages are history, not a flood of mail.
    assert Notification.objects.filter(kind=Kind.ESCALATION).exists()
    assert not Notification.objects.filter(status=Status.PENDING).exists()
    assert "Reported 8 exceptions" in out.getvalue()

    # A second `make run` adds nothing.
    seeded = DeliveryException.objects.count()
    call_command("seed_demo_exceptions", stdout=StringIO())
    assert DeliveryException.objects.count() == seeded


def test_the_demo_prints_an_api_key_and_a_curl_line_that_works() -> None:
    call_command("seed_demo", shipments=120, verbosity=0)
    call_command("seed_demo_api", stdout=StringIO())  # an earlier make run
    out = StringIO()
    call_command("seed_demo_api", stdout=out)
    lines = out.getvalue().splitlines()
    curl = shlex.split(lines[-1].split(": ", 1)[1])
    header = curl[curl.index("-H") + 1]
    body = curl[curl.index("-d") + 1]
    url = curl[-1].split("://", 1)[1].split("/", 1)[1]
    client = APIClient()
    response = client.post(
        "/" + url,
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=header.split(": ", 1)[1],
    )
    assert response.status_code == 201, response.content
    shipment = Shipment.objects.get(shipment_id=url.split("/")[3])
    assert shipment.events.filter(source=Source.API).count() == 1
    # The key printed by the earlier run no longer works.
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1


def test_the_demo_connects_ups_to_the_fake_carrier_and_the_beat_syncs_two_packages(
    fake_carrier: FakeCarrier,
    eager_tasks: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    call_command("seed_demo", shipments=120, verbosity=0)
    out = StringIO()
    call_command("seed_demo_carriers", stdout=out)

    account = CarrierAccount.objects.get(carrier__code="ups")
    assert account.test_mode
    assert credentials_for(stored=account.credentials, env_name="")["client_id"]
    demo = Shipment.objects.filter(order_number__startswith="ORD-CARRIER-")
    assert demo.count() == 2
    assert "sync within a minute" in out.getvalue()
    for code in demo.values_list("shipment_id", flat=True):
        assert code in out.getvalue()

    karrio_warm_up()
    # The beat's task, as the worker runs it: the two packages are due now.
    with django_capture_on_commit_callbacks(execute=True):
        carrier_sync_due_task.delay()

    for shipment in demo:
        sync = CarrierSync.objects.get(shipment=shipment)
        assert sync.last_result == CarrierSync.Result.OK, sync.last_message
        carrier_scans = shipment.events.filter(source=Source.CARRIER)
        assert carrier_scans.filter(kind=EventKind.PICKED_UP).exists()
        # Handed over before the carrier's first scan: the scans move it on.
        dispatched = shipment.events.get(kind=EventKind.DISPATCHED)
        assert (
            dispatched.occurred_at < carrier_scans.earliest("occurred_at").occurred_at
        )
        assert shipment.status != ShipmentStatus.DISPATCHED

    # A second `make run` adds nothing.
    call_command("seed_demo_carriers", stdout=StringIO())
    assert Shipment.objects.filter(order_number__startswith="ORD-CARRIER-").count() == 2
    assert CarrierAccount.objects.count() == 1
