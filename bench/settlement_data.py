"""bench/settlement.py's data, generated at production size: pools, participants
(with terms) and members by ORM bulk_create, then the bulk rows inside PostgreSQL
by INSERT ... SELECT ... FROM generate_series (never a Python loop over rows),
deterministic (setseed(0.42), serial plans):

  - mm_performance_snapshots: one UTC day (2026-10-15) of --instants sampling
    instants 10 s apart × every member of every pool (8,640 × 50 × 20 = 8.64 M
    rows by default). Per member a quoting probability of 0.82-0.98 (one member
    per pool 0.45, under the 0.5 uptime gate); when quoting, liquidity 0-50,000
    USDT, spread 2-30 bps and depths 100-100,000 USDT a side, else zeros. Every
    tenth symbol (S03, S13, ...) has a paused hour (pool_active false).
  - mm_fills: --fills fills over the UTC month 2026-10, round-robin over the
    participant × symbol pairs, in time order; 8-place prices around a
    per-symbol base (1.25^s), 50-5,000 USDT notional, maker rebate fee
    (-1 bp of notional), realised PnL in [-18.8, 21.2], BUY/SELL, MAKER,
    unique fill_id, client_order_id, order_id NULL. The rollup day's fills
    (1/31 of them) are the rollup's trades and volume.
  - mm_funding_payments: every 8 h per pair (93 × pairs).

Then ANALYZE. Every index and constraint of the schema is in place while
loading (synchronous_commit off for the load only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
import uuid
from decimal import Decimal
from typing import Any

MONTH = dt.date(2026, 10, 1)
DAY = dt.date(2026, 10, 15)
INTERVAL_S = 10
FUNDING_EVERY_H = 8
LOAD_CHUNK = 1_000_000
PAUSED_INSTANTS = 360  # one hour of 10-second instants
SEED = 0.42
TERMS_FROM = dt.date(2026, 1, 1)  # the participants' terms predate the month


def utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def sql(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def _participants(count: int) -> list[Any]:
    """`count` participants (unique short ids), half KEEP_ALL, half PERCENTAGE_SPLIT 20 %,
    each with a terms row from before the month."""
    from participants.enums import ParticipantState, RevenueModel, Tier
    from participants.models import Participant, ParticipantTerms

    rng = random.Random(42)
    ids: list[uuid.UUID] = []
    shorts: set[str] = set()
    while len(ids) < count:
        pid = uuid.UUID(int=rng.getrandbits(128), version=4)
        if str(pid)[:8] not in shorts:
            shorts.add(str(pid)[:8])
            ids.append(pid)
    tiers = [Tier.TIER_1, Tier.TIER_2, Tier.TIER_3]
    participants = [
        Participant(
            id=pid,
            short_id=str(pid)[:8],
            name=f"Bench LP {n:04d}",
            user_id=f"bench-user-{n}",
            account_id=f"bench-acct-{n}",
            tier=tiers[n % 3],
            revenue_model=RevenueModel.PERCENTAGE_SPLIT if n % 2 else RevenueModel.KEEP_ALL,
            revenue_share_pct=Decimal(20) if n % 2 else Decimal(0),
            state=ParticipantState.ACTIVE,
        )
        for n, pid in enumerate(ids)
    ]
    Participant.objects.bulk_create(participants)
    ParticipantTerms.objects.bulk_create(
        ParticipantTerms(
            participant=p,
            revenue_model=p.revenue_model,
            revenue_share_pct=p.revenue_share_pct,
            effective_at=utc(TERMS_FROM),
            set_by="bench",
        )
        for p in participants
    )
    return participants


def _pools(symbols: int) -> list[Any]:
    from pools.enums import PoolState
    from pools.models import PoolConfig

    return PoolConfig.objects.bulk_create(
        PoolConfig(
            symbol=f"S{s:02d}USDT-PERP",
            enabled=True,
            state=PoolState.ACTIVE,
            gamma=Decimal("0.1"),
            kappa=Decimal("1.5"),
            vol_lookback_seconds=300,
            tau=Decimal(1),
            num_levels=3,
            level_spacing_bps=Decimal(2),
            min_spread_bps=Decimal(2),
            max_spread_bps=Decimal(50),
            order_size_usdt=Decimal(1000),
            max_pool_position_usdt=Decimal(100000),
            max_pool_loss_usdt=Decimal(5000),
        )
        for s in range(symbols)
    )


def _members(pools: list[Any], participants: list[Any], members: int) -> list[tuple[Any, ...]]:
    """`members` members a pool, drawn round-robin from the participants; the pairs
    (participant × symbol) with what the generators need of each."""
    from pools.models import PoolMember

    pairs: list[tuple[Any, ...]] = []
    memberships = []
    for s, pool in enumerate(pools):
        for j in range(members):
            participant = participants[(s * members + j) % len(participants)]
            memberships.append(
                PoolMember(
                    pool=pool,
                    participant=participant,
                    weight=Decimal(1 + j % 4),
                    max_position_usdt=Decimal(10000),
                )
            )
            quote_p = 0.45 if j == members - 1 else 0.82 + 0.04 * (j % 5)
            pairs.append(
                (
                    len(pairs),
                    pool.symbol,
                    str(participant.pk),
                    participant.short_id,
                    Decimal(1.25**s).quantize(Decimal("0.0001")),
                    quote_p,
                    0.3 + 0.7 * ((j * 7) % members) / members,
                    s % 10 == 3,
                )
            )
    PoolMember.objects.bulk_create(memberships)
    return pairs


def create_entities(symbols: int, members: int) -> dict[str, Any]:
    """Pools, participants (with terms), members, by bulk_create; then the
    bench_pairs table the generators join against."""
    from django.db import connection

    n_participants = max(members, -(-symbols * members // 5))
    participants = _participants(n_participants)
    pairs = _members(_pools(symbols), participants, members)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_pairs (k bigint PRIMARY KEY, symbol varchar(32), "
            "participant_id uuid, short_id varchar(8), base_price numeric, "
            "quote_p float8, liq_scale float8, paused boolean)"
        )
        cursor.executemany("INSERT INTO bench_pairs VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", pairs)
        cursor.execute("ANALYZE bench_pairs")
    return {"participants": n_participants, "pools": symbols, "pairs": len(pairs)}


SNAPSHOTS_SQL = """
INSERT INTO mm_performance_snapshots
    (taken_at, symbol, participant_id, pool_active, quoting, spread_bps,
     bid_depth_usdt, ask_depth_usdt, liquidity, trades, volume_usdt)
SELECT x.taken_at, x.symbol, x.participant_id, x.pool_active, x.quoting,
       CASE WHEN x.quoting THEN round((2 + x.r1 * 28)::numeric, 4) END,
       CASE WHEN x.quoting THEN round((100 + x.r2 * 99900)::numeric, 4) ELSE 0 END,
       CASE WHEN x.quoting THEN round((100 + x.r3 * 99900)::numeric, 4) ELSE 0 END,
       CASE WHEN x.quoting THEN round((x.r4 * 50000 * x.liq_scale)::numeric, 8) ELSE 0 END,
       0, 0
FROM (
    SELECT %(start)s::timestamptz + make_interval(secs => t * %(interval)s) AS taken_at,
           p.symbol, p.participant_id, p.liq_scale,
           NOT (p.paused AND t >= %(pause_from)s AND t < %(pause_to)s) AS pool_active,
           random() < p.quote_p AS quoting,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4
    FROM generate_series(%(lo)s::int, %(hi)s::int) AS t
    CROSS JOIN bench_pairs p
    ORDER BY t, p.k
) x
"""

FILLS_SQL = """
INSERT INTO mm_fills
    (fill_id, order_id, client_order_id, participant_id, symbol, side, price, size,
     fee_usdt, realized_pnl_usdt, liquidity, filled_at, created_at)
SELECT 'bf-' || x.i, NULL, 'mm-' || x.short_id || '-' || (x.i / 4), x.participant_id,
       x.symbol, x.side, x.price, x.size, round(-x.price * x.size / 10000, 8), x.pnl,
       'MAKER', x.filled_at, now()
FROM (
    SELECT g.i, p.short_id, p.participant_id, p.symbol,
           CASE WHEN random() < 0.5 THEN 'BUY' ELSE 'SELL' END AS side,
           round(p.base_price * (0.99 + random() * 0.02)::numeric, 8) AS price,
           round((50 + random() * 4950)::numeric / p.base_price, 8) AS size,
           round(((random() - 0.47) * 40)::numeric, 8) AS pnl,
           %(start)s::timestamptz + make_interval(secs => (g.i + random()) * %(step)s)
               AS filled_at
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g(i)
    JOIN bench_pairs p ON p.k = mod(g.i, %(pairs)s::bigint)
    ORDER BY g.i
) x
"""

FUNDING_SQL = """
INSERT INTO mm_funding_payments
    (payment_id, participant_id, symbol, amount_usdt, paid_at, created_at)
SELECT 'bp-' || p.k || '-' || j, p.participant_id, p.symbol,
       round(((random() - 0.5) * 10)::numeric, 8),
       %(start)s::timestamptz + make_interval(hours => j * %(every)s), now()
FROM bench_pairs p CROSS JOIN generate_series(0, %(n)s::int - 1) AS j
ORDER BY p.k, j
"""


def load_data(args: argparse.Namespace, pairs: int) -> dict[str, Any]:
    """The snapshots, fills and funding, generated in PostgreSQL; ANALYZE."""
    from settlements.calculation import bounds

    timings: dict[str, Any] = {}
    sql("SET synchronous_commit = off")
    sql("SELECT setseed(%(seed)s)", {"seed": SEED})

    started = time.perf_counter()
    per_chunk = max(1, LOAD_CHUNK // pairs)
    pause_from = args.instants // 2
    for lo in range(0, args.instants, per_chunk):
        hi = min(args.instants, lo + per_chunk) - 1
        sql(
            SNAPSHOTS_SQL,
            {
                "start": utc(DAY),
                "interval": INTERVAL_S,
                "pause_from": pause_from,
                "pause_to": pause_from + PAUSED_INSTANTS,
                "lo": lo,
                "hi": hi,
            },
        )
        print(f"  snapshots: instants {hi + 1:,}/{args.instants:,}", flush=True)
    timings["snapshots"] = {
        "rows": args.instants * pairs,
        "s": round(time.perf_counter() - started, 1),
    }

    start, end = bounds(MONTH)
    step = (end - start).total_seconds() / args.fills
    started = time.perf_counter()
    for lo in range(0, args.fills, LOAD_CHUNK):
        hi = min(args.fills, lo + LOAD_CHUNK) - 1
        sql(FILLS_SQL, {"start": start, "step": step, "lo": lo, "hi": hi, "pairs": pairs})
        print(
            f"  fills: {hi + 1:,}/{args.fills:,} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    timings["fills"] = {"rows": args.fills, "s": round(time.perf_counter() - started, 1)}

    payments = (end - start) // dt.timedelta(hours=FUNDING_EVERY_H)
    started = time.perf_counter()
    sql(FUNDING_SQL, {"start": start, "every": FUNDING_EVERY_H, "n": payments})
    timings["funding"] = {
        "rows": payments * pairs,
        "s": round(time.perf_counter() - started, 1),
    }
    sql("RESET synchronous_commit")
    sql("DROP TABLE bench_pairs")

    started = time.perf_counter()
    sql("ANALYZE")
    timings["analyze"] = {"s": round(time.perf_counter() - started, 1)}

    # The generator's own consistency: no liquidity without quoting, and the mix.
    (snap,) = sql(
        "SELECT count(*), count(*) FILTER (WHERE quoting), count(*) FILTER (WHERE NOT pool_active),"
        " count(*) FILTER (WHERE NOT quoting AND liquidity <> 0) FROM mm_performance_snapshots"
    )
    timings["snapshot_mix"] = {
        "rows": snap[0],
        "quoting_share": round(snap[1] / snap[0], 4),
        "paused_rows": snap[2],
        "liquidity_without_quoting": snap[3],
    }
    (fills_day,) = sql(
        "SELECT count(*) FROM mm_fills WHERE filled_at >= %(a)s AND filled_at < %(b)s",
        {"a": utc(DAY), "b": utc(DAY) + dt.timedelta(days=1)},
    )
    timings["fills_on_rollup_day"] = fills_day[0]
    sizes = sql(
        "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN"
        " ('mm_fills', 'mm_performance_snapshots', 'mm_funding_payments')"
    )
    timings["table_size_mb"] = {name: round(size / 2**20) for name, size in sizes}
    return timings
