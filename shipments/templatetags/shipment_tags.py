from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

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


@register.filter
def whole_code(text: str, code: str) -> str:
    """The text, escaped, with the shipment ID in it kept on one line: a
    heading such as "Report an exception — SH-0042" may wrap, the ID not."""
    escaped = conditional_escape(text)
    if not code:
        return escaped
    kept = format_html('<span class="shipment-id">{}</span>', code)
    return mark_safe(escaped.replace(conditional_escape(code), kept))  # noqa: S308
