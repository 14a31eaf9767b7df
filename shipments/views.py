"""Staff pages on shipments: search, record, edit, move through the status
machine, sync with the carrier, scan in bulk, monitor. The shipment's own page
and the customer service desk are in desk_views.py.

Thin: permission → selector → form → one service → redirect or render.
Invalid input re-renders the form with field messages and status 400; a move
the status machine refuses, or an edit over someone else's, answers 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from shipments import checkpoints, dispatch, selectors, services
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
from shipments.models import AccessLog, CarrierSync, Shipment, TrackingEvent
from tracksop.web import (
    GET_POST,
    form_page,
    page_params,
    paginate,
    posted,
    run_service,
    staff_view,
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
    form = ShipmentForm(posted(request))
    status = 200
    if request.method == "POST" and form.is_valid():
        shipment, status = run_service(
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
    return form_page(request, form, title="New shipment", status=status)


@staff_view("shipments.change_shipment")
@GET_POST
def shipment_edit(request: HttpRequest, code: str) -> HttpResponse:
    shipment = selectors.shipment_get(user=request.user, code=code)
    form = ShipmentForm(posted(request), instance=shipment)
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
    return form_class(posted(request), initial={"version": shipment.version}, **kw)


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
        result, status = run_service(form, lambda: perform(form.cleaned_data))
        if result is not None:
            messages.success(request, success(result))
            return redirect(shipment)
    return form_page(
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


@staff_view("shipments.record_checkpoint")
@GET_POST
def bulk_scan(request: HttpRequest) -> HttpResponse:
    form = BulkScanForm(posted(request), initial=request.session.get("scan_defaults"))
    result = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            result, status = run_service(
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
    page = paginate(request, filterset.qs)
    # Read the rows here (the template's one query) to log who saw their names.
    page.object_list = list(page.object_list)
    access_log_write(
        user=request.user,
        page=AccessLog.Page.SEARCH,
        shipments=page.object_list,
        path=request.get_full_path(),
    )
    return render(
        request,
        "shipments/monitor.html",
        {"filter": filterset, "page": page, "params": page_params(request)},
    )
