"""Reads for the notification pages."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Notification, Preference, Status
from shipments.models import Shipment

HISTORY_LIMIT = 200


def notification_history(*, shipment: Shipment) -> list[Notification]:
    """What was sent to whom about a shipment, newest first (one query)."""
    return list(
        Notification.objects.filter(shipment=shipment)
        .select_related("requested_by")
        .defer("body_html", "mime")
        .order_by("-created_at", "-id")[:HISTORY_LIMIT]
    )


def failed_notifications() -> QuerySet[Notification]:
    """Failed messages nobody has sent again yet, newest first."""
    return (
        Notification.objects.filter(status=Status.FAILED, superseded_at__isnull=True)
        .select_related("shipment", "report")
        .defer("body_html", "body_text", "mime")
        .order_by("-created_at", "-id")
    )


def failed_count() -> int:
    return failed_notifications().count()


def preference_for(shipment: Shipment | int, audience: str) -> str:
    """A party's channel choice (`Preference.Choice`), BOTH when never set."""
    pk = shipment if isinstance(shipment, int) else shipment.pk
    return (
        Preference.objects.filter(shipment_id=pk, audience=audience)
        .values_list("channels", flat=True)
        .first()
        or Preference.Choice.BOTH
    )
