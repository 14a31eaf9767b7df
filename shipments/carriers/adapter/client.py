"""Carriers' tracking APIs, through karrio's SDK (the `carriers` extra).

The one module that calls karrio: `track` asks a carrier about some tracking
numbers and answers as `shipments.carriers.tracking` describes (`Tracked`,
`NotFound`, a `CarrierError`). The rest of this package reads karrio's
answers: `wire` (the HTTP exchanges and what failed), `events` (the events'
true times and places), `answers` (which number got which answer).

`TRACKSOP_CARRIER_API_URLS` (a dict provider → base URL) points a provider's
requests elsewhere than the carrier's servers: the local fake carrier of
tests, the demo and the benchmark (`shipments.carriers.fake`).

How karrio is used, and what it does not do for us:

- One karrio gateway per `track` call (`karrio.gateway[provider].create`),
  with a `lib.Cache` backed by the Django cache: the OAuth tokens karrio
  fetches are shared by every worker process, under a hashed key (karrio's
  own key has the client secret in it).
- karrio's HTTP helper swallows status codes (it hands the error body to the
  carrier's parser) and its proxies set no timeout. We wrap the `urlopen` its
  helper calls, once: the wrapper applies `TRACKSOP_CARRIER_TIMEOUT` and adds
  the status to the response headers karrio records in its tracer
  (`wire.STATUS_HEADER`), so each call's own tracer tells us what every
  request got.
- karrio's event timestamps are the carrier's *local* time labelled UTC; the
  carriers' raw answers have the offset or the UTC time (`events`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import logging
import urllib.error
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache

from shipments.carriers.adapter.answers import answers, parse_each
from shipments.carriers.adapter.wire import STATUS_HEADER, classify, exchanges
from shipments.carriers.tracking import (
    BATCH_SIZE,
    CREDENTIAL_FIELDS,
    PROVIDER_NAMES,
    CarrierAuthFailed,
    CarrierError,
    CarrierUnavailable,
    Connection,
    KarrioMissing,
    NotFound,
    Tracked,
    credentials_missing,
)

logger = logging.getLogger(__name__)


# --- karrio, imported lazily ------------------------------------------------


@functools.cache
def karrio_sdk() -> Any:
    """karrio's SDK module (import once: the app runs without the extra)."""
    try:
        from loguru import logger

        # karrio logs every request at INFO through loguru, and its schema
        # library warns of every field karrio's schemas lack (UPS's gmtDate…):
        # the sync records each result, which is what matters.
        logger.disable("karrio")
        logging.getLogger("jstruct").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # karrio imports PyPDF2, which warns that it is deprecated.
            warnings.simplefilter("ignore", DeprecationWarning)
            sdk = importlib.import_module("karrio.sdk")
            helpers = importlib.import_module("karrio.core.utils.helpers")
    except ImportError as exc:
        raise KarrioMissing(
            "Carrier tracking needs the 'carriers' extra (karrio and its "
            "connectors): install it with `uv sync --extra carriers`."
        ) from exc
    urlopen = getattr(helpers, "urlopen")  # noqa: B009 - karrio has no stubs
    if not getattr(urlopen, "tracksop", False):
        setattr(helpers, "urlopen", _wrap_urlopen(urlopen))  # noqa: B010
    return sdk


def karrio_warm_up() -> None:
    """Load karrio's carrier plugins now. The first gateway a process asks
    for makes karrio load them all: seconds of CPU (over 10 on a busy
    2-core machine), which would otherwise fall inside the first request's
    wait (Sync now's in the web process, the first batch's in a worker)."""
    sdk = karrio_sdk()
    for provider in CREDENTIAL_FIELDS:
        sdk.gateway[provider]


def _wrap_urlopen(urlopen: Callable[..., Any]) -> Callable[..., Any]:
    def tracksop_urlopen(request: Any, timeout: float | None = None, **kw: Any) -> Any:
        wait = timeout or float(getattr(settings, "TRACKSOP_CARRIER_TIMEOUT", 10))
        try:
            response = urlopen(request, timeout=wait, **kw)
        except urllib.error.HTTPError as exc:
            if exc.headers is not None:
                exc.headers[STATUS_HEADER] = str(exc.code)
            raise
        except TimeoutError as exc:
            raise TimeoutError(f"no answer within {wait:g} s") from exc
        except urllib.error.URLError as exc:
            raise ConnectionError(f"cannot connect: {exc.reason}") from exc
        if getattr(response, "headers", None) is not None:
            response.headers[STATUS_HEADER] = str(response.status)
        return response

    tracksop_urlopen.tracksop = True  # type: ignore[attr-defined]
    return tracksop_urlopen


@functools.cache
def _settings_class(provider: str, base_url: str) -> Any:
    base = importlib.import_module(f"karrio.mappers.{provider}.settings").Settings
    if not base_url:
        return base
    url = base_url.rstrip("/")
    return type(base.__name__, (base,), {"server_url": property(lambda _self: url)})


def api_urls() -> dict[str, str]:
    value = getattr(settings, "TRACKSOP_CARRIER_API_URLS", {}) or {}
    return {str(k): str(v) for k, v in dict(value).items() if v}


class DjangoTokenCache:
    """karrio's system cache over the Django cache (Redis in production), so
    every worker uses the same OAuth tokens. Keys are hashed: karrio's hold
    the client secret."""

    prefix = "carrier-token:"

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def key(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Any:
        self.keys.add(key)
        try:
            return django_cache.get(self.key(key))
        except Exception:
            logger.warning("Carrier token cache unreadable", exc_info=True)
            return None

    def set(self, key: str, value: Any, timeout: int = 86400, **kwargs: Any) -> None:
        self.keys.add(key)
        try:
            django_cache.set(self.key(key), value, timeout=timeout)
        except Exception:
            logger.warning("Carrier token cache unwritable", exc_info=True)

    def forget(self) -> None:
        """Drop the tokens this call used (the carrier refused one)."""
        with contextlib.suppress(Exception):
            django_cache.delete_many([self.key(k) for k in self.keys])


def _gateway(connection: Connection, token_cache: DjangoTokenCache) -> Any:
    sdk = karrio_sdk()
    lib = importlib.import_module("karrio.lib")
    provider = connection.provider
    if provider not in CREDENTIAL_FIELDS:
        raise CarrierError(f"Unknown tracking provider {provider!r}.")
    missing = credentials_missing(provider, connection.credentials)
    if missing:
        raise CarrierAuthFailed(
            f"The {PROVIDER_NAMES[provider]} credentials need "
            + ", ".join(missing)
            + "."
        )
    required, optional = CREDENTIAL_FIELDS[provider]
    values = {
        k: str(v)
        for k, v in connection.credentials.items()
        if k in required or k in optional
    }
    cls = _settings_class(provider, api_urls().get(provider, ""))
    karrio_settings = cls(
        **values,
        test_mode=connection.test_mode,
        carrier_id=provider,
        id=str(connection.account_id),
    )
    return sdk.gateway[provider].create(
        karrio_settings,
        cache=lib.Cache(cache=token_cache),
        tracer=importlib.import_module("karrio.core.utils").Tracer(),
    )


def _fetch(
    connection: Connection, numbers: Sequence[str], *, retry: bool = True
) -> dict[str, Tracked | NotFound]:
    sdk = karrio_sdk()
    models = importlib.import_module("karrio.core.models")
    token_cache = DjangoTokenCache()
    gateway = _gateway(connection, token_cache)
    try:
        details, messages = (
            sdk.Tracking.fetch(models.TrackingRequest(tracking_numbers=list(numbers)))
            .from_(gateway)
            .parse()
        )
    except Exception as exc:
        raise CarrierUnavailable(
            f"{PROVIDER_NAMES[connection.provider]}: {exc}"
        ) from exc
    details, messages = list(details or []), list(messages or [])
    exchanged = exchanges(gateway)
    if len(numbers) > 1 and any(
        str(m.code or "").startswith("SHIPPING_SDK") for m in messages
    ):
        # karrio's parser fails on a whole batch for one odd number (FedEx:
        # an empty scanEvents; DHL: a ShipmentInfo without events): read the
        # numbers one by one from the same answer.
        classify(connection.provider, exchanged, [])
        one_by_one = parse_each(gateway, connection.provider, numbers, exchanged)
        if one_by_one is not None:
            return one_by_one
    try:
        classify(connection.provider, exchanged, messages)
    except CarrierAuthFailed:
        token_cache.forget()
        if retry and exchanged and not any(ex.is_token for ex in exchanged):
            # A cached token the carrier no longer takes (revoked, or its
            # clock differs from ours): once more, with a new one, before the
            # account is said to be failing.
            return _fetch(connection, numbers, retry=False)
        raise
    return answers(connection.provider, numbers, details, messages, exchanged)


def track(
    connection: Connection, numbers: Sequence[str]
) -> dict[str, Tracked | NotFound]:
    """One answer per number asked (at most BATCH_SIZE[provider] a request:
    more are sent in several)."""
    numbers = list(dict.fromkeys(n.strip() for n in numbers if n and n.strip()))
    if not numbers:
        return {}
    if connection.provider not in CREDENTIAL_FIELDS:
        raise CarrierError(f"Unknown tracking provider {connection.provider!r}.")
    size = BATCH_SIZE[connection.provider]
    out: dict[str, Tracked | NotFound] = {}
    for start in range(0, len(numbers), size):
        try:
            out.update(_fetch(connection, numbers[start : start + size]))
        except CarrierError:
            raise
        except Exception as exc:
            # karrio's (or our reading of it): never past this function.
            logger.exception("Carrier tracking failed on %s", connection.provider)
            raise CarrierUnavailable(
                f"{PROVIDER_NAMES[connection.provider]}: {exc}"
            ) from exc
    return out
