"""Load a retention archive back into the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reports import retention


class Command(BaseCommand):
    help = (
        "Load an archive written by retention_purge back (its storage name or "
        "a file path). A corrupt or altered file, or rows that exist, load nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("archive")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = retention.restore(options["archive"])
        except retention.ArchiveError as exc:
            raise CommandError(f"Not restored: {exc}") from exc
        self.stdout.write(f"Restored {counts}")
