"""The shipments app's endpoints under /api/v1/ (plumbing: tracksop/api.py).

Each view: scope → look-up → the same form or validation as the staff pages →
one service → the shipment as JSON. Writes record the API key as responsible
(`ApiKey.label` in the event's `integration`, shown in the timeline).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from notifications.links import tracking_url
from shipments import services
from shipments.dispatch import shipment_check, shipment_dispatch
from shipments.forms import DispatchForm, ShipmentForm
from shipments.ingest import CheckpointIn, IngestResult, checkpoints_ingest
from shipments.models import Carrier, Shipment, Source
from shipments.public import public_tracking
from shipments.selectors import shipments_by_codes
from shipments.serializers import (
    BatchCheckpointSerializer,
    BatchResultSerializer,
    BatchSerializer,
    CancelSerializer,
    CheckpointSerializer,
    CheckSerializer,
    DispatchSerializer,
    EventSerializer,
    ShipmentPageSerializer,
    ShipmentSerializer,
    ShipmentWriteSerializer,
    TrackingSerializer,
    as_form_value,
    form_data,
)
from shipments.status import ShipmentStatus
from tracksop.api import ApiView
from tracksop.models import ApiKey, Scope

READ = (Scope.SHIPMENTS_READ.value,)
WRITE = (Scope.SHIPMENTS_WRITE.value,)
EVENTS = (Scope.EVENTS_WRITE.value,)


def integration(request: Request) -> str:
    key = request.auth
    return key.label if isinstance(key, ApiKey) else ""


def shipment_by_reference(reference: str) -> Shipment:
    """A shipment by its shipment ID or tracking number, or 404."""
    if "\x00" in reference or len(reference) > 60:
        raise Http404
    pk = shipments_by_codes([reference]).get(reference.strip().upper())
    if pk is None:
        raise Http404
    return Shipment.objects.select_related("carrier", "current_location").get(pk=pk)


def valid(serializer_class: type[serializers.Serializer[Any]], request: Request) -> Any:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def shown(shipment: Shipment) -> dict[str, Any]:
    fresh = Shipment.objects.select_related("carrier", "current_location").get(
        pk=shipment.pk
    )
    return dict(ShipmentSerializer(fresh).data)


class UpdatedPagination(CursorPagination):
    """Oldest change first, so a client that syncs "updated since" its last
    read pages forward without gaps."""

    ordering = ("updated_at", "id")
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500


LIST_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=ShipmentStatus.values),
    OpenApiParameter("carrier", OpenApiTypes.STR, description="Carrier code"),
    OpenApiParameter("updated_since", OpenApiTypes.DATETIME),
    OpenApiParameter("order_number", OpenApiTypes.STR),
]


class ListFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=ShipmentStatus.choices, required=False)
    carrier = serializers.CharField(required=False, max_length=32)
    updated_since = serializers.DateTimeField(required=False)
    order_number = serializers.CharField(required=False, max_length=64)


class ShipmentsView(ApiView):
    required_scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(
        operation_id="shipments_list",
        parameters=LIST_PARAMETERS,
        responses=ShipmentPageSerializer,
    )
    def get(self, request: Request) -> Response:
        # A plain dict: an empty value is refused, not taken for "no filter".
        wanted = ListFilter(data=request.query_params.dict())
        wanted.is_valid(raise_exception=True)
        query: QuerySet[Shipment] = Shipment.objects.select_related(
            "carrier", "current_location"
        )
        filters = wanted.validated_data
        if "status" in filters:
            query = query.filter(status=filters["status"])
        if "carrier" in filters:
            query = query.filter(carrier__code=filters["carrier"])
        if "updated_since" in filters:
            query = query.filter(updated_at__gte=filters["updated_since"])
        if "order_number" in filters:
            query = query.filter(order_number__iexact=filters["order_number"])
        paginator = UpdatedPagination()
        page = paginator.paginate_queryset(query, request, view=self)
        return paginator.get_paginated_response(
            ShipmentSerializer(page, many=True).data
        )

    @extend_schema(request=ShipmentWriteSerializer, responses={201: ShipmentSerializer})
    def post(self, request: Request) -> Response:
        data = valid(ShipmentWriteSerializer, request)
        form = ShipmentForm(data={k: as_form_value(v) for k, v in data.items()})
        details = form_data(form)
        shipment = services.shipment_create(
            user=None,
            details={k: v for k, v in details.items() if k != "shipment_id"},
            shipment_id=details.get("shipment_id", ""),
            source=Source.API,
            integration=integration(request),
        )
        return Response(
            shown(shipment),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/shipments/{shipment.shipment_id}/"},
        )


class ShipmentView(ApiView):
    required_scopes = {"GET": READ, "PATCH": WRITE}

    @extend_schema(responses=ShipmentSerializer)
    def get(self, request: Request, reference: str) -> Response:
        return Response(ShipmentSerializer(shipment_by_reference(reference)).data)

    @extend_schema(
        request=ShipmentWriteSerializer(partial=True), responses=ShipmentSerializer
    )
    def patch(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        serializer = ShipmentWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = data.pop("version", None)
        data.pop("shipment_id", None)
        current = {
            name: as_form_value(value)
            for name, value in ShipmentForm(instance=shipment).initial.items()
        }
        form = ShipmentForm(
            data={
                **current,
                **{k: as_form_value(v) for k, v in data.items()},
                "version": shipment.version,
            },
            instance=Shipment.objects.get(pk=shipment.pk),
        )
        details = form_data(form)
        details.pop("version", None)
        updated = services.shipment_update(
            shipment=shipment,
            user=None,
            details=details,
            expected_version=version,
            source=Source.API,
            integration=integration(request),
        )
        return Response(shown(updated))


class DispatchView(ApiView):
    required_scopes = {"POST": WRITE}

    @extend_schema(request=DispatchSerializer, responses=ShipmentSerializer)
    def post(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        data = valid(DispatchSerializer, request)
        carrier = None
        if data.get("carrier"):
            carrier = Carrier.objects.filter(
                code=data["carrier"], is_active=True
            ).first()
            if carrier is None:
                raise serializers.ValidationError(
                    {"carrier": ["No active carrier has this code."]}
                )
        form = DispatchForm(
            data={
                "carrier": carrier.pk if carrier else "",
                "tracking_number": data.get("tracking_number", ""),
                "estimated_delivery": data["estimated_delivery"],
                "version": data.get("version", shipment.version),
            },
            shipment=shipment,
        )
        cleaned = form_data(form)
        dispatched = shipment_dispatch(
            shipment=shipment,
            user=None,
            carrier=cleaned["carrier"],
            tracking_number=cleaned["tracking_number"],
            estimated_delivery=cleaned["estimated_delivery"],
            expected_version=data.get("version"),
            source=Source.API,
            integration=integration(request),
        )
        return Response(shown(dispatched))


class CheckView(ApiView):
    required_scopes = {"POST": WRITE}

    @extend_schema(request=CheckSerializer, responses=ShipmentSerializer)
    def post(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        data = valid(CheckSerializer, request)
        checked = shipment_check(
            shipment=shipment,
            user=None,
            quality_ok=data["quality_ok"],
            quantity_ok=data["quantity_ok"],
            notes=data.get("notes", ""),
            expected_version=data.get("version"),
            source=Source.API,
            integration=integration(request),
        )
        return Response(shown(checked))


class CancelView(ApiView):
    required_scopes = {"POST": WRITE}

    @extend_schema(request=CancelSerializer, responses=ShipmentSerializer)
    def post(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        data = valid(CancelSerializer, request)
        cancelled = services.shipment_cancel(
            shipment=shipment,
            user=None,
            reason=data["reason"],
            expected_version=data.get("version"),
            source=Source.API,
            integration=integration(request),
        )
        return Response(shown(cancelled))


def checkpoint_in(reference: str, data: dict[str, Any]) -> CheckpointIn:
    return CheckpointIn(
        reference=reference,
        kind=data["kind"],
        occurred_at=data.get("occurred_at") or timezone.now(),
        location=data.get("location", ""),
        notes=data.get("notes", ""),
        external_id=data.get("external_id", ""),
    )


def result_json(index: int, result: IngestResult) -> dict[str, Any]:
    return {
        "index": index,
        "status": result.status,
        "shipment_id": result.shipment_id,
        "event_id": result.event_id,
        "reason": result.reason,
        "errors": {k: list(v) for k, v in result.errors.items()},
    }


class CheckpointView(ApiView):
    required_scopes = {"POST": EVENTS}

    @extend_schema(
        request=CheckpointSerializer,
        responses={201: EventSerializer, 200: EventSerializer},
        description="Created: 201. The same `external_id` again: 200 with the "
        "first event and `duplicate: true`. A move the status machine refuses "
        "(e.g. a scan after delivery): 409.",
    )
    def post(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        data = valid(CheckpointSerializer, request)
        [result] = checkpoints_ingest(
            [checkpoint_in(shipment.shipment_id, data)],
            source=Source.API,
            integration=integration(request),
        )
        if result.status == "refused":
            if result.errors:
                raise serializers.ValidationError(dict(result.errors))
            raise services.TransitionRefused(result.reason)
        event = shipment.events.select_related("location").get(pk=result.event_id or 0)
        body = dict(EventSerializer(event).data)
        body["duplicate"] = result.status == "duplicate"
        return Response(
            body,
            status=status.HTTP_200_OK
            if result.status == "duplicate"
            else status.HTTP_201_CREATED,
        )


class CheckpointBatchView(ApiView):
    required_scopes = {"POST": EVENTS}

    @extend_schema(
        request=BatchSerializer,
        responses=BatchResultSerializer,
        description="Up to 1,000 checkpoints, each naming its shipment by "
        "`reference`; each gets its own result in the order sent: created, "
        "duplicate (its `external_id` is already there) or refused (with the "
        "reason). Good items are saved even when others are refused.",
    )
    def post(self, request: Request) -> Response:
        data = valid(BatchSerializer, request)
        results: dict[int, IngestResult] = {}
        accepted: list[tuple[int, CheckpointIn]] = []
        # One serializer for every item, as a ListSerializer does: making one
        # per item copies its fields each time, most of the web layer's cost
        # for a batch (0.4 ms an item).
        item = BatchCheckpointSerializer()
        for index, raw in enumerate(data["checkpoints"]):
            if not isinstance(raw, dict):
                results[index] = IngestResult(
                    "refused",
                    reason="Each checkpoint is an object with reference and kind.",
                )
                continue
            try:
                values = dict(item.run_validation(raw))
            except serializers.ValidationError as exc:
                errors = exc.detail if isinstance(exc.detail, dict) else {}
                results[index] = IngestResult(
                    "refused",
                    reason="Invalid checkpoint.",
                    errors={k: [str(m) for m in v] for k, v in errors.items()},
                )
                continue
            accepted.append((index, checkpoint_in(values.pop("reference"), values)))
        ingested = checkpoints_ingest(
            [c for _, c in accepted],
            source=Source.API,
            integration=integration(request),
        )
        for (index, _), result in zip(accepted, ingested, strict=True):
            results[index] = result
        ordered = [result_json(i, results[i]) for i in sorted(results)]
        counts = Counter(r["status"] for r in ordered)
        return Response(
            {
                "created": counts["created"],
                "duplicate": counts["duplicate"],
                "refused": counts["refused"],
                "results": ordered,
            }
        )


class TrackingView(ApiView):
    required_scopes = {"GET": READ}

    @extend_schema(
        responses=TrackingSerializer,
        description="What the public tracking page shows, for a shop's own "
        "'where is my order' page: no names, addresses or staff notes.",
    )
    def get(self, request: Request, reference: str) -> Response:
        shipment = shipment_by_reference(reference)
        tracking = public_tracking(token=shipment.public_token)
        if tracking is None:
            raise Http404
        body = dict(
            TrackingSerializer(
                {**tracking.__dict__, "public_url": tracking_url(tracking.token)}
            ).data
        )
        return Response(body)


urlpatterns = [
    path("shipments/", ShipmentsView.as_view(), name="api-shipments"),
    path("shipments/<str:reference>/", ShipmentView.as_view(), name="api-shipment"),
    path("shipments/<str:reference>/check/", CheckView.as_view(), name="api-check"),
    path(
        "shipments/<str:reference>/dispatch/",
        DispatchView.as_view(),
        name="api-dispatch",
    ),
    path("shipments/<str:reference>/cancel/", CancelView.as_view(), name="api-cancel"),
    path(
        "shipments/<str:reference>/checkpoints/",
        CheckpointView.as_view(),
        name="api-checkpoint",
    ),
    path(
        "shipments/<str:reference>/tracking/",
        TrackingView.as_view(),
        name="api-tracking",
    ),
    path("checkpoints/", CheckpointBatchView.as_view(), name="api-checkpoints"),
]
