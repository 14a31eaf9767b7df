"""Parsing and field validation for the staff pages; services do the saving.

The desk's forms are in `shipments.inquiry_forms`, the public pages' in
`shipments.public_forms`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django_filters
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout, Submit
from django import forms
from django.conf import settings
from django.utils import timezone

from shipments import bounds, selectors
from shipments import tracking_numbers as tn
from shipments.checkpoints import BULK_SCAN_LIMIT
from shipments.models import Carrier, Location, Shipment, default_language
from shipments.services import DETAIL_FIELDS
from shipments.status import CHECKPOINT_KINDS, CLOSED, EventKind, ShipmentStatus
from tracksop.filters import FilterBar
from tracksop.forms import LocalDateTimeField


def _helper(submit: str, *layout: Any) -> FormHelper:
    helper = FormHelper()
    helper.layout = Layout(*layout, Submit("submit", submit, css_class="btn-lg"))
    return helper


class VersionedForm(forms.Form):
    """Carries the version the user saw, to refuse edits over someone else's."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ShipmentModelForm = forms.ModelForm[Shipment]


class ShipmentForm(ShipmentModelForm):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta:
        model = Shipment
        fields = ["shipment_id", *DETAIL_FIELDS]
        widgets = {
            "sender_address": forms.Textarea(attrs={"rows": 2}),
            "recipient_address": forms.Textarea(attrs={"rows": 2}),
            "contents": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "shipment_id": "Leave empty to have one generated.",
            "recipient_phone": "International format, e.g. +1 212 555 0100.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        editing = self.instance.pk is not None
        self.fields["shipment_id"].required = False
        self.fields["language"].required = False
        if editing:
            del self.fields["shipment_id"]
            self.fields["version"].initial = self.instance.version
        else:
            del self.fields["version"]
        for name in ("recipient_country",):
            self.fields[name].widget.attrs.update(
                {"maxlength": 2, "class": "text-uppercase"}
            )
        for name in ("weight_kg", "length_cm", "width_cm", "height_cm"):
            self.fields[name].widget.attrs.update(step="any", inputmode="decimal")
        row = "row g-2"
        self.helper = _helper(
            "Save shipment",
            Fieldset(
                "Order",
                Div(
                    *([Div("shipment_id", css_class="col-md")] if not editing else []),
                    Div("order_number", css_class="col-md"),
                    css_class=row,
                ),
            ),
            Fieldset(
                "Recipient",
                Div(
                    Div("recipient_name", css_class="col-md-6"),
                    Div("recipient_email", css_class="col-md-3"),
                    Div("recipient_phone", css_class="col-md-3"),
                    css_class=row,
                ),
                "recipient_address",
                "language",
                Div(
                    Div("recipient_postcode", css_class="col-4"),
                    Div("recipient_city", css_class="col-5"),
                    Div("recipient_country", css_class="col-3"),
                    css_class=row,
                ),
            ),
            Fieldset(
                "Sender",
                Div(
                    Div("sender_name", css_class="col-md-6"),
                    Div("sender_email", css_class="col-md-3"),
                    Div("sender_phone", css_class="col-md-3"),
                    css_class=row,
                ),
                "sender_address",
                Field("notify_sender"),
            ),
            Fieldset(
                "Package",
                Div(
                    Div("weight_kg", css_class="col-6 col-md-3"),
                    Div("length_cm", css_class="col-6 col-md-3"),
                    Div("width_cm", css_class="col-6 col-md-3"),
                    Div("height_cm", css_class="col-6 col-md-3"),
                    css_class=row,
                ),
                Div(
                    Div("contents", css_class="col-md-9"),
                    Div("pieces", css_class="col-md-3"),
                    css_class=row,
                ),
            ),
            *(["version"] if editing else []),
        )

    def clean_language(self) -> str:
        # Optional, so an older client that does not send it keeps working.
        return str(
            self.cleaned_data.get("language")
            or self.instance.language
            or default_language()
        )

    def clean_shipment_id(self) -> str:
        return (self.cleaned_data.get("shipment_id") or "").strip().upper()

    def clean_recipient_country(self) -> str:
        return _country(self.cleaned_data["recipient_country"])

    def validate_unique(self) -> None:
        # Uniqueness is the service's job (it also catches the race); keep the
        # friendly early message for the common case.
        code = self.cleaned_data.get("shipment_id")
        if code and Shipment.objects.filter(shipment_id=code).exists():
            self.add_error(
                "shipment_id", "A shipment with this shipment ID already exists."
            )

    def details(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in DETAIL_FIELDS}


def _country(value: str) -> str:
    value = value.strip().upper()
    if len(value) != 2 or not value.isalpha() or not value.isascii():
        raise forms.ValidationError("Use the two-letter country code, e.g. US or DE.")
    return value


class CheckForm(VersionedForm):
    RESULT = [("pass", "Pass"), ("fail", "Fail")]
    quality = forms.ChoiceField(
        choices=RESULT, widget=forms.RadioSelect, label="Quality (condition, packing)"
    )
    quantity = forms.ChoiceField(
        choices=RESULT, widget=forms.RadioSelect, label="Quantity (items and pieces)"
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=1000,
        help_text="Required when a check fails.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Record check",
            Field("quality", css_class="form-check-inline"),
            "quantity",
            "notes",
            "version",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        failed = "fail" in (data.get("quality"), data.get("quantity"))
        if failed and not (data.get("notes") or "").strip():
            self.add_error("notes", "Say what is wrong when a check fails.")
        return data


class EventTimeField(LocalDateTimeField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The form sets it: the past bound depends on when the shipment was made.
        self.shipment_created_at: datetime | None = None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value:
            problem = bounds.event_time_error(
                value, created_at=self.shipment_created_at, now=timezone.now()
            )
            if problem:
                raise forms.ValidationError(problem)


class ShipmentDateField(forms.DateField):
    """An estimated delivery date, within `shipments.bounds`."""

    widget = forms.DateInput(attrs={"type": "date"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shipment_created_at: datetime | None = None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value:
            problem = bounds.eta_error(
                value,
                created_at=self.shipment_created_at,
                today=timezone.localdate(),
            )
            if problem:
                raise forms.ValidationError(problem)


class ShipmentBoundForm(VersionedForm):
    """A form about one shipment: its dated fields learn when it was made."""

    def __init__(
        self, *args: Any, shipment: Shipment | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if shipment is not None:
            for field in self.fields.values():
                if isinstance(field, EventTimeField | ShipmentDateField):
                    field.shipment_created_at = shipment.created_at


class DispatchForm(ShipmentBoundForm):
    carrier = forms.ModelChoiceField(
        queryset=Carrier.objects.filter(is_active=True),
        required=False,
        help_text="Leave empty to detect the carrier from the tracking number.",
    )
    tracking_number = forms.CharField(
        max_length=60,
        required=False,
        help_text="From the carrier's label. Leave empty for our own fleet: "
        "a number is generated.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters"}
        ),
    )
    estimated_delivery = ShipmentDateField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.candidates: list[tn.Candidate] = []
        self.helper = _helper(
            "Dispatch", "carrier", "tracking_number", "estimated_delivery", "version"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        carrier = data.get("carrier")
        number = data.get("tracking_number", "")
        if carrier is None:
            data["carrier"] = self._detect_carrier(number)
        return data

    def _detect_carrier(self, number: str) -> Carrier | None:
        if not number.strip():
            self.add_error("carrier", "Choose the carrier.")
            return None
        self.candidates = [c for c in tn.detect(number) if c.ok]
        if not self.candidates:
            try:
                tn.validate(number)
            except tn.InvalidTrackingNumber as exc:
                self.add_error("tracking_number", str(exc))
            return None
        families = list(dict.fromkeys(c.family.value for c in self.candidates))
        carriers = list(
            Carrier.objects.filter(is_active=True, tracking_family__in=families)
        )
        carriers.sort(key=lambda c: families.index(c.tracking_family))
        if len(carriers) == 1:
            return carriers[0]
        if not carriers:
            names = ", ".join(c.format_name for c in self.candidates)
            self.add_error(
                "carrier",
                f"The number looks like {names}, but no such "
                "carrier is set up. Choose the carrier.",
            )
            return None
        names = "; ".join(f"{c.format_name}" for c in self.candidates)
        self.add_error(
            "carrier",
            f"This number fits more than one carrier ({names}). Choose the carrier.",
        )
        return None


class CheckpointForm(ShipmentBoundForm):
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in CHECKPOINT_KINDS], label="What happened"
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.filter(is_active=True), required=False
    )
    occurred_at = EventTimeField(
        label="When",
        required=False,
        help_text="Leave empty for now; fill in for a scan logged afterwards.",
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Log checkpoint", "kind", "location", "occurred_at", "notes", "version"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") in LOCATED_KINDS and not data.get("location"):
            self.add_error("location", "Choose the hub or facility for this scan.")
        if data.get("kind") == EventKind.NOTE and not (data.get("notes") or "").strip():
            self.add_error("notes", "Write the note.")
        return data


LOCATED_KINDS = {
    EventKind.ARRIVED_HUB,
    EventKind.DEPARTED_HUB,
    EventKind.AVAILABLE_FOR_PICKUP,
}


class BulkScanForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in CHECKPOINT_KINDS if k != EventKind.NOTE],
        label="What happened",
    )
    location = forms.ModelChoiceField(queryset=Location.objects.filter(is_active=True))
    numbers = forms.CharField(
        label="Tracking numbers",
        max_length=BULK_SCAN_LIMIT * 45,
        widget=forms.Textarea(
            attrs={
                "rows": 8,
                "autocomplete": "off",
                "autofocus": True,
                "spellcheck": "false",
            }
        ),
        help_text="One number per line; a scanner's Enter starts the next line.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper("Save scans", "kind", "location", "numbers")

    def clean_numbers(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["numbers"].splitlines()]
        numbers = [line for line in lines if line]
        if not numbers:
            raise forms.ValidationError("Scan at least one tracking number.")
        if len(numbers) > BULK_SCAN_LIMIT:
            raise forms.ValidationError(
                f"Scan at most {BULK_SCAN_LIMIT} packages in one batch "
                f"({len(numbers)} given)."
            )
        return numbers


class EtaForm(ShipmentBoundForm):
    estimated_delivery = ShipmentDateField(label="New estimated delivery")
    reason = forms.CharField(
        max_length=200,
        required=False,
        label="Message to the recipient",
        help_text="Sent to the recipient in the delay message when the date moves "
        "later, so write it for them (e.g. “Severe weather at the hub”). People "
        "following the tracking page are not sent it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper("Change ETA", "estimated_delivery", "reason", "version")


class ReasonForm(VersionedForm):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=1000)

    def __init__(self, *args: Any, submit: str = "Confirm", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(submit, "reason", "version")


class MonitorFilter(FilterBar):
    OPEN = [(s.value, s.label) for s in ShipmentStatus if s not in CLOSED]

    status = django_filters.ChoiceFilter(choices=OPEN, empty_label="Any open status")
    carrier = django_filters.ModelChoiceFilter(
        queryset=Carrier.objects.all(), empty_label="Any carrier"
    )
    current_location = django_filters.ModelChoiceFilter(
        queryset=Location.objects.all(),
        label="Last seen at",
        empty_label="Anywhere",
    )
    dispatched_from = django_filters.DateFilter(
        field_name="dispatched_at",
        lookup_expr="date__gte",
        label="Dispatched from",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    dispatched_to = django_filters.DateFilter(
        field_name="dispatched_at",
        lookup_expr="date__lte",
        label="Dispatched to",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    overdue = django_filters.BooleanFilter(
        method="filter_overdue",
        label="ETA passed",
        widget=forms.CheckboxInput,
    )
    carrier_stale = django_filters.BooleanFilter(
        method="filter_carrier_stale",
        label="Carrier data stale",
        widget=forms.CheckboxInput,
    )

    class Meta:
        model = Shipment
        fields: list[str] = []

    def filter_overdue(self, queryset: Any, name: str, value: bool) -> Any:
        if value:
            return queryset.filter(estimated_delivery__lt=timezone.localdate())
        return queryset

    def filter_carrier_stale(self, queryset: Any, name: str, value: bool) -> Any:
        if value:
            return selectors.carrier_stale(
                queryset,
                now=timezone.now(),
                stale_after=settings.TRACKSOP_CARRIER_STALE_AFTER,
            )
        return queryset
