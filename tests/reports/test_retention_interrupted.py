"""A purge that stops half-way: what it deleted is in a verified archive, what
it did not is untouched, and running it again finishes the month. A copy the
storage damages is caught before anything is deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError, connection
from django.utils import timezone
from pytest_django import Settings

from reports import retention
from reports.models import Archive, PeriodAggregate, RetentionPurge
from shipments.checkpoints import checkpoint_record
from shipments.models import Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import dispatched_shipment
from tests.helpers import stored_at

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
LONG_AGO = NOW - timedelta(days=800)
DISK_FULL = 'could not extend file "base/16384/16522": No space left on device'


@pytest.fixture
def delivered_long_ago(archives: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Five shipments delivered in the same month, past retention, purged in
    batches of two: three batches."""
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    pks = []
    with time_machine.travel(LONG_AGO, tick=False):
        for _ in range(5):
            shipment = dispatched_shipment()
            checkpoint_record(shipment=shipment.pk, kind=EventKind.DELIVERED, user=None)
            pks.append(shipment.pk)
    return sorted(pks)


@pytest.fixture
def refuse_deleting() -> Iterator[Any]:
    """refuse_deleting(pk): the database fails the delete of that shipment,
    as a full disk would; refuse_deleting(None) lifts it."""

    def refuse(pk: int | None) -> None:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse ON shipments_shipment")
            if pk is None:
                return
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger AS $$ "
                f"BEGIN IF OLD.id = {int(pk)} THEN RAISE EXCEPTION '{DISK_FULL}'; "
                "END IF; RETURN OLD; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse BEFORE DELETE ON shipments_shipment "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
            )

    yield refuse
    refuse(None)


def archived_rows(archive: Archive, folder: Path) -> dict[int, dict[str, list[Any]]]:
    """The verified archive's rows by shipment, read back from its file."""
    assert archive.verified_at is not None
    data = stored_at(folder, archive.file).read_bytes()
    return retention.read_archive(data).by_shipment


def test_a_purge_interrupted_in_its_second_batch_is_finished_by_running_it_again(
    delivered_long_ago: list[int], refuse_deleting: Any, archives: Path
) -> None:
    pks = delivered_long_ago
    events = {
        pk: set(
            TrackingEvent.objects.filter(shipment_id=pk).values_list("pk", flat=True)
        )
        for pk in pks
    }
    refuse_deleting(pks[2])  # the first shipment of the second batch

    with pytest.raises(DatabaseError, match="No space left on device"):
        retention.purge(label="schedule")

    # The first batch went, the failed batch kept every row (one transaction),
    # and the audit row says what happened.
    first = RetentionPurge.objects.get()
    assert first.status == RetentionPurge.Status.FAILED
    assert DISK_FULL in first.error
    assert first.removed["shipments.shipment"] == 2
    assert set(Shipment.objects.values_list("pk", flat=True)) == set(pks[2:])
    for pk in pks[2:]:
        assert (
            set(
                TrackingEvent.objects.filter(shipment_id=pk).values_list(
                    "pk", flat=True
                )
            )
            == events[pk]
        )
    (first_archive,) = Archive.objects.all()
    assert set(archived_rows(first_archive, archives)) == set(pks)
    figures = PeriodAggregate.objects.get(scope="all").data

    refuse_deleting(None)
    second = retention.purge(label="schedule")

    assert second.status == RetentionPurge.Status.DONE
    assert second.removed["shipments.shipment"] == 3
    assert not Shipment.objects.filter(pk__in=pks).exists()
    assert not TrackingEvent.objects.filter(shipment_id__in=pks).exists()
    # A second archive of the month, of the rerun's own, holds what was left.
    first_archive, second_archive = Archive.objects.order_by("pk")
    assert first_archive.purge == first
    assert second_archive.purge == second
    assert second_archive.month == first_archive.month
    assert second_archive.file.name != first_archive.file.name
    rest = archived_rows(second_archive, archives)
    assert set(rest) == set(pks[2:])
    # Every shipment deleted, with every event, is in a verified archive.
    for pk in pks:
        archive = first_archive if pk in pks[:2] else second_archive
        rows = archived_rows(archive, archives)[pk]
        assert set(rows["shipments.trackingevent"]) == events[pk]
    # The month's figures are the ones taken before anything was deleted,
    # not those of the three shipments the rerun found.
    assert PeriodAggregate.objects.get(scope="all").data == figures
    # Nothing is left to purge: a third run archives nothing.
    third = retention.purge(label="schedule")
    assert third.status == RetentionPurge.Status.DONE
    assert Archive.objects.count() == 2


class TruncatingStorage(FileSystemStorage):
    """A storage that loses the end of what it is given (a network drive
    that drops the last packets) and says nothing."""

    def _save(self, name: str, content: Any) -> str:
        from django.core.files.base import ContentFile

        data = content.read()
        # Storage._save is Django's documented hook; django-stubs leave it out.
        saved: str = super()._save(name, ContentFile(data[: len(data) // 2]))  # type: ignore[misc]
        return saved


def test_an_archive_the_storage_damaged_is_caught_before_anything_is_deleted(
    delivered_long_ago: list[int], settings: Settings, archives: Path
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "reports": {
            "BACKEND": f"{__name__}.TruncatingStorage",
            "OPTIONS": {"location": str(archives)},
        },
    }

    with pytest.raises(retention.ArchiveError):
        retention.purge(label="command")

    purge = RetentionPurge.objects.get()
    assert purge.status == RetentionPurge.Status.FAILED
    assert "gzip" in purge.error
    assert purge.removed == {}
    assert Shipment.objects.filter(pk__in=delivered_long_ago).count() == 5
    (archive,) = Archive.objects.all()
    assert archive.verified_at is None
