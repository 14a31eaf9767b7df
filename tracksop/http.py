"""Request helpers shared by the public views of several apps."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with TRACKSOP_PROXY_COUNT proxies
    in front, the address the outermost trusted proxy saw (X-Forwarded-For is
    appended to by each proxy, so only its last N entries can be trusted)."""
    proxies = settings.TRACKSOP_PROXY_COUNT
    if proxies > 0:
        hops = [
            h.strip()
            for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if h.strip()
        ]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or "0.0.0.0"  # noqa: S104


# --- public pages (no login): shared by shipments and notifications ----------


def public_page(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """A public page: its own base template and nothing but `context`."""
    return render(
        request,
        template,
        {**context, "company": settings.TRACKSOP_COMPANY_NAME},
        status=status,
    )


def public_not_found(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    """Also the site's 404 handler: a customer's mangled link lands here."""
    return public_page(request, "public/not_found.html", {}, status=404)


def over_limit(
    request: HttpRequest,
    *,
    group: str,
    rate: str,
    key: str = "ip",
    count: bool = True,
) -> int:
    """Count this request against a limit (django-ratelimit, in the cache):
    seconds to wait once over it, else 0. `key` is "ip" (the client address)
    or a value to count by (a tracking number). With `count=False` it only
    checks, for limits that count failures (a later call counts one). A cache
    that is down lets the request through: the database's own caps and
    constraints still hold."""
    try:
        usage = get_usage(
            request,
            group=group,
            key=key if key == "ip" else (lambda _group, _request: key),
            rate=rate,
            increment=count,
        )
    except Exception:
        log.warning("Rate limit not counted: the cache is down", exc_info=True)
        return 0
    if usage is None:
        return 0
    # Counted, this request is one of them; checked only, the next would be.
    limited = usage["should_limit"] if count else usage["count"] >= usage["limit"]
    return max(int(usage["time_left"]), 1) if limited else 0


def too_many(request: HttpRequest, wait: int) -> HttpResponse:
    response = public_page(request, "public/too_many.html", {}, status=429)
    response["Retry-After"] = str(wait)
    return response
