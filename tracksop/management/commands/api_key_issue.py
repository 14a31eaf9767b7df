"""Issue an API key for an integration (created if new); prints the key once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tracksop.api_keys import api_key_issue
from tracksop.models import Integration, Scope


class Command(BaseCommand):
    help = "Issue an API key. The key is printed once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("integration", help="Integration name (created if new)")
        parser.add_argument("--name", default="default", help="Name of this key")
        parser.add_argument(
            "--scope",
            action="append",
            choices=Scope.values,
            dest="scopes",
            help="Repeat for each scope; default: all of them",
        )
        parser.add_argument("--days", type=int, help="Expire after this many days")
        parser.add_argument("--contact-email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["integration"].strip()
        if not name:
            raise CommandError("Name the integration.")
        integration, _ = Integration.objects.get_or_create(
            name=name, defaults={"contact_email": options["contact_email"]}
        )
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be 1 or more.")
        try:
            _key, raw = api_key_issue(
                integration=integration,
                name=options["name"],
                scopes=options["scopes"] or Scope.values,
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(raw)
