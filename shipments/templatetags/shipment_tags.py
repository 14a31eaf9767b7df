from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def quantity(value: Decimal | None) -> str:
    """2.500 → "2.5", 30.0 → "30": measured values without padding zeros."""
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def person(user: object) -> str:
    """A user as colleagues know them: full name, else the login."""
    if user is None:
        return ""
    full = getattr(user, "get_full_name", lambda: "")()
    return full or str(getattr(user, "get_username", lambda: user)())
