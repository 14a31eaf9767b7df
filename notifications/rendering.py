"""Message text: the context every template gets, and rendering it.

Default templates are files under notifications/templates/notifications/
messages/<kind>/ (subject.txt, body.txt, body.html, sms.txt); a MessageTemplate
row replaces one kind and channel. A broken replacement falls back to the file
so a typo in the admin never stops a message.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from django.conf import settings
from django.template import Context, Engine, TemplateDoesNotExist
from django.template import engines as template_engines
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from notifications import links
from notifications.models import (
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Subscription,
)
from shipments.models import Shipment, TrackingEvent
from tracksop import dates

log = logging.getLogger(__name__)

# Plain text must not be HTML-escaped: a separate engine without autoescape, and
# Contexts that say so too (a raw Template takes autoescape from its Context).
_TEXT = Engine(
    app_dirs=True,
    autoescape=False,
    # {% translate %} in texts sent in the language of the page that asked.
    libraries={"i18n": "django.templatetags.i18n"},
    builtins=["tracksop.templatetags.safe_dates"],
)
_DIR = "notifications/messages"

# What a customer's dispatch message must state (DESIGN: customer notification).
DISPATCH_REQUIRED = {
    "order_number": "order number",
    "ship_date": "shipment date",
    "carrier_name": "carrier name",
    "tracking_number": "tracking number",
    "tracking_url": "tracking link",
    "estimated_delivery": "estimated delivery date",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class TemplateFailed(Exception):
    """Neither the override nor the file template rendered."""


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    return parse_date(value) if isinstance(value, str) and value else None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return dates.localtime(value)
    parsed = parse_datetime(value) if isinstance(value, str) and value else None
    return dates.localtime(parsed) if parsed and timezone.is_aware(parsed) else None


def message_context(
    *,
    shipment: Shipment,
    audience: str,
    event: TrackingEvent | None = None,
    extra: dict[str, Any] | None = None,
    subscription: Subscription | None = None,
) -> dict[str, Any]:
    """Everything a template may use. Exception and delay details come from the
    event's data: cause, expected_resolution (ISO time), from/to (ISO dates).
    A subscriber's `manage_url` is their stop link, so that every SMS text,
    which ends with `manage_url`, carries it."""
    data = event.data if event is not None else {}
    names: dict[str, str] = {
        Audience.RECIPIENT: shipment.recipient_name,
        Audience.SENDER: shipment.sender_name,
    }
    location = event.location if event is not None and event.location_id else None
    context: dict[str, Any] = {
        "company": settings.TRACKSOP_COMPANY_NAME,
        "audience": audience,
        "name": names.get(audience, ""),
        "shipment_id": shipment.shipment_id,
        "order_number": shipment.order_number,
        "carrier_name": shipment.carrier.name if shipment.carrier else "",
        "tracking_number": shipment.tracking_number or "",
        "carrier_tracking_url": shipment.tracking_url,
        "tracking_url": links.tracking_url(shipment.public_token),
        "feedback_url": links.feedback_url(shipment.public_token),
        "ship_date": (
            dates.localdate(shipment.dispatched_at) if shipment.dispatched_at else None
        ),
        "estimated_delivery": shipment.estimated_delivery,
        "delivered_at": (
            dates.localtime(shipment.delivered_at) if shipment.delivered_at else None
        ),
        "status": shipment.get_status_display(),
        "event_time": dates.localtime(event.occurred_at) if event else None,
        "city": location.city if location is not None else "",
        "cause": data.get("cause", ""),
        "expected_resolution": _datetime(data.get("expected_resolution")),
        "previous_eta": _date(data.get("from")),
        "reason": data.get("reason", ""),
        # A delay found by the late-shipment sweep rather than a new ETA.
        "detected": bool(data.get("detected")),
    }
    if audience in (Audience.RECIPIENT, Audience.SENDER):
        context["manage_url"] = links.manage_url(shipment.public_token, audience)
    elif audience == Audience.SUBSCRIBER:
        # The order number is the public look-up's second factor, and a
        # subscriber may be anyone with the link: an email names the package
        # by its tracking number, a text (short) says "your package".
        sms = subscription is not None and subscription.channel == Channel.SMS
        context["order_number"] = "" if sms else shipment.tracking_number or ""
        if subscription is not None:
            context["stop_url"] = context["manage_url"] = links.stop_url(
                shipment.public_token, subscription.pk
            )
    else:
        context["staff_url"] = links.absolute(shipment.get_absolute_url())
    context.update(extra or {})
    return context


def missing_for(kind: str, context: dict[str, Any]) -> list[str]:
    """Facts a message of this kind cannot go without."""
    if kind != Kind.DISPATCHED:
        return []
    return [label for key, label in DISPATCH_REQUIRED.items() if not context.get(key)]


# The overrides table is tiny and read for every message written: each
# process keeps a copy for a few seconds rather than asking the database (or
# the cache) hundreds of times per sweep. A save in this process drops the
# copy at once; other processes see it within OVERRIDES_TTL seconds.
OVERRIDES_TTL = 10.0
_overrides: dict[tuple[str, str], MessageTemplate] = {}
_overrides_read_at = -math.inf


def _override(kind: str, channel: str) -> MessageTemplate | None:
    global _overrides, _overrides_read_at
    now = time.monotonic()
    if now - _overrides_read_at > OVERRIDES_TTL:
        _overrides = {(r.kind, r.channel): r for r in MessageTemplate.objects.all()}
        _overrides_read_at = now
    return _overrides.get((kind, channel))


def overrides_forget(**_kwargs: Any) -> None:
    """post_save/post_delete of MessageTemplate: the copy is stale."""
    global _overrides_read_at
    _overrides_read_at = -math.inf


def _render_file(name: str, context: dict[str, Any], *, html: bool) -> str:
    if html:
        return template_engines["django"].get_template(name).render(context)
    return _TEXT.get_template(name).render(Context(context, autoescape=False))


def _render_string(source: str, context: dict[str, Any], *, html: bool) -> str:
    if html:
        return template_engines["django"].from_string(source).render(context)
    return _TEXT.from_string(source).render(Context(context, autoescape=False))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _tidy(text: str) -> str:
    # Template tags leave blank lines behind; keep at most one.
    return re.sub(r"\n{3,}", "\n\n", text.strip()) + "\n"


def render_default(kind: str, channel: str, context: dict[str, Any]) -> Rendered:
    base = f"{_DIR}/{kind}"
    if channel == Channel.SMS:
        return Rendered(
            "", _one_line(_render_file(f"{base}/sms.txt", context, html=False)), ""
        )
    try:
        html = _render_file(f"{base}/body.html", context, html=True)
    except TemplateDoesNotExist:
        html = ""
    return Rendered(
        subject=_one_line(_render_file(f"{base}/subject.txt", context, html=False)),
        text=_tidy(_render_file(f"{base}/body.txt", context, html=False)),
        html=html,
    )


def render_override(row: MessageTemplate, context: dict[str, Any]) -> Rendered:
    if row.channel == Channel.SMS:
        return Rendered(
            "", _one_line(_render_string(row.body_text, context, html=False)), ""
        )
    return Rendered(
        subject=_one_line(_render_string(row.subject, context, html=False)),
        text=_tidy(_render_string(row.body_text, context, html=False)),
        html=_render_string(row.body_html, context, html=True) if row.body_html else "",
    )


def render(kind: str, channel: str, context: dict[str, Any]) -> Rendered:
    """The admin's override if it renders, else the file; TemplateFailed if neither."""
    row = _override(kind, channel)
    if row is not None:
        try:
            return render_override(row, context)
        except Exception:
            log.exception(
                "Template override %s/%s failed; using the file", kind, channel
            )
    try:
        return render_default(kind, channel, context)
    except Exception as exc:
        raise TemplateFailed(f"Template {kind}/{channel} failed: {exc}") from exc


def sms_segments(text: str) -> int:
    """How many SMS parts the text costs: GSM-7 (160, or 153 per part when
    split), else UCS-2 (70, or 67). Extension characters (€ [ ] { } ...) take
    two GSM septets, which the codec's output already counts."""
    try:
        units, single, part = len(text.encode("gsm03.38")), 160, 153
    except UnicodeEncodeError:
        units, single, part = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)
