"""Writing many rows, each with its own values, in one statement.

This module stands in for `QuerySet.bulk_update`/`bulk_create`, so it works on
the model internals they use (`_base_manager`, `_state`, the related-field
check before a save) as they do.
"""

# ruff: noqa: SLF001 - the internals named above, as Django's own bulk methods

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.db import connections, router
from django.db.models import Field, Model


def bulk_set(objs: Sequence[Model], fields: Sequence[str]) -> int:
    """Save `fields` of these instances (all of one model) in one UPDATE;
    returns the rows changed. Like `QuerySet.bulk_update`, without signals
    or `auto_now`.

    On PostgreSQL the values travel as one array per column (`UPDATE … FROM
    unnest(…)`), so building the statement costs next to nothing. Django's
    bulk_update builds a `CASE WHEN pk = … THEN …` expression per row and
    field, and resolving those costs about 1.5 ms of Python per row of four
    fields: most of an exceptions sweep, before this. Other databases (the
    embedded SQLite) get bulk_update. For plain columns: numbers, text,
    times, foreign keys; not JSON or arrays."""
    if not objs:
        return 0
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return model._base_manager.bulk_update(objs, fields)
    meta = model._meta
    columns = [meta.pk, *(cast("Field[Any, Any]", meta.get_field(n)) for n in fields)]
    q = connection.ops.quote_name
    table = q(meta.db_table)
    names = [q(str(field.column)) for field in columns]
    casts = [f"%s::{field.db_type(connection)}[]" for field in columns]
    # Names and types come from the model, never from input; values are params.
    sql = (
        f"UPDATE {table} SET "  # noqa: S608
        + ", ".join(f"{name} = v.{name}" for name in names[1:])
        + f" FROM unnest({', '.join(casts)}) AS v({', '.join(names)})"
        + f" WHERE {table}.{names[0]} = v.{names[0]}"
    )
    params = [
        [
            field.get_db_prep_save(getattr(obj, field.attname), connection)
            for obj in objs
        ]
        for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        changed: int = cursor.rowcount
        return changed


def bulk_insert(objs: Sequence[Model]) -> list[Model]:
    """Insert these new instances (all of one model) in one statement and set
    their primary keys; like `QuerySet.bulk_create` without signals, for rows
    with plain values (no expressions, no multi-table models).

    On PostgreSQL the values travel as one array per column
    (`INSERT … SELECT * FROM unnest(…) RETURNING id`), whatever the columns'
    types. Django takes that path too, except for a model with a binary
    column (an email's bytes): then it writes one placeholder per value, and
    the statement for a thousand outbox rows costs more Python to build and
    quote than to run. Other databases get bulk_create."""
    if not objs:
        return []
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return model._base_manager.bulk_create(objs)
    meta = model._meta
    pk = meta.pk
    fields = [f for f in meta.concrete_fields if f is not pk]
    q = connection.ops.quote_name
    names = [q(str(field.column)) for field in fields]
    # varchar[] rather than varchar(50)[], as Django does: nothing truncated.
    types = [str(field.db_type(connection)).split("(")[0] for field in fields]
    # Names and types come from the model, never from input; values are params.
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({', '.join(names)}) "  # noqa: S608
        f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) "
        f"RETURNING {q(str(pk.column))}"
    )
    for obj in objs:
        # A related object saved after it was assigned: take its id now.
        obj._prepare_related_fields_for_save(operation_name="bulk_insert")  # type: ignore[attr-defined]
    params = [
        [field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in objs]
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk_value in zip(objs, ids, strict=True):
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objs)
