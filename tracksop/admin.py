"""The admin of staff profiles, API integrations and their keys."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from tracksop.api_keys import api_key_issue, api_key_revoke
from tracksop.models import ApiKey, Integration, Scope, StaffProfile

# Generic in django-stubs; subscriptable at run time too (django_stubs_ext's
# monkeypatch in the settings).
ModelAdmin = admin.ModelAdmin[Any]
TabularInline = admin.TabularInline[Any, Any]
ApiKeyModelForm = forms.ModelForm[ApiKey]


@admin.register(StaffProfile)
class StaffProfileAdmin(ModelAdmin):
    list_display = ["user", "timezone"]
    search_fields = ["user__username"]


class ApiKeyInline(TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("name", "prefix", "scopes", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Integration)
class IntegrationAdmin(ModelAdmin):
    list_display = ["name", "contact_email", "is_active", "created_at"]
    search_fields = ["name"]
    inlines = [ApiKeyInline]


class ApiKeyForm(ApiKeyModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["integration", "name", "scopes", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "integration",
        "prefix",
        "scope_list",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["integration"]
    search_fields = ["name", "prefix", "integration__name"]
    readonly_fields = ["prefix", "last_used_at", "revoked_at", "created_by"]
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = api_key_issue(
            integration=obj.integration,
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            expires_at=obj.expires_at,
            user=request.user,  # type: ignore[arg-type]
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        messages.warning(
            request,
            f"The API key is {raw} — copy it now: it is shown only this once.",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the events it wrote name it

    @admin.action(description="Revoke the selected keys now")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        now = timezone.now()
        for key in queryset:
            api_key_revoke(key=key, now=now)
        self.message_user(request, f"{queryset.count()} key(s) revoked.")
