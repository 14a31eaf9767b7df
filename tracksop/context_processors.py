from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from shipments.status import CLOSED


def roles(request: HttpRequest) -> dict[str, Any]:
    """What the navigation may offer; every view checks again on the server."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "today": timezone.localdate(),
        "closed": sorted(CLOSED),
        "can": {
            "add": user.has_perm("shipments.add_shipment"),
            "scan": user.has_perm("shipments.record_checkpoint"),
            "view": user.has_perm("shipments.view_shipment"),
            "admin": user.is_staff,
        },
    }
