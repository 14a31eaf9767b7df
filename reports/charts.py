"""Server-side SVG charts: pure functions from plain numbers to SVG markup,
drawn the same on the page and in the PDF (WeasyPrint renders inline SVG).

A chart in the report data is
  {"key", "title", "type": "bar" | "line", "unit", "labels": [...],
   "series": [{"label": str, "values": [number | None, ...]}, ...]}
A headline's "series" is a list of numbers or of {"label", "value"} items.
Only plain shapes, no filters, masks or CSS in the SVG: WeasyPrint draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#1f5fa8", "#e07b24", "#3a9b5c", "#b3385a", "#6d5aa8", "#7a7a7a"]
AXIS = "#9aa3ad"
TEXT = "#3b4550"


def _numbers(values: Sequence[Any]) -> list[float | None]:
    out: list[float | None] = []
    for value in values:
        if isinstance(value, dict):
            value = value.get("value")
        out.append(float(value) if isinstance(value, int | float) else None)
    return out


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _scale(values: list[float | None]) -> float:
    """A round axis top (1, 2, 2.5, 5 x 10^k) at or above the largest value."""
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return 1.0
    magnitude: float = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return step * magnitude
    return top


def bar_chart(
    labels: Sequence[str],
    series: Sequence[dict[str, Any]],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> SafeString:
    """Grouped vertical bars, one group per label, one colour per series."""
    left, right, top, bottom = 40, 10, 14, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    all_values = [v for s in series for v in _numbers(s.get("values", []))]
    peak = _scale(all_values)
    parts = _frame(width, height, left, top, plot_w, plot_h, peak, title)
    n = max(len(labels), 1)
    group = plot_w / n
    bar = max(group * 0.8 / max(len(series), 1), 1.0)
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, s in enumerate(series):
            values = _numbers(s.get("values", []))
            value = values[i] if i < len(values) else None
            if value is None:
                continue
            h = plot_h * max(value, 0) / peak
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"/>'
            )
        if n <= 16 or i % max(n // 12, 1) == 0:
            parts.append(
                _label(left + i * group + group / 2, height - bottom + 14, label)
            )
    parts.extend(_legend(series, left, height - 8))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text is escaped


def line_chart(
    labels: Sequence[str],
    series: Sequence[dict[str, Any]],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> SafeString:
    """One polyline per series over the labels; gaps where a value is missing."""
    left, right, top, bottom = 40, 10, 14, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    all_values = [v for s in series for v in _numbers(s.get("values", []))]
    peak = _scale(all_values)
    parts = _frame(width, height, left, top, plot_w, plot_h, peak, title)
    n = max(len(labels), 1)
    step = plot_w / max(n - 1, 1)
    for j, s in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        for run in _runs(_numbers(s.get("values", []))):
            points = " ".join(
                f"{left + i * step:.1f},{top + plot_h - plot_h * max(v, 0) / peak:.1f}"
                for i, v in run
            )
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="2"/>'
            )
            for i, v in run:
                y = top + plot_h - plot_h * max(v, 0) / peak
                parts.append(
                    f'<circle cx="{left + i * step:.1f}" cy="{y:.1f}" r="2.5" '
                    f'fill="{colour}"/>'
                )
    for i, label in enumerate(labels):
        if n <= 16 or i % max(n // 12, 1) == 0:
            parts.append(_label(left + i * step, height - bottom + 14, label))
    parts.extend(_legend(series, left, height - 8))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text is escaped


def sparkline(
    values: Sequence[Any], *, width: int = 96, height: int = 24, colour: str = ""
) -> SafeString:
    """A small trend line without axes; empty markup for fewer than two points."""
    numbers = _numbers(values)
    known = [v for v in numbers if v is not None]
    if len(known) < 2:
        return mark_safe("")
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = (width - 4) / max(len(numbers) - 1, 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 2 - (height - 4) * (v - low) / span:.1f}"
        for i, v in enumerate(numbers)
        if v is not None
    )
    return mark_safe(  # noqa: S308 - numbers only
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="trend"><polyline points="{points}" fill="none" '
        f'stroke="{colour or PALETTE[0]}" stroke-width="1.5"/></svg>'
    )


def chart_svg(chart: dict[str, Any]) -> SafeString:
    """The SVG of one chart of the report data, by its type."""
    draw = line_chart if chart.get("type") == "line" else bar_chart
    return draw(
        [str(label) for label in chart.get("labels", [])],
        chart.get("series", []),
        title=str(chart.get("title", "")),
    )


def _runs(values: list[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append((i, v))
    return [r for r in runs if r]


def _frame(
    width: int,
    height: int,
    left: int,
    top: int,
    plot_w: int,
    plot_h: int,
    peak: float,
    title: str,
) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="10">'
    ]
    for k in range(5):
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="{AXIS if k == 0 else "#e3e7eb"}" stroke-width="1"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" '
            f'fill="{TEXT}">{_fmt(value)}</text>'
        )
    return parts


def _label(x: float, y: float, text: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="{TEXT}">'
        f"{escape(text[:14])}</text>"
    )


def _legend(series: Sequence[dict[str, Any]], x: int, y: int) -> list[str]:
    if len(series) < 2:
        return []
    parts = []
    for j, s in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + 1}" fill="{TEXT}">'
            f"{escape(str(s.get('label', '')))}</text>"
        )
        x += 24 + 7 * len(str(s.get("label", "")))
    return parts
