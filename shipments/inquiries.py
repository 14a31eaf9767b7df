"""The customer service desk's inquiries: who asked what, who answered, when.

Inquiries are the desk's own record. They write no TrackingEvent: the event
log drives the status, the customer's messages and the public page, and a
customer's question changes none of them. Nor do they lock or bump the
shipment: logging a call must not make a colleague's open edit form stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from shipments.models import Inquiry, Shipment
from shipments.status import TransitionRefused
from tracksop import dates

if TYPE_CHECKING:
    from django.contrib.auth.models import User as StaffUser

__all__ = [
    "INQUIRY_ANSWER_MAX",
    "INQUIRY_QUESTION_MAX",
    "InquiryAlreadyAnswered",
    "inquiry_answer",
    "inquiry_log",
]

INQUIRY_QUESTION_MAX = Inquiry._meta.get_field("question").max_length or 2000
INQUIRY_ANSWER_MAX = Inquiry._meta.get_field("answer").max_length or 4000


class InquiryAlreadyAnswered(TransitionRefused):
    """Someone answered the inquiry first; the message says who and when."""


def _inquiry_text_errors(*, question: str | None, answer: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if question is not None:
        if not question:
            errors["question"] = "Write what the customer asked."
        elif len(question) > INQUIRY_QUESTION_MAX:
            errors["question"] = (
                f"Keep the question to {INQUIRY_QUESTION_MAX} characters "
                f"(it has {len(question)})."
            )
    if len(answer) > INQUIRY_ANSWER_MAX:
        errors["answer"] = (
            f"Keep the answer to {INQUIRY_ANSWER_MAX} characters "
            f"(it has {len(answer)})."
        )
    return errors


def inquiry_log(
    *,
    shipment: Shipment,
    user: StaffUser,
    channel: str,
    question: str,
    answer: str = "",
) -> Inquiry:
    """Log a customer's question. With an answer it is answered at once (the
    common phone call); without, it stays open in the desk's list. Closed
    shipments take inquiries too: customers call after delivery."""
    question, answer = question.strip(), answer.strip()
    errors = _inquiry_text_errors(question=question, answer=answer)
    if channel not in Inquiry.Channel.values:
        errors["channel"] = "Choose how the customer reached us."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        return Inquiry.objects.create(
            shipment=shipment,
            channel=channel,
            question=question,
            answer=answer,
            status=Inquiry.Status.ANSWERED if answer else Inquiry.Status.OPEN,
            created_by=user,
            answered_by=user if answer else None,
            answered_at=now if answer else None,
        )


def inquiry_answer(*, inquiry: Inquiry, user: StaffUser, answer: str) -> Inquiry:
    """Answer an open inquiry, once. The conditional UPDATE lets exactly one of
    two agents answering at the same moment through; the other is told who
    answered and when, and nothing changes."""
    answer = answer.strip()
    errors = _inquiry_text_errors(question=None, answer=answer)
    if not answer:
        errors["answer"] = "Write what the customer was told."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        won = Inquiry.objects.filter(pk=inquiry.pk, status=Inquiry.Status.OPEN).update(
            status=Inquiry.Status.ANSWERED,
            answer=answer,
            answered_by=user,
            answered_at=timezone.now(),
        )
        current = Inquiry.objects.select_related("answered_by").get(pk=inquiry.pk)
    if not won:
        who = current.answered_by
        name = (who.get_full_name() or who.get_username()) if who else "someone"
        when = dates.localtime(current.answered_at).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
        raise InquiryAlreadyAnswered(
            f"Inquiry #{current.pk} was already answered by {name} at {when}; "
            "your answer was not saved."
        )
    return current
