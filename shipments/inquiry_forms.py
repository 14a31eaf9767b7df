"""The customer service desk's forms: logging an inquiry, answering one, and
the open-inquiries list's filter (services in `shipments.inquiries`)."""

from __future__ import annotations

from typing import Any

import django_filters
from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Layout, Submit
from django import forms
from django.urls import reverse

from shipments.inquiries import INQUIRY_ANSWER_MAX, INQUIRY_QUESTION_MAX
from shipments.models import Inquiry, Shipment
from tracksop.filters import FilterBar


def _desk_helper(action: str, submit: str, *layout: Any) -> FormHelper:
    helper = FormHelper()
    helper.form_action = action
    helper.layout = Layout(*layout, Submit("submit", submit))
    return helper


class InquiryForm(forms.Form):
    """The quick log on the shipment page: channel, question, and the answer
    when it was given on the spot (the usual phone call)."""

    channel = forms.ChoiceField(choices=Inquiry.Channel.choices)
    question = forms.CharField(
        max_length=INQUIRY_QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "autofocus": True}),
    )
    answer = forms.CharField(
        label="Answer given",
        required=False,
        max_length=INQUIRY_ANSWER_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Answered on the spot? Write what you said and it is logged as "
        "answered; leave empty to keep it open. Ctrl+Enter saves.",
    )

    def __init__(self, *args: Any, shipment: Shipment, **kwargs: Any) -> None:
        # Its own ids: the page also holds an answer box per open inquiry.
        kwargs.setdefault("auto_id", "log_%s")
        super().__init__(*args, **kwargs)
        self.helper = _desk_helper(
            reverse("inquiry-create", args=[shipment.shipment_id]),
            "Log inquiry",
            Div(
                Div("channel", css_class="col-md-3"),
                Div("question", css_class="col-md-9"),
                css_class="row g-2",
            ),
            "answer",
        )


class AnswerForm(forms.Form):
    answer = forms.CharField(
        label="Answer",
        max_length=INQUIRY_ANSWER_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, inquiry: Inquiry, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"answer{inquiry.pk}_%s")
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        # The template writes the <form>: the button shares its row with
        # "Report exception", which is a link, not part of the form.
        self.helper.form_tag = False
        self.helper.disable_csrf = True


class InquiryFilter(FilterBar):
    channel = django_filters.ChoiceFilter(
        choices=Inquiry.Channel.choices, empty_label="Any channel"
    )
    mine = django_filters.BooleanFilter(
        method="filter_mine", label="Logged by me", widget=forms.CheckboxInput
    )

    class Meta:
        model = Inquiry
        fields: list[str] = []

    def filter_mine(self, queryset: Any, name: str, value: bool) -> Any:
        if value and self.request is not None:
            return queryset.filter(created_by=self.request.user)
        return queryset
