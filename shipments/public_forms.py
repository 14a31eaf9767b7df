"""Forms of the public pages: the lookup and the feedback after delivery."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from shipments import tracking_numbers as tn

# Printable text only: a comment is shown to staff and in reports.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class LookupForm(forms.Form):
    tracking_number = forms.CharField(
        label=_("Tracking number"),
        max_length=60,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters"}
        ),
    )
    second_factor = forms.CharField(
        label=_("Delivery postcode or order number"),
        help_text=_("So that only you can see where your package is."),
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )

    def clean_tracking_number(self) -> str:
        number = tn.normalize(self.cleaned_data["tracking_number"])
        # Shape only: whether such a number exists is never told here.
        if not re.fullmatch(r"[A-Z0-9]{6,40}", number):
            raise forms.ValidationError(
                _(
                    "This is not a tracking number: use the letters and digits "
                    "from your message or receipt."
                ),
                code="malformed",
            )
        return number


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(
        label=_("How did the delivery go?"),
        choices=[
            (5, _("5: Excellent")),
            (4, _("4: Good")),
            (3, _("3: OK")),
            (2, _("2: Poor")),
            (1, _("1: Very poor")),
        ],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose a rating from 1 to 5.")},
    )
    comment = forms.CharField(
        label=_("Anything you would like to tell us? (optional)"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": 1000}),
    )

    def clean_comment(self) -> str:
        return _CONTROL.sub("", self.cleaned_data["comment"]).strip()
