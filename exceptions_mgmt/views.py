"""Staff pages for delivery exceptions: the queue, one exception, reporting.

Thin, as the shipment pages: permission → selector → form → one service →
redirect or render. Bad input answers 400 at the field; a change someone else
made first (resolved meanwhile, say) 409 with what happened; a move the role
may not make 403. Everyone who views exceptions works them; only supervisors
see escalation levels and hand exceptions to others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_POST

from exceptions_mgmt import escalation, reporting, selectors, services
from exceptions_mgmt.forms import (
    AssignForm,
    BulkForm,
    ExceptionFilter,
    NoteForm,
    ReportForm,
    RescheduleForm,
    ResolveForm,
    ScanReportForm,
    person,
)
from exceptions_mgmt.models import DESCRIPTION_LENGTH, DeliveryException
from exceptions_mgmt.services import SUPERVISE, WORK
from exceptions_mgmt.status import ExceptionConflict
from notifications.models import Channel, Status
from shipments import selectors as shipment_selectors
from shipments.access import access_log_write
from shipments.inquiries import inquiry_answer
from shipments.models import AccessLog, Inquiry, Shipment
from shipments.status import TransitionRefused
from tracksop import dates
from tracksop.web import (
    GET_POST,
    form_page,
    page_params,
    paginate,
    posted,
    run_service,
    staff_view,
)

VIEW = "exceptions_mgmt.view_deliveryexception"


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # staff_view: never anonymous here


# --- the queue ---------------------------------------------------------------


@staff_view(VIEW)
@GET_POST
def queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        return _bulk(request, user)
    return _queue_page(request, user, BulkForm(workers=selectors.exception_workers()))


def _queue_page(
    request: HttpRequest, user: User, bulk: BulkForm, *, status: int = 200
) -> HttpResponse:
    filterset = ExceptionFilter(
        request.GET or None,
        queryset=selectors.exception_queue(),
        request=request,
        workers=selectors.exception_workers(),
    )
    return render(
        request,
        "exceptions_mgmt/queue.html",
        {
            "filter": filterset,
            "page": paginate(request, filterset.qs),
            "params": page_params(request),
            "bulk": bulk,
            "now": timezone.now(),
            "today": timezone.localdate(),
            "can_work": user.has_perm(WORK),
            "can_supervise": user.has_perm(SUPERVISE),
        },
        status=status,
    )


def _bulk(request: HttpRequest, user: User) -> HttpResponse:
    """One service call per ticked row, each atomic on its own: a row that is
    refused is reported and leaves the others done."""
    if not user.has_perm(WORK):
        raise PermissionDenied
    data = request.POST.copy()
    one = data.get("assign_one", "")
    if one:  # the row's own "Assign to me" button
        data.setlist("ids", [str(one)])
        data["action"] = BulkForm.ASSIGN_ME
    bulk = BulkForm(data, workers=selectors.exception_workers())
    if not bulk.is_valid():
        return _queue_page(request, user, bulk, status=400)
    action = bulk.cleaned_data["action"]
    if action == BulkForm.ASSIGN_TO and not user.has_perm(SUPERVISE):
        bulk.add_error(None, "Only supervisors assign exceptions to others.")
        return _queue_page(request, user, bulk, status=403)
    perform, done_text = _bulk_action(user, bulk.cleaned_data)
    ids = bulk.cleaned_data["ids"]
    rows = selectors.exceptions_by_pk(ids)
    done: list[str] = []
    for pk in ids:
        row = rows.get(pk)
        if row is None:
            messages.error(request, f"Exception {pk}: not found.")
            continue
        try:
            perform(row)
        except ValidationError as exc:
            problem = " ".join(exc.messages)
        except (ExceptionConflict, PermissionDenied, TransitionRefused) as exc:
            problem = str(exc)
        else:
            done.append(row.shipment.shipment_id)
            continue
        messages.error(request, f"{row.shipment.shipment_id}: {problem}")
    if done:
        messages.success(request, f"{done_text}: {', '.join(done)}.")
    return redirect(request.get_full_path())


def _bulk_action(
    user: User, data: dict[str, Any]
) -> tuple[Callable[[DeliveryException], Any], str]:
    if data["action"] == BulkForm.ASSIGN_ME:
        return (
            lambda row: services.exception_assign(
                exception=row, user=user, assignee=user
            ),
            "Assigned to you",
        )
    if data["action"] == BulkForm.ASSIGN_TO:
        assignee = data["assignee"]
        return (
            lambda row: services.exception_assign(
                exception=row, user=user, assignee=assignee
            ),
            f"Assigned to {person(assignee)}",
        )
    return (
        lambda row: services.exception_resolve(
            exception=row, user=user, notes=data["notes"]
        ),
        "Resolved; the customers are told",
    )


# --- one exception -----------------------------------------------------------


@staff_view(VIEW)
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, selectors.exception_get(pk=pk))


def _detail_page(
    request: HttpRequest,
    exception: DeliveryException,
    *,
    slot: str = "",
    bound: BaseForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    can_supervise = user.has_perm(SUPERVISE)
    pk = exception.pk
    workers = selectors.exception_workers() if can_supervise else User.objects.none()
    forms: dict[str, BaseForm] = {
        "assign_form": AssignForm(
            workers=workers, action=reverse("exception-assign", args=[pk])
        ),
        "note_form": NoteForm(action=reverse("exception-note", args=[pk])),
        "reschedule_form": RescheduleForm(
            action=reverse("exception-reschedule", args=[pk]),
            initial={"expected_resolution": exception.expected_resolution},
        ),
        "resolve_form": ResolveForm(
            action=reverse("exception-resolve", args=[pk]),
            initial={"version": exception.version},
        ),
    }
    action_errors: list[str] = []
    if bound is not None:
        # Shown once, above everything: the form it came from may be gone
        # (the exception was resolved meanwhile).
        action_errors = [str(e) for e in bound.non_field_errors()]
        bound.errors.pop(NON_FIELD_ERRORS, None)
        forms[slot] = bound
    access_log_write(
        user=user,
        page=AccessLog.Page.EXCEPTION,
        shipments=[exception.shipment_id],
        path=request.get_full_path(),
    )
    return render(
        request,
        "exceptions_mgmt/detail.html",
        {
            "exception": exception,
            "shipment": exception.shipment,
            "notes": selectors.exception_notes(exception=exception),
            "history": selectors.exception_history(
                exception=exception, show_levels=can_supervise
            ),
            "next_escalation": (
                None
                if exception.is_closed
                else escalation.next_escalation(exception, selectors.escalation_rules())
            ),
            "now": timezone.now(),
            "today": timezone.localdate(),
            "can_work": user.has_perm(WORK),
            "can_supervise": can_supervise,
            "action_errors": action_errors,
            **forms,
        },
        status=status,
    )


def _act(
    request: HttpRequest,
    exception: DeliveryException,
    *,
    slot: str,
    form: BaseForm,
    perform: Callable[[dict[str, Any]], Any],
    success: Callable[[Any], str],
) -> HttpResponse:
    """One action on one exception: validate, call its service, report."""
    status = 400
    if form.is_valid():
        result, status = run_service(form, lambda: perform(form.cleaned_data))
        if status == 200:
            messages.success(request, success(result))
            return redirect(exception)
        # Refused: show the exception as it is now, not as the form saw it.
        exception = selectors.exception_get(pk=exception.pk)
    return _detail_page(request, exception, slot=slot, bound=form, status=status)


@staff_view(WORK)
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    exception = selectors.exception_get(pk=pk)
    form = AssignForm(request.POST, workers=selectors.exception_workers())
    if form.asks_for_someone_else(user) and not user.has_perm(SUPERVISE):
        form.add_error(None, "Only supervisors assign exceptions to others.")
        return _detail_page(
            request, exception, slot="assign_form", bound=form, status=403
        )
    return _act(
        request,
        exception,
        slot="assign_form",
        form=form,
        perform=lambda data: services.exception_assign(
            exception=exception, user=user, assignee=data["assignee"]
        ),
        success=lambda done: (
            "Assigned to you."
            if done.assignee_id == user.pk
            else f"Assigned to {person(done.assignee)}."
        ),
    )


@staff_view(WORK)
@require_POST
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    exception = selectors.exception_get(pk=pk)
    return _act(
        request,
        exception,
        slot="note_form",
        form=NoteForm(request.POST),
        perform=lambda data: services.exception_note_add(
            exception=exception,
            user=_user(request),
            text=data["text"],
            customer_contacted=data["customer_contacted"],
            contact_channel=data["contact_channel"],
        ),
        success=lambda note: (
            "Note added."
            + (" Customer contact recorded." if note.customer_contacted else "")
        ),
    )


@staff_view(WORK)
@require_POST
def reschedule(request: HttpRequest, pk: int) -> HttpResponse:
    exception = selectors.exception_get(pk=pk)
    return _act(
        request,
        exception,
        slot="reschedule_form",
        form=RescheduleForm(request.POST),
        perform=lambda data: services.exception_reschedule(
            exception=exception,
            user=_user(request),
            expected_resolution=data["expected_resolution"],
            reason=data["reason"],
        ),
        success=lambda done: (
            "Expected resolution moved to "
            f"{dates.localtime(done.expected_resolution):%Y-%m-%d %H:%M %Z}. "
            "The customer gets a message with the new time."
        ),
    )


@staff_view(WORK)
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    exception = selectors.exception_get(pk=pk)
    return _act(
        request,
        exception,
        slot="resolve_form",
        form=ResolveForm(request.POST),
        perform=lambda data: services.exception_resolve(
            exception=exception,
            user=_user(request),
            notes=data["notes"],
            expected_version=data["version"],
        ),
        success=lambda _: "Exception resolved. The customer is told.",
    )


# --- reporting ---------------------------------------------------------------


@staff_view(WORK)
@GET_POST
def report(request: HttpRequest, code: str) -> HttpResponse:
    shipment = shipment_selectors.shipment_get(user=request.user, code=code)
    user = _user(request)
    # Reported from a customer inquiry (`?inquiry=<pk>`, kept in the URL the
    # form posts back to): its question fills the description, and the
    # report may become the inquiry's answer.
    inquiry = _inquiry_asked_about(request, shipment)
    answers = (
        inquiry is not None
        and inquiry.status == Inquiry.Status.OPEN
        and user.has_perm("shipments.answer_inquiry")
    )
    form = ReportForm(
        posted(request),
        initial=_from_inquiry(inquiry),
        answers_inquiry=inquiry.pk if answers and inquiry else None,
    )
    status = 200
    if request.method == "POST" and form.is_valid():
        exception, status = run_service(
            form,
            lambda: reporting.exception_report(
                shipment=shipment, user=user, inquiry=inquiry, **form.report_kwargs()
            ),
        )
        if exception is not None:
            told = _customer_told(exception)
            messages.success(request, told)
            if inquiry is not None and form.cleaned_data.get("answer_inquiry"):
                _answer_with_report(request, inquiry, exception, told)
            return redirect(exception)
    intro = (
        "The package is put on hold, and the customer is told the cause "
        "and the expected resolution at once."
    )
    if inquiry is not None:
        intro += f" Reported from customer inquiry #{inquiry.pk}."
    return form_page(
        request,
        form,
        title=f"Report an exception — {shipment.shipment_id}",
        shipment=shipment,
        status=status,
        intro=intro,
    )


def _inquiry_asked_about(request: HttpRequest, shipment: Shipment) -> Inquiry | None:
    raw = request.GET.get("inquiry", "")
    # Digits that fit a bigint; anything else is a mangled link: ignored.
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        return None
    if not request.user.has_perm(shipment_selectors.VIEW_INQUIRY):
        return None
    return shipment_selectors.inquiry_get(shipment=shipment, pk=int(raw))


def _from_inquiry(inquiry: Inquiry | None) -> dict[str, Any]:
    if inquiry is None:
        return {}
    when = dates.localtime(inquiry.created_at).strftime("%Y-%m-%d %H:%M %Z")
    text = (
        f"Customer inquiry #{inquiry.pk} ({inquiry.get_channel_display()}, "
        f"{when}): {inquiry.question}"
    )
    return {"description": Truncator(text).chars(DESCRIPTION_LENGTH)}


def _answer_with_report(
    request: HttpRequest,
    inquiry: Inquiry,
    exception: DeliveryException,
    told: str,
) -> None:
    """The inquiry's answer names the exception, so each leads to the other
    (the exception's description names the inquiry)."""
    when = dates.localtime(exception.expected_resolution)
    answer = (
        f"Reported as exception #{exception.pk}: {exception.cause_label}, "
        f"expected resolution {when:%Y-%m-%d %H:%M %Z}. "
        + told.removeprefix("Exception reported. ")
    )
    try:
        inquiry_answer(inquiry=inquiry, user=_user(request), answer=answer)
    except TransitionRefused as exc:
        messages.warning(request, f"{exc} The exception is reported all the same.")


def _customer_told(exception: DeliveryException) -> str:
    rows = selectors.customer_messages(exception=exception)
    going = dict.fromkeys(
        "email" if row.channel == Channel.EMAIL else "SMS"
        for row in rows
        if row.status not in (Status.SUPPRESSED, Status.FAILED)
    )
    if going:
        return (
            f"Exception reported. The customer was notified by {' and '.join(going)} "
            "of the cause and the expected resolution."
        )
    reasons = dict.fromkeys(row.last_error for row in rows if row.last_error)
    return "Exception reported. No message went to the customer" + (
        f": {' '.join(reasons)}" if reasons else "."
    )


@staff_view(WORK)
@GET_POST
def scan(request: HttpRequest) -> HttpResponse:
    form = ScanReportForm(posted(request))
    result = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            details = form.report_kwargs()
            result, refused = run_service(
                form,
                lambda: reporting.exceptions_report_scanned(
                    user=_user(request),
                    numbers=form.cleaned_data["numbers"],
                    **details,
                ),
            )
            if result is not None:
                # Keep the cause and times for the next batch; clear the numbers.
                form = ScanReportForm(initial=details)
                status = 200 if result.reported or not result.problems else 422
            else:
                status = refused
    return render(
        request,
        "exceptions_mgmt/scan.html",
        {"form": form, "result": result},
        status=status,
    )
