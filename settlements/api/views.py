"""Settlement routes (SPEC Part B.16): finance moves the lifecycle; staff read
everything; an lp reads only its own participant's settlements."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ReasonSerializer, error_responses
from common.auth import FINANCE_ONLY, lp_participant_id, request_actor, require_own_participant
from settlements import selectors, services
from settlements.api.filters import SettlementFilter
from settlements.api.serializers import (
    SettlementApproveInputSerializer,
    SettlementMarkFailedInputSerializer,
    SettlementMarkSettledInputSerializer,
    SettlementOutputSerializer,
    SettlementRejectInputSerializer,
)
from settlements.models import Settlement


class SettlementListApi(generics.ListAPIView):
    serializer_class = SettlementOutputSerializer
    filterset_class = SettlementFilter
    ordering_fields = ["period_start", "created_at", "updated_at", "symbol", "state", "net_usdt"]
    lp_readable = True

    def get_queryset(self) -> Any:
        return selectors.settlement_list(participant_id=lp_participant_id(self.request))

    @extend_schema(
        responses={200: SettlementOutputSerializer(many=True), **error_responses(400, 401, 403)},
        description=(
            "Settlements, newest period first unless `ordering` says otherwise. "
            "An lp sees only its own participant's."
        ),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SettlementPendingListApi(generics.ListAPIView):
    serializer_class = SettlementOutputSerializer
    filter_backends = [DjangoFilterBackend]  # the queue's order is fixed: oldest first
    filterset_class = SettlementFilter
    lp_readable = True

    def get_queryset(self) -> Any:
        return selectors.settlement_pending_list(participant_id=lp_participant_id(self.request))

    @extend_schema(
        responses={200: SettlementOutputSerializer(many=True), **error_responses(400, 401, 403)},
        description="The approval queue: PENDING settlements, oldest period first.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SettlementDetailApi(APIView):
    lp_readable = True

    @extend_schema(responses={200: SettlementOutputSerializer, **error_responses(401, 403, 404)})
    def get(self, request: Request, settlement_id: str) -> Response:
        settlement = selectors.settlement_get(settlement_id=settlement_id)
        require_own_participant(request, settlement.participant_id)
        return Response(SettlementOutputSerializer(settlement).data)


class _SettlementActionApi(APIView):
    """One lifecycle step: find the settlement, validate the body, call the service."""

    write_roles = FINANCE_ONLY
    input_serializer: type = ReasonSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        raise NotImplementedError

    def post(self, request: Request, settlement_id: str) -> Response:
        settlement = selectors.settlement_get(settlement_id=settlement_id)
        serializer = self.input_serializer(
            data=request.data, context={"actor": request_actor(request)}
        )
        serializer.is_valid(raise_exception=True)
        settlement = self.act(request, settlement, serializer.validated_data)
        return Response(SettlementOutputSerializer(settlement).data)


_ACTION_RESPONSES = {200: SettlementOutputSerializer, **error_responses(400, 401, 403, 404, 409)}


@extend_schema(
    request=SettlementApproveInputSerializer,
    responses=_ACTION_RESPONSES,
    description="PENDING → APPROVED. `approved_by` must be the caller. Finance only.",
)
class SettlementApproveApi(_SettlementActionApi):
    input_serializer = SettlementApproveInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_approve(settlement=settlement, actor=request_actor(request))


@extend_schema(
    request=SettlementRejectInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "PENDING → REJECTED, with a reason. `rejected_by` must be the caller. Finance only."
    ),
)
class SettlementRejectApi(_SettlementActionApi):
    input_serializer = SettlementRejectInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_reject(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="REJECTED → PENDING: back into the approval queue. Finance only.",
)
class SettlementRecalculateApi(_SettlementActionApi):
    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_recalculate(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )


@extend_schema(
    request=SettlementMarkSettledInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "APPROVED → SETTLED, or a retry FAILED → SETTLED under the same id: finance "
        "executed the transfer outside MMS. Finance only."
    ),
)
class SettlementMarkSettledApi(_SettlementActionApi):
    input_serializer = SettlementMarkSettledInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_mark_settled(
            settlement=settlement,
            actor=request_actor(request),
            payout_reference=data["payout_reference"],
        )


@extend_schema(
    request=SettlementMarkFailedInputSerializer,
    responses=_ACTION_RESPONSES,
    description="APPROVED → FAILED, with a reason; it may be retried. Finance only.",
)
class SettlementMarkFailedApi(_SettlementActionApi):
    input_serializer = SettlementMarkFailedInputSerializer

    def act(self, request: Request, settlement: Settlement, data: dict[str, Any]) -> Settlement:
        return services.settlement_mark_failed(
            settlement=settlement, actor=request_actor(request), reason=data["reason"]
        )
