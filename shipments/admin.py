from __future__ import annotations

import os
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from shipments.carriers.credentials import (
    CredentialsUnavailable,
    credentials_decrypt,
    credentials_encrypt,
    credentials_parse,
)
from shipments.carriers.tracking import credentials_missing
from shipments.models import (
    Carrier,
    CarrierAccount,
    CarrierSync,
    CarrierWebhook,
    Inquiry,
    Location,
    Shipment,
    TrackingEvent,
    TrackingProvider,
)

# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ModelAdmin = admin.ModelAdmin[Any]
AccountModelForm = forms.ModelForm[CarrierAccount]


@admin.register(Carrier)
class CarrierAdmin(ModelAdmin):
    list_display = [
        "name",
        "code",
        "tracking_family",
        "push_format",
        "is_own_fleet",
        "is_active",
    ]
    list_filter = ["tracking_family", "is_own_fleet", "is_active"]
    search_fields = ["name", "code"]


@admin.register(Location)
class LocationAdmin(ModelAdmin):
    list_display = ["name", "code", "kind", "city", "country", "timezone", "is_active"]
    list_filter = ["kind", "country", "is_active"]
    search_fields = ["name", "code", "city"]


class ReadOnlyAdmin(ModelAdmin):
    """Shipments and events change only through the services (staff pages)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = [
        "shipment_id",
        "order_number",
        "status",
        "carrier",
        "tracking_number",
    ]
    list_filter = ["status", "carrier"]
    search_fields = ["shipment_id", "tracking_number", "order_number"]
    show_full_result_count = False


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyAdmin):
    list_display = ["shipment", "kind", "occurred_at", "location", "source"]
    list_filter = ["kind", "source"]
    raw_id_fields = ["shipment", "voids"]
    show_full_result_count = False


@admin.register(Inquiry)
class InquiryAdmin(ReadOnlyAdmin):
    """Logged and answered on the shipment page, where who and when are kept."""

    list_display = ["shipment", "channel", "status", "created_by", "created_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["shipment", "created_by"]
    search_fields = ["shipment__shipment_id"]
    raw_id_fields = ["shipment"]
    show_full_result_count = False


@admin.register(CarrierWebhook)
class CarrierWebhookAdmin(ReadOnlyAdmin):
    """Carrier pushes as received, and what became of each event."""

    list_display = ["received_at", "carrier", "provider_event_id", "status"]
    list_filter = ["status", "carrier"]
    search_fields = ["provider_event_id"]
    exclude = ["body"]
    readonly_fields = ["raw_body"]

    @admin.display(description="body")
    def raw_body(self, obj: CarrierWebhook) -> str:
        return bytes(obj.body).decode("utf-8", "replace")


# --- carrier accounts (tracking sync) ---------------------------------------

# A karrio settings object is a handful of short strings; more is a paste gone wrong.
CREDENTIALS_MAX = 10_000
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CREDENTIALS_LABEL = "Credentials (JSON)"


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value: not the stored credentials, not
    what was typed when the form comes back with an error."""

    def format_value(self, value: Any) -> None:
        return None


class CarrierAccountForm(AccountModelForm):
    credentials_json = forms.CharField(
        label=CREDENTIALS_LABEL,
        required=False,
        strip=True,
        widget=SecretTextarea(
            attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text=(
            "The karrio connection settings as a JSON object, e.g. "
            '{"client_id": "…", "client_secret": "…"} for UPS (README: '
            '"Carrier tracking sync"). Write-only: stored encrypted, never '
            "shown again; leave empty to keep the stored ones."
        ),
    )
    forget_credentials = forms.BooleanField(
        label="Forget the stored credentials",
        required=False,
        help_text="Deletes them, e.g. once the environment variable holds them.",
    )

    class Meta:
        model = CarrierAccount
        fields = [
            "carrier",
            "provider",
            "credentials_env",
            "test_mode",
            "is_active",
            "requests_per_minute",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "carrier" in self.fields:
            # Our own vehicles have no carrier API to ask.
            self.fields["carrier"].queryset = Carrier.objects.filter(  # type: ignore[attr-defined]
                is_own_fleet=False
            )

    def clean_credentials_json(self) -> dict[str, Any] | None:
        text = self.cleaned_data["credentials_json"]
        if not text:
            return None
        if len(text) > CREDENTIALS_MAX:
            raise forms.ValidationError(
                f"That is {len(text):,} characters; carrier credentials are a "
                f"few short values (at most {CREDENTIALS_MAX:,} characters)."
            )
        try:
            values = credentials_parse(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if any("\x00" in f"{k}{v}" for k, v in values.items()):
            # JSON's \u0000: no carrier credential holds one.
            raise forms.ValidationError("Null characters are not allowed.")
        return values

    def clean_credentials_env(self) -> str:
        name = str(self.cleaned_data["credentials_env"]).strip()
        if name and not ENV_NAME.match(name):
            raise forms.ValidationError(
                "An environment variable name is letters, digits and "
                "underscores, not starting with a digit (e.g. TRACKSOP_UPS)."
            )
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        values = data.get("credentials_json")
        env_name = data.get("credentials_env")
        stored = bool(self.instance.credentials) and not data.get("forget_credentials")
        if values is None and not env_name and not stored and not self.errors:
            self.add_error(
                "credentials_json",
                "Enter the credentials, or the name of an environment variable "
                "that holds them.",
            )
        provider = str(data.get("provider") or "")
        missing = credentials_missing(provider, values) if values and provider else []
        if missing:
            label = TrackingProvider(provider).label
            self.add_error(
                "credentials_json",
                f"{label} needs {', '.join(missing)} in the credentials.",
            )
        return data

    def save(self, commit: bool = True) -> CarrierAccount:
        account: CarrierAccount = super().save(commit=False)
        values = self.cleaned_data.get("credentials_json")
        changed = values is not None
        if values is not None:
            account.credentials = credentials_encrypt(values)
        elif self.cleaned_data.get("forget_credentials"):
            account.credentials = ""
            changed = True
        if changed or {"credentials_env", "provider", "test_mode"} & set(
            self.changed_data
        ):
            # New credentials deserve a fresh try: not failing until the
            # carrier says so again.
            account.state = CarrierAccount.State.UNCHECKED
            account.state_message = ""
            account.failing_since = None
            account.alerted_at = None
            account.backoff_until = None
            account.failures = 0
        if commit:
            account.save()
        return account


def credentials_changed_at(account: CarrierAccount) -> LogEntry | None:
    """The admin's last record of new credentials for the account."""
    if account.pk is None:
        return None
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(CarrierAccount),
        object_id=str(account.pk),
        action_flag__in=[ADDITION, CHANGE],
    ).select_related("user")
    for entry in entries.order_by("-action_time")[:50]:
        if entry.action_flag == ADDITION or CREDENTIALS_LABEL in entry.change_message:
            return entry
    return None


@admin.register(CarrierAccount)
class CarrierAccountAdmin(ModelAdmin):
    """The company's carrier API accounts. Only superusers (no role has the
    model's permissions): credentials are the company's keys to its carriers."""

    form = CarrierAccountForm
    list_display = [
        "carrier",
        "provider",
        "is_active",
        "test_mode",
        "state",
        "credentials_source",
        "failing_since",
        "last_poll_at",
    ]
    list_filter = ["provider", "state", "is_active", "test_mode"]
    list_select_related = ["carrier"]
    readonly_fields = [
        "stored_credentials",
        "state",
        "state_message",
        "failing_since",
        "backoff_until",
        "last_poll_at",
    ]
    fieldsets = [
        (None, {"fields": ["carrier", "provider", "test_mode", "is_active"]}),
        (
            "Credentials",
            {
                "fields": [
                    "stored_credentials",
                    "credentials_json",
                    "forget_credentials",
                    "credentials_env",
                ]
            },
        ),
        ("Polling", {"fields": ["requests_per_minute"]}),
        (
            "State",
            {
                "fields": [
                    "state",
                    "state_message",
                    "failing_since",
                    "backoff_until",
                    "last_poll_at",
                ]
            },
        ),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:  # nothing stored to show or forget yet
            hidden = {"stored_credentials", "forget_credentials"}
            fieldsets = [
                (
                    name,
                    {**opts, "fields": [f for f in opts["fields"] if f not in hidden]},
                )
                for name, opts in fieldsets
            ]
        return fieldsets

    @admin.display(description="Credentials")
    def credentials_source(self, obj: CarrierAccount) -> str:
        if obj.credentials_env:
            return f"from environment variable {obj.credentials_env}"
        return "stored ✓" if obj.credentials else "none"

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: CarrierAccount) -> str:
        """What is known about the credentials, never the credentials."""
        parts: list[str] = []
        if obj.credentials_env:
            is_set = bool(os.environ.get(obj.credentials_env))
            parts.append(
                format_html(
                    "from environment variable <code>{}</code>{}",
                    obj.credentials_env,
                    "" if is_set else " (not set on this web server)",
                )
            )
        if obj.credentials:
            entry = credentials_changed_at(obj)
            when = (
                f" (last changed {timezone.localtime(entry.action_time):%Y-%m-%d %H:%M}"
                f" by {entry.user})"
                if entry
                else ""
            )
            note = (
                " — not used while the environment variable is named"
                if obj.credentials_env
                else ""
            )
            try:
                credentials_decrypt(obj.credentials)  # readable? never shown
            except CredentialsUnavailable as exc:
                parts.append(format_html("stored{}, but unreadable: {}", when, exc))
            else:
                parts.append(format_html("stored ✓{}{}", when, note))
        return (
            format_html("<br>".join(["{}"] * len(parts)), *parts) if parts else "none"
        )


@admin.register(CarrierSync)
class CarrierSyncAdmin(ReadOnlyAdmin):
    """Where each shipment's sync stands; the shipment page shows it too."""

    list_display = [
        "shipment",
        "account",
        "last_result",
        "last_synced_at",
        "next_due_at",
        "failures",
        "is_done",
    ]
    list_filter = ["last_result", "is_done", "account"]
    list_select_related = ["shipment", "account__carrier"]
    search_fields = ["shipment__shipment_id", "shipment__tracking_number"]
    raw_id_fields = ["shipment"]
    show_full_result_count = False
