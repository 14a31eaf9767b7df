"""How delivery claims, sends and records one outbox row: two paths behind
one small interface (`Path`).

`FastPath` (the default) is what a worker's CPU allows: one raw
UPDATE ... RETURNING claims a row together with its party's preference, the
outcome is recorded by a raw UPDATE, an email goes out as the bytes stored on
its row over the thread's open SMTP connection (`gateways.send_email`), and a
per-process map remembers the rows a batch took from other rows' tasks, so
those tasks return without a query (bench/notifications.py measures it).

`OrmPath` is the plain reference: a conditional
`Notification.objects.filter(pk=..., status=PENDING).update(...)` claims, the
ORM reads the row and records the outcome, `EmailMessage.send()` sends, and
there is no map. tests/notifications/test_paths.py runs the same scenarios
through both and compares what the mail server received.

The setting TRACKSOP_NOTIFY_PATH ("fast" or "orm"; "fast" when unset) picks
the path `current()` returns; the delivery functions also take `path=`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Protocol, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from notifications import gateways, selectors
from notifications.models import Channel, Notification, Preference, Status
from shipments.models import Shipment

if TYPE_CHECKING:
    pass

# A claimed row and its party's channel choice (`Preference.Choice`).
Claimed = tuple[Notification, str]


class Path(Protocol):
    """Claiming, sending and recording, as delivery.py uses them."""

    def claim(self, pk: int) -> Claimed | None:
        """Claim the row if it is due and nobody has it."""

    def claim_due_emails(self, limit: int) -> list[Claimed]:
        """Claim up to `limit` other due emails nobody has, in id order."""

    def finish(self, row: Notification, **fields: Any) -> bool:
        """Record the outcome unless the claim lapsed and another worker took it."""

    def send(self, row: Notification) -> str:
        """Send a claimed row; its provider's message id. Raises SendError."""

    def take(self, ids: Iterable[int]) -> None:
        """Mark rows a batch took from their own tasks."""

    def untake(self, ids: Iterable[int]) -> bool:
        """Drop the marks; whether there was any."""


def _lease() -> tuple[datetime, datetime]:
    """Now and the end of a claim made now."""
    now = timezone.now()
    return now, now + timedelta(seconds=settings.TRACKSOP_NOTIFY_LEASE_SECONDS)


# --- the fast path -------------------------------------------------------

# What sending reads of a claimed row; the rest stays deferred.
_CLAIMED = frozenset(
    [
        "id",
        "kind",
        "channel",
        "audience",
        "to",
        "subject",
        "body_text",
        "body_html",
        "attempts",
        "shipment_id",
        "subscription_id",
        "report_id",
        "mime",
    ]
)


@cache
def _claim_sql(*, others: bool = False) -> tuple[str, tuple[str, ...]]:
    """One statement (UPDATE ... RETURNING, PostgreSQL and SQLite alike) for
    what took the ORM three: the conditional claim, the row, and the party's
    preference. Their query building cost a worker about as much CPU as the
    email itself (see bench/notifications.py). Returns the SQL and the columns
    it returns, in the model's field order, as Model.from_db wants them.

    With `others`, it claims up to a number of due emails instead of one row,
    newest first: the tasks of the oldest are at the head of the queue, about
    to claim their own rows."""
    q = connection.ops.quote_name
    notification, shipment, preference = (
        q(model._meta.db_table) for model in (Notification, Shipment, Preference)
    )
    columns = tuple(
        f.attname for f in Notification._meta.concrete_fields if f.attname in _CLAIMED
    )
    due, where = "", "id = %s AND status = %s AND next_attempt_at <= %s"
    if others:
        # Claims at once share the rows instead of waiting for each other.
        skip = (
            " FOR UPDATE SKIP LOCKED"
            if connection.features.has_select_for_update_skip_locked
            else ""
        )
        # Materialized: as a subquery the planner may run it again for each
        # row it updates, and each run locks other rows, past the limit.
        # Identifiers from model metadata, never from input (and below).
        due = f"""WITH due AS MATERIALIZED (
            SELECT id FROM {notification}
            WHERE status = %s AND next_attempt_at <= %s AND channel = %s
            ORDER BY next_attempt_at DESC, id DESC LIMIT %s{skip}
        )"""  # noqa: S608
        where = "id IN (SELECT id FROM due) AND status = %s"
    sql = f"""{due}
        UPDATE {notification}
        SET status = %s, attempts = attempts + 1, next_attempt_at = %s
        WHERE {where}
        RETURNING {", ".join(q(c) for c in columns)},
            (SELECT public_token FROM {shipment}
             WHERE {shipment}.id = {notification}.shipment_id),
            (SELECT channels FROM {preference}
             WHERE {preference}.shipment_id = {notification}.shipment_id
             AND {preference}.audience = {notification}.audience)
    """  # noqa: S608
    return sql, columns


def _claim_times() -> tuple[Any, Any]:
    """Now and the end of a claim made now, as the database takes them."""
    now, lease = _lease()
    adapt = connection.ops.adapt_datetimefield_value
    return adapt(now), adapt(lease)


def _claimed(values: Sequence[Any], columns: tuple[str, ...]) -> Claimed:
    """The row (only the fields sending needs, with its shipment's public
    token) and its party's choice, from a row the claim returned."""
    *fields, token, choice = values
    row = Notification.from_db(connection.alias, columns, fields)
    row.shipment = Shipment.from_db(
        connection.alias, ("id", "public_token"), (row.shipment_id, token)
    )
    return row, choice or Preference.Choice.BOTH


class FastPath:
    """Raw claim and record SQL, stored bytes over the open connection, and
    the per-process map of rows a batch took (see the module docstring)."""

    # Bounded: a task that went to another process never comes for its mark,
    # and a task whose mark is gone claims nothing (the row is taken or done).
    TAKEN_LIMIT = 50_000

    def __init__(self) -> None:
        # Rows a batch in this process took from other rows' tasks, so those
        # tasks return without a query. A mark is dropped when its row is
        # left pending: its retry task must claim it.
        self.taken: dict[int, None] = {}
        self._lock = threading.Lock()

    def claim(self, pk: int) -> Claimed | None:
        now, lease = _claim_times()
        sql, columns = _claim_sql()
        with connection.cursor() as cursor:
            cursor.execute(
                sql, [Status.SENDING.value, lease, pk, Status.PENDING.value, now]
            )
            claimed = cursor.fetchone()
        return None if claimed is None else _claimed(claimed, columns)

    def claim_due_emails(self, limit: int) -> list[Claimed]:
        now, lease = _claim_times()
        sql, columns = _claim_sql(others=True)
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    *(Status.PENDING.value, now, Channel.EMAIL.value, limit),
                    *(Status.SENDING.value, lease),
                    Status.PENDING.value,
                ],
            )
            claimed = cursor.fetchall()
        return sorted((_claimed(c, columns) for c in claimed), key=lambda c: c[0].pk)

    def finish(self, row: Notification, **fields: Any) -> bool:
        """The UPDATE the ORM would write, without its query building (a
        worker's CPU is the limit on sending; see _claim_sql)."""
        q = connection.ops.quote_name
        meta = Notification._meta
        columns = [cast("Field[Any, Any]", meta.get_field(name)) for name in fields]
        values = [f.get_db_prep_save(fields[f.name], connection) for f in columns]
        # Identifiers from model metadata, never from input.
        sql = (
            f"UPDATE {q(meta.db_table)} SET "  # noqa: S608
            + ", ".join(f"{q(cast(str, f.column))} = %s" for f in columns)
            + " WHERE id = %s AND status = %s AND attempts = %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*values, row.pk, Status.SENDING.value, row.attempts])
            updated: int = cursor.rowcount
        return updated > 0

    def send(self, row: Notification) -> str:
        if row.channel == Channel.SMS:
            return gateways.send_sms(to=row.to, body=row.body_text)
        if not row.mime and gateways.sends_bytes():
            # Written by a task, or by a path that does not build (a resend):
            # built once, now, and kept, so that a retry sends the same bytes
            # and the record holds what was sent.
            row.mime = gateways.email_bytes(gateways.email_for(row))
            Notification.objects.filter(
                pk=row.pk, status=Status.SENDING, attempts=row.attempts
            ).update(mime=row.mime)
        return gateways.send_email(
            notification_id=row.pk,
            to=row.to,
            prepared=bytes(row.mime),
            build=partial(gateways.email_for, row),
        )

    def take(self, ids: Iterable[int]) -> None:
        with self._lock:
            self.taken.update(dict.fromkeys(ids))
            while len(self.taken) > self.TAKEN_LIMIT:
                del self.taken[next(iter(self.taken))]

    def untake(self, ids: Iterable[int]) -> bool:
        found = False
        with self._lock:
            for pk in ids:
                found = self.taken.pop(pk, False) is None or found
        return found


# --- the reference path --------------------------------------------------


class OrmPath:
    """The plain ORM and Django's own sending: the reference the fast path
    must agree with (see the module docstring)."""

    def claim(self, pk: int) -> Claimed | None:
        now, lease = _lease()
        claimed = Notification.objects.filter(
            pk=pk, status=Status.PENDING, next_attempt_at__lte=now
        ).update(
            status=Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=lease
        )
        if claimed != 1:
            return None
        return self._loaded([pk])[0]

    def claim_due_emails(self, limit: int) -> list[Claimed]:
        now, lease = _lease()
        with transaction.atomic():
            # Newest first, as the fast path: the oldest rows' tasks are next.
            ids = list(
                Notification.objects.select_for_update(skip_locked=True)
                .filter(
                    status=Status.PENDING,
                    next_attempt_at__lte=now,
                    channel=Channel.EMAIL,
                )
                .order_by("-next_attempt_at", "-id")
                .values_list("id", flat=True)[:limit]
            )
            Notification.objects.filter(pk__in=ids, status=Status.PENDING).update(
                status=Status.SENDING,
                attempts=F("attempts") + 1,
                next_attempt_at=lease,
            )
        return self._loaded(ids)

    def _loaded(self, ids: Sequence[int]) -> list[Claimed]:
        rows = Notification.objects.select_related("shipment").filter(
            pk__in=ids, status=Status.SENDING
        )
        return [
            (
                row,
                Preference.Choice.BOTH
                if row.shipment_id is None
                else selectors.preference_for(row.shipment_id, row.audience),
            )
            for row in rows.order_by("pk")
        ]

    def finish(self, row: Notification, **fields: Any) -> bool:
        return (
            Notification.objects.filter(
                pk=row.pk, status=Status.SENDING, attempts=row.attempts
            ).update(**fields)
            > 0
        )

    def send(self, row: Notification) -> str:
        if row.channel == Channel.SMS:
            return gateways.send_sms(to=row.to, body=row.body_text)
        message = gateways.email_for(row)
        try:
            message.send()
        except Exception as exc:
            raise gateways.classify(exc) from exc
        return gateways.message_id(row.pk)

    def take(self, ids: Iterable[int]) -> None:
        """No map: every task claims its own row."""

    def untake(self, ids: Iterable[int]) -> bool:
        return False


FAST = FastPath()
ORM = OrmPath()
PATHS: dict[str, Path] = {"fast": FAST, "orm": ORM}


def current() -> Path:
    """The path TRACKSOP_NOTIFY_PATH names (the fast one when unset)."""
    name = settings.TRACKSOP_NOTIFY_PATH
    try:
        return PATHS[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"TRACKSOP_NOTIFY_PATH is {name!r}; it must be one of {sorted(PATHS)}."
        ) from None
