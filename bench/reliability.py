"""The safety guarantees under faults, as figures (issue 8).

    .venv/bin/python bench/reliability.py [--schedules 10000] [--orders 100000]
        [--rounds 3] [--kills 20] [--skip-suite] [--rows 2 3] [--out FILE]

Row 1: the engine's hypothesis state machine (tests/core/test_engine_invariants.py)
run over --schedules random schedules of market events, fills, acks, rejects,
pause/halt/resume/kill, suspensions, reconnects and restarts; every step checks
that no order is placed while not ACTIVE or suspended and that every resting
order is cancelled on pause/halt. Figure: schedules run, violations.

Row 9: --orders generated orders (seeded) through the engine's pre-trade check
(quoting_worker/core/risk.py), prices across ±30 % of mid and sizes across
0–1,000 lots, against varying books and resting prices; each order that passes
is checked against every rule on its own terms. Figure: bad orders that
passed (goal 0), refusals by reason.

The other rows run the fault tests of the suite (real broker, simulator,
PostgreSQL, Redis, runquoter processes) with MMS_RELIABILITY_FIGURES set: each
test records what it measured (tests/figures.py) and this script aggregates
--rounds runs of them (the kill test makes --kills kills per run). A failing
test is reported as such, with whatever it recorded.

Prints a table and writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from quoting_worker.core.risk import PreTradeCheck  # noqa: E402
from quoting_worker.core.types import Side  # noqa: E402
from tests.core.test_engine_invariants import EngineMachine  # noqa: E402
from tests.core.test_pretrade import BTC, MID, rules_broken  # noqa: E402
from tests.core.test_pretrade import check as refuse_reason  # noqa: E402

# The fault tests that measure each row (nodes of `pytest`), run --rounds times.
SUITE: dict[int, list[str]] = {
    2: ["tests/reliability/test_kill_timing.py"],
    3: ["tests/reliability/test_unknown_outcomes.py"],
    4: ["tests/reliability/test_lost_answers.py"],
    5: [
        "tests/reliability/test_crash_points.py::"
        "test_a_kill_after_a_fill_is_stored_before_its_offset_is_committed_neither_loses_nor_doubles_it"
    ],
    6: ["tests/reliability/test_outbox_durable_broker.py"],
    7: [
        "tests/reliability/test_crash_points.py::"
        "test_a_kill_at_each_step_of_placing_an_order_leaves_nothing_behind_after_a_restart"
    ],
    8: [
        "tests/adapters/test_order_service.py::"
        "test_a_429_holds_placements_for_retry_after_while_a_cancel_still_goes"
    ],
    10: [
        "tests/e2e/test_safety.py::"
        "test_a_paused_feed_halts_the_pool_for_stale_data_within_its_threshold",
        "tests/adapters/test_worker_reliability.py::"
        "test_malformed_messages_are_skipped_and_counted_and_quoting_goes_on",
    ],
    11: ["tests/reliability/test_database_restart.py"],
    12: [
        "tests/adapters/test_worker_reliability.py::"
        "test_two_workers_share_symbols_by_partition_and_one_takes_over_when_the_other_stops",
        "tests/adapters/test_worker_reliability.py::"
        "test_a_worker_with_another_config_hosts_nothing_beside_a_running_one",
    ],
    13: ["tests/reliability/test_auth_matrix.py", "tests/reliability/test_fuzz_api.py"],
    14: ["tests/reliability/test_load.py"],  # the 10-minute run: bench/load.py
}
ONCE = {8, 12, 13}  # deterministic: one round says it all


def engine_schedules(n: int) -> dict[str, Any]:
    started = time.perf_counter()
    violation = ""
    try:
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(
                max_examples=n,
                stateful_step_count=60,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except AssertionError as exc:
        violation = str(exc).splitlines()[0][:200]
    return {
        "schedules": n,
        "steps_per_schedule": 60,
        "violations": 1 if violation else 0,
        "first_violation": violation,
        "seconds": time.perf_counter() - started,
    }


def generated_orders(n: int, seed: int = 9) -> dict[str, Any]:
    rng = random.Random(seed)
    check = PreTradeCheck(BTC)
    bad_passed = 0
    passed = 0
    started = time.perf_counter()
    for _ in range(n):
        side = rng.choice((Side.BUY, Side.SELL))
        price = int(MID * rng.uniform(0.7, 1.3)) if rng.random() < 0.95 else rng.randint(-5, 5)
        lots = rng.randint(0, 1_000)
        best_bid = int(MID * rng.uniform(0.98, 1.02)) if rng.random() < 0.9 else None
        best_ask = None if best_bid is None else best_bid + rng.randint(1, 40)
        resting = frozenset(int(MID * rng.uniform(0.97, 1.03)) for _ in range(rng.randint(0, 10)))
        reason = refuse_reason(
            side, price, lots, best_bid=best_bid, best_ask=best_ask, resting=resting, pretrade=check
        )
        if reason is not None:
            continue
        passed += 1
        if rules_broken(side, price, lots, best_bid, best_ask, resting):
            bad_passed += 1
    return {
        "orders": n,
        "passed": passed,
        "bad_orders_passed": bad_passed,
        "refused_by_reason": dict(Counter(check.refused).most_common()),
        "seconds": time.perf_counter() - started,
    }


def run_suite(
    rounds: int, kills: int, rows: set[int]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Runs the fault tests; the figures they recorded, and each node's outcome."""
    figures: list[dict[str, Any]] = []
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "MMS_RELIABILITY_FIGURES": str(path)}
        env["MMS_RELIABILITY_KILLS"] = str(kills)
        for n in range(rounds):
            nodes = [
                node
                for row, ns in SUITE.items()
                if row in rows
                for node in ns
                if n == 0 or row not in ONCE
            ]
            nodes = [node for node in nodes if (ROOT / node.split("::")[0]).exists()]
            started = time.perf_counter()
            done = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *nodes],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            for line in done.stdout.splitlines():
                # The -rA summary: "PASSED tests/...::name" (captured log lines that
                # start with a level name, "ERROR    mms...", are not outcomes).
                word, _, node = line.partition(" ")
                if word in ("PASSED", "FAILED", "ERROR") and node.startswith("tests/"):
                    node = node.split(" ")[0]
                    if outcomes.get(node) not in ("FAILED", "ERROR"):
                        outcomes[node] = word
            print(
                f"  round {n + 1}/{rounds}: {len(nodes)} tests,"
                f" {time.perf_counter() - started:.0f} s, pytest exit {done.returncode}",
                flush=True,
            )
        if path.exists():
            figures = [json.loads(line) for line in path.read_text().splitlines() if line]
    return figures, outcomes


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _of(figures: list[dict[str, Any]], row: int) -> list[dict[str, Any]]:
    return [f for f in figures if f["row"] == row]


def summarise(figures: list[dict[str, Any]]) -> dict[int, str]:
    """One line per row: the figure the issue asks for, over every run."""
    out: dict[int, str] = {}
    if rows := _of(figures, 2):
        gate = [v for r in rows for v in r["kill_to_gate_closed_s"]]
        empty = [v for r in rows for v in r["kill_to_venue_empty_s"]]
        out[2] = (
            f"{len(gate)} kills: kill→gate closed p99 {_pct(gate, 0.99) * 1e3:.0f} ms;"
            f" kill→venue empty p99 {_pct(empty, 0.99) * 1e3:.0f} ms, max"
            f" {max(empty) * 1e3:.0f} ms; placements after the gate"
            f" {sum(r['placements_after_gate'] for r in rows)}"
        )
    if rows := _of(figures, 3):
        out[3] = (
            f"{sum(r['unknown_outcomes'] for r in rows)} unknown outcomes: duplicate live"
            f" orders {max(r['duplicate_live_orders'] for r in rows)}; first answer p99"
            f" {max(r['resolve_p99_s'] or 0 for r in rows) * 1e3:.0f} ms"
        )
    if rows := _of(figures, 4):
        out[4] = (
            f"{sum(r['failed_answers'] for r in rows)} lost answers (503, cut connections):"
            f" lost fills {sum(r['lost_fills'] for r in rows)} of"
            f" {sum(r['fills_at_venue'] for r in rows)}; position difference"
            f" {max(r['position_difference'] for r in rows)}"
        )
    if rows := _of(figures, 5):
        out[5] = (
            f"{len(rows)} kills after a stored fill: duplicated"
            f" {sum(r['duplicated'] for r in rows)}, missing {sum(r['missing'] for r in rows)}"
            f" (of {sum(r['fills_at_venue'] for r in rows)} venue fills)"
        )
    if rows := _of(figures, 6):
        keys = ("lost", "phantom", "reordered")
        out[6] = ", ".join(f"{k} {sum(r.get(k, 0) for r in rows)}" for k in keys) + (
            f"; publish lag p99 {max(r.get('publish_lag_p99_ms', 0) for r in rows):.0f} ms"
        )
    if rows := _of(figures, 7):
        life = [r["orphan_lifetime_s"] for r in rows]
        rec = [r["reconcile_s"] for r in rows]
        out[7] = (
            f"{len(rows)} kills (3 steps): quotes before reconciliation"
            f" {sum(r['quotes_before_reconciliation'] for r in rows)}; reconcile max"
            f" {max(rec):.2f} s; orphan lifetime max {max(life):.2f} s"
        )
    out.update(_summarise_later_rows(figures))
    return out


def _summarise_later_rows(figures: list[dict[str, Any]]) -> dict[int, str]:
    """Rows 8 to 14 of `summarise`."""
    out: dict[int, str] = {}
    if rows := _of(figures, 8):
        inside = sum(r["placements_inside_window"] for r in rows)
        out[8] = f"placements inside the Retry-After window {inside}"
    if rows := _of(figures, 10):
        stale = [r for r in rows if "placements_on_stale_data" in r]
        skipped = [r for r in rows if "skipped" in r]
        out[10] = (
            f"placements on stale data {sum(r['placements_on_stale_data'] for r in stale)}"
            f" ({len(stale)} runs, halt ≤ {max([0, *(r['stale_halt_after_s'] for r in stale)]):.2f}"
            " s"
            f" after the feed stopped, threshold 3 s); malformed skipped"
            f" {sum(r['skipped'] for r in skipped)}/{sum(r['malformed_sent'] for r in skipped)}"
        )
    if rows := _of(figures, 11):
        out[11] = (
            f"{len(rows)} restarts: fills lost {sum(r['fills_lost'] for r in rows)}"
            f" (of {sum(r['fills_during_outage'] for r in rows)} made during the outages);"
            f" placements while down {sum(r['placements_while_down'] for r in rows)};"
            f" quoting again ≤ {max(r['recover_s'] for r in rows):.2f} s after the start"
        )
    if rows := _of(figures, 12):
        out[12] = (
            f"overlap samples {sum(r['overlap_samples'] for r in rows)} of"
            f" {sum(r['samples'] for r in rows)} (10 ms apart)"
        )
    if rows := _of(figures, 13):
        auth = [r for r in rows if "auth_requests" in r]
        fuzz = [r for r in rows if "fuzz_calls" in r]
        out[13] = (
            f"auth matrix {sum(r['auth_requests'] for r in auth)} requests: 5xx"
            f" {sum(r['server_errors'] for r in auth)}, unauthorised changes"
            f" {sum(r['unauthorised_state_changes'] for r in auth)}; schemathesis"
            f" {sum(r['fuzz_calls'] for r in fuzz)} calls: 5xx"
            f" {sum(r['fuzz_server_errors'] for r in fuzz)}"
        )
    if rows := _of(figures, 14):
        out[14] = (
            f"{rows[0]['pools']} pools × {rows[0]['members']} members (suite size; 200 × 10:"
            f" bench/load.py): RSS growth ≤ {max(r['rss_mb_growth_under_load'] for r in rows)}"
            f" MB; kill → all gates closed ≤ {max(r['kill_to_all_gates_closed_s'] for r in rows)}"
            f" s; kill → venue empty ≤ {max(r['kill_to_venue_empty_s'] for r in rows)} s"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of the fault tests")
    parser.add_argument("--kills", type=int, default=20, help="kills per run of row 2")
    parser.add_argument("--skip-suite", action="store_true", help="rows 1 and 9 only")
    parser.add_argument(
        "--rows", type=int, nargs="+", default=None, help="only these rows (default: all)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "reliability.json"))
    args = parser.parse_args()
    rows = set(args.rows or [1, 9, *SUITE])
    unknown = rows - {1, 9, *SUITE}
    if unknown:
        parser.error(f"--rows: no row {sorted(unknown)} (rows: 1, 9, {sorted(SUITE)})")
    row1 = engine_schedules(args.schedules) if 1 in rows else None
    row9 = generated_orders(args.orders) if 9 in rows else None
    suite_rows = set() if args.skip_suite else rows & set(SUITE)
    figures, outcomes = run_suite(args.rounds, args.kills, suite_rows) if suite_rows else ([], {})
    lines = summarise(figures)
    print(f"Reliability figures (Python {platform.python_version()})")
    print(f"{'row':<5}figure (goal: 0 for every count of bad outcomes)")
    if row1 is not None:
        print(
            f"{'1':<5}{row1['violations']} violations in {row1['schedules']:,} engine schedules"
            f" ({row1['seconds']:.0f} s)"
        )
    if row9 is not None:
        print(
            f"{'9':<5}{row9['bad_orders_passed']} bad orders passed of {row9['passed']:,} passed"
            f" / {row9['orders']:,} generated"
        )
    failed = sorted(node for node, outcome in outcomes.items() if outcome != "PASSED")
    for row in sorted(suite_rows):
        print(f"{row:<5}{lines.get(row, '(no figure recorded: test missing or skipped)')}")
    for node in failed:
        print(f"FAILED {node}")
    out = Path(args.out)
    out.write_text(
        json.dumps(
            {
                "row_1": row1,
                "row_9": row9,
                "suite": {
                    "rows": sorted(suite_rows),
                    "rounds": args.rounds,
                    "kills": args.kills,
                    "outcomes": outcomes,
                },
                "summary": {str(k): v for k, v in lines.items()},
                "figures": figures,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    if (row1 or {}).get("violations") or (row9 or {}).get("bad_orders_passed") or failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
