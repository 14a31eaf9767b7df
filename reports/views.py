"""Report pages: the list, a new run, a run's page, and its files."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from reports import services
from reports.forms import ReportRequestForm
from reports.models import ReportRun, RunStatus
from tracksop.web import paginate, posted, staff_view

PERM = "reports.request_report"
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "csv": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@staff_view(PERM)
def report_list(request: HttpRequest) -> HttpResponse:
    form = ReportRequestForm(posted(request))
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            run = services.report_request(
                kind=form.cleaned_data["kind"],
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                carrier=form.cleaned_data["carrier"],
                hub=form.cleaned_data["hub"],
                user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # a field's refusal lands at that field
        else:
            return redirect(run)
    if request.method == "POST":
        status = 400
    runs = (
        ReportRun.objects.select_related("carrier", "hub", "requested_by", "schedule")
        .defer("data")
        .order_by("-created_at", "-id")
    )
    page = paginate(request, runs)
    return render(
        request, "reports/list.html", {"form": form, "page": page}, status=status
    )


@staff_view(PERM)
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        ReportRun.objects.select_related("carrier", "hub", "requested_by"), pk=pk
    )
    return render(
        request,
        "reports/detail.html",
        {"run": run, "data": run.data, "done": run.status == RunStatus.DONE},
    )


@staff_view(PERM)
def report_file(request: HttpRequest, pk: int, kind: str) -> FileResponse:
    run = get_object_or_404(ReportRun, pk=pk, status=RunStatus.DONE)
    if kind not in CONTENT_TYPES:
        raise Http404
    field = getattr(run, kind)
    if not field:
        raise Http404
    name = field.name.rsplit("/", 1)[-1]
    return FileResponse(
        field.open("rb"),
        as_attachment=True,
        filename=name,
        content_type=CONTENT_TYPES[kind],
    )
