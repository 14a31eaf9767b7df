"""Links in messages: the tracking page, the signed manage/unsubscribe link and
a subscriber's signed stop link.

The manage link works without login. It carries the shipment's public token,
the party it was sent to and an HMAC of both under SECRET_KEY, cut to 96 bits
so that an SMS with it still fits one segment where it can; 96 bits leave
forging it as hopeless as guessing the 128-bit public token itself.
"""

from __future__ import annotations

import base64

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import base36_to_int, int_to_base36

from notifications.models import Audience

_SALT = "notifications.manage"
_CODES: dict[str, str] = {Audience.RECIPIENT: "r", Audience.SENDER: "s"}
_AUDIENCES = {code: audience for audience, code in _CODES.items()}


def _mac(public_token: str, audience: str) -> str:
    digest = salted_hmac(_SALT, f"{public_token}:{audience}", algorithm="sha256")
    return base64.urlsafe_b64encode(digest.digest()[:12]).decode()


def manage_code(public_token: str, audience: str) -> str:
    return _CODES[audience] + _mac(public_token, audience)


def manage_audience(public_token: str, code: str) -> str | None:
    """The party a manage code was made for, or None if it is not genuine."""
    audience = _AUDIENCES.get(code[:1])
    if audience is None or not constant_time_compare(
        code[1:], _mac(public_token, audience)
    ):
        return None
    return audience


def absolute(path: str) -> str:
    return str(settings.TRACKSOP_PUBLIC_URL).rstrip("/") + path


def manage_url(public_token: str, audience: str) -> str:
    return absolute(
        reverse(
            "notification-manage",
            args=[public_token, manage_code(public_token, audience)],
        )
    )


def tracking_url(public_token: str) -> str:
    # The public tracking page; its path is fixed so links sent today keep working.
    return absolute(reverse("public-tracking", args=[public_token]))


def feedback_url(public_token: str) -> str:
    """Where the customer rates the delivery (asked in the delivered message)."""
    return absolute(reverse("public-feedback", args=[public_token]))


def unsubscribe_url(public_token: str, audience: str) -> str:
    """For the List-Unsubscribe header: one-click POST stops all updates."""
    return absolute(
        reverse(
            "notification-unsubscribe",
            args=[public_token, manage_code(public_token, audience)],
        )
    )


# --- links for subscribers ----------------------------------------------------
# An address added on the tracking page gets its own links: the subscription's
# id in base 36 and an HMAC of it with the token, cut like the manage code.
# Stop and confirm links use different salts: the confirmation page's address
# (which the person who asked for it sees) must not work as a stop link, and
# ids cannot be stepped through to read other subscribers' masked addresses.
_STOP_SALT = "notifications.subscription.stop"
_CONFIRM_SALT = "notifications.subscription.confirm"
_MAC_LENGTH = 16  # 12 bytes in URL-safe base64, no padding


def _subscription_mac(salt: str, public_token: str, subscription_id: int) -> str:
    digest = salted_hmac(salt, f"{public_token}:{subscription_id}", algorithm="sha256")
    return base64.urlsafe_b64encode(digest.digest()[:12]).decode()


def _code(salt: str, public_token: str, subscription_id: int) -> str:
    return int_to_base36(subscription_id) + _subscription_mac(
        salt, public_token, subscription_id
    )


def _code_id(salt: str, public_token: str, code: str) -> int | None:
    try:
        subscription_id = base36_to_int(code[:-_MAC_LENGTH])
    except ValueError:
        return None
    if not constant_time_compare(
        code[-_MAC_LENGTH:], _subscription_mac(salt, public_token, subscription_id)
    ):
        return None
    return subscription_id


def stop_code(public_token: str, subscription_id: int) -> str:
    return _code(_STOP_SALT, public_token, subscription_id)


def stop_subscription_id(public_token: str, code: str) -> int | None:
    """The subscription a stop code was made for, or None if it is not genuine."""
    return _code_id(_STOP_SALT, public_token, code)


def confirm_ref(public_token: str, subscription_id: int) -> str:
    return _code(_CONFIRM_SALT, public_token, subscription_id)


def confirm_subscription_id(public_token: str, ref: str) -> int | None:
    """The subscription a confirmation page's reference names, or None."""
    return _code_id(_CONFIRM_SALT, public_token, ref)


def stop_url(public_token: str, subscription_id: int) -> str:
    return absolute(
        reverse(
            "public-subscription-stop",
            args=[public_token, stop_code(public_token, subscription_id)],
        )
    )


def stop_one_click_url(public_token: str, subscription_id: int) -> str:
    """For a subscriber's List-Unsubscribe header (RFC 8058 one-click POST)."""
    return absolute(
        reverse(
            "public-subscription-unsubscribe",
            args=[public_token, stop_code(public_token, subscription_id)],
        )
    )


def subscribe_confirm_url(public_token: str, subscription_id: int, code: str) -> str:
    """The confirmation page with the code filled in; confirming is still a POST,
    so a mail scanner that opens the link confirms nothing."""
    path = reverse(
        "public-subscribe-confirm",
        args=[public_token, confirm_ref(public_token, subscription_id)],
    )
    return absolute(f"{path}?code={code}")
