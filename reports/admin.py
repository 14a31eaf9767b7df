"""The admin of holidays, report schedules and the audit of purges."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from reports.models import Holiday, ReportSchedule, RetentionPurge
from reports.schedules import address_lines

# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ModelAdmin = admin.ModelAdmin[Any]
ScheduleModelForm = forms.ModelForm[ReportSchedule]


@admin.register(Holiday)
class HolidayAdmin(ModelAdmin):
    list_display = ["date", "name"]
    search_fields = ["name"]
    date_hierarchy = "date"


class ReportScheduleForm(ScheduleModelForm):
    class Meta:
        model = ReportSchedule
        fields = ["is_active", "recipient_groups", "recipient_emails"]

    def clean_recipient_emails(self) -> str:
        text = str(self.cleaned_data["recipient_emails"])
        invalid = address_lines(text)[1]
        if invalid:
            raise forms.ValidationError(
                "Not an email address: " + ", ".join(invalid[:5])
            )
        return text


@admin.register(ReportSchedule)
class ReportScheduleAdmin(ModelAdmin):
    """Supervisors choose who gets the weekly and monthly reports."""

    form = ReportScheduleForm

    list_display = ["kind", "is_active", "updated_at", "updated_by"]
    fields = ["kind", "is_active", "recipient_groups", "recipient_emails"]
    readonly_fields = ["kind"]
    filter_horizontal = ["recipient_groups"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one weekly and one monthly schedule, made by migration

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Any, form: Any, change: bool
    ) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(RetentionPurge)
class RetentionPurgeAdmin(ModelAdmin):
    """The audit of every purge: read-only."""

    list_display = ["started_at", "run_by_label", "cutoff", "dry_run", "status"]
    readonly_fields = [f.name for f in RetentionPurge._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
