"""Performance routes: the cross-symbol Q-score leaderboard and the daily rows
per symbol and per participant (SPEC Part B.17)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ListApi, error_responses
from common.auth import require_own_participant
from common.filters import StrictOrderingFilter
from performance import selectors
from performance.api.serializers import (
    DayRangeQuerySerializer,
    LeaderboardOutputSerializer,
    LeaderboardQuerySerializer,
    ParticipantRowsQuerySerializer,
    PerformanceDailyOutputSerializer,
)

QSCORE_FORMULA = (
    "The daily Q-score of a member of a symbol's pool (performance/qscore.py; the README "
    "has it in full): every PERFORMANCE_SNAPSHOT_INTERVAL, each member's resting orders "
    "are scored at notional × ((v − d)/v)², d the order's distance from mid in bps and v "
    "= QSCORE_MAX_SPREAD_BPS (0 at or past v); the sample's liquidity is the smaller of "
    "the bid and ask sums (one-sided quoting earns nothing), counted only with at least "
    "QSCORE_MIN_DEPTH_USDT a side within v, which is also the uptime sample; each sample "
    "is divided by all members' liquidity at that instant. Over the UTC day, while the "
    "pool is ACTIVE: U = uptime, Λ = share of the normalised liquidity, V = share of the "
    "maker volume; raw = U^p · Λ^α · V^(1−α) (p = QSCORE_UPTIME_EXPONENT, α = "
    "QSCORE_LIQUIDITY_EXPONENT; without any maker volume that day, U^p · Λ), 0 below "
    "QSCORE_MIN_UPTIME or QSCORE_MIN_TRADES trades; q = raw ÷ Σ raw, so a symbol-day's "
    "scores sum to 1 (or are all 0). efficiency = q ÷ the member's capital-weight share; "
    "sla_met = uptime ≥ its tier's floor (QSCORE_TIER_UPTIME_FLOORS)."
)


def _query(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


class LeaderboardApi(APIView):
    @extend_schema(
        parameters=[LeaderboardQuerySerializer],
        responses={200: LeaderboardOutputSerializer, **error_responses(422)},
        description=(
            "Participants ranked by a combined Q-score across symbols and days.\n\n"
            + QSCORE_FORMULA
            + "\n\nAcross symbols only normalised shares are combined: a participant's "
            "score is Σ_s W_s·Σ_d q(s,d) ÷ Σ_s W_s·D_s, with W_s the symbol's weight "
            "(QSCORE_SYMBOL_WEIGHTS, default 1) and D_s the window's days on which symbol s "
            "has rows — the weighted mean of its daily shares, 0 where it has none, so all "
            "scores sum to 1. Volume, trades and PnL are totals; uptime and efficiency are "
            "means over the participant's own rows. Without date, from or to: the latest "
            "day with rows."
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


class PerformanceSymbolApi(ListApi):
    serializer_class = PerformanceDailyOutputSerializer
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["day", "q_score", "volume_usdt", "uptime", "trade_count"]

    def get_queryset(self) -> Any:
        query = _query(DayRangeQuerySerializer, self.request)
        return selectors.performance_symbol_rows(
            symbol=self.kwargs["symbol"], day_from=query.get("from"), day_to=query.get("to")
        )

    @extend_schema(
        parameters=[DayRangeQuerySerializer],
        responses={200: PerformanceDailyOutputSerializer(many=True), **error_responses(422)},
        description=(
            "One symbol's daily rows, newest day first, best share first within a day.\n\n"
            + QSCORE_FORMULA
        ),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class PerformanceParticipantApi(ListApi):
    serializer_class = PerformanceDailyOutputSerializer
    filter_backends = [StrictOrderingFilter]
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
        parameters=[ParticipantRowsQuerySerializer],
        responses={200: PerformanceDailyOutputSerializer(many=True), **error_responses(422)},
        description=(
            "One participant's daily rows across its pools, newest day first. "
            "An lp may read only its own.\n\n" + QSCORE_FORMULA
        ),
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
