"""The daily performance rollup and the monthly settlement at production size:
wall time, this process's peak memory, and what PostgreSQL spends.

    .venv/bin/python bench/settlement.py [--fills 10000000] [--symbols 50]
                                         [--members 20] [--instants 8640]
                                         [--naive-fills 1000000]
    .venv/bin/python bench/settlement.py --quick   # 200k fills, 5 symbols, 500 instants

Everything runs against a throwaway PostgreSQL database (bench/harness/database.py:
created and migrated here, dropped at exit) and Redis database 11.

Setup (timed, not part of the figures; bench/settlement_data.py): --symbols
pools (S00USDT-PERP ...), each with --members members (weights 1-4) drawn from
symbols × members / 5 participants (every participant in ~5 pools; half
KEEP_ALL, half PERCENTAGE_SPLIT 20 % with a terms row from before the month),
one UTC day of performance snapshots (--instants), --fills fills over the
month and funding every 8 h per pair, generated inside PostgreSQL.

Measured (time.perf_counter wall time; memory of this Python process: the
tracemalloc peak of the allocations made during the call, and
getrusage(RUSAGE_SELF).ru_maxrss, the process's high-water mark, before and
after; tracemalloc slows Python code, so each call is timed in a run without
it and its peak taken from a separate run with it):
  (1) performance.jobs.rollup_day(2026-10-15): run once plain (with
      a query log: query count and time spent in the database), once
      more with tracemalloc (the rollup is an upsert: the same rows). Checked:
      rows = symbols × members, and each symbol's q_scores sum to exactly 1
      (or 0). Then the rollup's snapshot aggregation (_SAMPLES_SQL) once with
      EXPLAIN (ANALYZE, BUFFERS).
  (2) settlements.services.settlements_create_month(first=2026-10-01): once
      with tracemalloc inside a transaction that is rolled back, then for real
      (plain, query log), then again (creates 0). Checked: one
      settlement per pair, their fill and funding counts sum to the rows
      loaded, their realised PnL and fees to mm_fills' own sums. The logged
      mm_fills GROUP BY is then run once with EXPLAIN (ANALYZE,
      BUFFERS).
  (3) For comparison, the naive way: iterating --naive-fills of the month's
      fills as model instances (.iterator(chunk_size=2000)) and summing per
      pair in Python; extrapolated linearly to --fills (labelled as such).

PostgreSQL runs with its settings as found (work_mem, parallel workers, ...);
they are recorded. Prints a table and writes bench/results/settlement.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from harness import RESULTS as RESULTS_DIR
from harness import ROOT
from harness.database import scratch_database
from settlement_data import (
    DAY,
    INTERVAL_S,
    MONTH,
    SEED,
    create_entities,
    load_data,
    sql,
)

RESULTS = RESULTS_DIR / "settlement.json"
REDIS_URL = "redis://127.0.0.1:6379/11"
T = TypeVar("T")

# ---------------------------------------------------------------- helpers


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(fn: Callable[[], T], *, trace: bool = False) -> tuple[T, dict[str, Any]]:
    """fn()'s result and its wall time, maxrss before/after and (with `trace`)
    the tracemalloc peak of what it allocated."""
    gc.collect()
    before = maxrss_mb()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        result = fn()
    finally:
        wall = time.perf_counter() - started
        peak = None
        if trace:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    return result, {
        "wall_s": round(wall, 3),
        "tracemalloc_peak_mb": None if peak is None else round(peak, 2),
        "maxrss_before_mb": round(before, 1),
        "maxrss_after_mb": round(maxrss_mb(), 1),
    }


def explain(statement: str, params: Any = None) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) once: its text and the execution time."""
    started = time.perf_counter()
    lines = [row[0] for row in sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)]
    wall = time.perf_counter() - started
    execution = next(
        (float(line.split(":")[1].split()[0]) for line in lines if line.startswith("Execution")),
        None,
    )
    return {
        "execution_ms": execution,
        "wall_s": round(wall, 3),
        "disk_sorts": [line.strip() for line in lines if "Disk:" in line],
        "plan": lines,
    }


class QueryLog:
    """Every query the ORM or a cursor runs while installed (a
    connection.execute_wrapper; unlike CaptureQueriesContext, no cap on the
    count): how many, by kind, the time in the database as the client sees it
    (execution plus transfer of the result), and those reading the big tables
    with their SQL and parameters."""

    BIG = ('"mm_fills"', "mm_performance_snapshots")

    def __init__(self) -> None:
        self.count = 0
        self.time_s = 0.0
        self.kinds: Counter[str] = Counter()
        self.big: list[tuple[float, str, Any]] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            self.count += 1
            self.time_s += took
            words = sql.split()
            table = next(
                (words[i + 1] for i, w in enumerate(words[:-1]) if w in ("FROM", "INTO", "UPDATE")),
                "",
            )
            self.kinds[f"{words[0] if words else ''} {table.strip(chr(34))}"] += 1
            if any(name in sql for name in self.BIG):
                self.big.append((took, sql, params))

    @contextlib.contextmanager
    def installed(self) -> Iterator[QueryLog]:
        from django.db import connection

        with connection.execute_wrapper(self):
            yield self

    def stats(self) -> dict[str, Any]:
        return {
            "queries": self.count,
            "db_time_s": round(self.time_s, 3),
            "queries_by_kind": dict(self.kinds.most_common()),
            "reading_big_tables": [
                {"s": round(took, 3), "sql": sql[:400]} for took, sql, _ in self.big
            ],
        }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- setup


# ---------------------------------------------------------------- the measured calls


def bench_rollup(args: argparse.Namespace) -> dict[str, Any]:
    from django.db.models import Sum

    from performance.jobs import _SAMPLES_SQL, day_bounds, rollup_day
    from performance.models import PerformanceDaily

    with QueryLog().installed() as log:
        rows, first = measure(lambda: rollup_day(DAY))
    first.update(rows=rows, **log.stats())
    rows_again, again = measure(lambda: rollup_day(DAY), trace=True)
    again["rows"] = rows_again

    sums = list(
        PerformanceDaily.objects.filter(day=DAY)
        .values("symbol")
        .annotate(total=Sum("q_score"))
        .order_by("symbol")
    )
    bad = [r for r in sums if r["total"] not in (Decimal(0), Decimal(1))]
    written = PerformanceDaily.objects.filter(day=DAY).count()
    checks = {
        "rows_written": written,
        "rows_expected": args.symbols * args.members,
        "symbols_scored": len(sums),
        "symbols_q_sum_not_0_or_1": [(r["symbol"], str(r["total"])) for r in bad],
        "zero_score_members": PerformanceDaily.objects.filter(day=DAY, q_score=0).count(),
        "ok": written == args.symbols * args.members == rows == rows_again
        and len(sums) == args.symbols
        and not bad,
    }
    start, end = day_bounds(DAY)
    plan = explain(_SAMPLES_SQL, {"start": start, "end": end})
    return {"first": first, "again_tracemalloc": again, "checks": checks, "explain": plan}


def bench_settlement(args: argparse.Namespace, pairs: int, funding: int) -> dict[str, Any]:
    from django.db import transaction
    from django.db.models import Count, Sum

    from common.actors import Actor
    from settlements.calculation import bounds
    from settlements.models import Settlement
    from settlements.services import settlements_create_month

    actor = Actor("bench-finance")

    def rolled_back() -> int:
        with transaction.atomic():
            created = len(settlements_create_month(first=MONTH, actor=actor))
            transaction.set_rollback(True)
        return created

    created_traced, traced = measure(rolled_back, trace=True)
    traced["rows"] = created_traced
    with QueryLog().installed() as log:
        created, first = measure(lambda: len(settlements_create_month(first=MONTH, actor=actor)))
    first.update(rows=created, **log.stats())
    fills_query = next((q for q in log.big if '"mm_fills"' in q[1]), None)
    first["fills_group_by_s"] = None if fills_query is None else round(fills_query[0], 3)
    first["touching_mm_fills"] = sum('"mm_fills"' in q[1] for q in log.big)
    with QueryLog().installed() as log:
        created_again, again = measure(
            lambda: len(settlements_create_month(first=MONTH, actor=actor))
        )
    again.update(rows=created_again, **log.stats())

    got = Settlement.objects.filter(period_start=MONTH).aggregate(
        n=Count("id"),
        fills=Sum("fill_count"),
        funding=Sum("funding_count"),
        realised=Sum("realized_pnl_usdt"),
        fees=Sum("fees_usdt"),
    )
    start, end = bounds(MONTH)
    ((realised, fees),) = sql(
        "SELECT sum(realized_pnl_usdt), sum(fee_usdt) FROM mm_fills"
        " WHERE filled_at >= %(a)s AND filled_at < %(b)s",
        {"a": start, "b": end},
    )
    checks = {
        "settlements": got["n"],
        "pairs": pairs,
        "fill_count_sum": got["fills"],
        "funding_count_sum": got["funding"],
        "realised_sum": str(got["realised"]),
        "realised_in_mm_fills": str(realised),
        "fees_sum": str(got["fees"]),
        "fees_in_mm_fills": str(fees),
        "ok": got["n"] == pairs == created == created_traced
        and got["fills"] == args.fills
        and got["funding"] == funding
        and got["realised"] == realised
        and got["fees"] == fees
        and created_again == 0,
    }
    plan = None if fills_query is None else explain(fills_query[1], fills_query[2])
    return {
        "traced_rolled_back": traced,
        "first": first,
        "again": again,
        "checks": checks,
        "explain_fills_group_by": plan,
    }


def naive_sums(limit: int) -> int:
    """The way not to do it: every fill as a model instance, summed in Python."""
    from settlements.calculation import bounds
    from trading.models import MMFill

    start, end = bounds(MONTH)
    zero = Decimal(0)
    sums: dict[tuple[str, str], list[Any]] = {}
    n = 0
    fills = MMFill.objects.filter(filled_at__gte=start, filled_at__lt=end).order_by()[:limit]
    for fill in fills.iterator(chunk_size=2000):
        acc = sums.setdefault((str(fill.participant_id), fill.symbol), [0, zero, zero, zero, 0])
        acc[0] += 1
        acc[1] += fill.realized_pnl_usdt
        acc[2] += fill.fee_usdt
        acc[3] += fill.price * fill.size
        acc[4] = max(acc[4], fill.pk)
        n += 1
    return n


def bench_naive(args: argparse.Namespace) -> dict[str, Any]:
    limit = min(args.naive_fills, args.fills)
    n, plain = measure(lambda: naive_sums(limit))
    _, traced = measure(lambda: naive_sums(limit), trace=True)
    plain["rows"] = n
    plain["tracemalloc_peak_mb"] = traced["tracemalloc_peak_mb"]
    plain["tracemalloc_run_wall_s"] = traced["wall_s"]
    plain["fills_per_s"] = round(n / plain["wall_s"])
    plain["extrapolated_to_all_fills_s"] = round(plain["wall_s"] * args.fills / n, 1)
    return plain


# ---------------------------------------------------------------- report


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


Row = tuple[str, Any, Any, Any, Any, Any]


def _rows(args: argparse.Namespace, report: dict[str, Any]) -> list[Row]:
    """The table's rows: (step, wall s, tracemalloc peak MB, maxrss MB after, rows, queries)."""
    setup, rollup, settle, naive = (report[k] for k in ("setup", "rollup", "settlement", "naive"))
    r1, r2, ex = rollup["first"], rollup["again_tracemalloc"], rollup["explain"]
    s0, s1, s2 = settle["traced_rolled_back"], settle["first"], settle["again"]
    fx = settle["explain_fills_group_by"] or {"execution_ms": None}
    pairs = setup["entities"]["pairs"]

    def ms(plan: dict[str, Any]) -> float | None:
        return None if plan["execution_ms"] is None else plan["execution_ms"] / 1000

    load = "load {} (INSERT … SELECT)"
    return [
        ("setup: pools, participants, members (ORM)", setup["entities_s"], None, None, pairs, None),
        *(
            ("setup: " + load.format(k), setup[k]["s"], None, None, setup[k]["rows"], None)
            for k in ("snapshots", "fills", "funding")
        ),
        ("setup: ANALYZE", setup["analyze"]["s"], None, None, None, None),
        ("rollup_day", r1["wall_s"], None, r1["maxrss_after_mb"], r1["rows"], r1["queries"]),
        ("  of which in the database (all queries)", r1["db_time_s"], None, None, None, None),
        (
            "rollup_day again (upsert; tracemalloc on)",
            r2["wall_s"],
            r2["tracemalloc_peak_mb"],
            r2["maxrss_after_mb"],
            r2["rows"],
            None,
        ),
        ("  EXPLAIN ANALYZE of _SAMPLES_SQL: execution", ms(ex), None, None, pairs, 1),
        (
            "settlements_create_month (tracemalloc; rolled back)",
            s0["wall_s"],
            s0["tracemalloc_peak_mb"],
            s0["maxrss_after_mb"],
            s0["rows"],
            None,
        ),
        ("settlements_create_month", s1["wall_s"], None, s1["maxrss_after_mb"], s1["rows"],
         s1["queries"]),
        ("  of which the mm_fills GROUP BY query", s1["fills_group_by_s"], None, None, None,
         s1["touching_mm_fills"]),
        ("  of which in the database (all queries)", s1["db_time_s"], None, None, None, None),
        ("settlements_create_month again (creates none)", s2["wall_s"], None,
         s2["maxrss_after_mb"], s2["rows"], s2["queries"]),
        ("  EXPLAIN ANALYZE of the GROUP BY: execution", ms(fx), None, None, None, 1),
        (f"naive Python loop over {naive['rows']:,} fills", naive["wall_s"],
         naive["tracemalloc_peak_mb"], naive["maxrss_after_mb"], naive["rows"], None),
        (f"  extrapolated to {args.fills:,} fills (NOT measured)",
         naive["extrapolated_to_all_fills_s"], None, None, args.fills, None),
    ]  # fmt: skip


def print_table(args: argparse.Namespace, report: dict[str, Any]) -> None:
    setup = report["setup"]
    print()
    print(
        f"Rollup and settlement — {args.symbols} symbols × {args.members} members, "
        f"{args.instants:,} instants ({setup['snapshots']['rows']:,} snapshots), "
        f"{args.fills:,} fills, {setup['funding']['rows']:,} funding payments; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"PostgreSQL {report['postgres']['version']}"
    )
    header = (
        f"{'step':<52} {'wall s':>8} {'peak MB':>8} {'maxrss MB':>10} {'rows':>11} {'queries':>8}"
    )
    print(header + "\n" + "-" * len(header))
    for name, wall, peak, rss, count, queries in _rows(args, report):
        print(
            f"{name:<52} {fmt(wall, ',.2f'):>8} {fmt(peak, ',.1f'):>8} {fmt(rss, ',.1f'):>10} "
            f"{fmt(count, ','):>11} {fmt(queries, ','):>8}"
        )
    print(
        "(peak MB: tracemalloc peak of the call's Python allocations; maxrss MB: the "
        "process's high-water mark after the call)"
    )
    _checks(report)


def _checks(report: dict[str, Any]) -> None:
    """The checks' verdicts and the settlement's queries."""
    rollup, settle = report["rollup"], report["settlement"]
    s1, s2 = settle["first"], settle["again"]
    ex, pairs = rollup["explain"], report["setup"]["entities"]["pairs"]
    rc, sc = rollup["checks"], settle["checks"]
    print(
        f"rollup: {rc['rows_written']:,} rows (expected {rc['rows_expected']:,}), every "
        f"symbol's q_scores sum to 1 or 0: {not rc['symbols_q_sum_not_0_or_1']}, "
        f"{rc['zero_score_members']} members scored 0 — {'OK' if rc['ok'] else 'FAILED'}"
    )
    sums_equal = (
        sc["realised_sum"] == sc["realised_in_mm_fills"]
        and sc["fees_sum"] == sc["fees_in_mm_fills"]
    )
    print(
        f"settlement: {sc['settlements']:,} settlements for {sc['pairs']:,} pairs, fill_count "
        f"sum {sc['fill_count_sum']:,}, funding_count sum {sc['funding_count_sum']:,}, "
        f"realised and fees equal mm_fills' sums: {sums_equal} — {'OK' if sc['ok'] else 'FAILED'}"
    )
    print(
        f"settlement queries: {s1['queries']:,} for {pairs:,} pairs "
        f"({s1['queries'] / pairs:.2f} a pair), of which {s1['touching_mm_fills']} reads "
        f"mm_fills; again: {s2['queries']:,}"
    )
    kinds = ", ".join(f"{kind} ×{n:,}" for kind, n in s1["queries_by_kind"].items())
    print(f"  by kind: {kinds}")
    if ex["disk_sorts"]:
        print("rollup EXPLAIN, sorts spilling to disk: " + "; ".join(ex["disk_sorts"]))
    loads = report["load_average"]
    print(f"load average: start {loads['start']}, end {loads['end']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fills", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--instants", type=int, default=8640, help="10-second instants (≤ 8640)")
    parser.add_argument("--naive-fills", type=int, default=1_000_000)
    parser.add_argument(
        "--quick", action="store_true", help="200k fills, 5 symbols, 500 instants, 100k naive"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.fills, args.symbols, args.instants, args.naive_fills = 200_000, 5, 500, 100_000
    if not (1 <= args.instants <= 86400 // INTERVAL_S) or args.symbols > 100:
        parser.error("--instants must be in [1, 8640] and --symbols ≤ 100")
    if args.fills < args.symbols * args.members:
        parser.error("--fills must be at least symbols × members")

    report: dict[str, Any] = {
        "benchmark": "performance.jobs.rollup_day and settlements_create_month",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "load_average": {"start": load_average()},
        "parameters": {
            "fills": args.fills,
            "symbols": args.symbols,
            "members": args.members,
            "instants": args.instants,
            "snapshot_interval_s": INTERVAL_S,
            "naive_fills": args.naive_fills,
            "rollup_day": DAY.isoformat(),
            "settlement_month": MONTH.isoformat(),
            "seed": SEED,
        },
    }
    with scratch_database("mms_bench_settlement", redis_url=REDIS_URL):
        report["postgres"] = {
            "version": sql("SHOW server_version")[0][0].split()[0],
            **{
                name: sql(f"SHOW {name}")[0][0]
                for name in (
                    "shared_buffers",
                    "work_mem",
                    "max_parallel_workers_per_gather",
                    "jit",
                )
            },
        }
        print("setup ...", flush=True)
        started = time.perf_counter()
        entities = create_entities(args.symbols, args.members)
        setup: dict[str, Any] = {
            "entities": entities,
            "entities_s": round(time.perf_counter() - started, 2),
        }
        setup.update(load_data(args, entities["pairs"]))
        report["setup"] = setup
        print(f"setup done: {json.dumps(setup)}", flush=True)

        print("rollup_day ...", flush=True)
        report["rollup"] = bench_rollup(args)
        print("settlements_create_month ...", flush=True)
        report["settlement"] = bench_settlement(args, entities["pairs"], setup["funding"]["rows"])
        print("naive loop ...", flush=True)
        report["naive"] = bench_naive(args)
    report["load_average"]["end"] = load_average()
    ok = report["rollup"]["checks"]["ok"] and report["settlement"]["checks"]["ok"]
    report["ok"] = ok

    print_table(args, report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
