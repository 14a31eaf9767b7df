"""Links in messages: the tracking page and the signed manage/unsubscribe link.

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
    return settings.TRACKSOP_PUBLIC_URL.rstrip("/") + path


def manage_url(public_token: str, audience: str) -> str:
    return absolute(
        reverse(
            "notification-manage",
            args=[public_token, manage_code(public_token, audience)],
        )
    )


def tracking_url(public_token: str) -> str:
    # The public tracking page; its path is fixed so links sent today keep working.
    return absolute(f"/t/{public_token}/")


def unsubscribe_url(public_token: str, audience: str) -> str:
    """For the List-Unsubscribe header: one-click POST stops all updates."""
    return absolute(
        reverse(
            "notification-unsubscribe",
            args=[public_token, manage_code(public_token, audience)],
        )
    )
