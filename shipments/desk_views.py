"""The shipment's page and the customer service desk on it: the inquiries
logged and answered there, and the queue of inquiries.

A refused inquiry form comes back on the shipment's page, bound, with its
messages at the field (400) or its refusal above the inquiries (409: someone
else answered first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from shipments import inquiries as desk
from shipments import selectors
from shipments.access import access_log_write
from shipments.inquiry_forms import AnswerForm, InquiryFilter, InquiryForm
from shipments.models import AccessLog, Inquiry, Shipment
from tracksop.web import page_params, paginate, run_service, staff_view

ADD_INQUIRY = "shipments.add_inquiry"
ANSWER_INQUIRY = "shipments.answer_inquiry"
# The last channel an agent logged: a chat agent should not pick "Chat" each time.
CHANNEL_KEY = "inquiry_channel"


@staff_view("shipments.view_shipment")
@require_GET
def shipment_detail(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    return _detail_page(request, shipment)


@dataclass(frozen=True)
class InquiryRow:
    inquiry: Inquiry
    form: AnswerForm | None  # for open inquiries, to those who may answer


def _detail_page(
    request: HttpRequest,
    shipment: Shipment,
    *,
    log_form: InquiryForm | None = None,
    answering: tuple[int, AnswerForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The shipment page; after a refused inquiry form, with that form bound,
    its messages at the field and its refusal above the inquiries."""
    user = request.user
    inquiries = selectors.shipment_inquiries(user=user, shipment=shipment)
    timeline = selectors.timeline_with_inquiries(
        selectors.shipment_timeline(shipment=shipment), inquiries
    )
    if log_form is None and user.has_perm(ADD_INQUIRY):
        log_form = InquiryForm(
            shipment=shipment,
            initial={"channel": request.session.get(CHANNEL_KEY, "phone")},
        )
    can_answer = user.has_perm(ANSWER_INQUIRY)
    rows = []
    for inquiry in reversed(inquiries):  # the newest, just logged, on top
        form = None
        if can_answer and inquiry.status == Inquiry.Status.OPEN:
            if answering is not None and answering[0] == inquiry.pk:
                form = answering[1]
            else:
                form = AnswerForm(inquiry=inquiry)
        rows.append(InquiryRow(inquiry=inquiry, form=form))
    if answering is not None and log_form is not None:
        # Back with an answer to fix: the cursor goes there, not to a new question.
        log_form.fields["question"].widget.attrs.pop("autofocus", None)
        answering[1].fields["answer"].widget.attrs["autofocus"] = True
    access_log_write(
        user=user,
        page=AccessLog.Page.SHIPMENT,
        shipments=[shipment.pk],
        path=request.get_full_path(),
    )
    refused = [
        str(e)
        for bound in (log_form, answering[1] if answering else None)
        if bound is not None and bound.is_bound
        for e in bound.non_field_errors()
    ]
    context = {
        "shipment": shipment,
        "carrier_panel": selectors.carrier_panel(
            shipment=shipment,
            now=timezone.now(),
            stale_after=settings.TRACKSOP_CARRIER_STALE_AFTER,
        ),
        "timeline": timeline,
        "inquiry_rows": rows,
        "open_inquiries": sum(i.status == Inquiry.Status.OPEN for i in inquiries),
        "log_form": log_form,
        "inquiry_errors": refused,
        "recipient_contacts": [shipment.recipient_email, shipment.recipient_phone],
        "sender_contacts": [
            shipment.sender_name,
            shipment.sender_email,
            shipment.sender_phone,
        ],
    }
    return render(request, "shipments/detail.html", context, status=status)


@staff_view(ADD_INQUIRY)
@require_POST
def inquiry_create(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    form = InquiryForm(request.POST, shipment=shipment)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        inquiry, status = run_service(
            form,
            lambda: desk.inquiry_log(
                shipment=shipment,
                user=_person(request),
                channel=data["channel"],
                question=data["question"],
                answer=data["answer"],
            ),
        )
        if inquiry is not None:
            request.session[CHANNEL_KEY] = inquiry.channel
            messages.success(
                request,
                f"Inquiry #{inquiry.pk} logged as answered."
                if inquiry.answer
                else f"Inquiry #{inquiry.pk} logged; it stays open until answered.",
            )
            return redirect(shipment)
    return _detail_page(request, shipment, log_form=form, status=status)


@staff_view(ANSWER_INQUIRY)
@require_POST
def inquiry_answer(request: HttpRequest, code: str, pk: int) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    inquiry = selectors.inquiry_get(shipment=shipment, pk=pk)
    form = AnswerForm(request.POST, inquiry=inquiry)
    status = 400
    if form.is_valid():
        answered, status = run_service(
            form,
            lambda: desk.inquiry_answer(
                inquiry=inquiry,
                user=_person(request),
                answer=form.cleaned_data["answer"],
            ),
        )
        if answered is not None:
            messages.success(request, f"Inquiry #{pk} answered.")
            return redirect(shipment)
        if status == 409:
            # The answer box is gone (someone else answered): keep the text.
            form.add_error(None, f"Your answer: “{form.cleaned_data['answer']}”")
    return _detail_page(request, shipment, answering=(pk, form), status=status)


def _person(request: HttpRequest) -> User:
    return cast(User, request.user)  # staff_view: never anonymous here


@staff_view(selectors.VIEW_INQUIRY)
@require_GET
def inquiry_list(request: HttpRequest) -> HttpResponse:
    filterset = InquiryFilter(
        request.GET or None, queryset=selectors.inquiry_queue(), request=request
    )
    return render(
        request,
        "shipments/inquiries.html",
        {
            "filter": filterset,
            "page": paginate(request, filterset.qs),
            "params": page_params(request),
        },
    )
