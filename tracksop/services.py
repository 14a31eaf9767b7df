"""Writes and side effects of the project-level (accounts) pages."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.forms import PasswordResetForm
from django.utils import timezone

from tracksop.models import IDEMPOTENCY_TTL, IdempotencyRecord


def password_reset_mail_send(*, email: str, domain: str, use_https: bool) -> None:
    """Mail a reset link to every active account with this address (Django's
    own form does the look-up, the token and the message); nothing if none."""
    form = PasswordResetForm(data={"email": email})
    if form.is_valid():
        form.save(domain_override=domain, use_https=use_https)


def idempotency_records_purge(*, now: datetime | None = None) -> int:
    """Forget stored responses older than 24 hours (their keys are free again)."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
