from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from shipments.models import (
    Carrier,
    CarrierWebhook,
    Inquiry,
    Location,
    Shipment,
    TrackingEvent,
)


@admin.register(Carrier)
class CarrierAdmin(admin.ModelAdmin):
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
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "kind", "city", "country", "timezone", "is_active"]
    list_filter = ["kind", "country", "is_active"]
    search_fields = ["name", "code", "city"]


class ReadOnlyAdmin(admin.ModelAdmin):
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
