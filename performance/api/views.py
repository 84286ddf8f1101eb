"""Performance routes: the cross-symbol Q-score leaderboard and the daily rows
per symbol and per participant (SPEC Part B.17)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import error_responses
from common.auth import require_own_participant
from performance import selectors
from performance.api.serializers import (
    DayRangeQuerySerializer,
    LeaderboardOutputSerializer,
    LeaderboardQuerySerializer,
    ParticipantRowsQuerySerializer,
    PerformanceDailyOutputSerializer,
)

FROM = OpenApiParameter(
    "from", OpenApiTypes.DATE, description="first UTC day, inclusive (YYYY-MM-DD)"
)
TO = OpenApiParameter("to", OpenApiTypes.DATE, description="last UTC day, inclusive (YYYY-MM-DD)")
SYMBOL = OpenApiParameter("symbol", str, description="only this symbol")


def _query(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


class LeaderboardApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "date", OpenApiTypes.DATE, description="one UTC day; not together with from/to"
            ),
            FROM,
            TO,
            SYMBOL,
        ],
        responses={200: LeaderboardOutputSerializer, **error_responses(400, 401, 403)},
        description=(
            "Participants ranked by a combined Q-score across symbols and days. Each "
            "row's q_score is the participant's share of one symbol's pool for one UTC "
            "day (the shares of a symbol-day sum to 1). Symbols are weighted equally for "
            "now: a participant's score is the mean of its shares over every symbol-day "
            "in the window that has rows, counting 0 where it has none, so all scores "
            "sum to 1. Volume, trades and PnL are totals; uptime is the mean over the "
            "participant's own rows. Without date, from or to: the latest day with rows."
        ),
    )
    def get(self, request: Request) -> Response:
        query = _query(LeaderboardQuerySerializer, request)
        day = query.get("date")
        board = selectors.leaderboard_get(
            day_from=day or query.get("from"),
            day_to=day or query.get("to"),
            symbol=query.get("symbol"),
        )
        return Response(LeaderboardOutputSerializer(board).data)


class PerformanceSymbolApi(generics.ListAPIView):
    serializer_class = PerformanceDailyOutputSerializer
    filter_backends = [OrderingFilter]
    ordering_fields = ["day", "q_score", "volume_usdt", "uptime", "trade_count"]

    def get_queryset(self) -> Any:
        query = _query(DayRangeQuerySerializer, self.request)
        return selectors.performance_symbol_rows(
            symbol=self.kwargs["symbol"], day_from=query.get("from"), day_to=query.get("to")
        )

    @extend_schema(
        parameters=[FROM, TO],
        responses={
            200: PerformanceDailyOutputSerializer(many=True),
            **error_responses(400, 401, 403, 404),
        },
        description="One symbol's daily rows, newest day first, best share first within a day.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class PerformanceParticipantApi(generics.ListAPIView):
    serializer_class = PerformanceDailyOutputSerializer
    filter_backends = [OrderingFilter]
    ordering_fields = ["day", "symbol", "q_score", "volume_usdt", "uptime", "trade_count"]
    lp_readable = True

    def get_queryset(self) -> Any:
        participant_id = str(self.kwargs["participant_id"])
        require_own_participant(self.request, participant_id)
        query = _query(ParticipantRowsQuerySerializer, self.request)
        return selectors.performance_participant_rows(
            participant_id=participant_id,
            day_from=query.get("from"),
            day_to=query.get("to"),
            symbol=query.get("symbol"),
        )

    @extend_schema(
        parameters=[FROM, TO, SYMBOL],
        responses={
            200: PerformanceDailyOutputSerializer(many=True),
            **error_responses(400, 401, 403, 404),
        },
        description=(
            "One participant's daily rows across its pools, newest day first. "
            "An lp may read only its own."
        ),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
