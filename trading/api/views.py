"""Read-only routes over MM orders and fills, and the analytics built on them.

Lists and the per-symbol aggregates are lp-readable: an lp sees only its own
participant's rows (asking for another participant's is refused). The
analytics routes span every participant and are staff-only (SPEC Part B.12).
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ListApi, error_responses
from common.auth import lp_participant_id, require_own_participant
from pools.selectors import require_symbol
from trading import selectors
from trading.api.serializers import (
    FillQuerySerializer,
    FillSummaryOutputSerializer,
    HourlyOutputSerializer,
    HourlyQuerySerializer,
    MMFillOutputSerializer,
    MMOrderOutputSerializer,
    OrderBreakdownOutputSerializer,
    OrderQuerySerializer,
    OverviewOutputSerializer,
    SymbolFillQuerySerializer,
    SymbolMetricsOutputSerializer,
    SymbolOrderQuerySerializer,
)

_LP_NOTE = " An lp sees only its own participant's rows."


def _query(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


def _participant_scope(request: Request, requested: uuid.UUID | None) -> uuid.UUID | str | None:
    """The participant to confine a read to: the lp's own, or the one asked for."""
    own = lp_participant_id(request)
    if own is None:
        return requested
    if requested is not None:
        require_own_participant(request, requested)
    return own


def _path_symbol(kwargs: dict[str, Any]) -> str | None:
    """The {symbol} of a per-symbol route, which must name a pool (else 404)."""
    symbol = kwargs.get("symbol")
    return None if symbol is None else require_symbol(symbol=symbol)


class MMOrderListApi(ListApi):
    serializer_class = MMOrderOutputSerializer
    filter_backends: list[Any] = []  # the query serializer validates and filters
    lp_readable = True
    query_serializer: type = OrderQuerySerializer

    def get_queryset(self) -> Any:
        query = _query(self.query_serializer, self.request)
        return selectors.order_list(
            symbol=_path_symbol(self.kwargs) or query.get("symbol"),
            status=query.get("status"),
            side=query.get("side"),
            participant_id=_participant_scope(self.request, query.get("participant")),
            created_from=query.get("from"),
            created_to=query.get("to"),
            ordering=query["ordering"],
        )

    @extend_schema(
        parameters=[OrderQuerySerializer],
        responses={200: MMOrderOutputSerializer(many=True), **error_responses(422)},
        description="MM orders, newest first; from/to bound created_at." + _LP_NOTE,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MMOrderSymbolListApi(MMOrderListApi):
    query_serializer = SymbolOrderQuerySerializer

    @extend_schema(
        operation_id="mm_orders_symbol_list",
        parameters=[SymbolOrderQuerySerializer],
        responses={200: MMOrderOutputSerializer(many=True), **error_responses(422)},
        description="One symbol's MM orders, newest first; from/to bound created_at." + _LP_NOTE,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MMOrderBreakdownApi(APIView):
    lp_readable = True

    @extend_schema(
        responses={200: OrderBreakdownOutputSerializer, **error_responses(401, 403)},
        description=(
            "One symbol's orders counted by side × status, with total and filled size and "
            "notional (Σ price · size). Every combination is listed." + _LP_NOTE
        ),
    )
    def get(self, request: Request, symbol: str) -> Response:
        require_symbol(symbol=symbol)
        breakdown = selectors.order_breakdown(
            symbol=symbol, participant_id=_participant_scope(request, None)
        )
        return Response(OrderBreakdownOutputSerializer(breakdown).data)


class MMFillListApi(ListApi):
    serializer_class = MMFillOutputSerializer
    filter_backends: list[Any] = []  # the query serializer validates and filters
    lp_readable = True
    query_serializer: type = FillQuerySerializer

    def get_queryset(self) -> Any:
        query = _query(self.query_serializer, self.request)
        return selectors.fill_list(
            symbol=_path_symbol(self.kwargs) or query.get("symbol"),
            side=query.get("side"),
            participant_id=_participant_scope(self.request, query.get("participant")),
            filled_from=query.get("from"),
            filled_to=query.get("to"),
            ordering=query["ordering"],
        )

    @extend_schema(
        parameters=[FillQuerySerializer],
        responses={200: MMFillOutputSerializer(many=True), **error_responses(422)},
        description="MM fills, newest first; from/to bound filled_at." + _LP_NOTE,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MMFillSymbolListApi(MMFillListApi):
    query_serializer = SymbolFillQuerySerializer

    @extend_schema(
        operation_id="mm_fills_symbol_list",
        parameters=[SymbolFillQuerySerializer],
        responses={200: MMFillOutputSerializer(many=True), **error_responses(422)},
        description="One symbol's MM fills, newest first; from/to bound filled_at." + _LP_NOTE,
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class MMFillSummaryApi(APIView):
    lp_readable = True

    @extend_schema(
        responses={200: FillSummaryOutputSerializer, **error_responses(401, 403)},
        description=(
            "One symbol's fills over the last 24 h: count, base volume, notional "
            "(Σ price · size, USDT), fees (negative = net rebates), the buy/sell split with "
            "each side's VWAP, and distinct participants." + _LP_NOTE
        ),
    )
    def get(self, request: Request, symbol: str) -> Response:
        require_symbol(symbol=symbol)
        summary = selectors.fill_summary(
            symbol=symbol, participant_id=_participant_scope(request, None)
        )
        return Response(FillSummaryOutputSerializer(summary).data)


class AnalyticsOverviewApi(APIView):
    @extend_schema(
        responses={200: OverviewOutputSerializer, **error_responses(401, 403)},
        description="The last 24 h of fills: one row per symbol with fills, and a grand total.",
    )
    def get(self, request: Request) -> Response:
        return Response(OverviewOutputSerializer(selectors.analytics_overview()).data)


class AnalyticsHourlyApi(APIView):
    @extend_schema(
        parameters=[HourlyQuerySerializer],
        responses={200: HourlyOutputSerializer, **error_responses(422)},
        description=(
            "Fills per UTC hour (count, base volume, notional, fees), oldest first, the "
            "current partial hour last; hours without fills are listed with zeros."
        ),
    )
    def get(self, request: Request) -> Response:
        query = _query(HourlyQuerySerializer, request)
        hourly = selectors.analytics_hourly(
            symbol=query.get("symbol"), hours=query["hours"], now=query.get("until")
        )
        return Response(HourlyOutputSerializer(hourly).data)


class AnalyticsSymbolMetricsApi(APIView):
    @extend_schema(
        responses={200: SymbolMetricsOutputSerializer, **error_responses(401, 403)},
        description=(
            "One symbol in full: the 24 h fill summary, order counts by status and open "
            "orders, and each participant's net position from all its fills (BUY +, SELL −)."
        ),
    )
    def get(self, request: Request, symbol: str) -> Response:
        require_symbol(symbol=symbol)
        return Response(SymbolMetricsOutputSerializer(selectors.symbol_metrics(symbol=symbol)).data)
