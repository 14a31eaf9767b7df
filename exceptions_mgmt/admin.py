"""Admin: supervisors edit the escalation rules; exceptions are read here and
changed only through the staff pages (the services write their history)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from exceptions_mgmt.models import (
    DeliveryException,
    EscalationRule,
    ExceptionChange,
    ExceptionNote,
)


@admin.register(EscalationRule)
class EscalationRuleAdmin(admin.ModelAdmin[EscalationRule]):
    list_display = ["__str__", "severity", "when", "after", "level"]
    list_editable = ["when", "after", "level"]
    list_filter = ["severity", "when", "level"]


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NoteInline(ReadOnlyMixin, admin.TabularInline[Any, Any]):
    model = ExceptionNote
    extra = 0
    fields = readonly_fields = (
        "created_at",
        "author",
        "text",
        "customer_contacted",
        "contact_channel",
    )


class ChangeInline(ReadOnlyMixin, admin.TabularInline[Any, Any]):
    model = ExceptionChange
    extra = 0
    fields = readonly_fields = ("at", "actor", "action", "data")


@admin.register(DeliveryException)
class DeliveryExceptionAdmin(ReadOnlyMixin, admin.ModelAdmin[DeliveryException]):
    list_display = [
        "shipment",
        "cause",
        "severity",
        "status",
        "escalation_level",
        "assignee",
        "reported_at",
        "expected_resolution",
    ]
    list_filter = ["status", "severity", "cause", "escalation_level"]
    search_fields = ["shipment__shipment_id", "shipment__tracking_number"]
    list_select_related = ["shipment", "assignee"]
    raw_id_fields = ["shipment", "report_event"]
    inlines = [NoteInline, ChangeInline]
    show_full_result_count = False
