"""Precision migration bench: how long trading 0005 holds mm_fills' ACCESS
EXCLUSIVE lock at production size (issue 19, item 8).

Against a throwaway PostgreSQL database (bench/harness/database.py), migrated
and then taken back to trading 0004 (price and size numeric(28,8), as in
production before the change), mm_fills is filled with --rows fills generated
inside PostgreSQL (generate_series, --chunk rows a statement; every index and
the CHECK constraint in place), then VACUUM ANALYZE. Three ways of moving
price and size off the fixed 8 places are then timed on that same table, each
in its own transaction, the lock held from the ALTER until the transaction
ends:

  (a) to numeric(28,9): a new scale, so PostgreSQL rewrites the table and
      rebuilds every index (rolled back afterwards);
  (b) to numeric as Django's AlterField writes it, one ALTER TABLE per column
      with the CHECK constraint left valid: no rewrite, but each statement
      rescans the table to re-check the constraint (rolled back afterwards);
  (c) trading 0005 and 0006 as written (their own SQL, each in its own
      transaction): the constraints dropped and added back NOT VALID in the
      statement that changes the types (committed); then 0007's VALIDATE
      CONSTRAINT, which takes SHARE UPDATE EXCLUSIVE only.

All the while a probe on a second connection reads a fill and inserts one every
20 ms; for each step it reports the longest a probe statement waited (the
time a query arriving then is blocked). Whether the table was rewritten is
read from pg_relation_filenode before and after.

    .venv/bin/python bench/precision_migration.py [--rows 10000000] [--chunk 1000000]

Prints a table and writes bench/results/precision_migration.json.
"""

from __future__ import annotations

import argparse
import importlib
import threading
import time
import uuid
from typing import Any

from harness import RESULTS
from harness.database import scratch_database
from harness.report import machine, write_json

REDIS_URL = "redis://127.0.0.1:6379/13"

FILLS_SQL = """
INSERT INTO mm_fills
    (fill_id, order_id, client_order_id, participant_id, symbol, side, price, size,
     fee_usdt, realized_pnl_usdt, liquidity, filled_at, created_at)
SELECT 'bf-' || g.i, NULL, 'mm-bench-' || (g.i / 4), %(pid)s, s.symbol,
       CASE WHEN g.i %% 2 = 0 THEN 'BUY' ELSE 'SELL' END,
       round(s.price * (0.99 + random() * 0.02)::numeric, 8),
       round((50 + random() * 4950)::numeric / s.price, 8),
       round(-(50 + random() * 4950)::numeric / 10000, 8),
       round(((random() - 0.47) * 40)::numeric, 8),
       'MAKER', '2026-10-01'::timestamptz + make_interval(secs => g.i * 0.25), now()
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g(i)
CROSS JOIN LATERAL (
    SELECT (ARRAY['BTCUSDT-PERP', 'ETHUSDT-PERP', 'PEPEUSDT-PERP'])[1 + g.i %% 3] AS symbol,
           (ARRAY[60000, 3000, 0.00001])[1 + g.i %% 3]::numeric AS price
) AS s
"""

REWRITE = """
ALTER TABLE mm_fills
    ALTER COLUMN price TYPE numeric(28, 9),
    ALTER COLUMN size TYPE numeric(28, 9)
"""

# What `makemigrations` would have written (an AlterField a column), as
# Django's PostgreSQL schema editor sends it.
DJANGO_ALTER_FIELD = (
    'ALTER TABLE "mm_fills" ALTER COLUMN "price" TYPE numeric USING "price"::numeric',
    'ALTER TABLE "mm_fills" ALTER COLUMN "size" TYPE numeric USING "size"::numeric',
)


class Probe(threading.Thread):
    """Reads a fill and inserts one every 20 ms on its own connection; keeps the
    longest a statement waited per step (the step running when it was sent)."""

    def __init__(self, params: dict[str, Any], pid: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.params, self.pid, self.rows = params, pid, rows
        self.step = "idle"
        self.longest: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        # Not prepared: a prepared SELECT of price fails once after the type changes
        # ("cached plan must not change result type"), as any client's would (MMS's
        # connections prepare nothing that returns a price: Django never does, the
        # journal only its INSERT).
        with psycopg.connect(**self.params, autocommit=True, prepare_threshold=None) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                for statement, args in (
                    ("SELECT price FROM mm_fills WHERE id = %s", (1 + n * 7919 % self.rows,)),
                    (
                        "INSERT INTO mm_fills (fill_id, client_order_id, participant_id, symbol,"
                        " side, price, size, fee_usdt, realized_pnl_usdt, liquidity, filled_at,"
                        " created_at) VALUES (%s, 'mm-probe', %s, 'PEPEUSDT-PERP', 'BUY',"
                        " 0.000010006, 1000, 0, 0, 'MAKER', now(), now())",
                        (f"probe-{uuid.uuid4()}", self.pid),
                    ),
                ):
                    step, sent = self.step, time.perf_counter()
                    conn.execute(statement, args)
                    waited = time.perf_counter() - sent
                    self.longest[step] = max(self.longest.get(step, 0.0), waited)
                    self.count[step] = self.count.get(step, 0) + 1
                time.sleep(0.02)


def _params() -> dict[str, Any]:
    from django.db import connection

    from quoting_worker.adapters.journal import conninfo

    return conninfo(connection.settings_dict)


def _filenode(conn: Any) -> int:
    return int(conn.execute("SELECT pg_relation_filenode('mm_fills')").fetchone()[0])


def _timed(
    conn: Any, probe: Probe, name: str, statements: tuple[str, ...], *, commit: bool
) -> dict[str, Any]:
    """Runs `statements` in one transaction (committed or rolled back); the lock is
    held from the first ALTER to the end of the transaction."""
    before = _filenode(conn)
    time.sleep(0.2)  # the probe's baseline
    probe.step = name
    started = time.perf_counter()
    with conn.transaction(force_rollback=not commit):
        for statement in statements:
            conn.execute(statement)
        altered = time.perf_counter()
        rewrote = _filenode(conn) != before
    ended = time.perf_counter()
    time.sleep(0.2)  # a probe statement blocked till the end returns
    probe.step = "idle"
    row = {
        "step": name,
        "statements_s": round(altered - started, 3),
        "lock_held_s": round(ended - started, 3),
        "ended_by": "COMMIT" if commit else "ROLLBACK",
        "rewrote_table": rewrote,
        "probe_longest_wait_s": round(probe.longest.get(name, 0.0), 3),
        "probe_statements": probe.count.get(name, 0),
    }
    print(
        f"{name:<58} {row['lock_held_s']:>9.3f} s  probe waited "
        f"{row['probe_longest_wait_s']:>7.3f} s  rewrote: {rewrote}",
        flush=True,
    )
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from django.core.management import call_command
    from django.db import connection, connections

    from participants.models import Participant

    call_command("migrate", "trading", "0004_fill_order_set_null", verbosity=0)
    pid = uuid.uuid4()
    Participant.objects.create(
        id=pid, short_id=str(pid)[:8], name="Precision bench LP", user_id="b", account_id="b"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SELECT setseed(0.8)")
        for lo in range(1, args.rows + 1, args.chunk):
            hi = min(args.rows, lo + args.chunk - 1)
            cursor.execute(FILLS_SQL, {"pid": pid, "lo": lo, "hi": hi})
            print(f"  mm_fills: {hi:,}/{args.rows:,} rows", flush=True)
    load_s = time.perf_counter() - started
    connections.close_all()
    params = _params()
    with psycopg.connect(**params, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE mm_fills")
        vacuum_s = time.perf_counter() - started
        ((heap, total),) = conn.execute(
            "SELECT pg_table_size('mm_fills'), pg_total_relation_size('mm_fills')"
        ).fetchall()
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'mm_fills'::regclass AND attname IN ('price', 'size') ORDER BY 1"
        ).fetchall()
        print(
            f"mm_fills: {args.rows:,} rows loaded in {load_s:.0f} s; heap {heap / 2**30:.2f} GiB,"
            f" with indexes {total / 2**30:.2f} GiB; {dict(columns)}",
            flush=True,
        )
        fills, orders, validation = (
            importlib.import_module(f"trading.migrations.{name}")
            for name in (
                "0005_fill_prices_and_sizes_at_instrument_precision",
                "0006_order_prices_and_sizes_at_instrument_precision",
                "0007_validate_price_size_constraints",
            )
        )
        probe = Probe(params, str(pid), args.rows)
        probe.start()
        steps = [
            _timed(conn, probe, "(a) to numeric(28,9): a rewrite", (REWRITE,), commit=False),
            _timed(
                conn,
                probe,
                "(b) to numeric, Django's AlterField: constraint rescans",
                DJANGO_ALTER_FIELD,
                commit=False,
            ),
            _timed(conn, probe, "(c) trading 0005 (mm_fills)", (fills.FORWARD,), commit=True),
            _timed(conn, probe, "(c) trading 0006 (mm_orders)", (orders.FORWARD,), commit=True),
            _timed(
                conn,
                probe,
                "(c) trading 0007: VALIDATE (SHARE UPDATE EXCLUSIVE)",
                (validation.FORWARD,),
                commit=True,
            ),
        ]
        probe.stop.set()
        probe.join()
        after = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'mm_fills'::regclass AND attname IN ('price', 'size')"
        ).fetchall()
        # The probe's PEPE price 0.000010006, as its first insert (before 0005) and
        # its last (after it) were stored.
        probed = conn.execute(
            "(SELECT price::text FROM mm_fills WHERE fill_id LIKE 'probe-%' ORDER BY id LIMIT 1)"
            " UNION ALL (SELECT price::text FROM mm_fills WHERE fill_id LIKE 'probe-%'"
            " ORDER BY id DESC LIMIT 1)"
        ).fetchall()
    return {
        "rows": args.rows,
        "load_s": round(load_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        "heap_gib": round(heap / 2**30, 2),
        "total_with_indexes_gib": round(total / 2**30, 2),
        "types_before": [t for _, t in columns],
        "types_after": [t for (t,) in after],
        "probe_pepe_price_first_and_last": [price for (price,) in probed],
        "steps": steps,
        "probe_idle_longest_wait_s": round(probe.longest.get("idle", 0.0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.monotonic()
    with scratch_database("mms_bench_precision", redis_url=REDIS_URL):
        figures = run(args)
    result = {**machine(), "args": vars(args), **figures}
    write_json(
        result, RESULTS / "precision_migration.json", wall_s=round(time.monotonic() - started, 1)
    )


if __name__ == "__main__":
    main()
