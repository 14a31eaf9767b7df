"""Who is calling the API and how much (see tracksop/api.py for the rest)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tracksop.api_keys import api_key_check
from tracksop.models import ApiKey

UNAUTHENTICATED = "Missing or invalid API key."


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        key = api_key_check(raw.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise exceptions.AuthenticationFailed(UNAUTHENTICATED)
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "tracksop.api_auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "tsk_…"}


class ScopePermission(BasePermission):
    """The view's `required_scopes[method]` must all be on the key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated(UNAUTHENTICATED)
        # HEAD runs the GET handler (Django's View), so it needs GET's scopes.
        method = "GET" if request.method == "HEAD" else request.method
        needed = getattr(view, "required_scopes", {}).get(method, ())
        missing = [s for s in needed if s not in key.scopes]
        if missing:
            raise exceptions.PermissionDenied(
                f"This API key lacks the scope {', '.join(missing)}."
            )
        return True


class KeyRateThrottle(SimpleRateThrottle):
    """`TRACKSOP_API_RATE` requests per key (e.g. "1200/min")."""

    def get_rate(self) -> str:
        return str(settings.TRACKSOP_API_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        key = request.auth
        return f"api-rate-{key.prefix}" if isinstance(key, ApiKey) else None

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed = super().allow_request(request, view)
        if self.key is not None:
            # SimpleRateThrottle sets these in allow_request; its stubs omit them.
            limit: int = self.num_requests  # type: ignore[attr-defined]
            window = self.duration or 1  # type: ignore[attr-defined]
            oldest = self.history[-1] if self.history else self.now
            request.rate_limit = (  # type: ignore[attr-defined]
                limit,
                max(0, limit - len(self.history)),
                max(1, int(window - (self.now - oldest))),
            )
        return allowed
