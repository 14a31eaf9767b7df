"""Formatting for report data, by unit: templates never name a metric."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from reports import charts

register = template.Library()

SUFFIX = {"pct": " %", "hours": " h", "days": " d", "minutes": " min"}


def _number(value: float, unit: str) -> str:
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "rating":
        return f"{value:.2f}"
    return f"{value:,.1f}"


@register.filter
def fmt(value: Any, unit: str = "") -> str:
    """A figure with its unit; "too few (n)" for a thin cell; a dash for none."""
    if isinstance(value, dict):
        if value.get("too_few"):
            return f"too few (n={value.get('n', 0)})"
        unit = value.get("unit", unit)
        value = value.get("value")
    if value is None or value == "":
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return _number(value, unit) + SUFFIX.get(unit, "")


@register.filter
def change(item: dict[str, Any]) -> str:
    """The change beside the previous period: "+3.2 pts" or "-5.0 %" (minus sign)."""
    value = item.get("change")
    if value is None or item.get("too_few"):
        return ""
    sign = "+" if value > 0 else ("\u2212" if value < 0 else "±")
    unit = " pts" if item.get("change_unit") == "pts" else " %"
    return f"{sign}{abs(value):.1f}{unit}"


@register.filter
def trend(item: dict[str, Any]) -> str:
    """ "better", "worse" or "same" by the figure's "better" direction."""
    value = item.get("change")
    if not value or item.get("too_few"):
        return "same"
    up_is_good = item.get("better", "up") == "up"
    return "better" if (value > 0) == up_is_good else "worse"


@register.filter
def arrow(item: dict[str, Any]) -> str:
    value = item.get("change")
    if not value or item.get("too_few"):
        return "►"
    return "▲" if value > 0 else "▼"


@register.filter
def cells(row: Any, columns: list[dict[str, Any]]) -> list[tuple[Any, str]]:
    """The row's cells in column order, each with its column's unit."""
    if isinstance(row, dict):
        values = [row.get(c["key"]) for c in columns]
    else:
        values = list(row)
    return [
        (v, columns[i].get("unit", "") if i < len(columns) else "")
        for i, v in enumerate(values)
    ]


@register.simple_tag
def chart(spec: dict[str, Any]) -> SafeString:
    return charts.chart_svg(spec)


@register.simple_tag
def spark(values: Any) -> SafeString:
    return charts.sparkline(values or [])
