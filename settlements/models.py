from __future__ import annotations

import uuid

from django.db import models
from django_fsm import FSMField, transition

from participants.enums import RevenueModel
from participants.models import Participant
from settlements.enums import SettlementState

S = SettlementState


def _money() -> models.DecimalField:
    # USDT to 8 places: the venue's precision; quantised ROUND_HALF_EVEN once, at the end.
    return models.DecimalField(max_digits=28, decimal_places=8, default=0)


class Settlement(models.Model):
    """What one participant earned in one symbol over one UTC month, and its payout."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="settlements"
    )
    symbol = models.CharField(max_length=32)
    period_start = models.DateField(help_text="first day of the UTC month")
    period_end = models.DateField(help_text="first day of the next month (half-open)")
    realized_pnl_usdt = _money()
    fees_usdt = _money()
    funding_usdt = _money()
    gross_usdt = _money()
    platform_share_usdt = _money()
    net_usdt = _money()
    # The high-water mark before this month (the best cumulative gross so far, ≥ 0),
    # the cumulative gross after it, and the part of it above the mark the
    # platform's share is taken from (SPEC Part B.15).
    high_water_mark_usdt = _money()
    cumulative_gross_usdt = _money()
    share_base_usdt = _money()
    fill_count = models.PositiveIntegerField(default=0)
    funding_count = models.PositiveIntegerField(default=0)
    volume_usdt = _money()
    computed_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the figures' inputs (settlements/calculation.py), recorded at approval.
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
        """The wallet transfer was executed outside MMS (retry of a FAILED keeps the id)."""

    @transition(field=state, source=S.APPROVED, target=S.FAILED)
    def mark_failed(self) -> None:
        """The transfer failed; a reason is recorded and it may be retried."""
