"""Report metrics: plain data for a period and filters, computed in the
database. No formatting here: the templates format.

PLACEHOLDER until the metrics land: `report_data` returns the documented shape
with the volume figures only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from reports.periods import Filters, Period
from shipments.models import Shipment


def report_data(period: Period, filters: Filters) -> dict[str, Any]:
    start, end = period.bounds()
    shipments = Shipment.objects.all()
    if filters.carrier:
        shipments = shipments.filter(carrier__code=filters.carrier)
    if filters.hub:
        shipments = shipments.filter(origin__code=filters.hub)
    created = shipments.filter(created_at__gte=start, created_at__lt=end).count()
    delivered = shipments.filter(delivered_at__gte=start, delivered_at__lt=end).count()
    return {
        "version": 1,
        "period": {
            "kind": period.kind,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "filters": {"carrier": filters.carrier, "hub": filters.hub},
        "generated_at": timezone.now().isoformat(),
        "min_cell": settings.TRACKSOP_REPORT_MIN_CELL,
        "headline": [
            {
                "key": "created",
                "label": "Shipments created",
                "value": created,
                "unit": "count",
                "n": created,
                "too_few": False,
                "previous": None,
                "year_ago": None,
                "change": None,
                "change_unit": "pct",
                "better": "up",
                "series": [],
            },
            {
                "key": "delivered",
                "label": "Delivered",
                "value": delivered,
                "unit": "count",
                "n": delivered,
                "too_few": False,
                "previous": None,
                "year_ago": None,
                "change": None,
                "change_unit": "pct",
                "better": "up",
                "series": [],
            },
        ],
        "changed_most": [],
        "sections": [
            {
                "key": "volume",
                "title": "Volume",
                "tables": [
                    {
                        "key": "volume_by_carrier",
                        "title": "Volume by carrier",
                        "columns": [
                            {"key": "carrier", "label": "Carrier", "unit": "text"},
                            {"key": "created", "label": "Created", "unit": "count"},
                        ],
                        "rows": [],
                    }
                ],
                "charts": [],
            }
        ],
        "definitions": [
            {"term": "Shipments created", "text": "Recorded in the period."}
        ],
    }
