"""The performance jobs: a snapshot every PERFORMANCE_SNAPSHOT_INTERVAL, the daily
rollup into mm_performance_daily with the Q-score, and the pruning of rolled-up
snapshots (SPEC Part B.17, B.18). Each is idempotent: run twice, the same rows.

Snapshots (`snapshot_take`): one row per member of every pool at the instant
`taken_at` (now, floored to the interval, so a retried run writes nothing
twice), from the quoting worker's live status in Redis (the member's resting,
venue-acknowledged orders and the book's mid) and mm_fills (trades and volume
in the interval before `taken_at`). A sample counts for uptime only while its
pool is ACTIVE in the database and the worker reports it ACTIVE: a pool paused
by the desk, or a worker that is down, costs no member its uptime.

Rollup (`rollup_day`): per symbol, the snapshots of one UTC day are
aggregated in PostgreSQL — each sample's liquidity normalised across the
members sampled at that instant (a window sum), then summed per member — and
the day's trades, maker volume and realised PnL come from mm_fills; the
Q-score is then computed from those few aggregates per member
(`performance.qscore.day_scores`) and upserted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from common.batches import delete_in_batches
from common.metrics import count_job
from participants.models import Participant
from performance.models import PerformanceDaily, PerformanceSnapshot
from performance.qscore import DayScore, MemberDay, QScoreConfig, RestingOrder, day_scores, sample
from pools.enums import PoolState
from pools.models import PoolConfig, PoolMember
from pools.selectors import live_status_get
from trading.models import MMFill
from trading.selectors import FILL_NOTIONAL

logger = logging.getLogger("mms.performance")

ZERO = Decimal(0)
DEPTH_QUANTUM = Decimal("0.0001")
LIQUIDITY_QUANTUM = Decimal("0.00000001")
SPREAD_QUANTUM = Decimal("0.0001")
SCORE_QUANTUM = Decimal("0.0000000001")
PRUNE_BATCH = 50_000


# ---------------------------------------------------------------- snapshots


def snapshot_instant(now: dt.datetime, interval: dt.timedelta) -> dt.datetime:
    """`now` floored to the interval grid (UTC epoch): the instant a snapshot is for."""
    step = interval.total_seconds()
    floored = (now.timestamp() // step) * step
    return dt.datetime.fromtimestamp(floored, tz=dt.UTC)


def snapshot_take(
    *,
    now: dt.datetime | None = None,
    interval: dt.timedelta | None = None,
    config: QScoreConfig | None = None,
) -> int:
    """One sample per member of every pool that is not archived; returns how many
    rows were written (0 when this instant was already taken)."""
    interval = interval or settings.PERFORMANCE_SNAPSHOT_INTERVAL
    config = config or settings.QSCORE
    taken_at = snapshot_instant(now or timezone.now(), interval)
    pools = list(PoolConfig.objects.filter(archived_at__isnull=True))
    if not pools or PerformanceSnapshot.objects.filter(taken_at=taken_at).exists():
        return 0
    live = live_status_get(symbols=[p.symbol for p in pools])
    members = defaultdict(list)
    for member in PoolMember.objects.filter(pool__in=pools).only("pool_id", "participant_id"):
        members[member.pool_id].append(str(member.participant_id))
    traded: dict[tuple[str, str], dict[str, Any]] = {
        (str(row["participant_id"]), row["symbol"]): dict(row)
        for row in MMFill.objects.filter(filled_at__gte=taken_at - interval, filled_at__lt=taken_at)
        .values("participant_id", "symbol")
        .annotate(trades=Count("id"), volume=Sum(FILL_NOTIONAL))
    }
    rows = []
    for pool in pools:
        status = live.get(pool.symbol)
        active = (
            pool.state == PoolState.ACTIVE and status is not None and status["mode"] == "ACTIVE"
        )
        views = {m["participant_id"]: m for m in (status or {}).get("members", [])}
        mid = Decimal(status["mid"]) if status and status.get("mid") else None
        for pid in members[pool.pk]:
            view = views.get(pid)
            orders = [
                RestingOrder(side, Decimal(price), Decimal(size))
                for side, price, size in (view or {}).get("orders", [])
            ]
            measured = sample(orders, mid, config) if mid is not None else None
            fills: dict[str, Any] = traded.get((pid, pool.symbol), {})
            rows.append(
                PerformanceSnapshot(
                    taken_at=taken_at,
                    symbol=pool.symbol,
                    participant_id=pid,
                    pool_active=active,
                    quoting=bool(measured and measured.quoting),
                    spread_bps=_q_or_none(measured.spread_bps, SPREAD_QUANTUM)
                    if measured
                    else None,
                    bid_depth_usdt=_q(measured.bid_depth_usdt, DEPTH_QUANTUM) if measured else ZERO,
                    ask_depth_usdt=_q(measured.ask_depth_usdt, DEPTH_QUANTUM) if measured else ZERO,
                    liquidity=_q(measured.liquidity, LIQUIDITY_QUANTUM) if measured else ZERO,
                    trades=fills.get("trades", 0),
                    volume_usdt=_q(fills.get("volume") or ZERO, LIQUIDITY_QUANTUM),
                )
            )
    # The unique (symbol, instant, member) key makes a retried or concurrent run a no-op.
    PerformanceSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
    per_symbol: dict[str, int] = defaultdict(int)
    for row in rows:
        per_symbol[row.symbol] += 1
    count_job("mm_performance_snapshot_total", per_symbol)
    return len(rows)


def _q(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum)


def _q_or_none(value: Decimal | None, quantum: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(quantum)


# ---------------------------------------------------------------- the daily rollup

_SAMPLES_SQL = """
WITH s AS (
    SELECT symbol, participant_id, quoting, spread_bps, liquidity,
           LEAST(bid_depth_usdt, ask_depth_usdt) AS depth,
           SUM(liquidity) OVER (PARTITION BY symbol, taken_at) AS instant_total
    FROM mm_performance_snapshots
    WHERE taken_at >= %(start)s AND taken_at < %(end)s AND pool_active
)
SELECT symbol, participant_id,
       COUNT(*) AS active_samples,
       COUNT(*) FILTER (WHERE quoting) AS quoting_samples,
       COALESCE(SUM(CASE WHEN instant_total > 0
                         THEN ROUND(liquidity / instant_total, 20) END), 0) AS share_sum,
       AVG(spread_bps) FILTER (WHERE quoting) AS avg_spread_bps,
       COALESCE(AVG(depth) FILTER (WHERE quoting), 0) AS avg_depth_usdt
FROM s
GROUP BY symbol, participant_id
"""


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC day, half-open."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def rollup_day(
    day: dt.date,
    *,
    config: QScoreConfig | None = None,
    floors: dict[str, Decimal] | None = None,
) -> int:
    """Scores every symbol with snapshots or fills on `day` into
    mm_performance_daily (one row per member; a second run rewrites the same
    rows). Returns the number of rows."""
    config = config or settings.QSCORE
    floors = settings.QSCORE_TIER_UPTIME_FLOORS if floors is None else floors
    sampled, traded = _day_samples(day), _day_fills(day)
    by_symbol = _member_days(sampled, traded, floors)
    rows = []
    for symbol, members in by_symbol.items():
        scores = day_scores([m for _, m in members], config)
        total_weight = sum((m.weight for _, m in members), ZERO)
        for (pid, member), score in zip(members, scores, strict=True):
            rows.append(
                _daily_row(
                    day,
                    symbol,
                    member,
                    score,
                    sampled.get((symbol, pid), {}),
                    traded.get((symbol, pid), {}),
                    total_weight,
                )
            )
    fields = [
        f.name
        for f in PerformanceDaily._meta.concrete_fields
        if f.name not in ("id", "participant", "symbol", "day", "created_at")
    ]
    with transaction.atomic():
        PerformanceDaily.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["participant", "symbol", "day"],
            update_fields=fields,
        )
    count_job("mm_performance_rollup_total", dict.fromkeys(by_symbol, 1))
    logger.info("rolled up %s: %d rows over %d symbols", day, len(rows), len(by_symbol))
    return len(rows)


MemberKey = tuple[str, str]  # (symbol, participant id)


def _day_samples(day: dt.date) -> dict[MemberKey, dict[str, Any]]:
    """The day's snapshot aggregates per member (one query)."""
    start, end = day_bounds(day)
    sampled: dict[MemberKey, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_SAMPLES_SQL, {"start": start, "end": end})
        names = [c.name for c in cursor.description]
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            sampled[(row["symbol"], str(row["participant_id"]))] = row
    return sampled


def _day_fills(day: dt.date) -> dict[MemberKey, dict[str, Any]]:
    """The day's fill count, maker volume and realised PnL per member."""
    start, end = day_bounds(day)
    return {
        (r["symbol"], str(r["participant_id"])): dict(r)
        for r in MMFill.objects.filter(filled_at__gte=start, filled_at__lt=end)
        .values("symbol", "participant_id")
        .annotate(
            trades=Count("id"),
            volume=Sum(FILL_NOTIONAL),
            realized=Sum("realized_pnl_usdt"),
        )
    }


def _member_days(
    sampled: dict[MemberKey, dict[str, Any]],
    traded: dict[MemberKey, dict[str, Any]],
    floors: dict[str, Decimal],
) -> dict[str, list[tuple[str, MemberDay]]]:
    """Per symbol, each member's day as the Q-score takes it."""
    keys = set(sampled) | set(traded)
    symbols = {symbol for symbol, _ in keys}
    weights = {
        (m.pool.symbol, str(m.participant_id)): m.weight
        for m in PoolMember.objects.filter(pool__symbol__in=symbols).select_related("pool")
    }
    tiers = {
        str(pid): tier
        for pid, tier in Participant.objects.filter(id__in={pid for _, pid in keys}).values_list(
            "id", "tier"
        )
    }
    by_symbol: dict[str, list[tuple[str, MemberDay]]] = defaultdict(list)
    for symbol, pid in sorted(keys):
        s: dict[str, Any] = sampled.get((symbol, pid), {})
        t: dict[str, Any] = traded.get((symbol, pid), {})
        by_symbol[symbol].append(
            (
                pid,
                MemberDay(
                    participant_id=pid,
                    weight=weights.get((symbol, pid), ZERO),
                    active_samples=s.get("active_samples", 0),
                    quoting_samples=s.get("quoting_samples", 0),
                    liquidity_share_sum=s.get("share_sum", ZERO),
                    trade_count=t.get("trades", 0),
                    maker_volume_usdt=t.get("volume") or ZERO,
                    uptime_floor=floors.get(tiers.get(pid, ""), ZERO),
                ),
            )
        )
    return by_symbol


def _daily_row(
    day: dt.date,
    symbol: str,
    member: MemberDay,
    score: DayScore,
    s: dict[str, Any],
    t: dict[str, Any],
    total_weight: Decimal,
) -> PerformanceDaily:
    return PerformanceDaily(
        participant_id=member.participant_id,
        symbol=symbol,
        day=day,
        samples=member.active_samples,
        quoting_samples=member.quoting_samples,
        uptime=score.uptime,
        avg_spread_bps=_q(s.get("avg_spread_bps") or ZERO, SPREAD_QUANTUM),
        avg_depth_usdt=_q(s.get("avg_depth_usdt") or ZERO, LIQUIDITY_QUANTUM),
        trade_count=member.trade_count,
        volume_usdt=_q(member.maker_volume_usdt, LIQUIDITY_QUANTUM),
        realized_pnl_usdt=t.get("realized") or ZERO,
        liquidity_share=_q(score.liquidity_share, SCORE_QUANTUM),
        volume_share=_q(score.volume_share, SCORE_QUANTUM),
        weight_share=_q(member.weight / total_weight, SCORE_QUANTUM) if total_weight else ZERO,
        qualified=score.qualified,
        q_score=score.q_score,
        efficiency=score.efficiency,
        uptime_floor=member.uptime_floor,
        sla_met=score.sla_met,
    )


def snapshots_prune(*, now: dt.datetime | None = None, keep: dt.timedelta | None = None) -> int:
    """Deletes, in batches, the snapshots of each UTC day that is rolled up and
    ended more than PERFORMANCE_SNAPSHOT_RETENTION ago; a day not rolled up
    keeps its snapshots (and is logged). Returns how many rows went."""
    keep = keep or settings.PERFORMANCE_SNAPSHOT_RETENTION
    cutoff = (now or timezone.now()) - keep
    first = PerformanceSnapshot.objects.order_by("taken_at").values_list("taken_at", flat=True)
    oldest = first.first()
    if oldest is None:
        return 0
    removed = 0
    day = oldest.astimezone(dt.UTC).date()
    while True:
        start, end = day_bounds(day)
        if end > cutoff:
            return removed
        if PerformanceDaily.objects.filter(day=day).exists():
            removed += _delete_range(start, end)
        elif PerformanceSnapshot.objects.filter(taken_at__gte=start, taken_at__lt=end).exists():
            logger.warning("snapshots of %s kept: the day is not rolled up", day)
        day += dt.timedelta(days=1)


def _delete_range(start: dt.datetime, end: dt.datetime) -> int:
    return delete_in_batches(
        "DELETE FROM mm_performance_snapshots WHERE id IN ("
        " SELECT id FROM mm_performance_snapshots"
        " WHERE taken_at >= %s AND taken_at < %s LIMIT %s)",
        [start, end],
        PRUNE_BATCH,
    )
