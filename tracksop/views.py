"""The pages of no one app: the dashboard and a person's preferences."""

from __future__ import annotations

import zoneinfo
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from exceptions_mgmt.selectors import queue_counts
from notifications.selectors import failed_count
from reports.selectors import dashboard_kpis
from shipments.selectors import VIEW_INQUIRY, dashboard_counts, inquiry_open_count
from tracksop.middleware import SESSION_KEY
from tracksop.models import StaffProfile
from tracksop.web import GET_POST, posted


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    counts = (
        dashboard_counts() if request.user.has_perm("shipments.view_shipment") else {}
    )
    failed = (
        failed_count()
        if request.user.has_perm("notifications.view_notification")
        else None
    )
    exception_counts = (
        queue_counts()
        if request.user.has_perm("exceptions_mgmt.view_deliveryexception")
        else None
    )
    open_inquiries = (
        inquiry_open_count() if request.user.has_perm(VIEW_INQUIRY) else None
    )
    kpis = dashboard_kpis() if request.user.has_perm("reports.request_report") else []
    return render(
        request,
        "dashboard.html",
        {
            "kpis": kpis,
            "counts": counts,
            "failed_messages": failed,
            "exception_counts": exception_counts,
            "open_inquiries": open_inquiries,
        },
    )


# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ProfileModelForm = forms.ModelForm[StaffProfile]


class PreferencesForm(ProfileModelForm):
    timezone = forms.ChoiceField(
        choices=[("", "Server default")]
        + [(name, name) for name in sorted(zoneinfo.available_timezones())],
        required=False,
        label="Show times in",
    )

    class Meta:
        model = StaffProfile
        fields = ["timezone"]


@login_required
@GET_POST
def preferences(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: never anonymous here
    profile, _ = StaffProfile.objects.get_or_create(user=user)
    form = PreferencesForm(posted(request), instance=profile)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            request.session[SESSION_KEY] = profile.timezone
            messages.success(request, "Preferences saved.")
            return redirect("preferences")
        return render(request, "preferences.html", {"form": form}, status=400)
    return render(request, "preferences.html", {"form": form})
