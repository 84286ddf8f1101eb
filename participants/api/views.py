from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ListApi, ReasonSerializer, error_responses
from common.auth import lp_participant_id, request_actor, require_own_participant
from participants import selectors, services
from participants.api.serializers import (
    ParticipantEnrollInputSerializer,
    ParticipantOutputSerializer,
    ParticipantUpdateInputSerializer,
)
from pools.api.serializers import MemberOutputSerializer
from pools.models import PoolMember


class ParticipantListApi(ListApi):
    serializer_class = ParticipantOutputSerializer
    filterset_fields = ["state", "tier", "revenue_model"]
    ordering_fields = ["created_at", "name", "state"]
    lp_readable = True

    def get_queryset(self) -> Any:
        participants = selectors.participant_list()
        own = lp_participant_id(self.request)
        return participants if own is None else participants.filter(pk=own)

    @extend_schema(
        request=ParticipantEnrollInputSerializer,
        responses={201: ParticipantOutputSerializer, **error_responses(409, 422)},
        description="Enroll a liquidity provider; it starts PENDING.",
    )
    def post(self, request: Request) -> Response:
        serializer = ParticipantEnrollInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        participant = services.participant_enroll(
            data=serializer.validated_data, actor=request_actor(request)
        )
        return Response(
            ParticipantOutputSerializer(participant).data, status=status.HTTP_201_CREATED
        )


class ParticipantDetailApi(APIView):
    lp_readable = True

    @extend_schema(responses={200: ParticipantOutputSerializer, **error_responses(401, 403, 404)})
    def get(self, request: Request, participant_id: str) -> Response:
        require_own_participant(request, participant_id)
        return Response(
            ParticipantOutputSerializer(
                selectors.participant_get(participant_id=participant_id)
            ).data
        )

    @extend_schema(
        request=ParticipantUpdateInputSerializer,
        responses={200: ParticipantOutputSerializer, **error_responses(409, 422)},
        description="Change mutable fields; identity (user_id, account_id) is fixed at enrolment.",
    )
    def put(self, request: Request, participant_id: str) -> Response:
        participant = selectors.participant_get(participant_id=participant_id)
        serializer = ParticipantUpdateInputSerializer(participant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        participant = services.participant_update(
            participant=participant,
            updates=serializer.validated_data,
            actor=request_actor(request),
        )
        return Response(ParticipantOutputSerializer(participant).data)


class _ParticipantActionApi(APIView):
    service: Any = None

    def post(self, request: Request, participant_id: str) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        participant = type(self).service(
            participant=selectors.participant_get(participant_id=participant_id),
            actor=request_actor(request),
            reason=serializer.validated_data["reason"],
        )
        return Response(ParticipantOutputSerializer(participant).data)


_ACTION_RESPONSES = {200: ParticipantOutputSerializer, **error_responses(409)}


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="PENDING or SUSPENDED → ACTIVE.",
)
class ParticipantActivateApi(_ParticipantActionApi):
    service = staticmethod(services.participant_activate)


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="ACTIVE → SUSPENDED: no more orders are allocated to it.",
)
class ParticipantSuspendApi(_ParticipantActionApi):
    service = staticmethod(services.participant_suspend)


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="Any state → TERMINATED, permanently; records are kept.",
)
class ParticipantTerminateApi(_ParticipantActionApi):
    service = staticmethod(services.participant_terminate)


class ParticipantMembershipsApi(ListApi):
    serializer_class = MemberOutputSerializer
    lp_readable = True

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return PoolMember.objects.none()
        require_own_participant(self.request, self.kwargs["participant_id"])
        participant = selectors.participant_get(participant_id=self.kwargs["participant_id"])
        return selectors.participant_memberships(participant=participant)
