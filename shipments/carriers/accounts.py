"""A carrier account's side of the sync: its shared per-minute request
budget, and its state (ok, backing off after a 429 or a 5xx, failing with
refused credentials) with the one alert mail per failing spell.

The rate limit is one counter per account and minute in the cache (Redis),
so every worker, and *Sync now*, share it. An account whose credentials are
refused is tried again with one request every `failing_retry`; staff are
emailed once per failing spell, after commit, from a task
(`carrier_account_alert_send`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache as django_cache
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from shipments.carriers import cadence as cadence_rules
from shipments.carriers.cadence import Cadence
from shipments.models import CarrierAccount
from tracksop import roles

log = logging.getLogger(__name__)

# --- the per-account rate limit ----------------------------------------------


def _rate_key(account_id: int, now: datetime) -> str:
    return f"carrier-sync:requests:{account_id}:{int(now.timestamp() // 60)}"


def rate_used(account_id: int, *, now: datetime) -> int:
    """Requests made to the account's carrier in this minute (all workers)."""
    try:
        return int(django_cache.get(_rate_key(account_id, now), 0))
    except Exception:
        log.warning("Cache unavailable: the carrier rate limit is not shared.")
        return 0


def rate_take(account_id: int, *, limit: int, wanted: int, now: datetime) -> int:
    """Take up to `wanted` requests of this minute's `limit`; how many were
    granted. One atomic counter per account and minute in the cache (Redis),
    shared by every worker. Without a cache it grants: the carrier's own 429
    then slows us down."""
    if wanted <= 0:
        return 0
    key = _rate_key(account_id, now)
    try:
        django_cache.add(key, 0, timeout=120)
        try:
            total = django_cache.incr(key, wanted)
        except ValueError:  # expired between add and incr
            django_cache.add(key, 0, timeout=120)
            total = django_cache.incr(key, wanted)
        granted = max(0, min(wanted, limit - (total - wanted)))
        if granted < wanted:
            django_cache.decr(key, wanted - granted)
    except Exception:
        log.warning("Cache unavailable: the carrier rate limit is not shared.")
        return wanted
    return granted


def next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


# --- the account's state --------------------------------------------------------


def account_ok(account: CarrierAccount, *, now: datetime) -> None:
    CarrierAccount.objects.filter(pk=account.pk).update(
        state=CarrierAccount.State.OK,
        state_message="",
        failing_since=None,
        alerted_at=None,
        backoff_until=None,
        failures=0,
        last_poll_at=now,
    )
    account.state = CarrierAccount.State.OK
    account.backoff_until, account.failures = None, 0


def account_failing(
    account: CarrierAccount, message: str, *, now: datetime, cadence: Cadence
) -> datetime:
    """Mark the account failing with the carrier's message; staff are
    emailed once per failing spell (after commit). Returns when it is tried
    again."""
    retry = now + cadence.failing_retry
    with transaction.atomic():
        became = (
            CarrierAccount.objects.filter(pk=account.pk)
            .exclude(state=CarrierAccount.State.FAILING)
            .update(
                state=CarrierAccount.State.FAILING,
                state_message=message[:2000],
                failing_since=now,
                alerted_at=None,
                backoff_until=retry,
                last_poll_at=now,
            )
        )
        if became:
            transaction.on_commit(partial(alert_queue_now, account.pk))
        else:
            CarrierAccount.objects.filter(pk=account.pk).update(
                state_message=message[:2000], backoff_until=retry, last_poll_at=now
            )
    log.warning("Carrier account %s failing: %s", account.pk, message)
    account.state, account.backoff_until = CarrierAccount.State.FAILING, retry
    return retry


def account_backoff(
    account: CarrierAccount,
    *,
    now: datetime,
    cadence: Cadence,
    retry_after: float | None,
) -> datetime:
    """A 429 or a 5xx: no request to this carrier before the returned time."""
    failures = account.failures + 1
    until = now + cadence_rules.account_backoff(
        failures=failures, retry_after=retry_after, cadence=cadence
    )
    CarrierAccount.objects.filter(pk=account.pk).update(
        failures=failures, backoff_until=until, last_poll_at=now
    )
    account.failures, account.backoff_until = failures, until
    return until


def alert_queue_now(account_id: int) -> None:
    from shipments.tasks import carrier_account_alert_task

    try:
        carrier_account_alert_task.delay(account_id)
    except Exception:
        log.warning("Broker unavailable; the poller mails about account %s", account_id)


def _alert_recipients() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    return sorted(
        {
            u.email
            for u in users.filter(
                Q(is_superuser=True) | Q(groups__name__in=sorted(roles.ADMIN_ROLES))
            )
        }
    )


def _admin_url(account: CarrierAccount) -> str:
    try:
        path = reverse("admin:shipments_carrieraccount_change", args=[account.pk])
    except NoReverseMatch:
        path = reverse("admin:index")
    return str(settings.TRACKSOP_PUBLIC_URL).rstrip("/") + path


def carrier_account_alert_send(*, account_id: int) -> bool:
    """Tell the administrators and supervisors that a carrier account fails,
    once per failing spell: the row stays locked while the mail goes, so two
    tasks cannot both send, and a mail server that is down leaves it for the
    next poll (as a disabled webhook endpoint's mail)."""
    with transaction.atomic():
        account = (
            CarrierAccount.objects.select_for_update(of=("self",))
            .select_related("carrier")
            .filter(
                pk=account_id,
                state=CarrierAccount.State.FAILING,
                alerted_at__isnull=True,
            )
            .first()
        )
        if account is None:
            return False
        to = _alert_recipients()
        if to:
            since = timezone.localtime(account.failing_since or timezone.now())
            mail.send_mail(
                subject=f"Carrier tracking stopped: {account.carrier.name}"[:200],
                message=(
                    f"TrackSOP cannot read tracking from {account.carrier.name} "
                    f"since {since:%Y-%m-%d %H:%M %Z}.\n\n"
                    f"The carrier said: {account.state_message}\n\n"
                    f"Shipments with {account.carrier.name} get no carrier "
                    "checkpoints until this is fixed; the poller tries again "
                    "every few minutes and resumes by itself once the "
                    "credentials work. Check the account's credentials in the "
                    f"admin: {_admin_url(account)}\n\n"
                    "You get this message once; it is not repeated while the "
                    "account keeps failing.\n"
                ),
                from_email=None,
                recipient_list=to,
            )
        account.alerted_at = timezone.now()
        account.save(update_fields=["alerted_at"])
    return bool(to)
