"""Issuing, checking and revoking API keys (the integration's credentials)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from tracksop.models import ApiKey, Integration, validate_scopes

KEY_PREFIX = "tsk_"
# last_used_at is written at most this often per key, not on every request.
LAST_USED_EVERY = timedelta(minutes=1)


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


# Compared against when no key has the prefix: a miss costs what a hit costs.
_NO_KEY_HASH = key_hash("tsk_none_none")


def api_key_issue(
    *,
    integration: Integration,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None = None,
    user: User | None = None,
) -> tuple[ApiKey, str]:
    """A new key; the plain text is returned once and never stored."""
    validate_scopes(list(scopes))
    while True:
        prefix = secrets.token_hex(4)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(
        integration=integration,
        name=name,
        prefix=prefix,
        secret_hash=key_hash(raw),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    return key, raw


def api_key_check(raw: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key this text is, or None: unknown, wrong secret, expired,
    revoked, or its integration switched off all look the same to the caller,
    and take the same time (one indexed query, one constant-time compare)."""
    now = now or timezone.now()
    parts = raw.split("_") if raw.startswith(KEY_PREFIX) else []
    prefix = parts[1] if len(parts) >= 3 else ""
    key = (
        ApiKey.objects.select_related("integration").filter(prefix=prefix).first()
        if prefix and len(prefix) <= 16
        else None
    )
    matches = hmac.compare_digest(
        key.secret_hash if key else _NO_KEY_HASH, key_hash(raw)
    )
    if key is None or not matches:
        return None
    if key.revoked_at is not None or not key.integration.is_active:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, key: ApiKey, now: datetime | None = None) -> ApiKey:
    """Refused from the next request on."""
    with transaction.atomic():
        if key.revoked_at is None:
            key.revoked_at = now or timezone.now()
            ApiKey.objects.filter(pk=key.pk).update(revoked_at=key.revoked_at)
    return key
