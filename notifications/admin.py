from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications import subscriptions
from notifications.forms import MessageTemplateForm
from notifications.models import (
    MessageTemplate,
    Notification,
    Subscription,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
)
from notifications.webhooks import endpoints
from notifications.webhooks import outbox as webhook_outbox

# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ModelAdmin = admin.ModelAdmin[Any]
TabularInline = admin.TabularInline[Any, Any]
EndpointModelForm = forms.ModelForm[WebhookEndpoint]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ModelAdmin):
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
class NotificationAdmin(ModelAdmin):
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
class SubscriptionAdmin(ModelAdmin):
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


# --- Outbound webhooks ------------------------------------------------------


class WebhookEndpointForm(EndpointModelForm):
    event_types = forms.MultipleChoiceField(
        choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["integration", "url", "description", "event_types"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ModelAdmin):
    """An integration's receivers. The secret is shown on the endpoint's page
    (the receiver needs it to verify); rotating keeps the old one signing
    for TRACKSOP_WEBHOOK_ROTATION_OVERLAP_HOURS."""

    form = WebhookEndpointForm
    list_display = [
        "url",
        "integration",
        "is_active",
        "failing_since",
        "disabled_reason",
        "delivery_log",
    ]
    list_filter = ["is_active", "integration"]
    search_fields = ["url", "integration__name", "description"]
    readonly_fields = [
        "secret",
        "previous_secret_expires_at",
        "is_active",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "delivery_log",
    ]
    actions = ["rotate_secret", "enable", "disable", "send_test_event"]

    @admin.display(description="Delivery log")
    def delivery_log(self, obj: WebhookEndpoint) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:notifications_webhookmessage_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}">Messages</a>', url, obj.pk
        )

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            endpoints.webhook_endpoint_update(
                endpoint=obj,
                url=data["url"],
                event_types=data["event_types"],
                description=data["description"],
            )
            return
        endpoint = endpoints.webhook_endpoint_create(
            integration=data["integration"],
            url=data["url"],
            event_types=data["event_types"],
            description=data["description"],
        )
        obj.pk, obj.secret = endpoint.pk, endpoint.secret
        messages.warning(
            request,
            f"The signing secret is {endpoint.secret} — give it to the receiver; "
            "it verifies every webhook with it (it is also on this endpoint's page).",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting takes the delivery log along: the API's DELETE does that,
        # on purpose; here, disable instead.
        return False

    @admin.action(description="Rotate the signing secret (the old one signs 24 h)")
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> None:
        for endpoint in queryset:
            rotated = endpoints.webhook_secret_rotate(endpoint=endpoint)
            messages.warning(
                request, f"New signing secret of {rotated.url}: {rotated.secret}"
            )

    @admin.action(description="Enable the selected endpoints")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            endpoints.webhook_endpoint_enable(endpoint=endpoint)
        self.message_user(request, f"{len(queryset)} endpoint(s) enabled.")

    @admin.action(description="Disable the selected endpoints")
    def disable(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> None:
        for endpoint in queryset:
            endpoints.webhook_endpoint_disable(
                endpoint=endpoint,
                reason=f"Disabled in the admin by {request.user}.",
                notify=False,
            )
        self.message_user(request, f"{len(queryset)} endpoint(s) disabled.")

    @admin.action(description="Send a test event")
    def send_test_event(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> None:
        _send_test_events(self, request, queryset)


def _send_test_events(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    endpoints: QuerySet[WebhookEndpoint],
) -> None:
    for endpoint in endpoints:
        try:
            webhook_outbox.webhook_test_send(endpoint=endpoint)
        except ValidationError as exc:
            messages.error(request, f"{endpoint.url}: {' '.join(exc.messages)}")
        else:
            model_admin.message_user(
                request, f"Test event queued for {endpoint.url}: see its log."
            )


class WebhookAttemptInline(TabularInline):
    model = WebhookAttempt
    fk_name = "message"
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "number",
        "created_at",
        "response_status",
        "duration_ms",
        "error",
        "response_excerpt",
        "request_headers",
    )
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(ModelAdmin):
    """The delivery log: each message with every attempt made at it. Read
    only but for replaying and for a test event to the same endpoint."""

    list_display = [
        "created_at",
        "endpoint",
        "event_type",
        "shipment_code",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "event_type", "endpoint"]
    search_fields = ["message_id", "shipment_code"]
    list_select_related = ["endpoint__integration"]
    fields = readonly_fields = (
        "endpoint",
        "event_type",
        "shipment_code",
        "message_id",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "payload",
    )
    inlines = [WebhookAttemptInline]
    actions = ["replay", "send_test_event"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookMessage]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match and (match.url_name or "").endswith("_changelist"):
            return queryset.defer("payload")
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.change_webhookendpoint")

    @admin.action(
        description="Replay: send the selected messages again", permissions=["replay"]
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookMessage]) -> None:
        done = 0
        for message in queryset:
            try:
                webhook_outbox.webhook_message_replay(message=message)
            except ValidationError as exc:
                messages.error(
                    request, f"{message.message_id}: {' '.join(exc.messages)}"
                )
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} message(s) queued again.")

    @admin.action(
        description="Send a test event to these messages' endpoints",
        permissions=["replay"],
    )
    def send_test_event(
        self, request: HttpRequest, queryset: QuerySet[WebhookMessage]
    ) -> None:
        _send_test_events(
            self,
            request,
            WebhookEndpoint.objects.filter(pk__in=queryset.values("endpoint_id")),
        )
