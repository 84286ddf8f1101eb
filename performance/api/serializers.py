"""Query and response bodies of the performance routes. Decimals leave as strings."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from common.api import QuerySerializer
from common.exceptions import SEMANTIC
from performance.models import PerformanceDaily
from pools.api.serializers import KnownSymbolField


class DayRangeQuerySerializer(QuerySerializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both inclusive UTC days, both optional.

    The fields are built in get_fields because `from` is a Python keyword."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "from": serializers.DateField(required=False, help_text="first UTC day, inclusive"),
            "to": serializers.DateField(required=False, help_text="last UTC day, inclusive"),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        first, last = attrs.get("from"), attrs.get("to")
        if first is not None and last is not None and first > last:
            raise serializers.ValidationError(
                {"from": [f"must be on or before to ({last}), got {first}"]}, code=SEMANTIC
            )
        return attrs


class ParticipantRowsQuerySerializer(DayRangeQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "symbol": KnownSymbolField(required=False),
        }


class LeaderboardQuerySerializer(ParticipantRowsQuerySerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            **super().get_fields(),
            "date": serializers.DateField(
                required=False, help_text="one UTC day; not together with from or to (422)"
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "date" in attrs and ("from" in attrs or "to" in attrs):
            raise serializers.ValidationError(
                {"date": ["give either date or from/to, not both"]}, code=SEMANTIC
            )
        return attrs


class PerformanceDailyOutputSerializer(serializers.ModelSerializer[PerformanceDaily]):
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")

    class Meta:
        model = PerformanceDaily
        fields = [
            "participant_id",
            "participant_name",
            "symbol",
            "day",
            "samples",
            "uptime",
            "avg_spread_bps",
            "avg_depth_usdt",
            "trade_count",
            "volume_usdt",
            "realized_pnl_usdt",
            "quoting_samples",
            "liquidity_share",
            "volume_share",
            "weight_share",
            "qualified",
            "q_score",
            "efficiency",
            "uptime_floor",
            "sla_met",
        ]
        read_only_fields = fields


def _decimal(places: int, help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=28, decimal_places=places, help_text=help_text)


class LeaderboardEntryOutputSerializer(serializers.Serializer[Any]):
    rank = serializers.IntegerField(help_text="1 is best; equal scores share a rank")
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField()
    score = _decimal(
        10,
        "the symbol-weighted mean of the participant's per-symbol-day Q-score shares "
        "over every symbol-day in the window (0 where it has no row); all scores sum to 1",
    )
    symbol_days = serializers.IntegerField(help_text="symbol-days the participant has rows for")
    volume_usdt = _decimal(8, "total traded volume in USDT")
    trade_count = serializers.IntegerField(help_text="total number of trades")
    mean_uptime = _decimal(6, "mean uptime (0..1) over the participant's own rows")
    mean_efficiency = _decimal(
        8, "mean efficiency (score share ÷ capital-weight share; 1 = on par with capital)"
    )
    realized_pnl_usdt = _decimal(8, "total realised PnL in USDT")


class LeaderboardOutputSerializer(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {
            "from": serializers.DateField(
                source="day_from", allow_null=True, help_text="first UTC day of the window"
            ),
            "to": serializers.DateField(
                source="day_to", allow_null=True, help_text="last UTC day of the window"
            ),
            "symbol": serializers.CharField(allow_null=True, help_text="null: all symbols"),
            "symbol_days": serializers.IntegerField(
                help_text="symbol-days in the window that have rows (the score's denominator)"
            ),
            "results": LeaderboardEntryOutputSerializer(source="entries", many=True),
        }
