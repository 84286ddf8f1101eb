"""Bodies of the settlement routes. Money leaves as strings (Decimal, never float)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from common.actors import Actor
from common.api import InputSerializer
from common.exceptions import SEMANTIC
from settlements.models import Settlement


def _usdt(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=28, decimal_places=8, **kwargs)


def _of_month(name: str, help_text: str) -> serializers.DecimalField:
    return _usdt(source=f"participant_month.{name}", read_only=True, help_text=help_text)


class SettlementOutputSerializer(serializers.ModelSerializer[Settlement]):
    """One settlement, with the participant-month it is part of (SPEC Part B.21):
    the mark and the share are the participant's, across its symbols; this
    symbol's `platform_share_usdt` is its part of the month's share, allocated
    pro rata to positive gross (`share_weight_usdt` of
    `participant_positive_gross_usdt`, largest remainder, ties by symbol)."""

    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")
    participant_month_id = serializers.UUIDField()
    share_weight_usdt = _usdt(
        read_only=True, help_text="this symbol's gross if positive, else 0: its allocation weight"
    )
    participant_gross_usdt = _of_month(
        "gross_usdt", "Σ gross of the participant's symbols this month"
    )
    participant_positive_gross_usdt = _of_month(
        "positive_gross_usdt", "Σ of the positive gross: the allocation's denominator"
    )
    participant_high_water_mark_usdt = _of_month(
        "high_water_mark_usdt", "the participant's high-water mark before the month"
    )
    participant_cumulative_gross_usdt = _of_month(
        "cumulative_gross_usdt", "the participant's cumulative gross after the month"
    )
    participant_high_water_mark_after_usdt = _of_month(
        "high_water_mark_after_usdt", "the participant's high-water mark after the month"
    )
    participant_share_base_usdt = _of_month(
        "share_base_usdt", "max(0, cumulative gross after − mark before)"
    )
    participant_platform_share_usdt = _of_month(
        "platform_share_usdt", "the platform's share of the participant-month, all symbols"
    )
    high_water_mark_scope = serializers.CharField(
        source="participant_month.high_water_mark_scope",
        read_only=True,
        help_text=(
            "PARTICIPANT; SYMBOL for a month computed per symbol before SPEC Part B.21 "
            "(its share is the sum of the symbols' own)"
        ),
    )

    class Meta:
        model = Settlement
        fields = [
            "id",
            "participant_id",
            "participant_name",
            "participant_month_id",
            "symbol",
            "period_start",
            "period_end",
            "realized_pnl_usdt",
            "fees_usdt",
            "funding_usdt",
            "gross_usdt",
            "platform_share_usdt",
            "net_usdt",
            "share_weight_usdt",
            "participant_gross_usdt",
            "participant_positive_gross_usdt",
            "participant_high_water_mark_usdt",
            "participant_cumulative_gross_usdt",
            "participant_high_water_mark_after_usdt",
            "participant_share_base_usdt",
            "participant_platform_share_usdt",
            "high_water_mark_scope",
            "revenue_model",
            "revenue_share_pct",
            "q_score",
            "fill_count",
            "funding_count",
            "volume_usdt",
            "computed_at",
            "inputs_sha256",
            "state",
            "approved_by",
            "approved_at",
            "rejected_by",
            "rejected_at",
            "rejection_reason",
            "payout_reference",
            "settled_by",
            "settled_at",
            "failure_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _ActorFieldMixin:
    """The named person must be the caller: the recorded actor is always the
    authenticated identity (SPEC Part B.12). The view passes it as context["actor"]."""

    context: dict[str, Any]

    def _require_caller(self, value: str) -> str:
        actor: Actor = self.context["actor"]
        if value.strip() != actor.name:
            raise serializers.ValidationError(
                f"must be the authenticated caller ({actor.name!r}), got {value!r}", code=SEMANTIC
            )
        return value.strip()


class SettlementApproveInputSerializer(_ActorFieldMixin, InputSerializer):
    approved_by = serializers.CharField(
        max_length=150, help_text="must equal the caller's identity (the token's sub)"
    )

    def validate_approved_by(self, value: str) -> str:
        return self._require_caller(value)


class SettlementRejectInputSerializer(_ActorFieldMixin, InputSerializer):
    rejected_by = serializers.CharField(
        max_length=150, help_text="must equal the caller's identity (the token's sub)"
    )
    reason = serializers.CharField(max_length=2000, help_text="why the figures are rejected")

    def validate_rejected_by(self, value: str) -> str:
        return self._require_caller(value)


class SettlementMarkSettledInputSerializer(InputSerializer):
    payout_reference = serializers.CharField(
        max_length=128, help_text="the reference of the wallet transfer finance executed"
    )


class SettlementMarkFailedInputSerializer(InputSerializer):
    reason = serializers.CharField(max_length=2000, help_text="why the transfer failed")


# --- the monthly statement (settlements/statements.py) ------------------------


def _size(**kwargs: Any) -> serializers.DecimalField:
    # Sizes at the instrument's precision (SPEC Part B.14): exact, no places imposed.
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class StatementParticipantSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    short_id = serializers.CharField()
    name = serializers.CharField()


class StatementTotalsSerializer(serializers.Serializer[Any]):
    gross_usdt = _usdt(help_text="Σ gross of the month's settlements")
    platform_share_usdt = _usdt(help_text="Σ platform share")
    net_usdt = _usdt(help_text="Σ net: what the participant is paid")


class StatementParticipantMonthSerializer(serializers.Serializer[Any]):
    """The participant-month's figures across symbols (SPEC Part B.21)."""

    id = serializers.UUIDField()
    gross_usdt = _usdt(help_text="Σ gross of the participant's symbols")
    positive_gross_usdt = _usdt(help_text="Σ of the positive gross: the allocation's denominator")
    high_water_mark_usdt = _usdt(help_text="the participant's high-water mark before the month")
    cumulative_gross_usdt = _usdt(help_text="the cumulative gross after the month")
    high_water_mark_after_usdt = _usdt(help_text="the high-water mark after the month")
    share_base_usdt = _usdt(help_text="max(0, cumulative gross after − mark before)")
    revenue_model = serializers.CharField()
    revenue_share_pct = serializers.DecimalField(max_digits=5, decimal_places=2)
    platform_share_usdt = _usdt(
        help_text=(
            "share_base × revenue_share_pct / 100, half-even to 8 places; allocated to the "
            "symbols pro rata to positive gross"
        )
    )
    net_usdt = _usdt(help_text="gross − share")
    high_water_mark_scope = serializers.CharField(
        help_text="PARTICIPANT; SYMBOL for a month computed per symbol before SPEC Part B.21"
    )


class StatementFillsSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    fill_count = serializers.IntegerField()
    buy_count = serializers.IntegerField()
    sell_count = serializers.IntegerField()
    buy_size = _size(help_text="Σ size of the buys, in the base asset")
    sell_size = _size(help_text="Σ size of the sells, in the base asset")
    volume_usdt = _usdt(help_text="Σ price × size")
    fees_usdt = _usdt(help_text="Σ fee paid (a maker rebate is negative)")
    realized_pnl_usdt = _usdt(help_text="Σ realised PnL, before fees")


class StatementFundingSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    payment_count = serializers.IntegerField()
    amount_usdt = _usdt(help_text="Σ funding received (paid is negative)")


class StatementQScoreSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField()
    days = serializers.IntegerField(help_text="days with a performance row")
    mean_q_score = serializers.DecimalField(
        max_digits=12, decimal_places=10, help_text="mean of the daily Q-scores"
    )
    mean_uptime = serializers.DecimalField(
        max_digits=7, decimal_places=6, help_text="mean of the daily uptimes, in [0, 1]"
    )
    sla_days_met = serializers.IntegerField(help_text="days whose uptime met the tier's floor")


class StatementOutputSerializer(serializers.Serializer[Any]):
    participant = StatementParticipantSerializer()
    month = serializers.CharField(help_text="YYYY-MM")
    period_start = serializers.DateField(help_text="first day of the UTC month")
    period_end = serializers.DateField(help_text="first day of the next month (half-open)")
    settlements = SettlementOutputSerializer(many=True)
    participant_month = StatementParticipantMonthSerializer(
        allow_null=True, help_text="null when the month has no settlement"
    )
    totals = StatementTotalsSerializer()
    fills = StatementFillsSerializer(many=True)
    funding = StatementFundingSerializer(many=True)
    qscores = StatementQScoreSerializer(many=True)
