from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications import subscriptions
from notifications.forms import MessageTemplateForm
from notifications.models import MessageTemplate, Notification, Subscription


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
    raw_id_fields = ["shipment", "event", "resend_of", "requested_by", "subscription"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match and (match.url_name or "").endswith("_changelist"):
            # The list shows none of the texts; an email's bytes are kilobytes.
            return queryset.defer("mime", "body_text", "body_html")
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Addresses customers added on the tracking page. Read only but for
    stopping: only the address's owner confirms it, by the code."""

    list_display = [
        "created_at",
        "shipment",
        "channel",
        "address",
        "confirmed_at",
        "stopped_at",
    ]
    list_filter = ["channel"]
    search_fields = ["shipment__shipment_id", "address"]
    list_select_related = ["shipment"]
    # The code's hash is no one's business.
    exclude = ["code_hash"]
    actions = ["stop"]

    @admin.action(description="Stop updates to the selected addresses")
    def stop(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        for subscription in queryset:
            subscriptions.subscription_stop(subscription=subscription)
        self.message_user(request, f"{len(queryset)} address(es) stopped.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
