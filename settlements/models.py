from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django_fsm import FSMField, transition

from participants.enums import RevenueModel
from participants.models import Participant
from settlements.enums import HighWaterMarkScope, SettlementState

S = SettlementState


def _money(help_text: str = "") -> models.DecimalField:
    # USDT to 8 places: the venue's precision; quantised ROUND_HALF_EVEN once, at the end.
    return models.DecimalField(max_digits=28, decimal_places=8, default=0, help_text=help_text)


class ParticipantMonth(models.Model):
    """One participant's UTC month across its symbols: the high-water mark and
    the platform's share (SPEC Part B.15, B.21), which the month's settlements,
    one per symbol, divide between them (settlements/calculation.py).

    The settlements of a participant-month are approved, rejected and
    recalculated together; this row is locked first whenever they are."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="settlement_months"
    )
    period_start = models.DateField(help_text="first day of the UTC month")
    period_end = models.DateField(help_text="first day of the next month (half-open)")
    gross_usdt = _money("Σ the month's gross over the participant's symbols")
    positive_gross_usdt = _money("Σ of the positive gross: the share is allocated pro rata to it")
    high_water_mark_usdt = _money("the participant's mark before the month")
    cumulative_gross_usdt = _money("the participant's cumulative gross after the month")
    high_water_mark_after_usdt = _money("max(mark before, cumulative gross after)")
    share_base_usdt = _money("max(0, cumulative gross after − mark before)")
    platform_share_usdt = _money("the platform's share of the month, before allocation")
    net_usdt = _money("gross − share")
    revenue_model = models.CharField(max_length=16, choices=RevenueModel.choices)
    revenue_share_pct = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    high_water_mark_scope = models.CharField(
        max_length=16, choices=HighWaterMarkScope.choices, default=HighWaterMarkScope.PARTICIPANT
    )
    # SHA-256 of the month's inputs across symbols; every settlement of the month
    # records the same one ("" on months migrated from per-symbol marks).
    inputs_sha256 = models.CharField(max_length=64, blank=True, default="")
    computed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_settlement_participant_months"
        ordering = ["-period_start", "participant_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "period_start"], name="participant_month_one_per_month"
            ),
            models.CheckConstraint(
                condition=models.Q(period_start__lt=models.F("period_end")),
                name="participant_month_period_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(platform_share_usdt__gte=0),
                name="participant_month_share_nonneg",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    high_water_mark_after_usdt__gte=models.F("high_water_mark_usdt")
                ),
                name="participant_month_mark_never_falls",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.period_start:%Y-%m}"


class Settlement(models.Model):
    """What one participant earned in one symbol over one UTC month, its part of
    the participant-month's platform share, and its payout."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="settlements"
    )
    participant_month = models.ForeignKey(
        ParticipantMonth, on_delete=models.PROTECT, related_name="settlements"
    )
    symbol = models.CharField(max_length=32)
    period_start = models.DateField(help_text="first day of the UTC month")
    period_end = models.DateField(help_text="first day of the next month (half-open)")
    realized_pnl_usdt = _money()
    fees_usdt = _money()
    funding_usdt = _money()
    gross_usdt = _money()
    # This symbol's part of the participant-month's share (pro rata to positive gross).
    platform_share_usdt = _money()
    net_usdt = _money()
    fill_count = models.PositiveIntegerField(default=0)
    funding_count = models.PositiveIntegerField(default=0)
    volume_usdt = _money()
    computed_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the participant-month's inputs (settlements/calculation.py), checked
    # at approval; a settlement migrated from per-symbol marks keeps its own.
    inputs_sha256 = models.CharField(max_length=64, blank=True, default="")
    revenue_model = models.CharField(max_length=16, choices=RevenueModel.choices)
    revenue_share_pct = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    q_score = models.DecimalField(max_digits=12, decimal_places=10, default=0)

    state = FSMField(default=S.PENDING, choices=S.choices, protected=True)
    approved_by = models.CharField(max_length=150, blank=True, default="")
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.CharField(max_length=150, blank=True, default="")
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True, default="")
    payout_reference = models.CharField(max_length=128, blank=True, default="")
    settled_by = models.CharField(max_length=150, blank=True, default="")
    settled_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_settlements"
        ordering = ["-period_start", "symbol", "participant_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "symbol", "period_start"],
                name="settlement_one_per_participant_symbol_month",
            ),
            models.CheckConstraint(
                condition=models.Q(period_start__lt=models.F("period_end")),
                name="settlement_period_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(platform_share_usdt__gte=0), name="settlement_share_nonneg"
            ),
        ]
        indexes = [models.Index(fields=["state", "period_start"])]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.symbol} {self.period_start:%Y-%m}"

    @property
    def share_weight_usdt(self) -> Decimal:
        """This symbol's weight in the allocation of the month's share: its gross if positive."""
        return max(Decimal(0), self.gross_usdt)

    # approve, reject and recalculate move every settlement of the participant-month
    # at once (settlements/services.py); mark_settled and mark_failed one at a time.

    @transition(field=state, source=S.PENDING, target=S.APPROVED)
    def approve(self) -> None:
        """Finance reviewed the fills and Q-score and agrees with the figures."""

    @transition(field=state, source=S.PENDING, target=S.REJECTED)
    def reject(self) -> None:
        """Finance disagrees; a reason is recorded."""

    @transition(field=state, source=S.REJECTED, target=S.PENDING)
    def recalculate(self) -> None:
        """Back into the approval queue after the figures were recomputed."""

    @transition(field=state, source=[S.APPROVED, S.FAILED], target=S.SETTLED)
    def mark_settled(self) -> None:
        """The wallet transfer was executed outside MMS (retry of a FAILED keeps the id).
        Four-eyes: not by whoever approved it (SETTLEMENT_FOUR_EYES)."""

    @transition(field=state, source=S.APPROVED, target=S.FAILED)
    def mark_failed(self) -> None:
        """The transfer failed; a reason is recorded and it may be retried.
        Four-eyes: not by whoever approved it (SETTLEMENT_FOUR_EYES)."""
