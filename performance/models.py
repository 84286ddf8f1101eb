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
