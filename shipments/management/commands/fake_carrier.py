"""Run the local fake carrier (shipments.carriers.fake) in the foreground: the
demo's and the benchmark's stand-in for the UPS, FedEx, USPS and DHL Express
tracking APIs. Point the app at it with the TRACKSOP_CARRIER_API_URLS line it
prints."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shipments.carriers.fake.server import FakeCarrier


class Command(BaseCommand):
    help = "Serve a fake of the carriers' tracking APIs on localhost."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--delay-ms",
            type=int,
            default=0,
            help="Milliseconds each answer waits (a carrier's latency).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeCarrier(
            port=options["port"], host=options["host"], delay_ms=options["delay_ms"]
        )
        urls = ",".join(f"{p}={u}" for p, u in fake.api_urls().items())
        self.stdout.write(f"Fake carrier on {fake.url} (Ctrl-C stops it)")
        self.stdout.write(f"TRACKSOP_CARRIER_API_URLS={urls}")
        self.stdout.flush()
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            fake.stop_serving()
