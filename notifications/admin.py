from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications.forms import MessageTemplateForm
from notifications.models import MessageTemplate, Notification


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["__str__", "updated_at", "preview"]
    list_filter = ["kind", "channel"]

    @admin.display(description="Preview")
    def preview(self, obj: MessageTemplate) -> str:
        url = reverse("template-preview")
        return format_html(
            '<a href="{}?kind={}&amp;channel={}">Preview</a>',
            url,
            obj.kind,
            obj.channel,
        )


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read only: the record of what was sent is not edited by hand."""

    list_display = [
        "created_at",
        "shipment",
        "kind",
        "channel",
        "to",
        "status",
        "attempts",
    ]
    list_filter = ["status", "kind", "channel"]
    search_fields = ["shipment__shipment_id", "to", "idempotency_key"]
    list_select_related = ["shipment"]
    raw_id_fields = ["shipment", "event", "resend_of", "requested_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
