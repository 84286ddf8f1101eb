from __future__ import annotations

from django.db import models

from participants.models import Participant


def _dec(places: int = 8) -> models.DecimalField:
    return models.DecimalField(max_digits=28, decimal_places=places, default=0)


class PerformanceDaily(models.Model):
    """One participant's performance in one symbol's pool over one UTC day."""

    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="performance_days"
    )
    symbol = models.CharField(max_length=32)
    day = models.DateField()
    samples = models.PositiveIntegerField(default=0)
    uptime = models.DecimalField(max_digits=7, decimal_places=6, default=0)
    avg_spread_bps = _dec(4)
    avg_depth_usdt = _dec()
    trade_count = models.PositiveIntegerField(default=0)
    volume_usdt = _dec()
    realized_pnl_usdt = _dec()
    q_score = models.DecimalField(max_digits=12, decimal_places=10, default=0)
    efficiency = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    # The Q-score's parts (performance/qscore.py): shares of the symbol-day in [0, 1].
    liquidity_share = models.DecimalField(max_digits=12, decimal_places=10, default=0)
    volume_share = models.DecimalField(max_digits=12, decimal_places=10, default=0)
    weight_share = models.DecimalField(max_digits=12, decimal_places=10, default=0)
    quoting_samples = models.PositiveIntegerField(default=0)
    qualified = models.BooleanField(default=False)
    uptime_floor = models.DecimalField(max_digits=7, decimal_places=6, default=0)
    sla_met = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mm_performance_daily"
        ordering = ["-day", "symbol", "-q_score"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "symbol", "day"], name="performance_one_row_per_day"
            ),
            models.CheckConstraint(
                condition=models.Q(uptime__gte=0, uptime__lte=1), name="performance_uptime_0_1"
            ),
            models.CheckConstraint(
                condition=models.Q(q_score__gte=0, q_score__lte=1),
                name="performance_q_score_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["day", "symbol"]),
            models.Index(fields=["symbol", "day"]),
            models.Index(fields=["participant", "day"]),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.symbol} {self.day}"


class PerformanceSnapshot(models.Model):
    """One member of one pool at one sampling instant (every
    PERFORMANCE_SNAPSHOT_INTERVAL), from the quoting worker's live status and
    mm_fills. Pruned once its day is rolled up and PERFORMANCE_SNAPSHOT_RETENTION
    has passed (SPEC Part B.18): mm_performance_daily is the durable record.

    `liquidity` is the sample's two-sided, spread-weighted depth in USDT
    (performance/qscore.py `sample`); `quoting` its uptime sample; `pool_active`
    whether the pool was ACTIVE (only those samples count)."""

    id = models.BigAutoField(primary_key=True)
    taken_at = models.DateTimeField()
    symbol = models.CharField(max_length=32)
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    pool_active = models.BooleanField()
    quoting = models.BooleanField()
    spread_bps = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    bid_depth_usdt = models.DecimalField(max_digits=24, decimal_places=4)
    ask_depth_usdt = models.DecimalField(max_digits=24, decimal_places=4)
    liquidity = models.DecimalField(max_digits=28, decimal_places=8)
    trades = models.PositiveIntegerField()
    volume_usdt = models.DecimalField(max_digits=28, decimal_places=8)

    class Meta:
        db_table = "mm_performance_snapshots"
        ordering = ["taken_at", "symbol", "participant_id"]
        constraints = [
            # A retried snapshot run for the same instant writes nothing twice.
            models.UniqueConstraint(
                fields=["symbol", "taken_at", "participant"], name="snapshot_one_per_instant"
            ),
        ]
        indexes = [models.Index(fields=["taken_at"])]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.symbol} {self.taken_at:%Y-%m-%d %H:%M:%S}"
