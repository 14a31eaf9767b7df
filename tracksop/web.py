"""The pages' shared plumbing: every app's views use it.

A staff page is permission → selector → form → one service → redirect or
render. What is the same on every page lives here: the permission decorator,
the GET-or-POST method guard, binding a form only to a POST, calling a
service and turning its refusals into form messages and a status (bad input
400, a refusal 409, a right the user lacks 403), the plain form page, and
cutting a queryset into the page the request asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from tracksop.errors import Refused

# HttpResponseBase: a file download is a streaming response.
V = TypeVar("V", bound=Callable[..., HttpResponseBase])

GET_POST = require_http_methods(["GET", "POST"])


def staff_view(perm: str) -> Callable[[V], V]:
    """Anonymous → login page; signed in without `perm` → 403."""

    def decorate(view: V) -> V:
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorate


def posted(request: HttpRequest) -> QueryDict | None:
    """The data to bind a form to: the POST, else None (an unbound form)."""
    # Not `request.POST or None`: an empty POST must bind, so it gets messages.
    return request.POST if request.method == "POST" else None


def run_service[T](form: BaseForm, action: Callable[[], T]) -> tuple[T | None, int]:
    """Call a service; map its refusals onto the form. Returns (result, status):
    200 with the result, else None with 400, 409 or 403."""
    try:
        return action(), 200
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc)
        return None, 400
    except Refused as exc:
        form.add_error(None, str(exc))
        return None, 409
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None, 403


def form_page(
    request: HttpRequest,
    form: BaseForm,
    *,
    title: str,
    shipment: Model | None = None,
    status: int = 200,
    intro: str = "",
) -> HttpResponse:
    """A page of one form, under the shipment it acts on if any. A POST that
    comes back here with 200 did not validate: it answers 400."""
    if request.method == "POST" and status == 200:
        status = 400
    return render(
        request,
        "shipments/form_page.html",
        {"form": form, "title": title, "shipment": shipment, "intro": intro},
        status=status,
    )


def paginate(request: HttpRequest, rows: QuerySet[Any] | Sequence[Any]) -> Page[Any]:
    """The page of `rows` that `?page=` asks for, TRACKSOP_PAGE_SIZE long; a
    number out of range or not a number gets the nearest page."""
    return Paginator(rows, settings.TRACKSOP_PAGE_SIZE).get_page(
        request.GET.get("page")
    )


def page_params(request: HttpRequest) -> str:
    """The query string without `page`, for the pager's links to keep the filter."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
