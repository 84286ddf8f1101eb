from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from common.api import InputSerializer, QuerySerializer
from common.exceptions import SEMANTIC
from pools.models import SYMBOL_VALIDATOR, PoolConfig, PoolMember
from pools.selectors import symbol_known

POSITIVE = Decimal("0.0000000001")


def _bps(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=4, min_value=Decimal(0), **kwargs)


class KnownSymbolField(serializers.CharField):
    """A `?symbol=` filter: a symbol some pool has (or had). Not a symbol at all is a
    400; a symbol no pool had is a 422 naming the parameter, rather than an empty
    answer that looks like 'no activity'."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("validators", [SYMBOL_VALIDATOR])
        kwargs.setdefault("help_text", "only this symbol (one some pool has or had; another: 422)")
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        # The field's own checks (length, NUL bytes, format) first, the database after.
        symbol = super().run_validation(data)
        if symbol is not None and not symbol_known(symbol=symbol):
            raise serializers.ValidationError(f"no pool has symbol {symbol!r}", code=SEMANTIC)
        return symbol


class PoolConfigInputSerializer(InputSerializer):
    """A pool's configuration. On update every field is optional."""

    enabled = serializers.BooleanField(required=False)
    gamma = serializers.DecimalField(max_digits=24, decimal_places=10, min_value=POSITIVE)
    kappa = serializers.DecimalField(max_digits=24, decimal_places=10, min_value=POSITIVE)
    vol_lookback_seconds = serializers.IntegerField(min_value=1, max_value=86_400)
    tau = serializers.DecimalField(max_digits=24, decimal_places=10, min_value=POSITIVE)
    num_levels = serializers.IntegerField(min_value=1, max_value=50)
    level_spacing_bps = _bps()
    min_spread_bps = _bps()
    max_spread_bps = _bps()
    order_size_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=8, min_value=Decimal("0.00000001")
    )
    max_pool_position_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=8, min_value=Decimal(0)
    )
    max_pool_loss_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=8, min_value=Decimal(0)
    )
    check_staleness = serializers.BooleanField(required=False)
    staleness_threshold_ms = serializers.IntegerField(
        min_value=1, max_value=3_600_000, required=False
    )
    quote_interval_ms = serializers.IntegerField(min_value=1, max_value=3_600_000, required=False)
    price_threshold_bps = _bps(required=False)
    target_inventory = serializers.DecimalField(
        max_digits=38,
        decimal_places=12,
        required=False,
        help_text="q₀, base units: the inventory the A-S skew aims at (default 0)",
    )
    unwind_band_bps = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal(10_000),
        required=False,
        help_text="UNWINDING: reducing orders only within this many bps of mid",
    )
    unwind_max_loss_usdt = serializers.DecimalField(
        max_digits=24,
        decimal_places=8,
        min_value=Decimal(0),
        required=False,
        allow_null=True,
        help_text=(
            "UNWINDING: a further loss beyond this since the unwind began halts it "
            "(null: max_pool_loss_usdt)"
        ),
    )
    unwind_time_limit_s = serializers.IntegerField(
        min_value=1,
        max_value=7 * 86_400,
        required=False,
        help_text="UNWINDING: it ends PAUSED after this many seconds",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        instance = self.instance
        low = attrs.get("min_spread_bps", getattr(instance, "min_spread_bps", None))
        high = attrs.get("max_spread_bps", getattr(instance, "max_spread_bps", None))
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"min_spread_bps": [f"must be ≤ max_spread_bps ({high}), got {low}"]},
                code=SEMANTIC,
            )
        return attrs


class PoolCreateInputSerializer(PoolConfigInputSerializer):
    symbol = serializers.CharField(max_length=32, validators=[SYMBOL_VALIDATOR])


class UnwindInputSerializer(InputSerializer):
    note = serializers.CharField(
        max_length=2000, help_text="why the pool unwinds (SPEC B.20): a person's note, required"
    )


class PoolListQuerySerializer(QuerySerializer):
    include_archived = serializers.BooleanField(
        required=False, default=False, help_text="list archived pools too"
    )


class PoolOutputSerializer(serializers.ModelSerializer[PoolConfig]):
    class Meta:
        model = PoolConfig
        fields = [
            "symbol",
            "state",
            "enabled",
            "gamma",
            "kappa",
            "vol_lookback_seconds",
            "tau",
            "num_levels",
            "level_spacing_bps",
            "min_spread_bps",
            "max_spread_bps",
            "order_size_usdt",
            "max_pool_position_usdt",
            "max_pool_loss_usdt",
            "check_staleness",
            "staleness_threshold_ms",
            "quote_interval_ms",
            "price_threshold_bps",
            "target_inventory",
            "unwind_band_bps",
            "unwind_max_loss_usdt",
            "unwind_time_limit_s",
            "state_reason",
            "state_changed_at",
            "state_changed_by",
            "archived_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MemberInputSerializer(InputSerializer):
    participant_id = serializers.UUIDField()
    weight = serializers.DecimalField(
        max_digits=20,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        help_text="capital weight; orders are split pro rata across members",
    )
    max_position_usdt = serializers.DecimalField(
        max_digits=24,
        decimal_places=8,
        min_value=Decimal(0),
        help_text="the member's own position limit in USDT at mark",
    )


class MemberUpdateInputSerializer(InputSerializer):
    min_fields = 1  # weight and/or max_position_usdt

    weight = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.00000001"), required=False
    )
    max_position_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=8, min_value=Decimal(0), required=False
    )


class MemberOutputSerializer(serializers.ModelSerializer[PoolMember]):
    symbol = serializers.CharField(source="pool.symbol")
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")
    participant_state = serializers.CharField(source="participant.state")

    class Meta:
        model = PoolMember
        fields = [
            "id",
            "symbol",
            "participant_id",
            "participant_name",
            "participant_state",
            "weight",
            "max_position_usdt",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PoolStatusSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    state = serializers.CharField(help_text="the state in the database, the one authority")
    enabled = serializers.BooleanField()
    state_reason = serializers.CharField()
    state_changed_at = serializers.DateTimeField(allow_null=True)
    worker = serializers.ChoiceField(
        choices=["up", "down"], help_text="down: no live record from a quoting worker"
    )
    live = serializers.JSONField(
        allow_null=True, help_text="the worker's live record (q, σ, r, δ, members), if any"
    )


class PoolDetailStatusSerializer(PoolStatusSerializer):
    members = MemberOutputSerializer(many=True)


class KillOutputSerializer(serializers.Serializer[Any]):
    halted = serializers.ListField(child=serializers.CharField())


class FlattenOutputSerializer(KillOutputSerializer):
    flatten_request_id = serializers.IntegerField()
    status = serializers.CharField()
    requested_at = serializers.DateTimeField()


class MMStatusSerializer(serializers.Serializer[Any]):
    pools = serializers.IntegerField()
    by_state = serializers.DictField(child=serializers.IntegerField())
    workers_up = serializers.IntegerField()
    pending_flatten_requests = serializers.IntegerField()
    outbox_backlog = serializers.IntegerField()
    pools_detail = PoolStatusSerializer(many=True)
