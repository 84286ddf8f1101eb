"""Query and response bodies of the mm-orders, mm-fills and mm-analytics routes.

Decimals leave as strings in plain notation, never as floats (SPEC Part B.14):
money (USDT) with 8 places; prices, sizes and their sums as exact as stored,
at the instrument's precision (a PEPE price on a 1e-9 tick reads "0.000010006",
never "1.0006E-5" nor "0.00001001"); a VWAP as the selector rounded it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework import serializers

from common.api import QuerySerializer
from common.exceptions import SEMANTIC
from pools.api.serializers import KnownSymbolField
from trading.enums import OrderStatus, Side
from trading.models import MMFill, MMOrder
from trading.selectors import MAX_HOURLY_HOURS

ORDER_ORDERING = ["created_at", "closed_at", "price", "size", "status", "symbol"]
FILL_ORDERING = ["filled_at", "price", "size", "fee_usdt", "symbol"]


def _usdt(**kwargs: Any) -> serializers.DecimalField:
    # Sums of price · size can outgrow the columns' 28 digits; 8 places as stored.
    return serializers.DecimalField(max_digits=60, decimal_places=8, **kwargs)


def _exact(**kwargs: Any) -> serializers.DecimalField:
    """A price or a size (or a sum of sizes) as it is: no places imposed, plain notation."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


def _ordering(fields: list[str], default: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[c for f in fields for c in (f, f"-{f}")],
        required=False,
        default=default,
        help_text=f"sort field, '-' for descending; default {default}",
    )


# --- query parameters ----------------------------------------------------------------


class _TimeRangeQuerySerializer(QuerySerializer):
    """?from=&to= RFC 3339 date-times with their offset; from inclusive, to exclusive.

    The fields are built in get_fields because `from` is a Python keyword."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "from": serializers.DateTimeField(required=False, help_text="inclusive lower bound"),
            "to": serializers.DateTimeField(required=False, help_text="exclusive upper bound"),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        first, last = attrs.get("from"), attrs.get("to")
        if first is not None and last is not None and first >= last:
            raise serializers.ValidationError(
                {"from": [f"must be before to ({last.isoformat()}), got {first.isoformat()}"]},
                code=SEMANTIC,
            )
        return attrs


class _ParticipantQuerySerializer(_TimeRangeQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "side": serializers.ChoiceField(choices=Side.choices, required=False),
            "participant": serializers.UUIDField(
                required=False, help_text="only this participant's rows"
            ),
        }


class SymbolOrderQuerySerializer(_ParticipantQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "status": serializers.ChoiceField(choices=OrderStatus.choices, required=False),
            "ordering": _ordering(ORDER_ORDERING, "-created_at"),
        }


class OrderQuerySerializer(SymbolOrderQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "symbol": KnownSymbolField(required=False),
        }


class SymbolFillQuerySerializer(_ParticipantQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**super().get_fields(), "ordering": _ordering(FILL_ORDERING, "-filled_at")}


class FillQuerySerializer(SymbolFillQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "symbol": KnownSymbolField(required=False),
        }


class HourlyQuerySerializer(QuerySerializer):
    symbol = KnownSymbolField(required=False, help_text="only this symbol; all when absent")
    hours = serializers.IntegerField(
        required=False,
        default=24,
        min_value=1,
        max_value=MAX_HOURLY_HOURS,
        help_text=f"how many hourly buckets, the current hour last (1..{MAX_HOURLY_HOURS})",
    )
    until = serializers.DateTimeField(
        required=False,
        help_text="end of the window (ISO 8601, default now): look at a past day's hours",
    )

    def validate_until(self, value: dt.datetime) -> dt.datetime:
        # The window reaches back up to MAX_HOURLY_HOURS; before 2000 is a typo, not a question.
        if value.year < 2000:
            raise serializers.ValidationError("must be in the year 2000 or later", code=SEMANTIC)
        return value


# --- rows ----------------------------------------------------------------------------


_PRICE_HELP = "at the instrument's precision: the tick's decimal places"
_SIZE_HELP = "base units, at the instrument's precision: the lot's decimal places"


class MMOrderOutputSerializer(serializers.ModelSerializer[MMOrder]):
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")
    price = _exact(help_text=_PRICE_HELP)
    size = _exact(help_text=_SIZE_HELP)
    filled_size = _exact(help_text=_SIZE_HELP)

    class Meta:
        model = MMOrder
        fields = [
            "id",
            "client_order_id",
            "venue_order_id",
            "participant_id",
            "participant_name",
            "symbol",
            "side",
            "level",
            "price",
            "size",
            "filled_size",
            "status",
            "reject_reason",
            "created_at",
            "updated_at",
            "closed_at",
        ]
        read_only_fields = fields


class MMFillOutputSerializer(serializers.ModelSerializer[MMFill]):
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")
    order_id = serializers.IntegerField(allow_null=True)
    price = _exact(help_text=_PRICE_HELP)
    size = _exact(help_text=_SIZE_HELP)
    notional_usdt = _usdt(help_text="price · size")

    class Meta:
        model = MMFill
        fields = [
            "id",
            "fill_id",
            "order_id",
            "client_order_id",
            "participant_id",
            "participant_name",
            "symbol",
            "side",
            "price",
            "size",
            "notional_usdt",
            "fee_usdt",
            "liquidity",
            "filled_at",
            "created_at",
        ]
        read_only_fields = fields


# --- aggregates ----------------------------------------------------------------------


class OrderBreakdownRowOutputSerializer(serializers.Serializer[Any]):
    side = serializers.ChoiceField(choices=Side.choices)
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    order_count = serializers.IntegerField()
    total_size = _exact(help_text="Σ size, base units")
    filled_size = _exact(help_text="Σ filled_size, base units")
    notional_usdt = _usdt(help_text="Σ price · size")


class OrderBreakdownOutputSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    rows = OrderBreakdownRowOutputSerializer(
        many=True, help_text="every side × status, zeros where there are no orders"
    )
    order_count = serializers.IntegerField()
    total_size = _exact()
    filled_size = _exact()
    notional_usdt = _usdt()


class FillSideOutputSerializer(serializers.Serializer[Any]):
    fill_count = serializers.IntegerField()
    base_volume = _exact(help_text="Σ size, base units")
    notional_usdt = _usdt(help_text="Σ price · size")
    vwap = _exact(
        allow_null=True,
        help_text=(
            "notional ÷ base volume, half-even to the prices' places and 4 more; null without fills"
        ),
    )


class FillTotalsOutputSerializer(serializers.Serializer[Any]):
    fill_count = serializers.IntegerField()
    participant_count = serializers.IntegerField(help_text="distinct participants")
    base_volume = _exact(help_text="Σ size, base units")
    notional_usdt = _usdt(help_text="Σ price · size")
    fees_usdt = _usdt(help_text="Σ fee_usdt; negative means net rebates received")
    buy = FillSideOutputSerializer()
    sell = FillSideOutputSerializer()


class FillSummaryOutputSerializer(FillTotalsOutputSerializer):
    symbol = serializers.CharField()
    window_start = serializers.DateTimeField(help_text="now − 24 h, inclusive")
    window_end = serializers.DateTimeField(help_text="now, inclusive")


class SymbolTotalsOutputSerializer(FillTotalsOutputSerializer):
    symbol = serializers.CharField()


class OverviewTotalsOutputSerializer(serializers.Serializer[Any]):
    symbol_count = serializers.IntegerField(help_text="symbols with fills in the window")
    fill_count = serializers.IntegerField()
    participant_count = serializers.IntegerField(help_text="distinct across symbols")
    notional_usdt = _usdt()
    fees_usdt = _usdt()
    buy_notional_usdt = _usdt()
    sell_notional_usdt = _usdt()


class OverviewOutputSerializer(serializers.Serializer[Any]):
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    symbols = SymbolTotalsOutputSerializer(many=True, help_text="symbols with fills, by name")
    total = OverviewTotalsOutputSerializer()


class HourlyBucketOutputSerializer(serializers.Serializer[Any]):
    hour = serializers.DateTimeField(help_text="start of the UTC hour")
    fill_count = serializers.IntegerField()
    base_volume = _exact(
        allow_null=True, help_text="Σ size; null across symbols (their units do not add)"
    )
    notional_usdt = _usdt()
    fees_usdt = _usdt()


class HourlyOutputSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField(allow_null=True)
    hours = serializers.IntegerField()
    window_start = serializers.DateTimeField(help_text="start of the first bucket")
    window_end = serializers.DateTimeField(help_text="now")
    buckets = HourlyBucketOutputSerializer(many=True, help_text="oldest first, every hour")


class ParticipantPositionOutputSerializer(serializers.Serializer[Any]):
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField()
    net_position = _exact(help_text="Σ BUY size − Σ SELL size over all fills, base units")
    bought = _exact()
    sold = _exact()
    fill_count = serializers.IntegerField()
    fees_usdt = _usdt()


class SymbolMetricsOutputSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    fills_24h = FillSummaryOutputSerializer()
    orders_by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text="every status, zeros included"
    )
    order_count = serializers.IntegerField()
    open_order_count = serializers.IntegerField(help_text="PENDING, OPEN or PARTIALLY_FILLED")
    positions = ParticipantPositionOutputSerializer(many=True)
