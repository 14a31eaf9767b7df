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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from django.conf import settings
from django.template import Context, Engine, TemplateDoesNotExist, loader
from django.template import engines as template_engines
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime

from notifications import links
from notifications.models import (
    Audience,
    Channel,
    Kind,
    MessageTemplate,
    Subscription,
)
from shipments.models import Carrier, Shipment, TrackingEvent
from shipments.public import public_cause
from shipments.status import ShipmentStatus
from tracksop import dates

log = logging.getLogger(__name__)

# The shipment's own parties, who get the text staff wrote for the recipient.
PARTIES = (Audience.RECIPIENT, Audience.SENDER)

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
# What get_status_display() says, without rebuilding the field's choices on
# each call (a millisecond a message in a batch of scans).
_STATUS_LABELS = dict(ShipmentStatus.choices)

# What each kind of message must state (DESIGN: customer notification; exceptions
# and delays "with the cause and the estimated resolution time"): a fact's name
# and the context keys that show it (any one will do: an SMS links to the manage
# page, which is the tracking page with the choices). A kind not listed needs
# no particular fact. A message without one of its facts is not sent, and an
# admin's template that leaves one out is refused, or at send time ignored.
REQUIRED_FACTS: dict[str, dict[str, tuple[str, ...]]] = {
    Kind.DISPATCHED: {
        "order number": ("order_number",),
        "shipment date": ("ship_date",),
        "carrier name": ("carrier_name",),
        "tracking number": ("tracking_number",),
        "tracking link": ("tracking_url", "manage_url"),
        "estimated delivery date": ("estimated_delivery",),
    },
    Kind.EXCEPTION: {
        "cause": ("cause",),
        "expected resolution time": ("expected_resolution",),
        "tracking link": ("tracking_url", "manage_url"),
    },
    Kind.DELAY: {
        "estimated delivery date": ("estimated_delivery",),
        "tracking link": ("tracking_url", "manage_url"),
    },
    Kind.SUBSCRIPTION_CONFIRM: {"code": ("code",)},
}
# Facts whose absence stops the message. Only the dispatch: an exception or a
# delay is worth telling even when a detail is unknown.
SUPPRESS_WITHOUT = frozenset({Kind.DISPATCHED})


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
        "status": str(_STATUS_LABELS.get(shipment.status, shipment.status)),
        "event_time": dates.localtime(event.occurred_at) if event else None,
        "city": location.city if location is not None else "",
        # Customers read the cause the tracking page shows, never a cause
        # typed by staff ("other").
        "cause": public_cause(data) if data.get("cause") else "",
        "expected_resolution": _datetime(data.get("expected_resolution")),
        "previous_eta": _date(data.get("from")),
        # Typed by staff on a form that says it goes to the recipient: the
        # parties get it, a subscriber (anyone with the link) does not.
        "reason": data.get("reason", "") if audience in PARTIES else "",
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
    """Facts a message of this kind cannot go without and does not have."""
    if kind not in SUPPRESS_WITHOUT:
        return []
    return [
        label
        for label, keys in REQUIRED_FACTS[kind].items()
        if not any(context.get(key) for key in keys)
    ]


def _parts(rendered: Rendered) -> list[str]:
    """What one reader sees: the subject with the text, or with the HTML."""
    parts = [rendered.subject + "\n" + rendered.text]
    if rendered.html:
        parts.append(rendered.subject + "\n" + rendered.html)
    return parts


def _moved(value: date) -> date:
    # A year, a month, a day and a weekday later: every date format shows it.
    return value + timedelta(days=400, hours=5, minutes=7)


def unshown_facts(
    kind: str,
    context: dict[str, Any],
    rendered: Rendered,
    render_with: Callable[[dict[str, Any]], Rendered],
) -> list[str]:
    """The required facts the context has but the rendered message does not
    show, in the text or in the HTML. A text shows a string if it contains it;
    a date, whatever its format, if moving it changes the text (`render_with`
    renders the same template with another context)."""
    parts = _parts(rendered)
    missing = []
    for label, keys in REQUIRED_FACTS.get(kind, {}).items():
        shown = [False] * len(parts)
        for key in keys:
            value = context.get(key)
            if not value:
                continue
            if isinstance(value, date):
                moved = _parts(render_with({**context, key: _moved(value)}))
                found = [a != b for a, b in zip(parts, moved, strict=False)]
            else:
                found = [str(value) in part for part in parts]
            shown = [a or b for a, b in zip(shown, found, strict=True)]
        has_value = any(context.get(key) for key in keys)
        if has_value and not all(shown):
            missing.append(label)
    return missing


def sample_shipment() -> Shipment:
    """A made-up shipment for previews: nothing real is shown or saved."""
    now = timezone.now()
    return Shipment(
        shipment_id="SHP-SAMPLE",
        order_number="ORD-10042",
        sender_name="Example Store",
        recipient_name="Alex Sample",
        recipient_email="alex@example.com",
        recipient_city="Springfield",
        carrier=Carrier(name="Example Express", code="example"),
        tracking_number="1Z999AA10123456784",
        estimated_delivery=timezone.localdate(now) + timedelta(days=3),
        dispatched_at=now,
        delivered_at=now,
        status=ShipmentStatus.IN_TRANSIT,
        weight_kg=Decimal("1.2"),
        public_token="SampleToken0123456789A",  # noqa: S106  (not a secret)
    )


def sample_details(context: dict[str, Any]) -> dict[str, Any]:
    """Event details a preview fills in where the shipment has none."""
    now = timezone.localtime()
    eta = context.get("estimated_delivery") or now.date() + timedelta(days=3)
    return {
        "cause": context.get("cause") or "Address issue",
        "expected_resolution": context.get("expected_resolution")
        or now + timedelta(days=1),
        "previous_eta": context.get("previous_eta") or eta - timedelta(days=2),
        "reason": context.get("reason") or "Severe weather at the hub",
        "city": context.get("city") or "Springfield",
        "event_time": context.get("event_time") or now,
        "severity": "High",
        "level": 1,
        "reported_at": now - timedelta(hours=30),
        "deadline": now - timedelta(hours=6),
        # The confirmation code message.
        "code": "123456",
        "minutes": 30,
        "confirm_url": context.get("tracking_url", "") + "subscribe/1/?code=123456",
    }


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


def _names(name: str) -> list[str]:
    """The file in the active language's folder (messages/es/...) first, then
    the default one (English, or {% translate %} through the catalogue)."""
    language = (translation.get_language() or settings.LANGUAGE_CODE).split("-")[0]
    own = f"{_DIR}/{language}/{name.removeprefix(_DIR + '/')}"
    return [own, name] if language != "en" else [name]


def _render_file(name: str, context: dict[str, Any], *, html: bool) -> str:
    rendered: str
    if html:
        rendered = loader.select_template(_names(name), using="django").render(context)
    else:
        template = _TEXT.select_template(_names(name))
        rendered = template.render(Context(context, autoescape=False))
    return rendered


def message_language(shipment: Shipment, subscription: Subscription | None) -> str:
    """A subscriber reads the language of the page they subscribed on; the
    shipment's parties the language set on the shipment."""
    chosen = (subscription.language if subscription else "") or shipment.language
    try:
        return translation.get_supported_language_variant(chosen or "")
    except LookupError:
        return str(settings.TRACKSOP_DEFAULT_LANGUAGE)


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
    # An admin writes an override in one language, the default one: messages
    # in another language keep their files.
    row = _override(kind, channel)
    if row is not None and (translation.get_language() or "").split("-")[0] != (
        settings.TRACKSOP_DEFAULT_LANGUAGE
    ):
        row = None
    if row is not None:
        try:
            rendered = render_override(row, context)
            missing = unshown_facts(
                kind, context, rendered, lambda c: render_override(row, c)
            )
        except Exception:
            log.exception(
                "Template override %s/%s failed; using the file", kind, channel
            )
        else:
            if not missing:
                return rendered
            log.error(
                "Template override %s/%s leaves out the %s; using the file",
                kind,
                channel,
                ", ".join(missing),
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
