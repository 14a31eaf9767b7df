from __future__ import annotations

from typing import Any

from django import forms
from django.template import Engine, TemplateSyntaxError
from django.utils.translation import gettext_lazy as _

from notifications import rendering
from notifications.models import (
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Preference,
)


class PreferenceForm(forms.Form):
    channels = forms.ChoiceField(
        choices=Preference.Choice.choices,
        widget=forms.RadioSelect,
        label=_("Send me updates by"),
    )


class SubscribeForm(forms.Form):
    """The tracking page's "get updates" form; the service normalises and
    checks the address, with the shipment's country in hand."""

    channel = forms.ChoiceField(
        choices=[(Channel.EMAIL, _("Email")), (Channel.SMS, _("Text message (SMS)"))],
        widget=forms.RadioSelect,
        initial=Channel.EMAIL,
        label=_("Send updates by"),
    )
    address = forms.CharField(
        max_length=254,
        label=_("Email address or mobile number"),
        widget=forms.TextInput(attrs={"autocapitalize": "off", "spellcheck": "false"}),
        help_text=_(
            "We send a code to it first. Nothing else goes to it until you "
            "type the code here."
        ),
    )


class SubscriptionCodeForm(forms.Form):
    code = forms.CharField(
        max_length=20,
        label=_("Code"),
        help_text=_("The 6 digits in the message we sent you."),
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}
        ),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split()).replace("-", "")
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise forms.ValidationError(_("Enter the 6 digits of the code."))
        return code


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


# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
TemplateModelForm = forms.ModelForm[MessageTemplate]


class MessageTemplateForm(TemplateModelForm):
    """Admin form: a template that does not compile is refused at its field."""

    class Meta:
        model = MessageTemplate
        fields = ["kind", "channel", "subject", "body_text", "body_html"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field in ("subject", "body_text", "body_html"):
            try:
                Engine(libraries={"i18n": "django.templatetags.i18n"}).from_string(
                    data.get(field) or ""
                )
            except TemplateSyntaxError as exc:
                self.add_error(field, f"Template error: {exc}")
        if not self.errors and data.get("kind") and data.get("channel"):
            self._check_facts(data)
        if data.get("channel") == Channel.SMS and data.get("body_html"):
            self.add_error("body_html", "SMS has no HTML version; leave this empty.")
        if data.get("channel") == Channel.EMAIL and not data.get("subject"):
            self.add_error("subject", "An email needs a subject.")
        return data

    def _check_facts(self, data: dict[str, Any]) -> None:
        """Render on a sample shipment: refused if it fails or leaves out a
        fact its kind must state (rendering.REQUIRED_FACTS)."""
        row = MessageTemplate(
            kind=data["kind"],
            channel=data["channel"],
            subject=data.get("subject") or "",
            body_text=data.get("body_text") or "",
            body_html=data.get("body_html") or "",
        )
        audience = Audience.STAFF if row.kind == Kind.ESCALATION else Audience.RECIPIENT
        context = rendering.message_context(
            shipment=rendering.sample_shipment(), audience=audience
        )
        context.update(rendering.sample_details(context))
        try:
            rendered = rendering.render_override(row, context)
            missing = rendering.unshown_facts(
                row.kind, context, rendered, lambda c: rendering.render_override(row, c)
            )
        except Exception as exc:
            self.add_error("body_text", f"Template error: {exc}")
            return
        if missing:
            where = "the text or the HTML" if row.body_html else "the text"
            self.add_error(
                "body_text",
                f"A {row.get_kind_display().lower()} message must state the "
                f"{', '.join(missing)}: {where} leaves "
                f"{'it' if len(missing) == 1 else 'them'} out.",
            )
