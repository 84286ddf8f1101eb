"""The safety guarantees under faults, as figures (issue 8). Work in progress: the
rows measured here so far, the others named with the test that covers them.

    .venv/bin/python bench/reliability.py [--schedules 10000] [--orders 100000]

Row 1: the engine's hypothesis state machine (tests/core/test_engine_invariants.py)
run over --schedules random schedules of market events, fills, acks, rejects,
pause/halt/resume/kill, reconnects and restarts; every step checks that no
order is placed while not ACTIVE and that every resting order is cancelled on
pause/halt. Figure: schedules run, violations (the run stops at the first).

Row 9: --orders generated orders (seeded) through the engine's pre-trade check
(quoting_worker/core/risk.py), prices across ±30 % of mid and sizes across
0–1,000 lots, against varying books and resting prices; each order that passes
is checked against every rule on its own terms. Figure: bad orders that
passed (goal 0), refusals by reason.

Prints a table and writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
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
from tests.core.test_pretrade import BTC, MAX_LOTS, MID, PARAMS, rules_broken  # noqa: E402

# Rows covered by tests in the suite, not yet measured here.
SUITE_ONLY = {
    2: "tests/e2e/test_safety.py (kill, halt, flatten against the simulator)",
    3: "tests/adapters/test_order_service.py (unknown outcomes resolved by client order id)",
    5: "tests/adapters/test_worker_reliability.py (a fill delivered twice stored once)",
    6: "tests/adapters/test_outbox_relay.py (two relays, broker outage, rolled-back change)",
    7: "tests/e2e/test_safety.py (SIGKILL; the successor boots PAUSED, cancels strays)",
    8: "tests/adapters/test_order_service.py (a 429 holds placements, cancels still go)",
    10: "tests/adapters/test_worker_reliability.py, test_serde.py (malformed, registry outage)",
    11: "tests/adapters/test_worker_reliability.py (the worker's Redis restarted)",
    12: "tests/adapters/test_worker_reliability.py (two workers share by partition)",
    13: "tests/reliability/test_auth_matrix.py, test_fuzz_api.py",
}


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
        reason = check.refuse_reason(
            side=side,
            price_ticks=price,
            size_lots=lots,
            mid_ticks=MID,
            best_bid=best_bid,
            best_ask=best_ask,
            params=PARAMS,
            max_order_lots=MAX_LOTS,
            resting_prices=resting,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    row1 = engine_schedules(args.schedules)
    row9 = generated_orders(args.orders)
    print(f"Reliability figures (Python {platform.python_version()})")
    print(f"{'row':<5}{'fault or input':<52}{'figure':<40}{'goal'}")
    print(
        f"{'1':<5}{'hypothesis schedules against the engine':<52}"
        f"{row1['violations']} violations in {row1['schedules']:,} schedules"
        f" ({row1['seconds']:.0f} s){'':<2}0"
    )
    print(
        f"{'9':<5}{'generated orders through the pre-trade check':<52}"
        f"{row9['bad_orders_passed']} bad of {row9['passed']:,} passed / {row9['orders']:,}"
        f"{'':<6}0"
    )
    for row, where in SUITE_ONLY.items():
        print(f"{row:<5}{'(covered in the suite, not yet measured here)':<52}{where}")
    out = ROOT / "bench" / "results" / "reliability.json"
    out.write_text(
        json.dumps(
            {"row_1": row1, "row_9": row9, "suite_only": SUITE_ONLY},
            indent=2,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")
    if row1["violations"] or row9["bad_orders_passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
