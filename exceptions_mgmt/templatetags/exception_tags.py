from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from exceptions_mgmt.selectors import open_exception

register = template.Library()


@register.inclusion_tag("exceptions_mgmt/_shipment_card.html", takes_context=True)
def open_exception_card(context: template.Context, shipment: Any) -> dict[str, Any]:
    """The shipment page's card for the exception holding it, if any."""
    request = context["request"]
    if not request.user.has_perm("exceptions_mgmt.view_deliveryexception"):
        return {"exception": None}
    exception = open_exception(shipment=shipment)
    return {
        "exception": exception,
        "overdue": exception is not None
        and exception.expected_resolution < timezone.now(),
    }
