"""URLs for the public-page benchmark (bench/public.py, `bench.settings`): two
baseline views in front of the application's own URLs, served by the same
gunicorn, middleware and settings as the tracking page they are compared with.

Both take the shipment's public token in the path, as the tracking page does,
so the load tool sends the same kind of request (and does the same work per
request) for every row of the table.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from shipments.models import Shipment


def bare(request: HttpRequest, token: str) -> HttpResponse:
    """(a) Django's floor: middleware, URL resolution, a fixed response."""
    return HttpResponse("ok", content_type="text/plain")


def one_query(request: HttpRequest, token: str) -> HttpResponse:
    """(b) One lookup on the unique index the tracking page reads by."""
    status = (
        Shipment.objects.filter(public_token=token)
        .values_list("status", flat=True)
        .first()
    )
    if status is None:
        return HttpResponse("not found", content_type="text/plain", status=404)
    return HttpResponse(f"status: {status}", content_type="text/plain")


urlpatterns = [
    path("bench/ok/<str:token>/", bare, name="bench-ok"),
    path("bench/query/<str:token>/", one_query, name="bench-query"),
    path("", include("tracksop.urls")),
]
