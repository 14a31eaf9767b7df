"""Retention: archive closed shipments older than TRACKSOP_RETENTION_MONTHS to
one verified gzip JSON Lines file per month, then purge them in batches.

The one rule everything here keeps: nothing is deleted that is not in a
verified archive. Deletion goes by the primary keys read back from the
verified file (not by a fresh query), so a row added after the archive was
written stops the batch (the database's foreign keys refuse it) instead of
being lost. An interrupted purge is finished by running it again: the
shipments still there get a new archive of their own. Last, the access log's
rows older than the cut-off, of shipments still kept, are deleted unarchived.

File format (README "Retention and archives"): every line but the last is
{"model": "app.model", "pk": ..., "fields": {...}} (Django's python
serializer, JSON-encoded); the last line is {"manifest": {"month": "YYYY-MM",
"counts": {"app.model": n, ...}, "sha256": "<hex of all lines before it,
as UTF-8 bytes with their newlines>"}}.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, IntegrityError, connection, models, transaction
from django.db.models.functions import TruncMonth
from django.utils import timezone

from reports.aggregates import aggregate_month
from reports.models import Archive, PeriodAggregate, RetentionPurge, report_storage
from shipments.models import AccessLog, Shipment
from shipments.status import CLOSED

BATCH_SIZE = 500

# Insert order (a row after the rows it points to); deletion runs backwards.
ARCHIVED_MODELS = [
    "shipments.shipment",
    "shipments.trackingevent",
    "shipments.inquiry",
    "shipments.feedback",
    "shipments.accesslog",
    "notifications.preference",
    "notifications.subscription",
    "notifications.notification",
    "exceptions_mgmt.deliveryexception",
    "exceptions_mgmt.exceptionnote",
    "exceptions_mgmt.exceptionchange",
]
ACCESS_LOG = "shipments.accesslog"
# Rows that belong to a shipment through an exception, not directly.
VIA_EXCEPTION = {"exceptions_mgmt.exceptionnote", "exceptions_mgmt.exceptionchange"}


class ArchiveError(Exception):
    """An archive that cannot be trusted: bad gzip, bad JSON, a hash or a
    count that does not match its manifest."""


def retention_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """Now minus TRACKSOP_RETENTION_MONTHS calendar months (the day clamped
    to the month's length)."""
    now = now or timezone.now()
    months = int(settings.TRACKSOP_RETENTION_MONTHS)
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    next_first = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_first - dt.timedelta(days=1)).day
    return now.replace(year=year, month=month, day=min(now.day, last_day))


def expired_shipments(cutoff: dt.datetime) -> models.QuerySet[Shipment]:
    return Shipment.objects.filter(status__in=sorted(CLOSED), last_event_at__lt=cutoff)


def purge_plan(cutoff: dt.datetime) -> list[tuple[dt.date, int]]:
    """(month, shipments) for every month, in the company's time zone, with
    closed shipments whose last event is older than the cut-off, oldest first."""
    rows = (
        expired_shipments(cutoff)
        .annotate(month=TruncMonth("last_event_at"))
        .values("month")
        .annotate(n=models.Count("id"))
        .order_by("month")
    )
    return [(_as_date(r["month"]), r["n"]) for r in rows]


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).date().replace(day=1)
    return value.replace(day=1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = timezone.get_current_timezone()
    start = dt.datetime(month.year, month.month, 1, tzinfo=zone)
    nxt = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return start, dt.datetime(nxt.year, nxt.month, 1, tzinfo=zone)


def _related_querysets(ids: list[int]) -> Iterator[tuple[str, models.QuerySet[Any]]]:
    for label in ARCHIVED_MODELS:
        model = apps.get_model(label)
        if label == "shipments.shipment":
            qs = model.objects.filter(pk__in=ids)
        elif label in VIA_EXCEPTION:
            qs = model.objects.filter(exception__shipment_id__in=ids)
        else:
            qs = model.objects.filter(shipment_id__in=ids)
        yield label, qs.order_by("pk")


def _lines(ids: list[int]) -> Iterator[tuple[str, str]]:
    for label, qs in _related_querysets(ids):
        for obj in qs.iterator(chunk_size=2000):
            (data,) = serializers.serialize("python", [obj])
            data["model"] = label
            yield label, json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True)


@dataclass
class ArchiveContents:
    """What a verified file holds: counts, hash, and every row's primary key
    by model and by the shipment it belongs to."""

    month: str
    counts: dict[str, int]
    sha256: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    by_shipment: dict[int, dict[str, list[Any]]] = field(default_factory=dict)


def write_archive_bytes(month: dt.date, ids: list[int]) -> bytes:
    """The gzip JSON Lines file for these shipments, manifest last."""
    digest = hashlib.sha256()
    counts: dict[str, int] = dict.fromkeys(ARCHIVED_MODELS, 0)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for label, line in _lines(ids):
            raw = (line + "\n").encode()
            digest.update(raw)
            gz.write(raw)
            counts[label] += 1
        manifest = {
            "manifest": {
                "month": f"{month:%Y-%m}",
                "counts": counts,
                "sha256": digest.hexdigest(),
                "format": "tracksop-archive-1",
            }
        }
        gz.write((json.dumps(manifest, sort_keys=True) + "\n").encode())
    return buf.getvalue()


def read_archive(data: bytes, *, keep_rows: bool = False) -> ArchiveContents:
    """Read a file back and check it against its manifest; ArchiveError if
    anything does not match."""
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"Not a readable gzip file: {exc}") from exc
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ArchiveError("The archive is empty: it has no manifest.")
    expected_counts, expected_hash, month = _manifest(lines[-1])
    digest = hashlib.sha256()
    counts: dict[str, int] = defaultdict(int)
    contents = ArchiveContents(month=month, counts={}, sha256="")
    exception_shipment: dict[Any, int] = {}
    for number, raw in enumerate(lines[:-1], start=1):
        digest.update(raw + b"\n")
        try:
            row = json.loads(raw)
            label, pk, fields = row["model"], row["pk"], row["fields"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"Line {number} is not a valid row.") from exc
        if label not in ARCHIVED_MODELS:
            raise ArchiveError(f"Line {number} names an unexpected model {label!r}.")
        counts[label] += 1
        owner = _row_shipment(label, pk, fields, exception_shipment)
        if label == "exceptions_mgmt.deliveryexception":
            exception_shipment[pk] = owner
        contents.by_shipment.setdefault(owner, {}).setdefault(label, []).append(pk)
        if keep_rows:
            contents.rows.append(row)
    if digest.hexdigest() != expected_hash:
        raise ArchiveError(
            "The archive's data does not match its manifest's SHA-256: "
            "it was changed or damaged."
        )
    found = {label: counts.get(label, 0) for label in ARCHIVED_MODELS}
    wanted = {label: expected_counts.get(label, 0) for label in ARCHIVED_MODELS}
    if found != wanted or set(expected_counts) - set(ARCHIVED_MODELS):
        raise ArchiveError(
            f"The archive's row counts {found} do not match its manifest {wanted}."
        )
    contents.counts = found
    contents.sha256 = expected_hash
    return contents


def _manifest(line: bytes) -> tuple[dict[str, int], str, str]:
    """The row counts, SHA-256 and month an archive's last line records."""
    try:
        manifest = json.loads(line)["manifest"]
        expected_counts = {str(k): int(v) for k, v in manifest["counts"].items()}
        return expected_counts, str(manifest["sha256"]), str(manifest["month"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError("The archive's last line is not a valid manifest.") from exc


def _row_shipment(
    label: str, pk: Any, fields: dict[str, Any], exception_shipment: dict[Any, int]
) -> Any:
    """The shipment an archived row belongs to; -1 for a row whose exception is
    not (yet) in the file."""
    if label == "shipments.shipment":
        return pk
    if label in VIA_EXCEPTION:
        return exception_shipment.get(fields.get("exception"), -1)
    return fields.get("shipment")


def archive_month(
    purge_run: RetentionPurge, month: dt.date, cutoff: dt.datetime
) -> tuple[Archive, ArchiveContents]:
    """Write the month's expired shipments and all their rows to one file in
    the "reports" storage, read it back from there and check it; only then
    set verified_at. Raises ArchiveError (verified_at stays empty) if the
    copy read back does not match."""
    start, end = month_bounds(month)
    ids = list(
        expired_shipments(cutoff)
        .filter(last_event_at__gte=start, last_event_at__lt=end)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    data = write_archive_bytes(month, ids)
    storage = report_storage()
    name = storage.save(
        f"retention/{month:%Y-%m}-purge{purge_run.pk}.jsonl.gz", ContentFile(data)
    )
    written = read_archive(data)
    archive = Archive.objects.create(
        month=month,
        purge=purge_run,
        file=name,
        size=len(data),
        sha256=written.sha256,
        counts=written.counts,
    )
    with storage.open(name, "rb") as fh:
        stored = read_archive(fh.read())
    if stored.sha256 != written.sha256 or stored.counts != written.counts:
        raise ArchiveError(f"The stored copy of {name} differs from what was written.")
    if stored.counts["shipments.shipment"] != len(ids):
        raise ArchiveError(f"{name} does not hold every shipment of {month:%Y-%m}.")
    archive.verified_at = timezone.now()
    archive.save(update_fields=["verified_at"])
    return archive, stored


def delete_batch(batch: dict[int, dict[str, list[Any]]]) -> dict[str, int]:
    """Delete one batch of archived shipments and exactly the rows the archive
    holds for them, in one transaction, children first. The only code that
    deletes tracking events: it lifts the append-only trigger for its own
    transaction (SET LOCAL tracksop.retention_purge)."""
    removed: dict[str, int] = defaultdict(int)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL tracksop.retention_purge = 'on'")
        for label in reversed(ARCHIVED_MODELS):
            pks = [pk for rows in batch.values() for pk in rows.get(label, [])]
            if not pks:
                continue
            model = apps.get_model(label)
            if label == "shipments.trackingevent":
                # Corrections point at the events they void: drop them first.
                cursor.execute(
                    f'DELETE FROM "{model._meta.db_table}" '  # noqa: S608
                    "WHERE id = ANY(%s) AND voids_id IS NOT NULL",
                    [pks],
                )
                removed[label] += cursor.rowcount
            cursor.execute(
                f'DELETE FROM "{model._meta.db_table}" WHERE id = ANY(%s)',  # noqa: S608
                [pks],
            )
            removed[label] += cursor.rowcount
    return dict(removed)


def expired_access_log_count(cutoff: dt.datetime) -> int:
    return AccessLog.objects.filter(at__lt=cutoff).count()


def purge_access_log(cutoff: dt.datetime, *, batch_size: int = 5000) -> int:
    """Delete the access log's rows older than the cut-off, of shipments still
    kept, in batches of primary keys, one DELETE each. Not archived: the log
    says which staff read what, and is kept no longer than the records
    themselves (the purged shipments' rows go in their archive)."""
    removed = 0
    while True:
        # One statement per batch (DELETE … WHERE id IN (SELECT … LIMIT n)):
        # short locks, and the pages writing new rows never wait long.
        batch = AccessLog.objects.filter(at__lt=cutoff).order_by("pk")[:batch_size]
        deleted, _ = AccessLog.objects.filter(pk__in=batch.values("pk")).delete()
        removed += deleted
        if deleted < batch_size:
            return removed


def _batches(
    by_shipment: dict[int, dict[str, list[Any]]], size: int
) -> Iterable[dict[int, dict[str, list[Any]]]]:
    owners = sorted(k for k in by_shipment if k != -1)
    for i in range(0, len(owners), size):
        yield {k: by_shipment[k] for k in owners[i : i + size]}


def _aggregate(month: dt.date, run: RetentionPurge) -> None:
    """Keep the month's figures before its shipments go. Not again once an
    earlier purge verified an archive of the month and so may have deleted
    some of them (an interrupted run, or one before the cut-off covered the
    whole month): figures taken now would count only what is left."""
    partly_purged = (
        Archive.objects.filter(month=month, verified_at__isnull=False)
        .exclude(purge=run)
        .exists()
    )
    if (
        partly_purged
        and PeriodAggregate.objects.filter(
            kind="monthly", start=month, scope="all"
        ).exists()
    ):
        return
    aggregate_month(month)


def purge(
    *,
    user: Any = None,
    label: str,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> RetentionPurge:
    """Archive, verify, then delete every expired month, recording who ran it
    and what it removed in a RetentionPurge row. A dry run records the plan
    (shipments per month) and changes nothing else."""
    if connection.vendor != "postgresql":
        raise ArchiveError(
            "The retention purge runs on PostgreSQL only (it lifts the event "
            "log's append-only trigger for its own transaction)."
        )
    cutoff = retention_cutoff(now)
    plan = purge_plan(cutoff)
    run = RetentionPurge.objects.create(
        run_by=user, run_by_label=label[:150], cutoff=cutoff, dry_run=dry_run
    )
    if dry_run:
        run.removed = {
            "plan": {f"{m:%Y-%m}": n for m, n in plan},
            "access_log": expired_access_log_count(cutoff),
        }
        run.status = RetentionPurge.Status.DONE
        run.finished_at = timezone.now()
        run.save(update_fields=["removed", "status", "finished_at"])
        return run
    removed: dict[str, int] = defaultdict(int)
    try:
        for month, _count in plan:
            _archive, contents = archive_month(run, month, cutoff)
            _aggregate(month, run)
            for batch in _batches(contents.by_shipment, BATCH_SIZE):
                for key, n in delete_batch(batch).items():
                    removed[key] += n
                run.removed = dict(removed)
                run.save(update_fields=["removed"])
        # After the archives: the purged shipments' old views went with them.
        removed[ACCESS_LOG] += purge_access_log(cutoff)
    except Exception as exc:
        run.removed = dict(removed)
        run.status = RetentionPurge.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:5000]
        run.finished_at = timezone.now()
        run.save(update_fields=["removed", "status", "error", "finished_at"])
        raise
    run.removed = dict(removed)
    run.status = RetentionPurge.Status.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["removed", "status", "finished_at"])
    return run


def open_archive(name_or_path: str) -> bytes:
    """The bytes of an archive given by its storage name or a file path."""
    import pathlib

    path = pathlib.Path(name_or_path)
    if path.is_file():
        return path.read_bytes()
    storage = report_storage()
    if not storage.exists(name_or_path):
        raise ArchiveError(f"No archive {name_or_path!r} in storage or on disk.")
    with storage.open(name_or_path, "rb") as fh:
        data: bytes = fh.read()
    return data


def restore(name_or_path: str) -> dict[str, int]:
    """Load a verified archive back, all in one transaction. Refuses (and
    loads nothing) if the file fails its checks, any of its rows exists, or
    a row does not fit (it points at a carrier or user deleted since)."""
    contents = read_archive(open_archive(name_or_path), keep_rows=True)
    pks: dict[str, list[Any]] = defaultdict(list)
    for row in contents.rows:
        pks[row["model"]].append(row["pk"])
    try:
        with transaction.atomic():
            for label, keys in pks.items():
                model = apps.get_model(label)
                if model.objects.filter(pk__in=keys).exists():
                    raise ArchiveError(
                        f"Some {model._meta.verbose_name_plural} in this archive "
                        "already exist: it was restored already, or the rows "
                        "are live."
                    )
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for obj in serializers.deserialize("python", contents.rows):
                obj.object.save_base(raw=True, force_insert=True)
            # The deferred checks now, inside this block, so a row pointing
            # at something deleted since rolls all of it back here.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except (IntegrityError, DataError) as exc:
        detail = str(exc).splitlines()[0]
        raise ArchiveError(
            f"A row does not fit the database ({detail}); nothing was loaded."
        ) from exc
    return contents.counts
