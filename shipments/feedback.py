"""The customer's feedback after delivery: a rating and a comment, once per
shipment, given on the public tracking page (reported monthly)."""

from __future__ import annotations

from functools import partial

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from shipments.models import Feedback, Shipment
from shipments.public import tracking_page_forget
from shipments.status import ShipmentStatus

__all__ = ["FeedbackRefused", "feedback_record"]


class FeedbackRefused(Exception):
    """Feedback that cannot be taken; `already` tells a repeat from too early."""

    def __init__(self, message: str, *, already: bool = False) -> None:
        super().__init__(message)
        self.already = already


def feedback_record(
    *, shipment: Shipment, rating: int, comment: str = "", language: str = ""
) -> Feedback:
    """The customer's rating after delivery, once per shipment. Two submissions
    at the same moment: the unique shipment column lets one in."""
    if shipment.status != ShipmentStatus.DELIVERED:
        raise FeedbackRefused(
            gettext("You can tell us how it went once the package is delivered.")
        )
    if not 1 <= rating <= 5:
        raise FeedbackRefused(gettext("Choose a rating from 1 to 5."))
    try:
        with transaction.atomic():
            feedback = Feedback.objects.create(
                shipment=shipment,
                rating=rating,
                comment=comment.strip()[:1000],
                language=language[:8],
            )
    except IntegrityError:
        raise FeedbackRefused(
            gettext("We already have your feedback for this delivery. Thank you!"),
            already=True,
        ) from None
    transaction.on_commit(
        partial(tracking_page_forget, shipment.public_token), robust=True
    )
    return feedback
