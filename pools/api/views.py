from __future__ import annotations

from collections import Counter
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ListApi, NoteSerializer, ReasonSerializer, error_responses
from common.auth import request_actor
from common.errors import error_body
from common.exceptions import SEMANTIC
from common.models import OutboxEvent
from participants.models import Participant
from pools import selectors, services
from pools.api.serializers import (
    FlattenOutputSerializer,
    KillOutputSerializer,
    MemberInputSerializer,
    MemberOutputSerializer,
    MemberUpdateInputSerializer,
    MMStatusSerializer,
    PoolConfigInputSerializer,
    PoolCreateInputSerializer,
    PoolDetailStatusSerializer,
    PoolListQuerySerializer,
    PoolOutputSerializer,
    PoolStatusSerializer,
    UnwindInputSerializer,
)
from pools.enums import FlattenStatus
from pools.models import FlattenRequest, PoolMember


class PoolListCreateApi(ListApi):
    serializer_class = PoolOutputSerializer
    filterset_fields = ["state", "enabled"]
    ordering_fields = ["symbol", "state", "updated_at"]

    def get_queryset(self) -> Any:
        query = PoolListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.pool_list(include_archived=query.validated_data["include_archived"])

    @extend_schema(parameters=[PoolListQuerySerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PoolCreateInputSerializer,
        responses={
            200: PoolOutputSerializer,
            201: PoolOutputSerializer,
            **error_responses(409, 422),
        },
        description="Create a pool (it starts PAUSED), or update the one with this symbol.",
    )
    def post(self, request: Request) -> Response:
        serializer = PoolCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = dict(serializer.validated_data)
        symbol = config.pop("symbol")
        pool, created = services.pool_create_or_update(
            symbol=symbol, config=config, actor=request_actor(request)
        )
        return Response(
            PoolOutputSerializer(pool).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PoolDetailApi(APIView):
    @extend_schema(responses={200: PoolOutputSerializer, **error_responses(401, 403, 404)})
    def get(self, request: Request, symbol: str) -> Response:
        return Response(PoolOutputSerializer(selectors.pool_get(symbol=symbol)).data)

    @extend_schema(
        request=PoolConfigInputSerializer(partial=True),
        responses={200: PoolOutputSerializer, **error_responses(409, 422)},
        description="Partial update: send only the fields to change.",
    )
    def put(self, request: Request, symbol: str) -> Response:
        pool = selectors.pool_get(symbol=symbol)
        serializer = PoolConfigInputSerializer(pool, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        pool = services.pool_update(
            pool=pool, config=serializer.validated_data, actor=request_actor(request)
        )
        return Response(PoolOutputSerializer(pool).data)

    @extend_schema(
        request=None,
        responses={200: PoolOutputSerializer, **error_responses(401, 403, 404, 409)},
        description=(
            "Archive the pool (never a hard delete). The pool must not be ACTIVE or UNWINDING."
        ),
    )
    def delete(self, request: Request, symbol: str) -> Response:
        pool = services.pool_archive(
            pool=selectors.pool_get(symbol=symbol), actor=request_actor(request)
        )
        return Response(PoolOutputSerializer(pool).data)


class _PoolActionApi(APIView):
    input_serializer: type = ReasonSerializer

    def act(self, request: Request, pool: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def post(self, request: Request, symbol: str) -> Response:
        serializer = self.input_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pool = self.act(request, selectors.pool_get(symbol=symbol), serializer.validated_data)
        return Response(PoolOutputSerializer(pool).data)


_ACTION_RESPONSES = {200: PoolOutputSerializer, **error_responses(409, 422)}


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="PAUSED → ACTIVE; sets enabled.",
)
class PoolEnableApi(_PoolActionApi):
    def act(self, request: Request, pool: Any, data: dict[str, Any]) -> Any:
        return services.pool_enable(pool=pool, actor=request_actor(request), reason=data["reason"])


@extend_schema(
    request=ReasonSerializer,
    responses=_ACTION_RESPONSES,
    description="ACTIVE or UNWINDING → PAUSED.",
)
class PoolPauseApi(_PoolActionApi):
    def act(self, request: Request, pool: Any, data: dict[str, Any]) -> Any:
        return services.pool_pause(pool=pool, actor=request_actor(request), reason=data["reason"])


@extend_schema(
    request=NoteSerializer,
    responses=_ACTION_RESPONSES,
    description="PAUSED or HALTED → ACTIVE. From HALTED a review note is required.",
)
class PoolResumeApi(_PoolActionApi):
    input_serializer = NoteSerializer

    def act(self, request: Request, pool: Any, data: dict[str, Any]) -> Any:
        return services.pool_resume(pool=pool, actor=request_actor(request), note=data["note"])


@extend_schema(
    request=UnwindInputSerializer,
    responses=_ACTION_RESPONSES,
    description=(
        "PAUSED or HALTED → UNWINDING (SPEC B.20), by a person with a note: each member "
        "quotes only the side that brings its position back to flat, never more than the "
        "position, within unwind_band_bps of mid. It ends PAUSED when every member is "
        "flat, after unwind_time_limit_s, or on a pause; a kill halts it."
    ),
)
class PoolUnwindApi(_PoolActionApi):
    input_serializer = UnwindInputSerializer

    def act(self, request: Request, pool: Any, data: dict[str, Any]) -> Any:
        return services.pool_unwind(pool=pool, actor=request_actor(request), note=data["note"])


class PoolStatusListApi(APIView):
    @extend_schema(responses={200: PoolStatusSerializer(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        pools = list(selectors.pool_list())
        live = selectors.live_status_get(symbols=[p.symbol for p in pools])
        data = [selectors.pool_status(p, live[p.symbol]) for p in pools]
        return Response(PoolStatusSerializer(data, many=True).data)


class PoolStatusApi(APIView):
    @extend_schema(responses={200: PoolDetailStatusSerializer, **error_responses(401, 403, 404)})
    def get(self, request: Request, symbol: str) -> Response:
        pool = selectors.pool_get(symbol=symbol)
        live = selectors.live_status_get(symbols=[symbol])[symbol]
        data = {**selectors.pool_status(pool, live), "members": selectors.member_list(pool=pool)}
        return Response(PoolDetailStatusSerializer(data).data)


class MemberListApi(ListApi):
    serializer_class = MemberOutputSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return PoolMember.objects.none()
        return selectors.member_list(pool=selectors.pool_get(symbol=self.kwargs["symbol"]))

    @extend_schema(
        request=MemberInputSerializer,
        responses={201: MemberOutputSerializer, **error_responses(409, 422)},
        description=(
            "Add a participant to the pool. A participant that does not exist or is "
            "TERMINATED: 422; one already a member, or an archived pool: 409."
        ),
    )
    def post(self, request: Request, symbol: str) -> Response:
        pool = selectors.pool_get(symbol=symbol)
        serializer = MemberInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        participant = Participant.objects.filter(pk=data["participant_id"]).first()
        if participant is None:
            raise ValidationError(
                {"participant_id": ["no participant with this id"]}, code=SEMANTIC
            )
        member = services.member_add(
            pool=pool,
            participant=participant,
            weight=data["weight"],
            max_position_usdt=data["max_position_usdt"],
            actor=request_actor(request),
        )
        member = selectors.member_get(pool=pool, member_id=member.pk)
        return Response(MemberOutputSerializer(member).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    @extend_schema(
        request=MemberUpdateInputSerializer,
        responses={200: MemberOutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    def put(self, request: Request, symbol: str, member_id: int) -> Response:
        pool = selectors.pool_get(symbol=symbol)
        member = selectors.member_get(pool=pool, member_id=member_id)
        serializer = MemberUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.member_update(
            member=member, updates=serializer.validated_data, actor=request_actor(request)
        )
        return Response(
            MemberOutputSerializer(selectors.member_get(pool=pool, member_id=member_id)).data
        )

    @extend_schema(request=None, responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, symbol: str, member_id: int) -> Response:
        pool = selectors.pool_get(symbol=symbol)
        services.member_remove(
            member=selectors.member_get(pool=pool, member_id=member_id),
            actor=request_actor(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EmergencyKillApi(APIView):
    @extend_schema(
        request=ReasonSerializer,
        responses={200: KillOutputSerializer, **error_responses(400, 401, 403)},
        description="Every pool not already HALTED goes HALTED. Places no order.",
    )
    def post(self, request: Request) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        halted = services.emergency_kill(
            actor=request_actor(request), reason=serializer.validated_data["reason"]
        )
        return Response({"halted": [p.symbol for p in halted]})


class EmergencyFlattenApi(APIView):
    @extend_schema(
        request=ReasonSerializer,
        responses={202: FlattenOutputSerializer, **error_responses(400, 401, 403)},
        description=(
            "Kill, and record a durable request that the workers cancel every order of "
            "every member account on every symbol at the venue. Positions are left for a person."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flatten, halted = services.emergency_flatten(
            actor=request_actor(request), reason=serializer.validated_data["reason"]
        )
        body = {
            "halted": [p.symbol for p in halted],
            "flatten_request_id": flatten.pk,
            "status": flatten.status,
            "requested_at": flatten.requested_at,
        }
        return Response(FlattenOutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class ResetApi(APIView):
    @extend_schema(
        request=None,
        responses={409: error_responses(409)[409]},
        description="There is no global reset: resume each pool at /v1/pools/{symbol}/resume.",
    )
    def post(self, request: Request) -> Response:
        return Response(
            error_body(
                409,
                "use_resume",
                "there is no global reset; a person resumes each pool with "
                "POST /v1/pools/{symbol}/resume and a review note",
            ),
            status=status.HTTP_409_CONFLICT,
        )


class MMStatusApi(APIView):
    @extend_schema(responses={200: MMStatusSerializer, **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        pools = list(selectors.pool_list())
        live = selectors.live_status_get(symbols=[p.symbol for p in pools])
        detail = [selectors.pool_status(p, live[p.symbol]) for p in pools]
        body = {
            "pools": len(pools),
            "by_state": dict(Counter(str(p.state) for p in pools)),
            "workers_up": sum(1 for v in live.values() if v is not None),
            "pending_flatten_requests": FlattenRequest.objects.filter(
                status=FlattenStatus.REQUESTED
            ).count(),
            "outbox_backlog": OutboxEvent.objects.filter(published_at__isnull=True).count(),
            "pools_detail": detail,
        }
        return Response(MMStatusSerializer(body).data)
