"""Public pages (no login): the tracking page, the lookup, feedback.

Each page shows only what `shipments.public` hands it and renders with its own
base template and no staff context. Unknown, malformed or wrong input gets a
page of its own with the status that says what happened (400, 404, 409, 429).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from shipments import public
from shipments.feedback import FeedbackRefused, feedback_record
from shipments.models import Feedback, Shipment
from shipments.public_forms import FeedbackForm, LookupForm
from shipments.status import ShipmentStatus
from tracksop.http import (
    client_key,
    over_limit,
    public_not_found,
    public_page,
    too_many,
)

# Browsers may reuse the page for a minute, then revalidate with its ETag.
MAX_AGE = 60


@require_safe
def tracking(request: HttpRequest, token: str) -> HttpResponse:
    page = public.tracking_page(token=token, language=get_language())
    if page is None:
        return public_not_found(request)
    response = get_conditional_response(request, etag=page.etag) or HttpResponse(
        page.body
    )
    response["ETag"] = page.etag
    patch_cache_control(response, private=True, max_age=MAX_AGE)
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def lookup(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = LookupForm(initial={"tracking_number": request.GET.get("number", "")})
        return public_page(request, "public/lookup.html", {"form": form})
    if wait := over_limit(
        request, group="public-lookup", rate=settings.TRACKSOP_LOOKUP_RATE_PER_CLIENT
    ):
        return too_many(request, wait)
    form = LookupForm(request.POST)
    if not form.is_valid():
        return public_page(request, "public/lookup.html", {"form": form}, status=400)
    number = form.cleaned_data["tracking_number"]
    client = client_key(request)
    if wait := public.lookup_wait(number=number, client=client):
        return too_many(request, wait)
    # Always looked up, whatever the counts say: the right pair must get
    # through however many wrong guesses others made on this number.
    token = public.public_lookup(
        tracking_number=number, second_factor=form.cleaned_data["second_factor"]
    )
    if token is None:
        public.lookup_wrong_guess(number=number, client=client)
        # The same page for an unknown number and a wrong postcode.
        return public_page(
            request,
            "public/lookup.html",
            {"form": form, "not_found": True},
            status=404,
        )
    return redirect("public-tracking", token=token)


@never_cache
@require_http_methods(["GET", "POST"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    shipment = (
        Shipment.objects.only("status", "public_token", "tracking_number")
        .filter(public_token=token)
        .first()
        if public.TOKEN_RE.match(token)
        else None
    )
    if shipment is None:
        return public_not_found(request)
    context: dict[str, Any] = {"token": token, "number": shipment.tracking_number}
    given = Feedback.objects.filter(shipment=shipment).exists()
    delivered = shipment.status == ShipmentStatus.DELIVERED
    if request.method != "POST":
        form = FeedbackForm() if delivered and not given else None
        return public_page(
            request,
            "public/feedback.html",
            {**context, "form": form, "given": given, "delivered": delivered},
        )
    if wait := over_limit(
        request, group="public-feedback", rate=settings.TRACKSOP_PUBLIC_POST_RATE
    ):
        return too_many(request, wait)
    form = FeedbackForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            feedback_record(
                shipment=shipment,
                rating=form.cleaned_data["rating"],
                comment=form.cleaned_data["comment"],
                language=get_language() or "",
            )
        except FeedbackRefused as exc:
            form.add_error(None, str(exc))
            status = 409 if exc.already else 400
            given = given or exc.already
        else:
            return redirect("public-feedback", token=token)
    return public_page(
        request,
        "public/feedback.html",
        {
            **context,
            "form": None if given else form,
            "given": given,
            "delivered": delivered,
            "error": " ".join(str(e) for e in form.non_field_errors()),
        },
        status=status,
    )
