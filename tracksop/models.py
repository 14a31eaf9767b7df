from __future__ import annotations

import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone.")


class StaffProfile(models.Model):
    """Per-person preferences; the time zone times are shown in."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    timezone = models.CharField(
        max_length=64, blank=True, validators=[validate_timezone]
    )

    def __str__(self) -> str:
        return f"Profile of {self.user}"


class Scope(models.TextChoices):
    """What an API key may do; each endpoint names the scope it needs."""

    SHIPMENTS_READ = "shipments:read", "Read shipments and tracking"
    SHIPMENTS_WRITE = "shipments:write", "Create, change, dispatch, cancel shipments"
    EVENTS_WRITE = "events:write", "Post checkpoints"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage webhook endpoints"


def validate_scopes(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Give the key at least one scope.")
    unknown = sorted({str(s) for s in value} - set(Scope.values))
    if unknown:
        raise ValidationError(f"Unknown scope: {', '.join(unknown)}.")


class Integration(models.Model):
    """A system that talks to TrackSOP: a shop, a scanner fleet, a carrier feed.
    It holds API keys (rotated independently) and webhook endpoints."""

    name = models.CharField(max_length=80, unique=True)
    # Told when one of its webhook endpoints is disabled.
    contact_email = models.EmailField(blank=True)
    is_active = models.BooleanField(
        default=True, help_text="Off: every key of this integration is refused."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A key is `tsk_<prefix>_<secret>`. The prefix is shown and looked up; only
    a SHA-256 of the whole key is stored (it has 190 random bits, so a slow
    password hash would add nothing but latency), and it is shown once."""

    integration = models.ForeignKey(
        Integration, on_delete=models.PROTECT, related_name="keys"
    )
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, validators=[validate_scopes])
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["integration__name", "name"]

    def __str__(self) -> str:
        return f"{self.integration.name} · {self.name} ({self.prefix})"

    @property
    def label(self) -> str:
        """Who is responsible for what the key wrote, as the timeline shows it."""
        return f"{self.integration.name} (API key {self.prefix})"[:100]


IDEMPOTENCY_TTL = timedelta(hours=24)


class IdempotencyRecord(models.Model):
    """The response to a POST sent with an `Idempotency-Key`, kept 24 hours.

    The row is inserted first, inside the request's transaction: a second
    request with the same key waits on the unique index until the first
    commits, then replays its response; if the first rolled back, it runs."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key with another body is refused.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.BinaryField(default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "key"], name="idempotency_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
