"""Retention: closed shipments past the retention period are archived to a
file that is read back and checked, and only then deleted; the file loads
back; a damaged file loads nothing."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from exceptions_mgmt.models import DeliveryException, ExceptionNote
from notifications.models import Notification
from reports.models import Archive, PeriodAggregate, RetentionPurge
from shipments.models import Feedback, Inquiry, Shipment, TrackingEvent
from tests.factories import ShipmentFactory, UserFactory, dispatched_shipment
from tests.helpers import stored_at
from tracksop import roles

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def backdate(shipment: Shipment, days: int) -> None:
    when = NOW - timedelta(days=days)
    Shipment.objects.filter(pk=shipment.pk).update(last_event_at=when)


@pytest.fixture
def old_and_new(archives: Path) -> dict[str, Shipment]:
    with time_machine.travel(NOW - timedelta(days=800), tick=False):
        supervisor = UserFactory(role=roles.SUPERVISOR)
        old = dispatched_shipment(recipient_email="old@example.net")
        Shipment.objects.filter(pk=old.pk).update(status="delivered")
        exc = DeliveryException.objects.create(
            shipment=old,
            cause="damaged",
            reported_at=timezone.now(),
            expected_resolution=timezone.now() + timedelta(days=1),
            status="resolved",
            resolved_at=timezone.now(),
        )
        ExceptionNote.objects.create(
            exception=exc, author=supervisor, text="Box dented"
        )
        Inquiry.objects.create(
            shipment=old, channel="phone", question="Where?", created_by=supervisor
        )
        Feedback.objects.create(shipment=old, rating=4)
        still_open = ShipmentFactory()
    backdate(old, 800)
    backdate(still_open, 800)
    recent = dispatched_shipment()
    Shipment.objects.filter(pk=recent.pk).update(status="delivered")
    return {"old": old, "open": still_open, "recent": recent}


def counts(shipment: Shipment) -> dict[str, int]:
    return {
        "events": TrackingEvent.objects.filter(shipment=shipment).count(),
        "notifications": Notification.objects.filter(shipment=shipment).count(),
        "exceptions": DeliveryException.objects.filter(shipment=shipment).count(),
        "inquiries": Inquiry.objects.filter(shipment=shipment).count(),
        "feedback": Feedback.objects.filter(shipment=shipment).count(),
    }


def test_dry_run_lists_the_month_and_deletes_nothing(
    old_and_new: dict[str, Shipment], capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("retention_purge", "--dry-run")
    out = capsys.readouterr().out
    assert "1 shipments would be archived" in out
    assert Shipment.objects.filter(pk=old_and_new["old"].pk).exists()
    assert RetentionPurge.objects.get().dry_run is True


def test_archive_purge_restore_round_trip(
    old_and_new: dict[str, Shipment], capsys: pytest.CaptureFixture[str]
) -> None:
    old = old_and_new["old"]
    before = counts(old)
    assert before["events"] >= 3
    assert before["notifications"] >= 1

    call_command("retention_purge")

    # Only the closed, expired shipment went, with everything of it.
    assert not Shipment.objects.filter(pk=old.pk).exists()
    assert counts(old) == dict.fromkeys(before, 0)
    assert not ExceptionNote.objects.exists()
    assert Shipment.objects.filter(pk=old_and_new["open"].pk).exists()
    assert Shipment.objects.filter(pk=old_and_new["recent"].pk).exists()
    purge = RetentionPurge.objects.get()
    assert purge.status == "done"
    assert purge.run_by_label == "command"
    assert purge.removed["shipments.shipment"] == 1
    archive = Archive.objects.get()
    assert archive.verified_at is not None
    assert archive.counts["shipments.shipment"] == 1
    # The month's figures stay for trends.
    assert PeriodAggregate.objects.filter(start=archive.month, scope="all").exists()

    call_command("archive_restore", archive.file.name)

    restored = Shipment.objects.get(pk=old.pk)
    assert restored.recipient_email == "old@example.net"
    assert counts(restored) == before
    assert ExceptionNote.objects.get().text == "Box dented"
    # Restoring twice is refused: the rows exist.
    with pytest.raises(CommandError, match="already exist"):
        call_command("archive_restore", archive.file.name)


def test_a_damaged_archive_is_refused_and_loads_nothing(
    old_and_new: dict[str, Shipment], archives: Path
) -> None:
    call_command("retention_purge")
    archive = Archive.objects.get()
    path = stored_at(archives, archive.file)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    # One row altered: the manifest's hash no longer matches.
    lines[0] = lines[0].replace(b"old@example.net", b"evil@example.net")
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(CommandError, match="Not restored"):
        call_command("archive_restore", archive.file.name)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(CommandError, match="Not restored"):
        call_command("archive_restore", archive.file.name)
    assert not Shipment.objects.filter(pk=old_and_new["old"].pk).exists()


def test_events_cannot_be_deleted_outside_the_purge(
    old_and_new: dict[str, Shipment],
) -> None:
    event = TrackingEvent.objects.filter(shipment=old_and_new["recent"]).first()
    assert event is not None
    # Even plain SQL: the append-only trigger lets only the purge through.
    table = TrackingEvent._meta.db_table
    with (
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [event.pk])  # noqa: S608
    assert TrackingEvent.objects.filter(pk=event.pk).exists()


def test_retention_below_twelve_months_is_refused_at_start() -> None:
    import os
    import subprocess
    import sys

    found = subprocess.run(
        [sys.executable, "-c", "import tracksop.settings.base"],
        env={**os.environ, "TRACKSOP_RETENTION_MONTHS": "6"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode != 0
    assert "TRACKSOP_RETENTION_MONTHS must be 12 or more" in found.stderr
