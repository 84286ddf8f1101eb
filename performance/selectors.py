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

from django.db.models import Avg, Count, Max, Min, QuerySet, Sum
from django.http import Http404

from common.selectors import filter_given
from participants.models import Participant
from performance.models import PerformanceDaily
from pools.models import PoolConfig

SCORE_QUANTUM = Decimal("0.0000000001")  # q_score's own precision (10 places)
UPTIME_QUANTUM = Decimal("0.000001")


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


def leaderboard_get(
    *,
    day_from: dt.date | None = None,
    day_to: dt.date | None = None,
    symbol: str | None = None,
) -> Leaderboard:
    """Participants ranked by their combined Q-score share over a day range.

    Symbols are weighted equally: the score is the sum of the participant's
    per-symbol-day shares divided by the number of symbol-days in the window
    that have any rows, i.e. the mean of its shares with a symbol-day where it
    has no row counting as 0. Because each symbol-day's shares sum to 1, the
    scores of all participants sum to 1 too. Without a range, the latest day
    that has rows is used. Three queries at most, however many participants.
    """
    if day_from is None and day_to is None:
        day_from = day_to = performance_latest_day(symbol=symbol)
        if day_from is None:
            return Leaderboard(None, None, symbol, 0, [])
    rows = performance_rows(day_from=day_from, day_to=day_to, symbol=symbol).order_by()
    symbol_days = rows.values("symbol", "day").distinct().count()
    per_participant = list(
        rows.values("participant_id", "participant__name").annotate(
            share_sum=Sum("q_score"),
            symbol_days=Count("id"),
            volume=Sum("volume_usdt"),
            trades=Sum("trade_count"),
            uptime=Avg("uptime"),
            pnl=Sum("realized_pnl_usdt"),
            first_day=Min("day"),
            last_day=Max("day"),
        )
    )
    if not per_participant:
        return Leaderboard(day_from, day_to, symbol, 0, [])
    day_from = day_from or min(p["first_day"] for p in per_participant)
    day_to = day_to or max(p["last_day"] for p in per_participant)
    return Leaderboard(day_from, day_to, symbol, symbol_days, _ranked(per_participant, symbol_days))


def _ranked(
    per_participant: Sequence[Mapping[str, Any]], symbol_days: int
) -> list[LeaderboardEntry]:
    def score(p: Mapping[str, Any]) -> Decimal:
        return (p["share_sum"] / symbol_days).quantize(SCORE_QUANTUM, rounding=ROUND_HALF_EVEN)

    scored = sorted(
        ((score(p), p) for p in per_participant),
        key=lambda sp: (
            -sp[0],
            -sp[1]["volume"],
            sp[1]["participant__name"],
            str(sp[1]["participant_id"]),
        ),
    )
    entries: list[LeaderboardEntry] = []
    for position, (value, p) in enumerate(scored, start=1):
        # Standard competition ranking: equal scores share a rank (1, 2, 2, 4).
        rank = entries[-1].rank if entries and entries[-1].score == value else position
        entries.append(
            LeaderboardEntry(
                rank=rank,
                participant_id=str(p["participant_id"]),
                participant_name=p["participant__name"],
                score=value,
                symbol_days=p["symbol_days"],
                volume_usdt=p["volume"],
                trade_count=p["trades"],
                mean_uptime=p["uptime"].quantize(UPTIME_QUANTUM, rounding=ROUND_HALF_EVEN),
                realized_pnl_usdt=p["pnl"],
            )
        )
    return entries
