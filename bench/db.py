"""One PostgreSQL database per scale, created, migrated and seeded on demand."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from shipments.models import Shipment


def database_name(shipments: int) -> str:
    return f"tracksop_bench_{shipments}"


def admin_connection() -> psycopg.Connection[Any]:
    """An autocommit connection to the maintenance database, beside Django's."""
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"],
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )


def admin_execute(sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the maintenance database (CREATE/DROP DATABASE)."""
    with admin_connection() as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def database_url() -> str:
    """The URL of the database Django uses now, for a worker's environment."""
    s = connection.settings_dict
    return (
        f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:"
        f"{s['PORT'] or 5432}/{s['NAME']}"
    )


def fresh(name: str) -> None:
    """Drop and create database `name`, switch to it and migrate it."""
    connection.close()
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_execute(f'CREATE DATABASE "{name}"')
    use(name)
    call_command("migrate", verbosity=0, interactive=False)


def use(name: str) -> None:
    """Point Django's default connection at another database."""
    connection.close()
    connection.settings_dict["NAME"] = name
    # Content-type ids are cached per process; each database has its own.
    ContentType.objects.clear_cache()


def prepare(shipments: int) -> str:
    """Switch to the database for this scale; seed it unless it already holds
    exactly `shipments` shipments. Returns what was done, for the log."""
    name = database_name(shipments)
    started = time.monotonic()
    if not admin_execute("SELECT 1 FROM pg_database WHERE datname = %s", name):
        admin_execute(f'CREATE DATABASE "{name}"')
    use(name)
    call_command("migrate", verbosity=0, interactive=False)
    have = Shipment.objects.count()
    if have == shipments:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        return f"{name}: reused ({have:,} shipments)"
    if have:
        # A partial or different seeding: start over rather than top up.
        connection.close()
        admin_execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin_execute(f'CREATE DATABASE "{name}"')
        use(name)
        call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_demo", shipments=shipments, force=True)
    with connection.cursor() as cursor:
        # Bulk COPY leaves no statistics or visibility map; autovacuum would
        # get there eventually, the benchmark should not race it.
        cursor.execute("VACUUM (ANALYZE)")
    return (
        f"{name}: seeded {shipments:,} shipments in {time.monotonic() - started:.0f} s"
    )
