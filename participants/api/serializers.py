from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from common.api import InputSerializer
from common.exceptions import SEMANTIC
from participants.enums import RevenueModel, Tier
from participants.models import Participant


class ParticipantUpdateInputSerializer(InputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    tier = serializers.ChoiceField(choices=Tier.choices, required=False)
    margin_usdt = serializers.DecimalField(
        max_digits=24, decimal_places=8, min_value=Decimal(0), required=False
    )
    revenue_model = serializers.ChoiceField(choices=RevenueModel.choices, required=False)
    revenue_share_pct = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(100),
        required=False,
        help_text="platform's % of gross PnL above the high-water mark (PERCENTAGE_SPLIT only)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        instance = self.instance
        model = attrs.get("revenue_model", getattr(instance, "revenue_model", None))
        share = attrs.get("revenue_share_pct", getattr(instance, "revenue_share_pct", Decimal(0)))
        if model == RevenueModel.KEEP_ALL and share:
            raise serializers.ValidationError(
                {"revenue_share_pct": ["must be 0 when revenue_model is KEEP_ALL"]}, code=SEMANTIC
            )
        if (
            model == RevenueModel.PERCENTAGE_SPLIT
            and "revenue_share_pct" not in attrs
            and not share
        ):
            raise serializers.ValidationError(
                {"revenue_share_pct": ["required when revenue_model is PERCENTAGE_SPLIT"]},
                code=SEMANTIC,
            )
        return attrs


class ParticipantEnrollInputSerializer(ParticipantUpdateInputSerializer):
    name = serializers.CharField(max_length=200)
    user_id = serializers.CharField(max_length=64)
    account_id = serializers.CharField(
        max_length=64, help_text="the participant's own SYSTEM_MARKET_MAKER account"
    )
    tier = serializers.ChoiceField(choices=Tier.choices)


class ParticipantOutputSerializer(serializers.ModelSerializer[Participant]):
    class Meta:
        model = Participant
        fields = [
            "id",
            "short_id",
            "name",
            "user_id",
            "account_id",
            "tier",
            "margin_usdt",
            "revenue_model",
            "revenue_share_pct",
            "state",
            "state_changed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
