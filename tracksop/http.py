"""Request helpers shared by the public views of several apps."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

log = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with TRACKSOP_PROXY_COUNT proxies
    in front, the address the outermost trusted proxy saw (X-Forwarded-For is
    appended to by each proxy, so only its last N entries can be trusted)."""
    proxies: int = settings.TRACKSOP_PROXY_COUNT
    if proxies > 0:
        forwarded: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    remote: str = request.META.get("REMOTE_ADDR") or "0.0.0.0"  # noqa: S104
    return remote


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


def bad_request(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    """The site's 400 handler (a Host header no setting allows, a broken
    multipart body): the API answers it as problem+json, as its schema says;
    pages get Django's plain page."""
    if request.path_info.startswith("/api/"):
        from tracksop.api import problem

        return JsonResponse(
            problem(400, "The request is malformed and was not read."),
            status=400,
            content_type="application/problem+json",
        )
    return defaults.bad_request(request, exception or Exception())


def public_not_found(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    """Also the site's 404 handler: a customer's mangled link lands here."""
    return public_page(request, "public/not_found.html", {}, status=404)


# Counts go to the shared cache (Redis in production). When it fails, this
# process counts on its own, so the limits still hold while Redis is down,
# each worker process allowing its own share (gunicorn's 3 workers: up to 3
# times a limit). Large enough that flooding distinct keys cannot evict the
# counters that matter.
_LOCAL_COUNTS = LocMemCache(
    "tracksop-rate-limits", {"OPTIONS": {"MAX_ENTRIES": 100_000}}
)
# After a failure the shared cache is skipped for a while, so that every
# request does not wait for its connect timeout.
_SHARED_RETRY_AFTER = 15.0
_shared_down_until = 0.0

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


@dataclass(frozen=True)
class Usage:
    count: int  # in this window, this request included when counted
    limit: int
    time_left: int  # seconds until the window ends


def rate_split(rate: str) -> tuple[int, int]:
    """The limit and its period in seconds of a rate: 20/10m is (20, 600)."""
    match = _RATE.fullmatch(rate)
    if match is None:
        raise ValueError(f"A rate is count/period like 20/10m, not {rate!r}.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _PERIODS[unit]


def client_key(request: HttpRequest) -> str:
    """The address to count by: IPv6 clients by their /64, which one
    subscriber usually holds whole."""
    ip = client_ip(request)
    try:
        network = ipaddress.ip_network(f"{ip}/{64 if ':' in ip else 32}", strict=False)
    except ValueError:
        return ip
    return str(network.network_address)


def _count(store: BaseCache, key: str, period: int, increment: bool) -> int:
    if store.add(key, 1 if increment else 0, period + 5):
        return 1 if increment else 0
    if not increment:
        return int(store.get(key, 0))
    try:
        return int(store.incr(key))
    except ValueError:  # expired between add and incr: a new window
        store.add(key, 1, period + 5)
        return 1


def rate_usage(*, group: str, value: str, rate: str, count: bool = True) -> Usage:
    """This window's count for `value` in `group`, counting one more unless
    `count` is False. Fixed windows from the epoch, so two values asked at the
    same moment get the same time_left whatever they are."""
    global _shared_down_until
    limit, period = rate_split(rate)
    now = int(time.time())
    window = now - now % period
    digest = hashlib.sha256(f"{group}|{rate}|{value}|{window}".encode()).hexdigest()
    key = f"rl:{digest}"
    found: int | None = None
    if time.monotonic() >= _shared_down_until:
        try:
            found = _count(cache, key, period, count)
        except Exception:
            log.warning(
                "Rate limits counted in this process: the cache is down", exc_info=True
            )
            _shared_down_until = time.monotonic() + _SHARED_RETRY_AFTER
    if found is None:
        found = _count(_LOCAL_COUNTS, key, period, count)
    return Usage(count=found, limit=limit, time_left=max(window + period - now, 1))


def rate_limits_local_reset() -> None:
    """Forget the in-process counts and try the shared cache again (tests)."""
    global _shared_down_until
    _LOCAL_COUNTS.clear()
    _shared_down_until = 0.0


def over_limit(
    request: HttpRequest,
    *,
    group: str,
    rate: str,
    key: str = "ip",
    count: bool = True,
) -> int:
    """Count this request against a limit: seconds to wait once over it,
    else 0. `key` is "ip" (the client address) or a value to count by (a
    tracking number). With `count=False` it only checks, for limits that
    count failures (a later call counts one)."""
    usage = rate_usage(
        group=group,
        value=client_key(request) if key == "ip" else key,
        rate=rate,
        count=count,
    )
    # Counted, this request is one of them; checked only, the next would be.
    limited = usage.count > usage.limit if count else usage.count >= usage.limit
    return usage.time_left if limited else 0


def too_many(request: HttpRequest, wait: int) -> HttpResponse:
    response = public_page(request, "public/too_many.html", {}, status=429)
    response["Retry-After"] = str(wait)
    return response
