"""Reads over the daily performance rollup (mm_performance_daily) and the
cross-symbol leaderboard.

Units: `q_score` is a participant's share of one symbol's pool over one UTC
day, in [0, 1]; the shares of one symbol-day sum to 1 (SPEC Part B.17). Volume
is in USDT, uptime a fraction in [0, 1].
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.http import Http404

from common.selectors import filter_given
from participants.models import Participant
from performance.models import PerformanceDaily
from pools.models import PoolConfig

SCORE_QUANTUM = Decimal("0.0000000001")  # q_score's own precision (10 places)
UPTIME_QUANTUM = Decimal("0.000001")
EFFICIENCY_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    participant_id: str
    participant_name: str
    score: Decimal
    symbol_days: int
    volume_usdt: Decimal
    trade_count: int
    mean_uptime: Decimal
    mean_efficiency: Decimal
    realized_pnl_usdt: Decimal


@dataclass(frozen=True)
class Leaderboard:
    day_from: dt.date | None
    day_to: dt.date | None
    symbol: str | None
    symbol_days: int
    entries: list[LeaderboardEntry]


def performance_rows(
    *,
    day_from: dt.date | None = None,
    day_to: dt.date | None = None,
    symbol: str | None = None,
    participant_id: str | None = None,
) -> QuerySet[PerformanceDaily]:
    """Daily rows in an inclusive day range, with the participant joined in."""
    rows = PerformanceDaily.objects.select_related("participant")
    return filter_given(
        rows,
        day__gte=day_from,
        day__lte=day_to,
        symbol=symbol,
        participant_id=participant_id,
    )


def performance_symbol_rows(
    *, symbol: str, day_from: dt.date | None = None, day_to: dt.date | None = None
) -> QuerySet[PerformanceDaily]:
    """One symbol's daily rows, newest day first and the best share first within a day.

    404 for a symbol that never had a pool (pools are archived, never deleted)."""
    if not PoolConfig.objects.filter(symbol=symbol).exists():
        raise Http404(f"no pool {symbol}")
    return performance_rows(symbol=symbol, day_from=day_from, day_to=day_to).order_by(
        "-day", "-q_score", "participant_id"
    )


def performance_participant_rows(
    *,
    participant_id: str,
    day_from: dt.date | None = None,
    day_to: dt.date | None = None,
    symbol: str | None = None,
) -> QuerySet[PerformanceDaily]:
    """One participant's daily rows across its pools, newest day first."""
    if not Participant.objects.filter(pk=participant_id).exists():
        raise Http404(f"no participant {participant_id}")
    return performance_rows(
        participant_id=participant_id, day_from=day_from, day_to=day_to, symbol=symbol
    ).order_by("-day", "symbol")


def performance_latest_day(*, symbol: str | None = None) -> dt.date | None:
    rows = PerformanceDaily.objects.all()
    rows = filter_given(rows, symbol=symbol)
    latest: dt.date | None = rows.aggregate(latest=Max("day"))["latest"]
    return latest


def symbol_weight(symbol: str) -> Decimal:
    """A symbol's weight in the cross-symbol leaderboard (QSCORE_SYMBOL_WEIGHTS; 1 if unnamed)."""
    weights: Mapping[str, Decimal] = settings.QSCORE_SYMBOL_WEIGHTS
    return weights.get(symbol, Decimal(1))


def leaderboard_get(
    *,
    day_from: dt.date | None = None,
    day_to: dt.date | None = None,
    symbol: str | None = None,
) -> Leaderboard:
    """Participants ranked by their combined Q-score share over a day range.

    Only normalised shares are combined (SPEC Part B.17): with W_s the symbol's
    weight (QSCORE_SYMBOL_WEIGHTS, default 1) and D_s the days of the window on
    which symbol s has rows, a participant's score is

        Σ_s W_s · Σ_d q(participant, s, d)  ÷  Σ_s W_s · D_s

    the weighted mean of its daily shares, a symbol-day where it has no row
    counting as 0. Each symbol-day's shares sum to 1, so all participants'
    scores sum to 1 too. Without a range, the latest day that has rows is
    used. Three queries, however many participants.
    """
    if day_from is None and day_to is None:
        day_from = day_to = performance_latest_day(symbol=symbol)
        if day_from is None:
            return Leaderboard(None, None, symbol, 0, [])
    rows = performance_rows(day_from=day_from, day_to=day_to, symbol=symbol).order_by()
    days = dict(
        rows.values("symbol").annotate(n=Count("day", distinct=True)).values_list("symbol", "n")
    )
    per_symbol = list(
        rows.values("participant_id", "participant__name", "symbol").annotate(
            share_sum=Sum("q_score"),
            symbol_days=Count("id"),
            volume=Sum("volume_usdt"),
            trades=Sum("trade_count"),
            uptime_sum=Sum("uptime"),
            efficiency_sum=Sum("efficiency"),
            pnl=Sum("realized_pnl_usdt"),
            first_day=Min("day"),
            last_day=Max("day"),
        )
    )
    if not per_symbol:
        return Leaderboard(day_from, day_to, symbol, 0, [])
    denominator = sum((symbol_weight(s) * n for s, n in days.items()), Decimal(0))
    combined: dict[str, dict[str, Any]] = {}
    for row in per_symbol:
        pid = str(row["participant_id"])
        into = combined.setdefault(
            pid,
            {
                "participant_id": pid,
                "participant__name": row["participant__name"],
                "weighted": Decimal(0),
                "symbol_days": 0,
                "volume": Decimal(0),
                "trades": 0,
                "uptime_sum": Decimal(0),
                "efficiency_sum": Decimal(0),
                "pnl": Decimal(0),
            },
        )
        into["weighted"] += symbol_weight(row["symbol"]) * row["share_sum"]
        for key in ("symbol_days", "volume", "trades", "uptime_sum", "efficiency_sum", "pnl"):
            into[key] += row[key]
    day_from = day_from or min(p["first_day"] for p in per_symbol)
    day_to = day_to or max(p["last_day"] for p in per_symbol)
    return Leaderboard(
        day_from,
        day_to,
        symbol,
        sum(days.values()),
        _ranked(list(combined.values()), denominator),
    )


def _ranked(
    per_participant: Sequence[Mapping[str, Any]], denominator: Decimal
) -> list[LeaderboardEntry]:
    def score(p: Mapping[str, Any]) -> Decimal:
        if not denominator:
            return Decimal(0)
        return (p["weighted"] / denominator).quantize(SCORE_QUANTUM, rounding=ROUND_HALF_EVEN)

    scored = sorted(
        ((score(p), p) for p in per_participant),
        key=lambda sp: (
            -sp[0],
            -sp[1]["volume"],
            sp[1]["participant__name"],
            sp[1]["participant_id"],
        ),
    )
    entries: list[LeaderboardEntry] = []
    for position, (value, p) in enumerate(scored, start=1):
        # Standard competition ranking: equal scores share a rank (1, 2, 2, 4).
        rank = entries[-1].rank if entries and entries[-1].score == value else position
        n = p["symbol_days"]
        entries.append(
            LeaderboardEntry(
                rank=rank,
                participant_id=p["participant_id"],
                participant_name=p["participant__name"],
                score=value,
                symbol_days=n,
                volume_usdt=p["volume"],
                trade_count=p["trades"],
                mean_uptime=(p["uptime_sum"] / n).quantize(
                    UPTIME_QUANTUM, rounding=ROUND_HALF_EVEN
                ),
                mean_efficiency=(p["efficiency_sum"] / n).quantize(
                    EFFICIENCY_QUANTUM, rounding=ROUND_HALF_EVEN
                ),
                realized_pnl_usdt=p["pnl"],
            )
        )
    return entries
