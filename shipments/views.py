"""Staff pages: permission → selector → form → one service → redirect or render.

Invalid input re-renders the form with field messages and status 400; a move
the status machine refuses, or an edit over someone else's, answers 409.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from shipments import checkpoints, dispatch, inquiries, selectors, services
from shipments.access import access_log_write
from shipments.carriers.sync import SyncRefused, carrier_sync_shipment
from shipments.carriers.tracking import CarrierError
from shipments.forms import (
    BulkScanForm,
    CheckForm,
    CheckpointForm,
    DispatchForm,
    EtaForm,
    MonitorFilter,
    ReasonForm,
    ShipmentBoundForm,
    ShipmentForm,
)
from shipments.inquiry_forms import AnswerForm, InquiryFilter, InquiryForm
from shipments.models import (
    AccessLog,
    CarrierSync,
    Inquiry,
    Shipment,
    TrackingEvent,
)

GET_POST = require_http_methods(["GET", "POST"])


def staff_view(
    perm: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Anonymous → login page; signed in without `perm` → 403."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorate


def _posted(request: HttpRequest) -> Any:
    # Not `request.POST or None`: an empty POST must bind, so it gets messages.
    return request.POST if request.method == "POST" else None


def _run(form: BaseForm, action: Callable[[], Any]) -> tuple[Any, int]:
    """Call a service; map its refusals onto the form. Returns (result, status)."""
    try:
        return action(), 200
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc)
        return None, 400
    except services.StaleShipment as exc:
        form.add_error(None, str(exc))
        return None, 409
    except services.TransitionRefused as exc:
        form.add_error(None, str(exc))
        return None, 409
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None, 403


def _form_page(
    request: HttpRequest,
    form: BaseForm,
    *,
    title: str,
    shipment: Shipment | None = None,
    status: int = 200,
    intro: str = "",
) -> HttpResponse:
    if request.method == "POST" and status == 200:
        status = 400  # reached only when the form did not validate
    return render(
        request,
        "shipments/form_page.html",
        {"form": form, "title": title, "shipment": shipment, "intro": intro},
        status=status,
    )


@staff_view("shipments.view_shipment")
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    result = selectors.shipment_search(user=request.user, query=query)
    if result.exact is not None:
        return redirect(result.exact)
    status = 200 if result.shipments or not result.query else 404
    access_log_write(
        user=request.user,
        page=AccessLog.Page.SEARCH,
        shipments=result.shipments,
        path=request.get_full_path(),
    )
    return render(request, "shipments/search.html", {"result": result}, status=status)


@staff_view("shipments.add_shipment")
@GET_POST
def shipment_create(request: HttpRequest) -> HttpResponse:
    form = ShipmentForm(_posted(request))
    status = 200
    if request.method == "POST" and form.is_valid():
        shipment, status = _run(
            form,
            lambda: services.shipment_create(
                user=request.user,
                details=form.details(),
                shipment_id=form.cleaned_data["shipment_id"],
            ),
        )
        if shipment:
            messages.success(request, f"Shipment {shipment.shipment_id} recorded.")
            return redirect(shipment)
    return _form_page(request, form, title="New shipment", status=status)


@staff_view("shipments.change_shipment")
@GET_POST
def shipment_edit(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    form = ShipmentForm(_posted(request), instance=shipment)
    response = _shipment_action(
        request,
        shipment,
        form,
        title=f"Edit {shipment.shipment_id}",
        perform=lambda data: services.shipment_update(
            shipment=shipment,
            user=request.user,
            details=form.details(),
            expected_version=data["version"],
        ),
        success=lambda _: "Shipment details saved.",
    )
    if response.status_code != 302:  # the form shows the personal data
        access_log_write(
            user=request.user,
            page=AccessLog.Page.SHIPMENT,
            shipments=[shipment.pk],
            path=request.get_full_path(),
        )
    return response


def _versioned(
    form_class: type[BaseForm], request: HttpRequest, shipment: Shipment, **kw: Any
) -> Any:
    if issubclass(form_class, ShipmentBoundForm):
        kw["shipment"] = shipment  # its dates are bounded by the shipment's age
    return form_class(_posted(request), initial={"version": shipment.version}, **kw)


def _shipment_action(
    request: HttpRequest,
    shipment: Shipment,
    form: BaseForm,
    *,
    title: str,
    perform: Callable[[dict[str, Any]], Any],
    success: Callable[[Any], str],
    intro: str = "",
) -> HttpResponse:
    """One action on one shipment: validate, call its service, report, redirect."""
    status = 200
    if request.method == "POST" and form.is_valid():
        result, status = _run(form, lambda: perform(form.cleaned_data))
        if result is not None:
            messages.success(request, success(result))
            return redirect(shipment)
    return _form_page(
        request, form, title=title, shipment=shipment, status=status, intro=intro
    )


@staff_view("shipments.verify_shipment")
@GET_POST
def shipment_check(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    return _shipment_action(
        request,
        shipment,
        _versioned(CheckForm, request, shipment),
        title=f"Quality and quantity check — {shipment.shipment_id}",
        intro="Check the package against the order before it may be dispatched.",
        perform=lambda data: dispatch.shipment_check(
            shipment=shipment,
            user=request.user,
            quality_ok=data["quality"] == "pass",
            quantity_ok=data["quantity"] == "pass",
            notes=data["notes"],
            expected_version=data["version"],
        ),
        success=lambda checked: (
            "Check passed: ready for dispatch."
            if checked.status == "ready"
            else "Check failed and recorded; the shipment stays Created."
        ),
    )


@staff_view("shipments.dispatch_shipment")
@GET_POST
def shipment_dispatch(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    return _shipment_action(
        request,
        shipment,
        _versioned(DispatchForm, request, shipment),
        title=f"Dispatch {shipment.shipment_id}",
        perform=lambda data: dispatch.shipment_dispatch(
            shipment=shipment,
            user=request.user,
            carrier=data["carrier"],
            tracking_number=data["tracking_number"],
            estimated_delivery=data["estimated_delivery"],
            expected_version=data["version"],
        ),
        success=lambda done: f"Dispatched with {done.carrier}: {done.tracking_number}.",
    )


@staff_view("shipments.record_checkpoint")
@GET_POST
def checkpoint_create(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    return _shipment_action(
        request,
        shipment,
        _versioned(CheckpointForm, request, shipment),
        title=f"Log checkpoint — {shipment.shipment_id}",
        perform=lambda data: checkpoints.checkpoint_record(
            shipment=shipment,
            kind=data["kind"],
            user=request.user,
            occurred_at=data["occurred_at"],
            location=data["location"],
            notes=data["notes"],
            expected_version=data["version"],
        ),
        success=lambda event: f"Logged: {event.get_kind_display()}.",
    )


@staff_view("shipments.record_checkpoint")
@GET_POST
def shipment_eta(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    form = _versioned(EtaForm, request, shipment)
    form.initial["estimated_delivery"] = shipment.estimated_delivery
    return _shipment_action(
        request,
        shipment,
        form,
        title=f"Change estimated delivery — {shipment.shipment_id}",
        intro="A later date sends the customer a delay message.",
        perform=lambda data: (
            services.shipment_eta_change(
                shipment=shipment,
                user=request.user,
                estimated_delivery=data["estimated_delivery"],
                reason=data["reason"],
                expected_version=data["version"],
            )
            or shipment
        ),
        success=lambda _: "Estimated delivery saved.",
    )


@staff_view("shipments.cancel_shipment")
@GET_POST
def shipment_cancel(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    return _shipment_action(
        request,
        shipment,
        _versioned(ReasonForm, request, shipment, submit="Cancel shipment"),
        title=f"Cancel {shipment.shipment_id}",
        perform=lambda data: services.shipment_cancel(
            shipment=shipment,
            user=request.user,
            reason=data["reason"],
            expected_version=data["version"],
        ),
        success=lambda _: "Shipment cancelled.",
    )


@staff_view("shipments.correct_event")
@GET_POST
def event_void(request: HttpRequest, code: str, event_id: int) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    event = get_object_or_404(TrackingEvent, pk=event_id, shipment=shipment)
    return _shipment_action(
        request,
        shipment,
        _versioned(ReasonForm, request, shipment, submit="Void event"),
        title=f"Void “{event.get_kind_display()}” on {shipment.shipment_id}",
        intro="The event stays in the log, marked void; the status is derived again.",
        perform=lambda data: checkpoints.event_void(
            event=event,
            user=request.user,
            reason=data["reason"],
            expected_version=data["version"],
        ),
        success=lambda _: "Event voided; status re-derived from the log.",
    )


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


# --- carrier tracking sync -----------------------------------------------------


@staff_view("shipments.record_checkpoint")
@require_POST
def shipment_sync_now(request: HttpRequest, code: str) -> HttpResponse:
    """*Sync now*: ask the carrier at once; the outcome as a message."""
    shipment = selectors.shipment_get(user=request.user, code=code)
    try:
        sync = carrier_sync_shipment(shipment=shipment)
    except SyncRefused as exc:
        messages.error(request, exc.message)
    except CarrierError as exc:  # the service records these; never a 500
        messages.error(request, f"{shipment.carrier}: {exc.message}")
    else:
        level, text = _sync_outcome(sync, carrier=str(shipment.carrier))
        messages.add_message(request, level, text)
        if sync.flag:
            messages.warning(request, sync.flag)
    return redirect(shipment)


def _sync_outcome(sync: CarrierSync, *, carrier: str) -> tuple[int, str]:
    """The service's own summary ("2 new events; …") as staff read it."""
    said = sync.last_message.rstrip(".")
    if sync.last_result == CarrierSync.Result.OK:
        return messages.SUCCESS, f"Synced with {carrier}: {said or 'nothing new'}."
    level = (
        messages.WARNING
        if sync.last_result == CarrierSync.Result.UNKNOWN_NUMBER
        else messages.ERROR
    )
    why = f": {said}." if said else "."
    return level, f"Not synced with {carrier} — {sync.get_last_result_display()}{why}"


# --- the customer service desk -------------------------------------------------

ADD_INQUIRY = "shipments.add_inquiry"
ANSWER_INQUIRY = "shipments.answer_inquiry"
# The last channel an agent logged: a chat agent should not pick "Chat" each time.
CHANNEL_KEY = "inquiry_channel"


@staff_view(ADD_INQUIRY)
@require_POST
def inquiry_create(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    form = InquiryForm(request.POST, shipment=shipment)
    status = 400
    if form.is_valid():
        data = form.cleaned_data
        inquiry, status = _run(
            form,
            lambda: inquiries.inquiry_log(
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
        answered, status = _run(
            form,
            lambda: inquiries.inquiry_answer(
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
    page = Paginator(filterset.qs, settings.TRACKSOP_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "shipments/inquiries.html",
        {"filter": filterset, "page": page, "params": params.urlencode()},
    )


@staff_view("shipments.record_checkpoint")
@GET_POST
def bulk_scan(request: HttpRequest) -> HttpResponse:
    form = BulkScanForm(_posted(request), initial=request.session.get("scan_defaults"))
    result = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            result, status = _run(
                form,
                lambda: checkpoints.bulk_scan_record(
                    user=request.user,
                    kind=data["kind"],
                    location=data["location"],
                    numbers=data["numbers"],
                ),
            )
            if result is not None:
                # Keep kind and location for the next batch; clear the numbers.
                request.session["scan_defaults"] = {
                    "kind": data["kind"],
                    "location": data["location"].pk,
                }
                form = BulkScanForm(initial=request.session["scan_defaults"])
                status = 200 if not result.problems or result.saved else 422
    return render(
        request,
        "shipments/bulk_scan.html",
        {"form": form, "result": result},
        status=status,
    )


@staff_view("shipments.view_shipment")
@require_GET
def monitor(request: HttpRequest) -> HttpResponse:
    filterset = MonitorFilter(
        request.GET or None, queryset=selectors.monitor_queryset()
    )
    paginator = Paginator(filterset.qs, settings.TRACKSOP_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    # Read the rows here (the template's one query) to log who saw their names.
    page.object_list = list(page.object_list)
    access_log_write(
        user=request.user,
        page=AccessLog.Page.SEARCH,
        shipments=page.object_list,
        path=request.get_full_path(),
    )
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "shipments/monitor.html",
        {"filter": filterset, "page": page, "params": params.urlencode()},
    )
