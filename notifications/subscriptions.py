"""Addresses customers add on the public tracking page to hear about a package.

Nothing but a confirmation code goes to an address until its owner types that
code back, so the page cannot be used to make us write to strangers. The caps
here (addresses per shipment, codes per address) and the views' rate limit per
client bound how many codes anyone can make us send.

A subscription is pending (code sent, not confirmed), active (confirmed) or
stopped. Asking again for a stopped address makes it pending again.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from notifications import links
from notifications.models import Audience, Channel, Kind, Status, Subscription
from notifications.outbox import queue_on_commit, write
from notifications.rules import address_problem
from shipments.models import Shipment

# Addresses one shipment may have: confirmed ones and those with a live code.
MAX_PER_SHIPMENT = 5
# A new code to one address at most this often, and at most this many a day.
CODE_INTERVAL = timedelta(seconds=60)
CODES_PER_DAY = 5
# A code works this long, and for this many wrong tries.
CODE_TTL = timedelta(minutes=30)
MAX_TRIES = 5

_CODE_SALT = "notifications.subscription.code"


class SubscriptionError(ValidationError):
    """A refused request. `message` is for the customer (translated);
    `field` names the form field it concerns, None for the whole form."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def hash_code(code: str, salt: str = "") -> str:
    """What is stored of a code. A random salt per code: equal codes never
    show as equal hashes."""
    salt = salt or secrets.token_hex(8)
    mac = salted_hmac(_CODE_SALT, f"{salt}:{code}", algorithm="sha256").hexdigest()
    return f"{salt}${mac}"


def code_matches(stored: str, code: str) -> bool:
    """Whether `code` is the one `stored` (from hash_code) was made of."""
    salt, dollar, _mac = stored.partition("$")
    return bool(dollar) and constant_time_compare(stored, hash_code(code, salt))


def _language(language: str) -> str:
    try:
        return translation.get_supported_language_variant(language or "")
    except LookupError:
        return settings.LANGUAGE_CODE


def normalise_address(*, channel: str, address: str, country: str) -> str:
    """A lower-case email, or an E.164 phone number read as a number of the
    recipient's country when typed without a country code. SubscriptionError
    (at the address field) when it cannot take messages."""
    address = address.strip()
    if channel == Channel.EMAIL:
        address = address.lower()
        if address_problem(channel, address):
            raise SubscriptionError(_("Enter a valid email address."), field="address")
        return address
    region = country.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = settings.PHONENUMBER_DEFAULT_REGION
    try:
        number = phonenumbers.parse(address, region)
    except phonenumbers.NumberParseException:
        number = None
    e164 = (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if number is not None
        else ""
    )
    if number is None or address_problem(channel, e164):
        raise SubscriptionError(
            _("Enter a valid mobile number, with its country code (+…) if abroad."),
            field="address",
        )
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
        raise SubscriptionError(
            _("This looks like a landline, which cannot receive texts."),
            field="address",
        )
    return e164


def mask_address(channel: str, address: str) -> str:
    """Enough to recognise one's own address, e.g. j•••@example.com, •••• 1234."""
    if channel == Channel.EMAIL:
        local, _at, domain = address.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"•••• {address[-4:]}"


def _holds_a_place(subscription: Subscription, now: datetime) -> bool:
    """Whether it counts towards the shipment's cap: confirmed, or with a code
    still live. Unconfirmed requests lapse, so a stranger's junk cannot keep
    the customer out for long."""
    return subscription.stopped_at is None and (
        subscription.confirmed_at is not None
        or subscription.code_sent_at > now - CODE_TTL
    )


def subscription_request(
    *, shipment: Shipment, channel: str, address: str, language: str
) -> Subscription:
    """Add an address to a shipment's updates, or send a new code to one added
    before. A confirmation code goes to it through the outbox, in `language`.
    Raises SubscriptionError when the request is refused; nothing is written."""
    if channel not in Channel.values:
        raise SubscriptionError(_("Choose email or SMS."), field="channel")
    address = normalise_address(
        channel=channel, address=address, country=shipment.recipient_country
    )
    language = _language(language)
    now = timezone.now()
    with transaction.atomic():
        # The shipment's row lock serialises requests for it: the cap holds,
        # and two requests for one address find one row.
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        if locked.is_closed:
            raise SubscriptionError(
                _(
                    "This package's journey is over (%(status)s): there will be "
                    "no more updates to send."
                )
                % {"status": locked.get_status_display()}
            )
        subscription = Subscription.objects.filter(
            shipment=locked, channel=channel, address=address
        ).first()
        sent = {"total": 0, "today": 0}
        if subscription is not None:
            if subscription.code_sent_at > now - CODE_INTERVAL:
                raise SubscriptionError(
                    _("We sent a code less than a minute ago. Wait a minute first."),
                    field="address",
                )
            sent = subscription.notifications.filter(
                kind=Kind.SUBSCRIPTION_CONFIRM
            ).aggregate(
                total=Count("id"),
                today=Count("id", filter=Q(created_at__gt=now - timedelta(days=1))),
            )
            if sent["today"] >= CODES_PER_DAY:
                raise SubscriptionError(
                    _("We sent this address all the codes we may today."),
                    field="address",
                )
        if subscription is None or not _holds_a_place(subscription, now):
            places = Subscription.objects.filter(
                Q(confirmed_at__isnull=False) | Q(code_sent_at__gt=now - CODE_TTL),
                shipment=locked,
                stopped_at__isnull=True,
            ).count()
            if places >= MAX_PER_SHIPMENT:
                raise SubscriptionError(
                    _(
                        "This package already sends updates to as many addresses "
                        "as it can."
                    ),
                    field="address",
                )
        if subscription is None:
            subscription = Subscription(
                shipment=locked, channel=channel, address=address
            )
        elif subscription.stopped_at is not None:
            subscription.stopped_at = subscription.confirmed_at = None
        code = f"{secrets.randbelow(10**6):06d}"
        subscription.code_hash = hash_code(code)
        subscription.code_sent_at = now
        subscription.failed_tries = 0
        subscription.language = language
        subscription.save()
        with translation.override(language):
            row = write(
                shipment=locked,
                kind=Kind.SUBSCRIPTION_CONFIRM,
                channel=channel,
                audience=Audience.SUBSCRIBER,
                to=address,
                key=f"subscription:{subscription.pk}:{sent['total'] + 1}",
                context=_confirm_context(locked, subscription, code),
                subscription=subscription,
            )
        if row.status != Status.PENDING:
            # A broken template: say so now rather than let them wait for a
            # code that never comes (write has logged why).
            raise SubscriptionError(_("We cannot send codes just now. Try later."))
        queue_on_commit([row])
    return subscription


def _confirm_context(
    shipment: Shipment, subscription: Subscription, code: str
) -> dict[str, Any]:
    """Deliberately not rendering.message_context: until the owner confirms,
    the address is a stranger's and hears nothing about the shipment."""
    return {
        "company": settings.TRACKSOP_COMPANY_NAME,
        "audience": Audience.SUBSCRIBER,
        "code": code,
        "minutes": int(CODE_TTL.total_seconds() // 60),
        "confirm_url": links.subscribe_confirm_url(
            shipment.public_token, subscription.pk, code
        ),
    }


def subscription_confirm(*, subscription: Subscription, code: str) -> Subscription:
    """Confirm an address with the code sent to it. A wrong code counts a try;
    after MAX_TRIES the code is void. Raises SubscriptionError (at the code
    field) saying what to do; the tries it counts are kept."""
    code = "".join(code.split())
    now = timezone.now()
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if locked.is_active:
            return locked
        if not locked.code_hash:
            error = _("This code no longer works. Ask for a new one.")
        elif locked.code_sent_at <= now - CODE_TTL:
            error = _("This code has expired. Ask for a new one.")
        elif code_matches(locked.code_hash, code):
            locked.confirmed_at, locked.code_hash, locked.failed_tries = now, "", 0
            locked.save(update_fields=["confirmed_at", "code_hash", "failed_tries"])
            return locked
        else:
            locked.failed_tries += 1
            left = MAX_TRIES - locked.failed_tries
            if left <= 0:
                locked.code_hash = ""
                error = _("Wrong code, and that was the last try. Ask for a new one.")
            else:
                error = ngettext(
                    "Wrong code. %(left)d try left.",
                    "Wrong code. %(left)d tries left.",
                    left,
                ) % {"left": left}
            locked.save(update_fields=["failed_tries", "code_hash"])
    # Raised after the commit, so that the failed try counts.
    raise SubscriptionError(error, field="code")


def subscription_stop(*, subscription: Subscription) -> Subscription:
    """Stop updates to the address at once; messages already written but not
    yet sent are dropped at sending. Stopping twice changes nothing."""
    Subscription.objects.filter(pk=subscription.pk, stopped_at__isnull=True).update(
        stopped_at=timezone.now(), code_hash=""
    )
    subscription.refresh_from_db()
    return subscription
