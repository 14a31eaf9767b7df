from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone

SESSION_KEY = "tracksop_tz"


class UserTimezoneMiddleware:
    """Show times in the signed-in person's zone (kept in the session at login)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if name:
            try:
                timezone.activate(zoneinfo.ZoneInfo(name))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.deactivate()
        else:
            timezone.deactivate()
        return self.get_response(request)


class RejectNulMiddleware:
    """Answer 400 to a NUL byte anywhere in the path, query or form data.

    No field of ours can hold one (PostgreSQL text refuses it, which would be a
    500 at the first query), and no person types one: it is a probe or a broken
    client. Views validate their input too; this is the guard in front.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return HttpResponseBadRequest(
                "The request contains a NUL character, which no field accepts.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info:
        return True
    for data in (request.GET, request.POST if request.method == "POST" else None):
        if data is None:
            continue
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in v for v in values if isinstance(v, str)):
                return True
    return False
