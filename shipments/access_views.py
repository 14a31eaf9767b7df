"""The supervisors' page of who viewed a shipment's personal data."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from shipments import selectors
from shipments.access import VIEW_ACCESS_LOG, shipment_access_log
from tracksop.web import paginate, staff_view


@staff_view(VIEW_ACCESS_LOG)
@require_GET
def shipment_access(request: HttpRequest, code: str) -> HttpResponse:
    # Reading the log is not itself logged: it shows no customer's data.
    shipment = selectors.shipment_get(user=request.user, code=code)
    page = paginate(request, shipment_access_log(shipment=shipment))
    return render(
        request,
        "shipments/access.html",
        {"shipment": shipment, "page": page, "params": ""},
    )
