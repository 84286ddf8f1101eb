"""Bodies of the settlement routes. Money leaves as strings (Decimal, never float)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from common.actors import Actor
from common.api import InputSerializer
from settlements.models import Settlement


class SettlementOutputSerializer(serializers.ModelSerializer[Settlement]):
    participant_id = serializers.UUIDField()
    participant_name = serializers.CharField(source="participant.name")

    class Meta:
        model = Settlement
        fields = [
            "id",
            "participant_id",
            "participant_name",
            "symbol",
            "period_start",
            "period_end",
            "realized_pnl_usdt",
            "fees_usdt",
            "funding_usdt",
            "gross_usdt",
            "platform_share_usdt",
            "net_usdt",
            "high_water_mark_usdt",
            "revenue_model",
            "revenue_share_pct",
            "q_score",
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
                f"must be the authenticated caller ({actor.name!r}), got {value!r}"
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
