from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django_fsm import FSMField, transition

from participants.enums import ParticipantState, RevenueModel, Tier

S = ParticipantState


class Participant(models.Model):
    """A liquidity provider: a global identity that may be a member of several pools."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # First 8 characters of the id: the participant's part of every client_order_id,
    # unique so an order id always names one participant (SPEC Part B.6).
    short_id = models.CharField(max_length=8, unique=True, editable=False)
    name = models.CharField(max_length=200)
    user_id = models.CharField(max_length=64)
    account_id = models.CharField(max_length=64, unique=True)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    margin_usdt = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal("0"))
    revenue_model = models.CharField(
        max_length=16, choices=RevenueModel.choices, default=RevenueModel.KEEP_ALL
    )
    revenue_share_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"))
    state = FSMField(default=S.PENDING, choices=S.choices, protected=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_participants"
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(margin_usdt__gte=0),
                name="participant_margin_non_negative",
                violation_error_message="margin_usdt must be ≥ 0",
            ),
            models.CheckConstraint(
                condition=models.Q(revenue_share_pct__gte=0, revenue_share_pct__lte=100),
                name="participant_revenue_share_0_100",
                violation_error_message="revenue_share_pct must be between 0 and 100",
            ),
            models.CheckConstraint(
                condition=models.Q(revenue_model=RevenueModel.PERCENTAGE_SPLIT)
                | models.Q(revenue_share_pct=0),
                name="participant_share_only_with_split",
                violation_error_message="revenue_share_pct applies only to PERCENTAGE_SPLIT",
            ),
        ]
        indexes = [models.Index(fields=["state"]), models.Index(fields=["tier"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.short_id})"

    @transition(field=state, source=[S.PENDING, S.SUSPENDED], target=S.ACTIVE)
    def activate(self) -> None:
        """PENDING → ACTIVE, or back from SUSPENDED."""

    @transition(field=state, source=S.ACTIVE, target=S.SUSPENDED)
    def suspend(self) -> None:
        """ACTIVE → SUSPENDED: its members stop being allocated orders."""

    @transition(field=state, source=[S.PENDING, S.ACTIVE, S.SUSPENDED], target=S.TERMINATED)
    def terminate(self) -> None:
        """Permanent; every record is kept."""


class ParticipantTerms(models.Model):
    """The revenue terms in force from `effective_at`: one row at enrolment and one
    at every change of revenue_model or revenue_share_pct. A settlement applies
    the terms in force at the start of its month (SPEC Part B.15)."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="terms")
    revenue_model = models.CharField(max_length=16, choices=RevenueModel.choices)
    revenue_share_pct = models.DecimalField(max_digits=5, decimal_places=2)
    effective_at = models.DateTimeField()
    set_by = models.CharField(max_length=150)

    class Meta:
        db_table = "mm_participant_terms"
        ordering = ["participant_id", "effective_at", "id"]
        indexes = [models.Index(fields=["participant", "effective_at"])]

    def __str__(self) -> str:
        share = f"{self.revenue_model} {self.revenue_share_pct}%"
        return f"{self.participant_id} {share} from {self.effective_at:%Y-%m-%d %H:%M}"
