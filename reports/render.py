"""Report data → files: the PDF (WeasyPrint from the report template), a zip
with one CSV per table, and an XLSX with one sheet per table. Generic over the
shape of `reports.sections.report_data`: no metric is named here."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.template.loader import render_to_string

if TYPE_CHECKING:
    from reports.models import ReportRun


def file_stem(run: ReportRun) -> str:
    parts = ["tracksop", run.kind, f"{run.period_start}", f"{run.period_end}"]
    if run.carrier:
        parts.append(run.carrier.code)
    if run.hub:
        parts.append(run.hub.code)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))


def report_context(run: ReportRun, data: dict[str, Any]) -> dict[str, Any]:
    return {"run": run, "data": data}


def report_html(run: ReportRun, data: dict[str, Any]) -> str:
    return render_to_string("reports/report_pdf.html", report_context(run, data))


def report_pdf(run: ReportRun, data: dict[str, Any]) -> bytes:
    import weasyprint

    html = report_html(run, data)
    document = weasyprint.HTML(string=html, base_url=str(settings.BASE_DIR))
    pdf: bytes = document.write_pdf()
    return pdf


def cell_text(cell: Any) -> str:
    """A table cell as plain text for CSV and XLSX ("too few (n=3)")."""
    if isinstance(cell, dict):
        if cell.get("too_few"):
            return f"too few (n={cell.get('n', 0)})"
        return "" if cell.get("value") is None else str(cell.get("value"))
    return "" if cell is None else str(cell)


def cell_value(cell: Any) -> Any:
    if isinstance(cell, dict):
        if cell.get("too_few"):
            return cell_text(cell)
        return cell.get("value")
    return cell


def tables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(section key, table) for every table, headline first."""
    out: list[tuple[str, dict[str, Any]]] = [
        (
            "headline",
            {
                "key": "headline",
                "title": "Headline figures",
                "columns": [
                    {"key": "label", "label": "Figure"},
                    {"key": "value", "label": "Value"},
                    {"key": "unit", "label": "Unit"},
                    {"key": "n", "label": "Shipments counted"},
                    {"key": "previous", "label": "Previous period"},
                    {"key": "year_ago", "label": "A year before"},
                    {"key": "change", "label": "Change"},
                    {"key": "change_unit", "label": "Change unit"},
                ],
                "rows": [
                    {
                        **item,
                        "value": {"too_few": True, "n": item.get("n", 0)}
                        if item.get("too_few")
                        else item.get("value"),
                    }
                    for item in data.get("headline", [])
                ],
            },
        )
    ]
    for section in data.get("sections", []):
        for table in section.get("tables", []):
            out.append((section.get("key", ""), table))
    return out


def _row_cells(table: dict[str, Any], row: Any) -> list[Any]:
    columns = table.get("columns", [])
    if isinstance(row, dict):
        return [row.get(c["key"]) for c in columns]
    return list(row)


def report_csv_zip(data: dict[str, Any]) -> bytes:
    """A zip with one CSV per table (UTF-8 with BOM, so spreadsheets read it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for section, table in tables(data):
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(
                [c.get("label", c["key"]) for c in table.get("columns", [])]
            )
            for row in table.get("rows", []):
                writer.writerow([cell_text(c) for c in _row_cells(table, row)])
            name = table.get("key") or "table"
            prefix = f"{section}-" if section and section != name else ""
            archive.writestr(f"{prefix}{name}.csv", "\ufeff" + text.getvalue())
    return buffer.getvalue()


def report_xlsx(data: dict[str, Any]) -> bytes:
    """One sheet per table, the header row bold and frozen."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    for _section, table in tables(data):
        title = re.sub(r"[\[\]:*?/\\]", " ", str(table.get("title") or "Table"))[:31]
        base, k = title, 2
        while title.lower() in used:
            title = f"{base[:27]} ({k})"
            k += 1
        used.add(title.lower())
        sheet = book.create_sheet(title)
        sheet.append([c.get("label", c["key"]) for c in table.get("columns", [])])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for row in table.get("rows", []):
            sheet.append([cell_value(c) for c in _row_cells(table, row)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
