"""Archive, verify and then delete the shipments past the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reports import retention


class Command(BaseCommand):
    help = (
        "Archive closed shipments whose last event is older than "
        "TRACKSOP_RETENTION_MONTHS to one verified file per month, then delete "
        "them. --dry-run lists what would go and changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = retention.purge(label="command", dry_run=options["dry_run"])
        except retention.ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        if run.dry_run:
            plan = run.removed.get("plan", {})
            for month, count in plan.items():
                self.stdout.write(f"{month}: {count} shipments would be archived")
            self.stdout.write(
                f"{run.removed.get('access_log', 0)} access-log rows older than "
                "the cut-off would be deleted"
            )
            self.stdout.write(
                f"Dry run: nothing changed (cut-off {run.cutoff:%Y-%m-%d})."
            )
            return
        for archive in run.archives.all():
            self.stdout.write(f"Archived {archive.file.name} ({archive.counts})")
        self.stdout.write(f"Removed: {run.removed}")
