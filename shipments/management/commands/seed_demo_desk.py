"""Demo inquiries and feedback, and a public link to try, for `make run`.

Customer service sees open and answered inquiries on recent shipments, the
shipment pages show ratings, and the command prints a tracking page link and
a number/postcode pair for the lookup, so trying the customer's side needs no
digging in the database.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.urls import reverse

from shipments.inquiries import inquiry_log
from shipments.models import Feedback, Inquiry, Shipment
from shipments.status import MOVING, ShipmentStatus

# What customers ask while a package is on its way, and after it arrived.
MOVING_QUESTIONS = [
    "Where is my package? The tracking page has not changed since Monday.",
    "Can the driver leave it with my neighbour at number 12?",
    "I will be away on Friday. Can you deliver on Saturday instead?",
    "Why does it say delivery attempted? I was at home all day.",
]
MOVING_ANSWERS = [
    "Checked the last scan: it left the hub this morning and is on schedule.",
    "Added a note for the driver; the carrier confirmed.",
    "Asked the carrier to hold it at the depot until Saturday.",
    "",  # left open
]
DELIVERED_QUESTIONS = [
    "The box arrived damaged. What should I do?",
    "It says delivered but I cannot find it.",
]
DELIVERED_ANSWERS = [
    "Sent photos to the carrier; a replacement is on its way.",
    "The driver left it in the porch; the customer found it.",
]
COMMENTS = ["", "", "Fast, thank you!", "Box was a bit squashed.", "Friendly driver."]


class Command(BaseCommand):
    help = "Give recent demo shipments inquiries and feedback; print a public link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inquiries", type=int, default=40)
        parser.add_argument("--feedback", type=int, default=60)

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(7)  # the same demo every time
        agent = User.objects.filter(username="cs").first()
        if agent is not None and not Inquiry.objects.exists():
            # Questions about packages on their way, some still open; those
            # about delivered ones were answered on the call.
            half = options["inquiries"] // 2
            recent = Shipment.objects.order_by("-id")
            moving = recent.filter(status__in=MOVING)[: options["inquiries"] - half]
            delivered = recent.filter(status=ShipmentStatus.DELIVERED)[:half]
            for shipment in [*moving, *delivered]:
                on_its_way = shipment.status in MOVING
                inquiry_log(
                    shipment=shipment,
                    user=agent,
                    channel=rng.choice(["phone", "phone", "email", "chat"]),
                    question=rng.choice(
                        MOVING_QUESTIONS if on_its_way else DELIVERED_QUESTIONS
                    ),
                    answer=rng.choice(
                        MOVING_ANSWERS if on_its_way else DELIVERED_ANSWERS
                    ),
                )
        if not Feedback.objects.exists():
            delivered = Shipment.objects.filter(
                status=ShipmentStatus.DELIVERED
            ).order_by("-id")
            Feedback.objects.bulk_create(
                Feedback(
                    shipment=shipment,
                    rating=rng.choice([5, 5, 5, 4, 4, 3, 2, 1]),
                    comment=rng.choice(COMMENTS),
                    language="en",
                )
                for shipment in delivered[: options["feedback"]]
            )
        sample = (
            Shipment.objects.filter(status__in=MOVING, tracking_number__isnull=False)
            .order_by("-id")
            .first()
        )
        if sample is not None:
            url = settings.TRACKSOP_PUBLIC_URL.rstrip("/")
            page = reverse("public-tracking", args=[sample.public_token])
            self.stdout.write(
                f"  The customer's tracking page: {url}{page}\n"
                f"  Look-up ({url}/track/): tracking number "
                f"{sample.tracking_number}, postcode {sample.recipient_postcode}"
            )
