"""Migration operations shared by the apps."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class PostgresRunSQL(migrations.RunSQL):
    """RunSQL that only runs on PostgreSQL (indexes and triggers SQLite lacks).

    The embedded SQLite default works without them; production and the test
    suite run on PostgreSQL, where they matter.
    """

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(
        self, app_label: str, schema_editor: Any, *args: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)
