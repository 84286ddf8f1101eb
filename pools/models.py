from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django_fsm import FSMField, transition

from participants.models import Participant
from pools.enums import FlattenStatus, PoolState

S = PoolState
SYMBOL_PATTERN = r"[A-Z0-9]{2,20}(?:-[A-Z]{2,8})?"
SYMBOL_VALIDATOR = RegexValidator(
    rf"^{SYMBOL_PATTERN}$", "a symbol is upper-case, e.g. BTCUSDT-PERP"
)


def _dec(max_digits: int = 24, places: int = 8, **kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=max_digits, decimal_places=places, **kwargs)  # type: ignore[arg-type]


class PoolConfig(models.Model):
    """One liquidity pool per symbol: its A-S parameters, risk limits and lifecycle state."""

    symbol = models.CharField(max_length=32, unique=True, validators=[SYMBOL_VALIDATOR])
    enabled = models.BooleanField(default=False)
    gamma = _dec(places=10)
    kappa = _dec(places=10)
    vol_lookback_seconds = models.PositiveIntegerField()
    tau = _dec(places=10)
    num_levels = models.PositiveSmallIntegerField()
    level_spacing_bps = _dec(12, 4)
    min_spread_bps = _dec(12, 4)
    max_spread_bps = _dec(12, 4)
    order_size_usdt = _dec()
    max_pool_position_usdt = _dec()
    max_pool_loss_usdt = _dec()
    check_staleness = models.BooleanField(default=True)
    staleness_threshold_ms = models.PositiveIntegerField(default=5000)
    quote_interval_ms = models.PositiveIntegerField(default=250)
    price_threshold_bps = _dec(12, 4, default=Decimal("1"))
    # The inventory the A-S skew aims at (q₀, base units; SPEC B.20).
    target_inventory = _dec(38, 12, default=Decimal(0))
    # UNWINDING: reducing orders within this many bps of mid; a further loss
    # beyond this since the unwind began halts it; it ends PAUSED after this long.
    unwind_band_bps = _dec(12, 4, default=Decimal("50"))
    # None: the pool's max_pool_loss_usdt again.
    unwind_max_loss_usdt = _dec(null=True, blank=True, default=None)
    unwind_time_limit_s = models.PositiveIntegerField(default=3600)

    state = FSMField(default=S.PAUSED, choices=S.choices, protected=True)
    state_reason = models.TextField(blank=True, default="")
    state_changed_at = models.DateTimeField(null=True, blank=True)
    state_changed_by = models.CharField(max_length=150, blank=True, default="")
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_pool_configs"
        verbose_name = "pool"
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(gamma__gt=0) & models.Q(kappa__gt=0) & models.Q(tau__gt=0),
                name="pool_as_params_positive",
                violation_error_message="gamma, kappa and tau must be > 0",
            ),
            models.CheckConstraint(
                condition=models.Q(num_levels__gte=1) & models.Q(vol_lookback_seconds__gte=1),
                name="pool_levels_lookback_positive",
                violation_error_message="num_levels and vol_lookback_seconds must be ≥ 1",
            ),
            models.CheckConstraint(
                condition=models.Q(min_spread_bps__gte=0)
                & models.Q(level_spacing_bps__gte=0)
                & models.Q(price_threshold_bps__gte=0),
                name="pool_bps_non_negative",
                violation_error_message="spreads, spacing and thresholds must be ≥ 0",
            ),
            models.CheckConstraint(
                condition=models.Q(min_spread_bps__lte=models.F("max_spread_bps")),
                name="pool_min_spread_le_max_spread",
                violation_error_message="min_spread_bps must be ≤ max_spread_bps",
            ),
            models.CheckConstraint(
                condition=models.Q(unwind_band_bps__gt=0)
                & (
                    models.Q(unwind_max_loss_usdt__isnull=True)
                    | models.Q(unwind_max_loss_usdt__gte=0)
                )
                & models.Q(unwind_time_limit_s__gte=1),
                name="pool_unwind_limits",
                violation_error_message=(
                    "unwind_band_bps must be > 0, unwind_max_loss_usdt ≥ 0 and "
                    "unwind_time_limit_s ≥ 1"
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(order_size_usdt__gt=0)
                & models.Q(max_pool_position_usdt__gte=0)
                & models.Q(max_pool_loss_usdt__gte=0),
                name="pool_sizes_and_limits",
                violation_error_message="order_size_usdt must be > 0 and limits ≥ 0",
            ),
        ]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return self.symbol

    @transition(field=state, source=S.PAUSED, target=S.ACTIVE)
    def enable(self) -> None:
        """PAUSED → ACTIVE, marking the pool to be hosted at start-up."""

    @transition(field=state, source=[S.ACTIVE, S.UNWINDING], target=S.PAUSED)
    def pause(self) -> None:
        """ACTIVE or UNWINDING → PAUSED: the gate closes and resting orders are cancelled."""

    @transition(field=state, source=[S.PAUSED, S.HALTED], target=S.ACTIVE)
    def resume(self) -> None:
        """PAUSED or HALTED → ACTIVE; from HALTED only with a person's review note."""

    @transition(field=state, source=[S.PAUSED, S.ACTIVE, S.UNWINDING], target=S.HALTED)
    def halt(self) -> None:
        """Kill switch: any state but HALTED → HALTED."""

    @transition(field=state, source=[S.PAUSED, S.HALTED], target=S.UNWINDING)
    def unwind(self) -> None:
        """PAUSED or HALTED → UNWINDING, by a person with a note: reducing orders only."""

    @transition(field=state, source=S.UNWINDING, target=S.PAUSED)
    def finish_unwind(self) -> None:
        """UNWINDING → PAUSED when every member is flat or the time limit is reached."""


class PoolMember(models.Model):
    """A participant's membership of one pool: its capital weight and own limit."""

    pool = models.ForeignKey(PoolConfig, on_delete=models.PROTECT, related_name="members")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="memberships"
    )
    weight = _dec(20, 8, validators=[MinValueValidator(Decimal("0.00000001"))])
    max_position_usdt = _dec(validators=[MinValueValidator(Decimal("0"))])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_pool_members"
        ordering = ["pool_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "participant"],
                name="member_unique_participant_per_pool",
                violation_error_message="the participant is already a member of this pool",
            ),
            models.CheckConstraint(
                condition=models.Q(weight__gt=0),
                name="member_weight_positive",
                violation_error_message="weight must be > 0",
            ),
            models.CheckConstraint(
                condition=models.Q(max_position_usdt__gte=0),
                name="member_limit_non_negative",
                violation_error_message="max_position_usdt must be ≥ 0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}@{self.pool_id}"


class FlattenRequest(models.Model):
    """A durable request to cancel every order of every member account on every
    symbol at the venue (SPEC Part B.13); the workers carry it out."""

    requested_by = models.CharField(max_length=150)
    reason = models.TextField(blank=True, default="")
    status = FSMField(
        max_length=16,
        choices=FlattenStatus.choices,
        default=FlattenStatus.REQUESTED,
        protected=True,
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mm_flatten_requests"
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"flatten #{self.pk} {self.status}"

    @transition(field=status, source=FlattenStatus.REQUESTED, target=FlattenStatus.COMPLETED)
    def complete(self) -> None:
        """Every member account's orders on every symbol were cancelled at the venue."""


class SymbolLease(models.Model):
    """Which quoting worker owns a symbol, with a fencing token that grows on every
    takeover (SPEC Part B.11): a write carrying an older token is refused, so a
    worker that lost a symbol can never act on it again."""

    symbol = models.CharField(max_length=32, primary_key=True)
    owner = models.CharField(max_length=128, blank=True, default="")
    token = models.BigIntegerField(default=0)
    acquired_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mm_symbol_leases"
        ordering = ["symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} → {self.owner or '-'} #{self.token}"
