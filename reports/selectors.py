"""Reads of reports for other pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.models import ReportKind, ReportRun, RunStatus

# How many headline figures the dashboard shows, and over how many weeks.
KPI_COUNT = 4
KPI_WEEKS = 4


@dataclass(frozen=True)
class Kpi:
    """One headline figure over the last weeks, for the dashboard's row."""

    label: str
    unit: str
    better: str
    latest: dict[str, Any]  # the latest week's headline item
    values: list[float | None]  # oldest first
    run: ReportRun  # the latest week's report, which the card links to

    @property
    def points(self) -> str:
        """The trend line's points in a 100 by 24 box (an SVG polyline)."""
        known = [v for v in self.values if v is not None]
        if len(known) < 2:
            return ""
        low, high = min(known), max(known)
        span = (high - low) or 1.0
        step = 100 / (len(self.values) - 1)
        return " ".join(
            f"{i * step:.1f},{22 - (v - low) / span * 20:.1f}"
            for i, v in enumerate(self.values)
            if v is not None
        )


def kpis(headlines: list[tuple[ReportRun, list[dict[str, Any]]]]) -> list[Kpi]:
    """The first headline figures of weekly reports (newest first in the
    argument), each with its values over those weeks. Pure."""
    if not headlines:
        return []
    latest_run, latest = headlines[0]
    oldest_first = list(reversed(headlines))
    found = []
    for item in latest[:KPI_COUNT]:
        values = []
        for _, items in oldest_first:
            same = next((i for i in items if i.get("key") == item.get("key")), None)
            values.append(
                None if same is None or same.get("too_few") else same.get("value")
            )
        found.append(
            Kpi(
                label=item.get("label", ""),
                unit=item.get("unit", ""),
                better=item.get("better", "up"),
                latest=item,
                values=values,
                run=latest_run,
            )
        )
    return found


def dashboard_kpis() -> list[Kpi]:
    """The last four scheduled weekly reports' headline figures: one query
    over the runs' stored data, nothing computed on the page."""
    runs = list(
        ReportRun.objects.filter(
            kind=ReportKind.WEEKLY,
            status=RunStatus.DONE,
            schedule__isnull=False,
        )
        .order_by("-period_start", "-id")
        .only("pk", "kind", "period_start", "period_end", "data")[: KPI_WEEKS * 2]
    )
    seen: set[object] = set()
    chosen: list[tuple[ReportRun, list[dict[str, Any]]]] = []
    for run in runs:
        if run.period_start not in seen and len(chosen) < KPI_WEEKS:
            seen.add(run.period_start)
            chosen.append((run, list((run.data or {}).get("headline", []))))
    return kpis(chosen)
