from __future__ import annotations

from django import forms

from reports.models import ReportKind
from shipments.models import Carrier, Location


class ReportRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=ReportKind.choices, initial=ReportKind.MONTHLY)
    start = forms.DateField(
        label="Start date", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="End date (custom period only)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    carrier = forms.ModelChoiceField(
        queryset=Carrier.objects.order_by("name"),
        required=False,
        empty_label="All carriers",
        to_field_name="code",
    )
    hub = forms.ModelChoiceField(
        queryset=Location.objects.order_by("name"),
        required=False,
        empty_label="All hubs",
        to_field_name="code",
        label="Origin hub",
    )
