from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

SESSION_KEY = "tracksop_tz"
# Epoch seconds, set at login (tracksop.signals) and at each refresh.
LOGIN_AT_KEY = "tracksop_login_at"
SEEN_AT_KEY = "tracksop_seen_at"


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


def session_expired(*, login_at: float | None, now: float) -> bool:
    """A session signed in longer than TRACKSOP_SESSION_MAX_HOURS ago is over.
    One with no login time is from before this rule: its age is unknown."""
    if login_at is None:
        return True
    max_hours: float = settings.TRACKSOP_SESSION_MAX_HOURS
    return now - login_at >= max_hours * 3600


class SessionLifetimeMiddleware:
    """End a session a working day after signing in, however busy; and keep
    an active one alive past the idle limit (SESSION_COOKIE_AGE) by saving it
    again, at most once every TRACKSOP_SESSION_REFRESH_SECONDS rather than on
    every request, so most pages write nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            session = request.session
            now = timezone.now().timestamp()
            if session_expired(login_at=session.get(LOGIN_AT_KEY), now=now):
                logout(request)
                messages.info(
                    request,
                    f"You were signed out after "
                    f"{settings.TRACKSOP_SESSION_MAX_HOURS} hours: please sign in "
                    f"again.",
                )
            elif now - session.get(SEEN_AT_KEY, 0) >= (
                settings.TRACKSOP_SESSION_REFRESH_SECONDS
            ):
                # Modified, so SessionMiddleware saves it with a new expiry.
                session[SEEN_AT_KEY] = int(now)
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Headers for every response: a Permissions-Policy, and for signed-in
    staff (pages with personal data) no caching by the browser or a proxy,
    unless the view chose its own (the public tracking page)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault(
            "Permissions-Policy", settings.TRACKSOP_PERMISSIONS_POLICY
        )
        # request.user is there once AuthenticationMiddleware ran (not for
        # static files, which WhiteNoise answers before it).
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and "Cache-Control" not in response
        ):
            add_never_cache_headers(response)
        return response


class RejectNulMiddleware:
    """Answer 400 to a NUL byte anywhere in the path, query or form data.

    No field of ours can hold one (PostgreSQL text refuses it, which would be a
    500 at the first query), and no person types one: it is a probe or a broken
    client. Views validate their input too; this is the guard in front.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _has_nul(request):
            return self.get_response(request)
        text = "The request contains a NUL character, which no field accepts."
        if request.path_info.startswith("/api/"):
            # The API documents its errors as problem+json, this one too.
            from tracksop.api import problem

            return JsonResponse(
                problem(400, text), status=400, content_type="application/problem+json"
            )
        return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")


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
