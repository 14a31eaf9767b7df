"""The integration API's shared plumbing, used by every app's `api.py`.

In `tracksop/api_auth.py` (DRF's settings import them, so they import no views):
- `ApiKeyAuthentication`: `Authorization: Bearer tsk_…`; `request.auth` is the
  `ApiKey`. Missing, unknown, wrong, expired and revoked keys get one 401.
- `ScopePermission`: each view names `required_scopes` per HTTP method (403).
- `KeyRateThrottle`: a sliding window per key; every answer carries
  `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, a 429
  `Retry-After` too.

Here:
- `problem_handler`: errors as `application/problem+json` (RFC 9457), field
  errors under `errors`; a service's refusal is a 409, its validation a 400.
- `ApiView`: the base view; it refuses bodies over `TRACKSOP_API_MAX_BODY`
  (413) and makes a POST with an `Idempotency-Key` header idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse, RawPostDataException
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from tracksop.errors import Refused
from tracksop.models import IDEMPOTENCY_TTL, ApiKey, IdempotencyRecord

IDEMPOTENCY_KEY_MAX = 255


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class IdempotencyMismatch(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was used with another request (method, path or "
        "body) in the last 24 hours; use a new key for a new request."
    )
    default_code = "idempotency_key_reused"


class Replay(Exception):
    """The stored response of an earlier request with this Idempotency-Key."""

    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
        return exceptions.ValidationError(
            get_error_detail(DjangoValidationError(detail))
        )
    if isinstance(exc, Refused):
        return Conflict(str(exc))
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    return exc


def problem(status_code: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem body."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" or "items.3.kind": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, Mapping):
        for name, value in errors.items():
            field = "detail" if name == "non_field_errors" else str(name)
            out.update(_flatten(value, f"{prefix}.{field}" if prefix else field))
    elif (
        isinstance(errors, list)
        and errors
        and not all(isinstance(e, str) for e in errors)
    ):
        for index, value in enumerate(errors):
            if value:
                out.update(
                    _flatten(value, f"{prefix}.{index}" if prefix else str(index))
                )
    else:
        messages = errors if isinstance(errors, list) else [errors]
        out[prefix or "detail"] = [str(m) for m in messages]
    return out


def problem_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, dict(context))
    if response is None:
        return None  # a bug: Django's 500 handling (and its log) takes over
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()))
        body = problem(
            response.status_code,
            f"{first[0]}: {first[1][0]}" if first[0] != "detail" else first[1][0],
            errors=errors,
        )
    else:
        detail = (
            response.data.get("detail", "") if isinstance(response.data, dict) else ""
        )
        body = problem(response.status_code, str(detail))
    response.data = body
    response.content_type = "application/problem+json"
    return response


def fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    try:
        digest.update(request.body)  # the raw bytes, as sent
    except RawPostDataException:
        # Django read a multipart body into request.POST already: not JSON.
        raise exceptions.UnsupportedMediaType(request.content_type) from None
    return digest.hexdigest()


class ApiView(APIView):
    """Base of every API view: body size, idempotent POSTs, rate-limit headers."""

    required_scopes: ClassVar[dict[str, tuple[str, ...]]] = {}
    idempotency: IdempotencyRecord | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.TRACKSOP_API_MAX_BODY:
            raise PayloadTooLarge(
                f"The request body is {length} bytes; the limit is "
                f"{settings.TRACKSOP_API_MAX_BODY}."
            )
        super().initial(request, *args, **kwargs)
        if request.method == "POST" and "HTTP_IDEMPOTENCY_KEY" in request.META:
            self.idempotency = self.claim_key(request)

    def claim_key(self, request: Request) -> IdempotencyRecord:
        key = request.META["HTTP_IDEMPOTENCY_KEY"].strip()
        if not key or len(key) > IDEMPOTENCY_KEY_MAX or "\x00" in key:
            raise exceptions.ValidationError(
                {"Idempotency-Key": [f"Use 1 to {IDEMPOTENCY_KEY_MAX} characters."]}
            )
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated()
        print_ = fingerprint(request)
        IdempotencyRecord.objects.filter(
            api_key=api_key, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_TTL
        ).delete()
        try:
            # Waits here while another request with this key is running.
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    api_key=api_key, key=key, fingerprint=print_
                )
        except IntegrityError:
            record = IdempotencyRecord.objects.get(api_key=api_key, key=key)
        if record.fingerprint != print_:
            raise IdempotencyMismatch()
        raise Replay(record)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.idempotency = None
        if request.method != "POST" or "HTTP_IDEMPOTENCY_KEY" not in request.META:
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            record = self.idempotency
            if record is not None:
                response.render()
                if response.status_code >= 500 or response.status_code == 429:
                    transaction.set_rollback(True)
                else:
                    record.status_code = response.status_code
                    record.body = bytes(response.content)
                    record.content_type = response.get("Content-Type", "")
                    record.save(update_fields=["status_code", "body", "content_type"])
        return response

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Replay):
            record = exc.record
            replayed = HttpResponse(
                bytes(record.body),
                status=record.status_code or 200,
                content_type=record.content_type or "application/json",
            )
            replayed["Idempotent-Replayed"] = "true"
            return replayed  # type: ignore[return-value]
        return super().handle_exception(exc)

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        limit = getattr(request, "rate_limit", None)
        if limit is not None:
            response["RateLimit-Limit"] = str(limit[0])
            response["RateLimit-Remaining"] = str(limit[1])
            response["RateLimit-Reset"] = str(limit[2])
        return response


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["type", "title", "status", "detail"],
}
ERROR_RESPONSES = {
    "400": "Invalid input: `errors` names each field",
    "401": "Missing or invalid API key",
    "403": "The key lacks the scope",
    "404": "Not found",
    "405": "Method not allowed",
    "409": "Refused in the shipment's current state, or edited by someone else",
    "413": "The body is too large",
    "415": "Not JSON",
    "422": "The Idempotency-Key was used with another request",
    "429": "Rate limit exceeded: see Retry-After",
}
RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("RateLimit-Limit", "Requests allowed in the window"),
        ("RateLimit-Remaining", "Requests left in the window"),
        ("RateLimit-Reset", "Seconds until the window has room again"),
    )
}


def problem_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular hook: every operation documents its problem+json
    errors, its rate-limit headers and, on POST, the Idempotency-Key."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
        PROBLEM_SCHEMA
    )
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for response in responses.values():
                response.setdefault("headers", {}).update(RATE_HEADERS)
            for code, text in ERROR_RESPONSES.items():
                if code in ("413", "415", "422") and method not in ("post", "patch"):
                    continue
                responses.setdefault(
                    code,
                    {
                        "description": text,
                        "content": {
                            "application/problem+json": {"schema": problem_ref}
                        },
                    },
                )
            # Carrier pushes are deduplicated by the provider's event id.
            if method == "post" and "/carriers/" not in path:
                operation.setdefault("parameters", []).append(
                    {
                        "in": "header",
                        "name": "Idempotency-Key",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        "description": "The same key and body within 24 hours "
                        "returns the first response instead of acting again.",
                    }
                )
    return result
