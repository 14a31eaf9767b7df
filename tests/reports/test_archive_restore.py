"""Restoring an archive loads all of it or nothing: a file cut short, or one
whose rows no longer fit the database, is refused with a reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from reports.models import Archive
from shipments.checkpoints import checkpoint_record
from shipments.models import Carrier, Shipment, TrackingEvent
from shipments.status import EventKind
from tests.factories import dispatched_shipment
from tests.helpers import stored_at

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - timedelta(days=800)


@pytest.fixture
def purged(archives: Path) -> tuple[list[int], Archive]:
    """Two shipments delivered long ago, purged: their pks and the archive."""
    with time_machine.travel(LONG_AGO, tick=False):
        pks = []
        for _ in range(2):
            shipment = dispatched_shipment()
            checkpoint_record(shipment=shipment.pk, kind=EventKind.DELIVERED, user=None)
            pks.append(shipment.pk)
    call_command("retention_purge")
    assert not Shipment.objects.filter(pk__in=pks).exists()
    return pks, Archive.objects.get()


def test_an_archive_cut_short_in_a_copy_is_refused_and_loads_nothing(
    purged: tuple[list[int], Archive], archives: Path
) -> None:
    pks, archive = purged
    path = stored_at(archives, archive.file)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])

    with pytest.raises(CommandError, match="Not restored: Not a readable gzip"):
        call_command("archive_restore", archive.file.name)
    assert not Shipment.objects.filter(pk__in=pks).exists()
    assert not TrackingEvent.objects.filter(shipment_id__in=pks).exists()


def test_an_archive_whose_carrier_was_deleted_since_is_refused_and_loads_nothing(
    purged: tuple[list[int], Archive],
) -> None:
    pks, archive = purged
    # The purge took the carrier's last shipments; then the carrier went.
    Carrier.objects.filter(is_own_fleet=True).delete()

    with pytest.raises(CommandError, match=r"Not restored: .*nothing was loaded"):
        call_command("archive_restore", archive.file.name)
    assert not Shipment.objects.filter(pk__in=pks).exists()
    assert not TrackingEvent.objects.filter(shipment_id__in=pks).exists()
