"""The access log: who saw which shipment's personal data, when, on which page.

DESIGN asks that every personal-data view be attributable. The pages that
show it call `access_log_write` once, with the shipments they already
loaded: one INSERT per page view, no extra read. The rows are purged with the
retention rules (reports/retention.py) and read by supervisors.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from shipments.models import AccessLog, Shipment

VIEW_ACCESS_LOG = "shipments.view_access_log"
PATH_MAX = AccessLog._meta.get_field("path").max_length or 300


def access_log_write(
    *,
    user: AbstractBaseUser | AnonymousUser,
    page: AccessLog.Page | str,
    shipments: Iterable[Shipment | int],
    path: str = "",
) -> list[AccessLog]:
    """One row per shipment shown, all in one INSERT. Takes shipments or
    their ids, as the page has them: nothing is read from the database."""
    ids = list(dict.fromkeys(s if isinstance(s, int) else s.pk for s in shipments))
    if not ids:
        return []
    at = timezone.now()
    username = user.get_username() if user.is_authenticated else ""
    user_id = user.pk if user.is_authenticated else None
    # PostgreSQL refuses NUL in text; a fuzzed URL may be longer than the column.
    kept_path = path.replace("\x00", "")[:PATH_MAX]
    return AccessLog.objects.bulk_create(
        [
            AccessLog(
                at=at,
                user_id=user_id,
                username=username,
                page=page,
                shipment_id=pk,
                path=kept_path,
            )
            for pk in ids
        ]
    )


def shipment_access_log(*, shipment: Shipment) -> QuerySet[AccessLog]:
    """The shipment's views, newest first (served by the access_shipment index)."""
    return (
        AccessLog.objects.filter(shipment=shipment)
        .select_related("user")
        .order_by("-at", "-id")
    )
