from __future__ import annotations

from typing import Any

from django import forms
from django.template import Engine, TemplateSyntaxError
from django.utils.translation import gettext_lazy as _

from notifications.models import Channel, Kind, MessageTemplate, Preference


class PreferenceForm(forms.Form):
    channels = forms.ChoiceField(
        choices=Preference.Choice.choices,
        widget=forms.RadioSelect,
        label=_("Send me updates by"),
    )


class PreviewForm(forms.Form):
    kind = forms.ChoiceField(choices=Kind.choices)
    channel = forms.ChoiceField(choices=Channel.choices)
    shipment = forms.CharField(
        required=False,
        max_length=32,
        label="Shipment ID",
        help_text="Leave empty for a made-up sample shipment.",
    )
    source = forms.ChoiceField(
        choices=[("active", "What is sent now"), ("file", "The default file")],
        initial="active",
        required=False,
        label="Template",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == Kind.ESCALATION and data.get("channel") == Channel.SMS:
            self.add_error("channel", "Escalations go to staff by email only.")
        return data


class MessageTemplateForm(forms.ModelForm):
    """Admin form: a template that does not compile is refused at its field."""

    class Meta:
        model = MessageTemplate
        fields = ["kind", "channel", "subject", "body_text", "body_html"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field in ("subject", "body_text", "body_html"):
            try:
                Engine().from_string(data.get(field) or "")
            except TemplateSyntaxError as exc:
                self.add_error(field, f"Template error: {exc}")
        if data.get("channel") == Channel.SMS and data.get("body_html"):
            self.add_error("body_html", "SMS has no HTML version; leave this empty.")
        if data.get("channel") == Channel.EMAIL and not data.get("subject"):
            self.add_error("subject", "An email needs a subject.")
        return data
