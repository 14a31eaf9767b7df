"""Webhook endpoints of the calling key's integration, under /api/v1/webhooks/.

Every view needs the `webhooks:manage` scope and sees only its own
integration's endpoints: another integration's answer 404, as an unknown one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from notifications.models import WebhookEndpoint, WebhookMessage, WebhookStatus
from notifications.serializers import (
    WebhookEndpointInputSerializer,
    WebhookEndpointSecretSerializer,
    WebhookEndpointSerializer,
    WebhookMessageDetailSerializer,
    WebhookMessageSerializer,
)
from notifications.webhooks import endpoints
from notifications.webhooks import outbox as webhook_outbox
from tracksop.api import ApiView
from tracksop.models import ApiKey, Scope

MANAGE = (Scope.WEBHOOKS_MANAGE.value,)
TAGS = ["webhooks"]


def _key(request: Request) -> ApiKey:
    key = request.auth
    if not isinstance(key, ApiKey):
        raise exceptions.NotAuthenticated()
    return key


def _endpoints(request: Request) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(integration_id=_key(request).integration_id)


def _endpoint(request: Request, code: str) -> WebhookEndpoint:
    return get_object_or_404(_endpoints(request), code=code)


def _message(request: Request, code: str, ref: str) -> WebhookMessage:
    """A message by its webhook-id (`msg_…`), of one of the caller's endpoints."""
    return get_object_or_404(
        WebhookMessage.objects.select_related("endpoint"),
        endpoint=_endpoint(request, code),
        message_id=ref,
    )


class _ManageView(ApiView):
    # HEAD runs GET: it needs what GET needs.
    required_scopes = dict.fromkeys(("GET", "HEAD", "POST", "PATCH", "DELETE"), MANAGE)


class WebhookEndpointListView(_ManageView):
    @extend_schema(tags=TAGS, responses=WebhookEndpointSerializer(many=True))
    def get(self, request: Request) -> Response:
        endpoints = _endpoints(request).order_by("created_at", "id")
        return Response(WebhookEndpointSerializer(endpoints, many=True).data)

    @extend_schema(
        tags=TAGS,
        request=WebhookEndpointInputSerializer,
        responses={201: WebhookEndpointSecretSerializer},
        description="The answer holds the signing secret; it stays readable "
        "in the admin, but keep it where your receiver can read it.",
    )
    def post(self, request: Request) -> Response:
        data = WebhookEndpointInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoints.webhook_endpoint_create(
            integration=_key(request).integration,
            url=data.validated_data["url"],
            event_types=data.validated_data["event_types"],
            description=data.validated_data.get("description", ""),
        )
        return Response(
            WebhookEndpointSecretSerializer(endpoint).data,
            status=status.HTTP_201_CREATED,
        )


class WebhookEndpointDetailView(_ManageView):
    @extend_schema(tags=TAGS, responses=WebhookEndpointSerializer)
    def get(self, request: Request, code: str) -> Response:
        return Response(WebhookEndpointSerializer(_endpoint(request, code)).data)

    @extend_schema(
        tags=TAGS,
        request=WebhookEndpointInputSerializer(partial=True),
        responses=WebhookEndpointSerializer,
    )
    def patch(self, request: Request, code: str) -> Response:
        endpoint = _endpoint(request, code)
        data = WebhookEndpointInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = endpoints.webhook_endpoint_update(
            endpoint=endpoint,
            url=data.validated_data.get("url"),
            event_types=data.validated_data.get("event_types"),
            description=data.validated_data.get("description"),
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(tags=TAGS, responses={204: None})
    def delete(self, request: Request, code: str) -> Response:
        endpoints.webhook_endpoint_delete(endpoint=_endpoint(request, code))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateView(_ManageView):
    @extend_schema(
        tags=TAGS,
        request=None,
        responses=WebhookEndpointSecretSerializer,
        description="A new secret; the previous one signs too (a second "
        "signature) until `previous_secret_expires_at`.",
    )
    def post(self, request: Request, code: str) -> Response:
        endpoint = endpoints.webhook_secret_rotate(endpoint=_endpoint(request, code))
        return Response(WebhookEndpointSecretSerializer(endpoint).data)


class WebhookEndpointEnableView(_ManageView):
    @extend_schema(tags=TAGS, request=None, responses=WebhookEndpointSerializer)
    def post(self, request: Request, code: str) -> Response:
        endpoint = endpoints.webhook_endpoint_enable(endpoint=_endpoint(request, code))
        return Response(WebhookEndpointSerializer(endpoint).data)


class WebhookTestView(_ManageView):
    @extend_schema(tags=TAGS, request=None, responses={202: WebhookMessageSerializer})
    def post(self, request: Request, code: str) -> Response:
        message = webhook_outbox.webhook_test_send(endpoint=_endpoint(request, code))
        return Response(
            WebhookMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED
        )


class MessagePages(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


class WebhookMessageListView(_ManageView):
    @extend_schema(
        tags=TAGS,
        parameters=[
            OpenApiParameter("status", enum=WebhookStatus.values, required=False),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses=WebhookMessageSerializer(many=True),
    )
    def get(self, request: Request, code: str) -> Response:
        messages = WebhookMessage.objects.filter(endpoint=_endpoint(request, code))
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in WebhookStatus.values:
                raise exceptions.ValidationError(
                    {"status": [f"Use one of {', '.join(WebhookStatus.values)}."]}
                )
            messages = messages.filter(status=wanted)
        pages = MessagePages()
        page = pages.paginate_queryset(messages, request, view=self)
        data: Any = WebhookMessageSerializer(page, many=True).data
        return pages.get_paginated_response(data)


class WebhookMessageDetailView(_ManageView):
    @extend_schema(tags=TAGS, responses=WebhookMessageDetailSerializer)
    def get(self, request: Request, code: str, ref: str) -> Response:
        message = _message(request, code, ref)
        return Response(WebhookMessageDetailSerializer(message).data)


class WebhookMessageReplayView(_ManageView):
    @extend_schema(
        tags=TAGS,
        request=None,
        responses={202: WebhookMessageSerializer},
        description="Send the stored message again, with the same webhook-id "
        "and body, as a new attempt.",
    )
    def post(self, request: Request, code: str, ref: str) -> Response:
        message = webhook_outbox.webhook_message_replay(
            message=_message(request, code, ref)
        )
        return Response(
            WebhookMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED
        )


urlpatterns = [
    path("webhooks/", WebhookEndpointListView.as_view(), name="api-webhooks"),
    path(
        "webhooks/<str:code>/",
        WebhookEndpointDetailView.as_view(),
        name="api-webhook",
    ),
    path(
        "webhooks/<str:code>/rotate-secret/",
        WebhookSecretRotateView.as_view(),
        name="api-webhook-rotate",
    ),
    path(
        "webhooks/<str:code>/enable/",
        WebhookEndpointEnableView.as_view(),
        name="api-webhook-enable",
    ),
    path(
        "webhooks/<str:code>/test/",
        WebhookTestView.as_view(),
        name="api-webhook-test",
    ),
    path(
        "webhooks/<str:code>/messages/",
        WebhookMessageListView.as_view(),
        name="api-webhook-messages",
    ),
    path(
        "webhooks/<str:code>/messages/<str:ref>/",
        WebhookMessageDetailView.as_view(),
        name="api-webhook-message",
    ),
    path(
        "webhooks/<str:code>/messages/<str:ref>/replay/",
        WebhookMessageReplayView.as_view(),
        name="api-webhook-replay",
    ),
]
