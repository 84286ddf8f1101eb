"""Retention bench: mm_orders and the outbox stay flat at a steady order rate.

Simulates `--days` UTC days against a scratch PostgreSQL database. Each day:
- `--orders-per-day` orders are written as the quoting worker leaves them
  (nearly all cancelled, `--filled-share` filled with a fill each, a few still
  open), plus one published outbox row per `--orders-per-outbox` orders;
- then the daily jobs run as beat runs them (`trading.retention.orders_prune`,
  `common.services.outbox_prune`, with the bench's retentions), timed, with the
  longest single batch statement (the longest a prune holds its row locks);
- then VACUUM, what autovacuum does over a real day, so that freed space is
  reused and the table's size means what a week in production would show.

Prints one row a day (rows in, rows out, rows and MB held, prune time) and
writes bench/results/retention.json. The retentions are shorter than the
defaults (30 and 7 days) so that the steady state shows within the run; the
steady size at the defaults is the same per-day figure times the retention.

    .venv/bin/python bench/retention.py [--days 10] [--orders-per-day 500000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from typing import Any

from harness import RESULTS
from harness.database import scratch_database
from harness.report import machine, write_json

REDIS_URL = "redis://127.0.0.1:6379/13"
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

ORDERS_SQL = """
INSERT INTO mm_orders
    (client_order_id, participant_id, symbol, side, level, price, size, filled_size,
     status, fencing_token, reject_reason, created_at, updated_at, closed_at)
SELECT 'mm-bench-' || %(day)s || '-' || g.i, %(pid)s, 'BTCUSDT-PERP',
       CASE WHEN g.i %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, g.i %% 5, 60000, 0.01,
       CASE WHEN g.i > %(n)s - %(open)s THEN 0
            WHEN g.i %% %(fill_every)s = 0 THEN 0.01 ELSE 0 END,
       CASE WHEN g.i > %(n)s - %(open)s THEN 'OPEN'
            WHEN g.i %% %(fill_every)s = 0 THEN 'FILLED' ELSE 'CANCELLED' END,
       1, '', t.at, t.at,
       CASE WHEN g.i > %(n)s - %(open)s THEN NULL ELSE t.at + interval '2 seconds' END
FROM generate_series(1, %(n)s) AS g(i)
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + make_interval(secs => g.i * 86400.0 / %(n)s) AS at
) AS t
"""

FILLS_SQL = """
INSERT INTO mm_fills
    (fill_id, order_id, client_order_id, participant_id, symbol, side, price, size,
     fee_usdt, realized_pnl_usdt, liquidity, filled_at, created_at)
SELECT 'bf-' || o.client_order_id, o.id, o.client_order_id, o.participant_id, o.symbol,
       o.side, o.price, o.size, -0.06, 0, 'MAKER', o.closed_at, o.closed_at
FROM mm_orders o
WHERE o.status = 'FILLED' AND o.client_order_id LIKE 'mm-bench-' || %(day)s || '-%%'
"""

OUTBOX_SQL = """
INSERT INTO outbox
    (event_id, topic, key, event_type, payload, created_at, published_at, attempts,
     last_error, trace_context)
SELECT gen_random_uuid(), 'mm.pool.state', 'BTCUSDT-PERP', 'bench', '{}'::jsonb,
       t.at, t.at + interval '20 milliseconds', 1, '', '{}'::jsonb
FROM generate_series(1, %(n)s) AS g(i)
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + make_interval(secs => g.i * 86400.0 / %(n)s) AS at
) AS t
"""


def _participant() -> str:
    from participants.enums import ParticipantState, RevenueModel, Tier
    from participants.models import Participant

    pid = uuid.uuid4()
    Participant.objects.create(
        id=pid,
        short_id=str(pid)[:8],
        name="Retention bench LP",
        user_id="bench-user",
        account_id="bench-acct",
        tier=Tier.TIER_1,
        revenue_model=RevenueModel.KEEP_ALL,
        revenue_share_pct=0,
        state=ParticipantState.ACTIVE,
    )
    return str(pid)


def _count_and_mb(cursor: Any, table: str) -> tuple[int, float, float]:
    """Rows, then the table's MB (heap with TOAST) and its indexes' MB."""
    cursor.execute(
        f"SELECT count(*), pg_table_size('{table}'), pg_indexes_size('{table}') FROM {table}"  # noqa: S608
    )
    rows, heap, indexes = cursor.fetchone()
    return int(rows), round(heap / 2**20, 1), round(indexes / 2**20, 1)


def _timed_batches(prune: Any, **kwargs: Any) -> tuple[int, float, float]:
    """Runs `prune`, timing each statement it sends (Django's execute wrapper):
    (rows removed, total s, longest statement s)."""
    from django.db import connection

    timings: list[float] = []

    def timer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        begin = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append(time.monotonic() - begin)

    started = time.monotonic()
    with connection.execute_wrapper(timer):
        removed = prune(**kwargs)
    return removed, time.monotonic() - started, max(timings, default=0.0)


def simulate(args: argparse.Namespace) -> list[dict[str, Any]]:
    from django.db import connection

    from common.services import outbox_prune
    from trading.retention import orders_prune

    pid = _participant()
    fill_every = max(1, round(1 / args.filled_share))
    days: list[dict[str, Any]] = []
    print(
        f"{'day':>3} {'orders in':>10} {'out':>10} {'held':>10} {'MB':>7} {'idx MB':>7}"
        f" {'prune s':>8} {'max batch s':>11} | {'outbox in':>9} {'out':>9} {'held':>9}"
        f" {'MB':>6}"
    )
    for day in range(args.days):
        start = START + dt.timedelta(days=day)
        outbox_n = max(1, args.orders_per_day // args.orders_per_outbox)
        with connection.cursor() as cursor:
            params = {
                "day": day,
                "pid": pid,
                "n": args.orders_per_day,
                "open": args.open_per_day,
                "fill_every": fill_every,
                "start": start,
            }
            cursor.execute(ORDERS_SQL, params)
            cursor.execute(FILLS_SQL, {"day": day})
            cursor.execute(OUTBOX_SQL, {"n": outbox_n, "start": start})
        now = start + dt.timedelta(days=1, minutes=20)  # the job's 00:20 UTC run
        out, prune_s, longest = _timed_batches(
            orders_prune,
            now=now,
            keep=dt.timedelta(days=args.order_retention_days),
            batch=args.batch,
        )
        outbox_out, outbox_s, outbox_longest = _timed_batches(
            outbox_prune,
            now=now,
            keep=dt.timedelta(days=args.outbox_retention_days),
            batch=args.batch,
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM mm_orders")
            cursor.execute("VACUUM outbox")
            held, mb, index_mb = _count_and_mb(cursor, "mm_orders")
            outbox_held, outbox_mb, outbox_index_mb = _count_and_mb(cursor, "outbox")
        row = {
            "day": day + 1,
            "orders_in": args.orders_per_day,
            "orders_out": out,
            "orders_held": held,
            "orders_mb": mb,
            "orders_index_mb": index_mb,
            "orders_prune_s": round(prune_s, 2),
            "orders_longest_batch_s": round(longest, 3),
            "outbox_in": outbox_n,
            "outbox_out": outbox_out,
            "outbox_held": outbox_held,
            "outbox_mb": outbox_mb,
            "outbox_index_mb": outbox_index_mb,
            "outbox_prune_s": round(outbox_s, 2),
            "outbox_longest_batch_s": round(outbox_longest, 3),
        }
        days.append(row)
        print(
            f"{day + 1:>3} {args.orders_per_day:>10,} {out:>10,} {held:>10,} {mb:>7} {index_mb:>7} "
            f"{prune_s:>8.2f} {longest:>11.3f} | {outbox_n:>9,} {outbox_out:>9,}"
            f" {outbox_held:>9,} {outbox_mb:>6}",
            flush=True,
        )
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--orders-per-day", type=int, default=500_000)
    parser.add_argument("--open-per-day", type=int, default=30, help="left open each day")
    parser.add_argument("--filled-share", type=float, default=0.01)
    parser.add_argument("--orders-per-outbox", type=int, default=100)
    parser.add_argument("--order-retention-days", type=int, default=3)
    parser.add_argument("--outbox-retention-days", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    started = time.monotonic()
    with scratch_database("mms_bench_retention", redis_url=REDIS_URL):
        days = simulate(args)
    steady = days[-1]
    flat_from = args.order_retention_days + 1
    tail = [d["orders_held"] for d in days[flat_from:]]
    result = {
        **machine(),
        "args": vars(args),
        "days": days,
        "orders_held_after_retention_min_max": [min(tail), max(tail)] if tail else None,
        "orders_mb_last": steady["orders_mb"],
        "orders_longest_batch_s": max(d["orders_longest_batch_s"] for d in days),
        "outbox_longest_batch_s": max(d["outbox_longest_batch_s"] for d in days),
    }
    write_json(result, RESULTS / "retention.json", wall_s=round(time.monotonic() - started, 1))


if __name__ == "__main__":
    main()
