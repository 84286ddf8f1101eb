"""Daily performance rows in the panel: computed by the rollup, read-only here."""

from __future__ import annotations

from django.contrib import admin

from common.admin import ReadOnlyModelAdmin
from performance.models import PerformanceDaily


@admin.register(PerformanceDaily)
class PerformanceDailyAdmin(ReadOnlyModelAdmin):
    list_display = (
        "day",
        "symbol",
        "participant",
        "uptime",
        "avg_spread_bps",
        "avg_depth_usdt",
        "trade_count",
        "volume_usdt",
        "realized_pnl_usdt",
        "q_score",
        "efficiency",
    )
    list_filter = ("day", "symbol")
    search_fields = ("symbol", "participant__name", "participant__short_id")
    list_select_related = ("participant",)
    date_hierarchy = "day"
