"""Demo exceptions for `make run`: a supervisor's queue with work in it.

Staff report exceptions on packages on their way, through the services, as
they would at the desk; some are reported hours ago, so the escalation sweep
that runs right after escalates them by the rules, to supervisors or, past
their deadline, to managers. One is assigned, one has a note, one is resolved.
The sweep also raises the delay exceptions of any late package. Their messages
are marked sent, like the rest of the demo history: no flood of mail at start.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from exceptions_mgmt import reporting, services, sweep
from exceptions_mgmt.models import Cause, DeliveryException, Severity
from notifications.models import Notification, Status
from shipments.models import Shipment
from shipments.status import MOVING

# (cause, severity, reported hours ago, description)
REPORTS = [
    (
        Cause.ADDRESS,
        Severity.HIGH,
        30,
        "Recipient unknown at the address; door code missing.",
    ),
    (
        Cause.DAMAGED,
        Severity.CRITICAL,
        6,
        "Box crushed at the hub; contents being checked.",
    ),
    (Cause.WEATHER, Severity.MEDIUM, 5, "Snow closed the route out of the hub."),
    (
        Cause.CUSTOMS,
        Severity.MEDIUM,
        60,
        "Held for an invoice the sender has not sent.",
    ),
    (Cause.FAILED_ATTEMPT, Severity.LOW, 2, "No one home; card left."),
    (Cause.CARRIER_DELAY, Severity.HIGH, 0.5, "Carrier reports a missed linehaul."),
    (Cause.LOST, Severity.CRITICAL, 0.2, "Not scanned since it left the hub."),
    (Cause.WEATHER, Severity.HIGH, 2, "Storm warning: the depot holds all vans."),
]


class Command(BaseCommand):
    help = "Give the demo open, escalated and resolved exceptions to work."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=11)

    def handle(self, *args: Any, **options: Any) -> None:
        if DeliveryException.objects.exists():
            self.stdout.write("Exceptions exist already.")
            return
        staff = {u.username: u for u in User.objects.filter(is_active=True)}
        reporter, supervisor = staff.get("logistics"), staff.get("supervisor")
        if reporter is None or supervisor is None:
            self.stdout.write("Run seed_demo first: the demo users are missing.")
            return
        rng = random.Random(options["seed"])
        before = Notification.objects.order_by("-pk").values_list("pk", flat=True)
        last = before.first() or 0
        now = timezone.now()
        moving = list(
            Shipment.objects.filter(status__in=sorted(MOVING)).order_by("-id")[
                : len(REPORTS)
            ]
        )
        reported = []
        for shipment, (cause, severity, hours, text) in zip(
            moving, REPORTS, strict=False
        ):
            exception = reporting.exception_report(
                shipment=shipment,
                user=reporter,
                cause=cause,
                severity=severity,
                description=text,
                expected_resolution=now + timedelta(hours=rng.randint(12, 72)),
            )
            reported.append((exception, timedelta(hours=hours)))
        with transaction.atomic():
            # As if reported that long ago (demo data only; no service moves
            # a report back in time), with the deadlines that follow.
            for exception, age in reported:
                exception.reported_at -= age
                if exception.escalate_after is not None:
                    exception.escalate_after -= age
                exception.save(update_fields=["reported_at", "escalate_after"])
        if len(reported) > 5:
            services.exception_assign(
                exception=reported[2][0], user=supervisor, assignee=supervisor
            )
            # Whoever calls the customer takes the exception first: one in
            # progress always has someone working on it.
            services.exception_assign(
                exception=reported[4][0], user=reporter, assignee=reporter
            )
            services.exception_note_add(
                exception=reported[4][0],
                user=reporter,
                text="Called the recipient: redelivery tomorrow morning.",
                customer_contacted=True,
                contact_channel="phone",
            )
            services.exception_resolve(
                exception=reported[5][0],
                user=supervisor,
                notes="Carrier confirmed it is on the next linehaul.",
            )
        swept = sweep.exceptions_sweep()
        Notification.objects.filter(pk__gt=last, status=Status.PENDING).update(
            # Now, not `now` from the start: sent after they were written.
            status=Status.SENT,
            sent_at=timezone.now(),
            next_attempt_at=None,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Reported {len(reported)} exceptions; the sweep detected "
                f"{swept['detected']} late packages and escalated {swept['escalated']}."
            )
        )
