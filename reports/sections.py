"""The report's layout: which tables and charts each section holds, built
from the plain figures of `reports.metrics`. The shape is described in the
docstring of `reports.metrics`; `reports.render` turns it into HTML, PDF,
CSV and XLSX without naming any metric."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from notifications.models import Channel, Kind
from reports import communication
from reports.aggregates import trend_values
from reports.calendar import business_days_between
from reports.compliance import (
    LATE_ENTRY_HOURS,
    checkpoints,
    compliance,
    late_entries,
    stalls,
)
from reports.exception_metrics import (
    NOTIFY_WITHIN_MINUTES,
    exceptions_by_group,
    notified_in_time,
)
from reports.headline import change, changed_most, headline, headline_figures
from reports.metrics import (
    BUCKET_LABELS,
    Delivered,
    cell,
    delivered_rows,
    delivery,
    delivery_by,
    destination,
    exceptions,
    feedback,
    lateness,
    percentile,
    rate,
    volume,
)
from reports.periods import Filters, Period
from shipments.models import Inquiry


def _column(key: str, label: str, unit: str) -> dict[str, str]:
    return {"key": key, "label": label, "unit": unit}


BY_COLUMNS = [
    _column("delivered", "Delivered", "count"),
    _column("on_time_rate", "On time", "pct"),
    _column("first_attempt_rate", "First attempt", "pct"),
    _column("transit_p50", "Transit p50", "hours"),
    _column("transit_p90", "Transit p90", "hours"),
]


def _by_table(
    key: str, title: str, name: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "key": key,
        "title": title,
        "columns": [_column("name", name, "text"), *BY_COLUMNS],
        "rows": rows,
    }


def _count_table(
    key: str, title: str, name: str, counts: dict[str, int], *, keep_order: bool = False
) -> dict[str, Any]:
    return {
        "key": key,
        "title": title,
        "columns": [_column("name", name, "text"), _column("count", "Count", "count")],
        "rows": [
            {"name": k, "count": v}
            for k, v in (counts.items() if keep_order else sorted(counts.items()))
        ],
    }


def _trend_chart(key: str, kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """A headline figure's series as a chart."""
    return {
        "key": key,
        "title": f"{item['label']}, last {len(item['series'])} periods",
        "type": kind,
        "unit": item["unit"],
        "labels": [p["label"] for p in item["series"]],
        "series": [
            {"label": item["label"], "values": [p["value"] for p in item["series"]]}
        ],
    }


def _summary(rows: list[tuple[str, str]]) -> dict[str, Any]:
    """A two-column table of a section's figures, already worded."""
    return {
        "key": "summary",
        "title": "Summary",
        "columns": [
            _column("name", "Figure", "text"),
            _column("value", "Value", "text"),
        ],
        "rows": [{"name": name, "value": value} for name, value in rows],
    }


def _compliance_section(
    period: Period, filters: Filters, rows: list[Delivered]
) -> dict[str, Any]:
    found = compliance(period, filters, rows)
    pct = {k: _pct(v) for k, v in found.items() if k.endswith("_rate")}
    late = f"{found['late']} of {found['events']} ({pct['late_rate']})"
    return {
        "key": "compliance",
        "title": "Procedure compliance",
        "tables": [
            _summary(
                [
                    ("Deliveries", str(found["delivered"])),
                    ("With a pickup scan", pct["pickup_rate"]),
                    ("With a hub scan", pct["hub_scan_rate"]),
                    ("With an out-for-delivery scan", pct["out_for_delivery_rate"]),
                    ("With all three", pct["all_three_rate"]),
                    ("Stalls detected", str(found["stalls"])),
                    (f"Events logged over {LATE_ENTRY_HOURS} h late", late),
                ]
            )
        ],
        "charts": [],
    }


def _rate_table(
    key: str, title: str, name: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Exceptions counted by a group, with the rate per 100 dispatched."""
    return {
        "key": key,
        "title": title,
        "columns": [
            _column("name", name, "text"),
            _column("count", "Exceptions", "count"),
            _column("dispatched", "Dispatched", "count"),
            _column("per_100", "Per 100 dispatched", "per_100"),
        ],
        "rows": rows,
    }


def _exception_tables(
    period: Period, filters: Filters, exc: dict[str, Any], dispatched: int
) -> list[dict[str, Any]]:
    groups = exceptions_by_group(period, filters)
    for key in ("by_cause", "by_severity"):
        groups[key] = [
            {
                "name": k,
                "count": v,
                "dispatched": dispatched,
                "per_100": cell(v, dispatched),
            }
            for k, v in sorted(exc[key].items())
        ]
    return [
        _rate_table("by_cause", "By cause", "Cause", groups["by_cause"]),
        _rate_table("by_severity", "By severity", "Severity", groups["by_severity"]),
        _rate_table("by_carrier", "By carrier", "Carrier", groups["by_carrier"]),
        _rate_table("by_hub", "By origin hub", "Hub", groups["by_hub"]),
    ]


def _notified_row(period: Period, filters: Filters) -> tuple[str, str]:
    found = notified_in_time(period, filters)
    return (
        f"Customer notified within {NOTIFY_WITHIN_MINUTES} minutes",
        f"{_pct(found['notified_in_time_rate'])} ({found['notified_in_time']} of "
        f"{found['notify_due']}; {found['no_contact']} no contact)",
    )


def definitions() -> list[dict[str, str]]:
    """Each metric's definition, from the docstring of its function."""
    found = []
    for term, function in (
        ("Volume", volume),
        ("Delivery performance", delivery),
        ("Lateness", lateness),
        ("Destination", destination),
        ("Percentiles", percentile),
        ("Business days", business_days_between),
        ("Key checkpoints", checkpoints),
        ("Stalls", stalls),
        ("Events logged late", late_entries),
        ("Exceptions", exceptions),
        ("Exceptions by carrier and hub", exceptions_by_group),
        ("Customer notified in time", notified_in_time),
        *communication.TERMS,
        ("Feedback", feedback),
        ("Change", change),
        ("What changed most", changed_most),
    ):
        text = " ".join((function.__doc__ or "").split())
        found.append({"term": term, "text": text})
    found.append(
        {
            "term": "Too few",
            "text": "A rate over fewer than "
            f"{settings.TRACKSOP_REPORT_MIN_CELL} shipments (or messages) "
            "is not shown.",
        }
    )
    return found


def report_data(period: Period, filters: Filters) -> dict[str, Any]:
    rows = delivered_rows(period, filters)
    found = delivery(rows)
    counts = volume(period, filters)
    exc = exceptions(period, filters, counts["dispatched"])
    fb = feedback(period, filters, len(rows))
    items = headline(
        period,
        filters,
        trend_values,
        headline_figures(found, counts["dispatched"], exc, fb),
    )
    sent = communication.messages(period, filters)
    asked = communication.inquiries(period, filters, counts["dispatched"])
    t = found["transit_hours"]
    b = found["transit_business_days"]
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
        "headline": items,
        "changed_most": changed_most(items),
        "sections": [
            {
                "key": "volume",
                "title": "Volume",
                "tables": [
                    _count_table("volume", "Shipments", "Step", counts, keep_order=True)
                ],
                "charts": [_trend_chart("volume_trend", "bar", items[1])],
            },
            {
                "key": "delivery",
                "title": "Delivery performance",
                "tables": [
                    _summary(
                        [
                            ("On-time rate", _pct(found["on_time_rate"])),
                            (
                                "First-attempt delivery",
                                _pct(found["first_attempt_rate"]),
                            ),
                            ("ETA coverage", _pct(found["eta_coverage"])),
                            ("Transit p50 / p90 / p95 (hours)", _trio(t)),
                            ("Transit p50 / p90 / p95 (business days)", _trio(b)),
                            (
                                "Recorded to dispatched p50 / p90 (hours)",
                                _trio(found["lead_hours"]),
                            ),
                            (
                                "Ready to dispatched p50 / p90 (hours)",
                                _trio(found["ready_hours"]),
                            ),
                        ]
                    ),
                    {
                        "key": "lateness",
                        "title": "Against the ETA given at dispatch",
                        "columns": [
                            _column("name", "Arrival", "text"),
                            _column("count", "Shipments", "count"),
                            _column("share", "Share", "pct"),
                        ],
                        "rows": [
                            {
                                "name": BUCKET_LABELS[k],
                                "count": v,
                                "share": rate(v, found["with_eta"]),
                            }
                            for k, v in found["buckets"].items()
                        ],
                    },
                    _by_table(
                        "by_carrier",
                        "By carrier",
                        "Carrier",
                        delivery_by(rows, lambda r: r.carrier),
                    ),
                    _by_table(
                        "by_hub",
                        "By origin hub",
                        "Hub",
                        delivery_by(rows, lambda r: r.hub),
                    ),
                    _by_table(
                        "by_destination",
                        "By destination",
                        "Destination",
                        delivery_by(rows, lambda r: r.destination),
                    ),
                ],
                "charts": [_trend_chart("on_time_trend", "line", items[0])],
            },
            _compliance_section(period, filters, rows),
            {
                "key": "exceptions",
                "title": "Exceptions",
                "tables": [
                    _summary(
                        [
                            ("Reported", str(exc["count"])),
                            ("Per 100 shipments dispatched", _num(exc["per_100"])),
                            (
                                "Time to acknowledge p50 / p90 (hours)",
                                _trio(exc["ack_hours"]),
                            ),
                            (
                                "Time to resolve p50 / p90 (hours)",
                                _trio(exc["resolve_hours"]),
                            ),
                            (
                                "Resolved by the expected time",
                                _pct(exc["resolved_in_time_rate"]),
                            ),
                            _notified_row(period, filters),
                            (
                                "Escalated to level 1 / level 2",
                                f"{exc['level_1']} / {exc['level_2']}",
                            ),
                            ("Backlog at the period's end", str(exc["backlog"])),
                            (
                                "Oldest in the backlog (days)",
                                _num(exc["backlog_oldest_days"]),
                            ),
                        ]
                    ),
                    *_exception_tables(period, filters, exc, counts["dispatched"]),
                ],
                "charts": [],
            },
            _communication_section(sent, asked),
            {
                "key": "feedback",
                "title": "Customer feedback",
                "tables": [
                    _summary(
                        [
                            ("Ratings", str(fb["rated"])),
                            ("Response rate", _pct(fb["response_rate"])),
                            ("Average rating", _num(fb["average"])),
                            ("CSAT (4 or 5)", _pct(fb["csat"])),
                        ]
                    ),
                    {
                        "key": "lowest_rated",
                        "title": "Lowest-rated deliveries",
                        "columns": [
                            _column("shipment", "Shipment", "text"),
                            _column("rating", "Rating", "count"),
                            _column("comment", "Comment", "text"),
                        ],
                        "rows": fb["lowest"],
                    },
                ],
                "charts": [
                    {
                        "key": "ratings",
                        "title": "Ratings, 1 to 5",
                        "type": "bar",
                        "unit": "count",
                        "labels": list(fb["distribution"]),
                        "series": [
                            {
                                "label": "Ratings",
                                "values": list(fb["distribution"].values()),
                            }
                        ],
                    }
                ],
            },
        ],
        "definitions": definitions(),
    }


MESSAGE_COLUMNS = [
    _column("kind", "Kind", "text"),
    _column("channel", "Channel", "text"),
    _column("messages", "Messages", "count"),
    _column("sent", "Sent", "count"),
    _column("failed", "Failed", "count"),
    _column("suppressed", "Suppressed", "count"),
    _column("sent_rate", "Sent rate", "pct"),
    _column("failed_rate", "Failed rate", "pct"),
    _column("suppressed_rate", "Suppressed rate", "pct"),
]
INQUIRY_COLUMNS = [
    _column("channel", "Channel", "text"),
    _column("inquiries", "Inquiries", "count"),
    _column("per_100", "Per 100 shipments", "rate"),
    _column("answered", "Answered", "count"),
    _column("answer_p50", "Answer p50", "hours"),
    _column("answer_p90", "Answer p90", "hours"),
]


def _communication_section(
    sent: dict[str, Any], asked: dict[str, Any]
) -> dict[str, Any]:
    """Messages to customers and their inquiries (`reports.communication`)."""
    shares = " / ".join(
        _share(sent[f"{o}_rate"]) for o in ("sent", "failed", "suppressed")
    )
    return {
        "key": "communication",
        "title": "Customer communication and service",
        "tables": [
            _summary(
                [
                    ("Messages to customers", str(sent["messages"])),
                    ("Sent / failed / suppressed", shares),
                    ("Still waiting to be sent", str(sent["pending"])),
                    (
                        "Event to message sent p50 / p95 (minutes)",
                        _trio(sent["send_minutes"]),
                    ),
                    ("Inquiries", str(asked["count"])),
                    (
                        "Inquiries per 100 shipments dispatched",
                        _share(asked["per_100"], unit=""),
                    ),
                    ("Time to answer p50 / p90 (hours)", _trio(asked["answer_hours"])),
                    ("Unanswered at the period's end", str(asked["unanswered_at_end"])),
                ]
            ),
            {
                "key": "messages",
                "title": "Messages by kind and channel",
                "columns": MESSAGE_COLUMNS,
                "rows": [
                    {
                        **row,
                        "kind": str(Kind(row["kind"]).label),
                        "channel": str(Channel(row["channel"]).label),
                    }
                    for row in sent["by_kind_channel"]
                ],
            },
            {
                "key": "inquiries",
                "title": "Inquiries by channel",
                "columns": INQUIRY_COLUMNS,
                "rows": [
                    {
                        **row,
                        "channel": str(Inquiry.Channel(row["channel"]).label),
                    }
                    for row in asked["by_channel"]
                ],
            },
        ],
        "charts": [],
    }


def _share(value: float | dict[str, Any] | None, unit: str = "%") -> str:
    """A table cell (`metrics.cell`) worded for a summary."""
    if isinstance(value, dict):
        return f"too few (n={value['n']})"
    return "-" if value is None else f"{value:.1f}{unit}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _trio(values: dict[str, float | None]) -> str:
    return " / ".join(_num(v) for v in values.values())
