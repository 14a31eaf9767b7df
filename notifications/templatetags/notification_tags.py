from __future__ import annotations

from typing import Any

from django import template

from notifications import links
from notifications.errors import failure_in_words as in_words
from notifications.selectors import notification_history as history

register = template.Library()


@register.inclusion_tag("notifications/_history.html", takes_context=True)
def notification_history(context: template.Context, shipment: Any) -> dict[str, Any]:
    """The shipment page's message history, for those allowed to read it."""
    request = context["request"]
    allowed = request.user.has_perm("notifications.view_notification")
    return {
        "shipment": shipment,
        "allowed": allowed,
        "rows": history(shipment=shipment) if allowed else [],
        "can_resend": request.user.has_perm("notifications.resend_notification"),
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def failure_in_words(raw: str) -> str:
    """Why a message failed, in words (notifications.errors)."""
    return in_words(raw or "")


@register.simple_tag
def customer_tracking_url(shipment: Any) -> str:
    """The tracking link the customer's messages carry, for staff to read out
    or paste into a mail."""
    return links.tracking_url(shipment.public_token)
