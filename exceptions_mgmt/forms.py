"""Parsing and field validation for the exception pages; services do the saving."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import django_filters
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Layout, Submit
from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from exceptions_mgmt.models import (
    REPORTABLE_CAUSES,
    UNRESOLVED,
    Cause,
    DeliveryException,
    ExceptionNote,
    Severity,
)
from shipments.checkpoints import BULK_SCAN_LIMIT
from shipments.models import Carrier
from tracksop import dates
from tracksop.filters import FilterBar
from tracksop.forms import LocalDateTimeField

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class _Submit(Submit):  # type: ignore[misc]  # crispy-forms ships no types
    # crispy's Submit is always btn-primary; these pages pick the colour.
    field_classes = "btn"


def _helper(submit: str, *layout: Any, action: str = "", css: str = "") -> FormHelper:
    helper = FormHelper()
    helper.form_action = action
    # An id of its own: the exception page shows four of these forms at once.
    button = _Submit(
        "submit",
        submit,
        css_class=css or "btn-primary",
        css_id=f"submit-{slugify(submit)}",
    )
    helper.layout = Layout(*layout, button)
    return helper


def person(user: User) -> str:
    return user.get_full_name() or user.get_username()


def _tomorrow() -> datetime:
    # Shown in the user's zone: the field converts aware values on display.
    return timezone.now() + timedelta(hours=24)


class ResolutionTimeField(LocalDateTimeField):
    """A datetime-local box, read in the user's zone, that must lie ahead."""

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and value <= timezone.now():
            raise forms.ValidationError("The expected resolution time is in the past.")
        # As far ahead as an estimated delivery may be (`shipments.bounds`).
        latest = timezone.now() + timedelta(days=settings.TRACKSOP_MAX_ETA_DAYS)
        if value and value > latest:
            raise forms.ValidationError(
                "The expected resolution time is too far ahead: enter a time on "
                f"or before {dates.localtime(latest):%Y-%m-%d %H:%M %Z} "
                f"(at most {settings.TRACKSOP_MAX_ETA_DAYS} days from now)."
            )


class ReportForm(forms.Form):
    cause = forms.ChoiceField(choices=[(c.value, c.label) for c in REPORTABLE_CAUSES])
    cause_other = forms.CharField(
        label="Other cause",
        max_length=120,
        required=False,
        help_text="When the cause is Other: what it is. Internal, never shown to the "
        "customer: their messages and the tracking page say “A problem with the "
        "delivery”.",
    )
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM)
    expected_resolution = ResolutionTimeField(
        initial=_tomorrow,
        help_text="The customer is told this time with the cause.",
    )
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        required=False,
        help_text="What happened, for colleagues. Internal, never shown to the "
        "customer.",
    )

    def __init__(
        self, *args: Any, answers_inquiry: int | None = None, **kwargs: Any
    ) -> None:
        """`answers_inquiry`: reported from that open customer inquiry, which
        the reporter may answer; offers to record the report as its answer."""
        super().__init__(*args, **kwargs)
        extra = []
        if answers_inquiry is not None:
            self.fields["answer_inquiry"] = forms.BooleanField(
                label=f"Answer inquiry #{answers_inquiry} with this report",
                required=False,
                initial=True,
                help_text="The customer is told the cause and the expected "
                "resolution by the exception message.",
            )
            extra.append("answer_inquiry")
        self.helper = _helper(
            "Report exception",
            Div(
                Div("cause", css_class="col-md-6"),
                Div("cause_other", css_class="col-md-6"),
                css_class="row g-2",
            ),
            Div(
                Div("severity", css_class="col-md-6"),
                Div("expected_resolution", css_class="col-md-6"),
                css_class="row g-2",
            ),
            "description",
            *extra,
            css="btn-danger btn-lg",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("cause") == Cause.OTHER and not data.get("cause_other", "").strip():
            self.add_error("cause_other", "Say what the cause is.")
        return data

    def report_kwargs(self) -> dict[str, Any]:
        """What exception_report takes from this form."""
        data = self.cleaned_data
        return {
            name: data[name]
            for name in (
                "cause",
                "cause_other",
                "severity",
                "expected_resolution",
                "description",
            )
        }


class ScanReportForm(ReportForm):
    numbers = forms.CharField(
        label="Tracking numbers or shipment IDs",
        max_length=BULK_SCAN_LIMIT * 45,
        widget=forms.Textarea(
            attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="One per line; a scanner's Enter starts the next line. "
        "Each package gets its own exception.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Report exceptions",
            Div(
                Div("cause", css_class="col-md-6"),
                Div("cause_other", css_class="col-md-6"),
                css_class="row g-2",
            ),
            Div(
                Div("severity", css_class="col-md-6"),
                Div("expected_resolution", css_class="col-md-6"),
                css_class="row g-2",
            ),
            "description",
            "numbers",
            css="btn-danger btn-lg",
        )

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


# Generic only in django-stubs (as the admin classes: see admin.py).
class WorkerChoiceField(forms.ModelChoiceField[Any]):
    def label_from_instance(self, obj: Any) -> str:
        return person(obj)


class AssignForm(forms.Form):
    assignee = WorkerChoiceField(
        queryset=None,  # set per request: people who work exceptions
        label="Assign to",
        empty_label="Choose a person",
        error_messages={
            "invalid_choice": "That person does not work exceptions.",
        },
    )

    def __init__(
        self, *args: Any, workers: QuerySet[User], action: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = workers  # type: ignore[attr-defined]
        self.helper = _helper("Assign", "assignee", action=action, css="btn-primary")

    def asks_for_someone_else(self, user: User) -> bool:
        """Whether the post names anyone but the user (checked before the
        choice is, so a non-supervisor is refused, not told the choice)."""
        return str(self.data.get("assignee", "")) != str(user.pk)


CHANNELS = [(c.value, c.label) for c in ExceptionNote.Contact if c.value]


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Note", widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )
    customer_contacted = forms.BooleanField(
        label="I contacted the customer", required=False
    )
    contact_channel = forms.ChoiceField(
        label="Channel", choices=[("", "—"), *CHANNELS], required=False
    )

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Add note",
            "text",
            Div(
                Div("customer_contacted", css_class="col-sm-6 pt-sm-4"),
                Div("contact_channel", css_class="col-sm-6"),
                css_class="row g-2",
            ),
            action=action,
            css="btn-outline-primary",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("customer_contacted") and not data.get("contact_channel"):
            self.add_error("contact_channel", "Say how the customer was contacted.")
        return data


class RescheduleForm(forms.Form):
    expected_resolution = ResolutionTimeField(
        label="New expected resolution",
        help_text="The customer gets a message with the new time.",
    )
    reason = forms.CharField(
        max_length=200,
        required=False,
        label="Message to the recipient",
        help_text="Sent to the recipient with the new time, so write it for them. "
        "People following the tracking page are not sent it.",
    )

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Save new time",
            "expected_resolution",
            "reason",
            action=action,
            css="btn-outline-primary",
        )


class ResolveForm(forms.Form):
    notes = forms.CharField(
        label="How it was resolved",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Kept with the exception; the customer is told it is resolved.",
        error_messages={"required": "Say how it was resolved."},
    )
    # The version the person saw: of two people resolving at once, one wins.
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args: Any, action: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.helper = _helper(
            "Resolve", "notes", "version", action=action, css="btn-success"
        )


class IdsField(forms.Field):
    """The ticked rows: a list of primary keys (at most a page)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else [value] if value else []
        ids = []
        for raw in values:
            if not str(raw).isdigit():
                raise forms.ValidationError("Pick exceptions from the list.")
            ids.append(int(raw))
        return list(dict.fromkeys(ids))[: settings.TRACKSOP_PAGE_SIZE]


class BulkForm(forms.Form):
    ASSIGN_ME = "assign_me"
    ASSIGN_TO = "assign_to"
    RESOLVE = "resolve"
    ACTIONS = [
        (ASSIGN_ME, "Assign to me"),
        (ASSIGN_TO, "Assign to"),
        (RESOLVE, "Resolve"),
    ]

    action = forms.ChoiceField(choices=ACTIONS)
    ids = IdsField(error_messages={"required": "Tick the exceptions to work on."})
    assignee = WorkerChoiceField(
        queryset=None,
        required=False,
        label="Assign to",
        empty_label="Choose a person",
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={"invalid_choice": "That person does not work exceptions."},
    )
    notes = forms.CharField(
        label="Resolution notes",
        widget=forms.Textarea(attrs={"rows": 2, "class": "form-control"}),
        max_length=2000,
        required=False,
    )

    def __init__(self, *args: Any, workers: QuerySet[User], **kwargs: Any) -> None:
        # Ids of its own: the queue's filters, on the same page, have an
        # assignee too, and one id would give one select both labels.
        kwargs.setdefault("auto_id", "bulk_%s")
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = workers  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        missing = not data.get("assignee") and "assignee" not in self.errors
        if action == self.ASSIGN_TO and missing:
            self.add_error("assignee", "Choose who gets them.")
        if action == self.RESOLVE and not (data.get("notes") or "").strip():
            self.add_error("notes", "Say how they were resolved.")
        return data


OLDER_THAN_MAX_HOURS = 24 * 366 * 10


class ExceptionFilter(FilterBar):
    """The queue's filters; `assignee` knows "me" and "unassigned"."""

    cause = django_filters.ChoiceFilter(choices=Cause.choices, empty_label="Any cause")
    severity = django_filters.ChoiceFilter(
        choices=Severity.choices, empty_label="Any severity"
    )
    carrier = django_filters.ModelChoiceFilter(
        field_name="shipment__carrier",
        queryset=Carrier.objects.order_by("name"),
        empty_label="Any carrier",
    )
    assignee = django_filters.ChoiceFilter(
        method="filter_assignee", empty_label="Anyone", label="Assignee"
    )
    status = django_filters.ChoiceFilter(
        choices=[(s.value, s.label) for s in UNRESOLVED],
        empty_label="Any open status",
    )
    older_than = django_filters.NumberFilter(
        method="filter_age",
        label="Reported over … hours ago",
        min_value=0,
        # Ten years and more is "all of them"; beyond timedelta's range a 500.
        max_value=OLDER_THAN_MAX_HOURS,
        widget=forms.NumberInput(attrs={"min": 0, "step": 1, "placeholder": "hours"}),
    )
    overdue = django_filters.BooleanFilter(
        method="filter_overdue",
        label="Past expected resolution",
        widget=forms.CheckboxInput,
    )

    class Meta:
        model = DeliveryException
        fields: list[str] = []

    def __init__(self, *args: Any, workers: Iterable[User] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters["assignee"].extra["choices"] = [
            ("me", "Me"),
            ("unassigned", "Unassigned"),
            *((str(u.pk), person(u)) for u in workers),
        ]

    def filter_assignee(self, queryset: Any, name: str, value: str) -> Any:
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        if value == "unassigned":
            return queryset.filter(assignee__isnull=True)
        if value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset

    def filter_age(self, queryset: Any, name: str, value: Decimal | None) -> Any:
        if value is None:
            return queryset
        return queryset.filter(
            reported_at__lt=timezone.now() - timedelta(hours=float(value))
        )

    def filter_overdue(self, queryset: Any, name: str, value: bool) -> Any:
        if value:
            return queryset.filter(expected_resolution__lt=timezone.now())
        return queryset
