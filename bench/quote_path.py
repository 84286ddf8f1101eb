"""Quote-path latency of the PoolEngine: 10 members × 5 levels per side, on
both builds of the quoting core (interpreted and mypyc-compiled) in one run.

    .venv/bin/python bench/quote_path.py [--iterations N] [--builds interpreted,compiled]
                                         [--baseline CHECKOUT]

--baseline measures another checkout's core (interpreted) first, in the same
run: e.g. `git worktree add /tmp/before <commit>` for the code before a change.

Each build runs in a child process of its own (MMS_CORE picks it) with the
worker's garbage-collector settings (runner.config.tune_garbage_collector).
Measures, with time.perf_counter_ns around each call to `engine.handle`:

  (a)  a deep-level book delta: applied, and the decision taken not to re-quote;
  (a2) a top-of-book size change whose microprice move stays below
       price_threshold_bps: the same decision, from the top of the book;
  (b0) a full re-quote with every cache invalidated (σ, the A-S reservation
       price and half-spread, the ladder, the allocation of every level across
       10 members under their limits, the diff against resting orders) whose
       targets equal what rests: nothing to send;
  (b2) the venue cancelled one resting order: the re-quote that puts that
       one order back (the one level that changed);
  (b1) the market moved so every order is replaced (100 cancels + 100 places).

Prints a table and writes bench/results/quote_path.json. Targets (issue 20):
(a), (a2) p99 ≤ 3 µs and ≥ 1 M deltas/s; (b0) p99 ≤ 150 µs; (b2) p99 ≤ 50 µs;
(b1) p99 ≤ 400 µs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A child measuring another checkout (--baseline) imports the core from there.
CODE = Path(os.environ.get("MMS_BENCH_CODE", ROOT))
sys.path.insert(0, str(CODE))

import quoting_worker.core as core  # noqa: E402
from quoting_worker.core.engine import PoolEngine  # noqa: E402
from quoting_worker.core.ports import FakeClock  # noqa: E402
from quoting_worker.core.types import (  # noqa: E402
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    CancelOrder,
    Command,
    Instrument,
    InstrumentStatus,
    MarkPrice,
    MemberSpec,
    OrderCancelled,
    PlaceOrder,
    PoolParams,
    PublicTrade,
    Timer,
)
from quoting_worker.runner.config import tune_garbage_collector  # noqa: E402

MS = 1_000_000
BTC = Instrument("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), 1, Decimal("5"))
PARAMS = PoolParams(
    gamma=0.0005,
    kappa=0.5,
    tau_hours=1.0,
    vol_lookback_seconds=600,
    num_levels=5,
    level_spacing_bps=2.0,
    min_spread_bps=2.0,
    max_spread_bps=40.0,
    order_size_usdt=Decimal("50000"),
    max_pool_position_usdt=Decimal("10000000"),
    max_pool_loss_usdt=Decimal("1000000"),
    staleness_threshold_ms=60_000,
    quote_interval_ms=1,
    price_threshold_bps=1.0,
    vol_min_samples=10,
)
MEMBERS = tuple(
    MemberSpec(
        f"{i:08x}-0000-0000-0000-{i:012x}",
        f"{i:08x}",
        f"acct-{i}",
        Decimal(1 + i % 4),
        Decimal("1000000"),
    )
    for i in range(1, 11)
)
MID = 600_000


def build() -> tuple[PoolEngine, FakeClock, int]:
    clock = FakeClock()
    engine = PoolEngine(instrument=BTC, params=PARAMS, members=MEMBERS, clock=clock)
    bids = tuple((MID - 5 - 10 * i, 400 + i) for i in range(50))
    asks = tuple((MID + 5 + 10 * i, 400 + i) for i in range(50))
    engine.handle(InstrumentStatus(halted=False, ts_ns=clock.now_ns()))
    engine.handle(BookSnapshot(1, bids, asks, clock.now_ns()))
    engine.handle(MarkPrice(BTC.price(MID), clock.now_ns()))
    for i in range(30):
        clock.advance(1000 * MS)
        engine.handle(BookHeartbeat(1, clock.now_ns()))
        engine.handle(PublicTrade(MID + (20 if i % 2 else -20), 1, clock.now_ns()))
    out = engine.handle(Command("enable", clock.now_ns()))
    placed = sum(isinstance(a, PlaceOrder) for a in out)
    if placed != 100:
        raise SystemExit(f"the pool should rest 100 orders, it placed {placed}")
    return engine, clock, placed


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p99_9_us": at(0.999),
        "max_us": ordered[-1] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "n": len(ordered),
    }


def bench_no_requote(iterations: int) -> tuple[dict[str, float], float]:
    """Deep-level size changes: the microprice does not move, so no re-quote."""
    return _bench_deltas(
        lambda: [
            BookDelta(2 + i, ((MID - 5 - 10 * (10 + i % 30), 300 + i % 200),), (), 0)
            for i in range(iterations)
        ],
        "a no-move delta",
    )


def bench_top_no_requote(iterations: int) -> tuple[dict[str, float], float]:
    """The best bid's size changes by up to 40 lots of 400: the microprice moves
    well under price_threshold_bps (1 bps), so no re-quote."""
    return _bench_deltas(
        lambda: [BookDelta(2 + i, ((MID - 5, 380 + i % 40),), (), 0) for i in range(iterations)],
        "a top-of-book delta below the threshold",
    )


def _bench_deltas(
    deltas: Callable[[], list[BookDelta]], what: str
) -> tuple[dict[str, float], float]:
    """Each delta timed on one engine (none may re-quote), then the same deltas
    on a fresh engine without the timer around each call: deltas/s."""
    perf = time.perf_counter_ns
    engine, clock, _ = build()
    samples = []
    handle = engine.handle
    advance = clock.advance
    for delta in deltas():
        advance(2 * MS)
        start = perf()
        out = handle(delta)
        samples.append(perf() - start)
        if out:
            raise SystemExit(f"{what} re-quoted: {out[:2]}")
    engine, clock, _ = build()
    handle = engine.handle
    batch = deltas()
    start = perf()
    for delta in batch:
        handle(delta)
    elapsed = perf() - start
    return percentiles(samples), len(batch) / (elapsed / 1e9)


def bench_refill_one(iterations: int) -> tuple[dict[str, float], int]:
    """The venue cancels one resting order (an expiry, a self-trade prevention):
    the re-quote that follows at once puts that one order back. Member and
    level change every time."""
    engine, clock, _ = build()
    samples = []
    actions = 0
    perf = time.perf_counter_ns
    for i in range(iterations):
        runtime = engine.members[MEMBERS[i % len(MEMBERS)].participant_id].runtime
        resting = sorted(runtime.open_orders.values(), key=lambda o: o.client_order_id)
        order = resting[(i * 7) % len(resting)]
        clock.advance(2 * MS)
        cancelled = OrderCancelled(order.client_order_id, clock.now_ns())
        start = perf()
        out = engine.handle(cancelled)
        samples.append(perf() - start)
        actions = max(actions, len(out))
        if not any(isinstance(a, PlaceOrder) for a in out):
            raise SystemExit(f"the cancelled order was not put back: {out[:2]}")
    return percentiles(samples), actions


def bench_requote_all_moved(iterations: int) -> tuple[dict[str, float], int]:
    """The best bid is swept 14 levels deep, then refilled: the microprice moves
    about 1.2 bps each time, past the threshold, and every quote is replaced."""
    engine, clock, _ = build()
    seq = 1
    samples = []
    actions = 0
    perf = time.perf_counter_ns
    swept = tuple((MID - 5 - 10 * i, 0) for i in range(14))
    refilled = tuple((MID - 5 - 10 * i, 400 + i) for i in range(14))
    for i in range(iterations):
        seq += 1
        delta = BookDelta(seq, swept if i % 2 == 0 else refilled, (), 0)
        clock.advance(2 * MS)
        start = perf()
        out = engine.handle(delta)
        samples.append(perf() - start)
        actions = max(actions, len(out))
        # The venue confirms the cancels (not timed).
        for action in out:
            if isinstance(action, CancelOrder):
                engine.handle(OrderCancelled(action.client_order_id, clock.now_ns()))
    return percentiles(samples), actions


def bench_requote_unchanged(iterations: int) -> dict[str, float]:
    """A forced re-quote whose targets equal what rests: the whole computation
    (σ, A-S, ladder, allocation of 10 levels across 10 members, the diff) with
    nothing to send."""
    engine, clock, _ = build()
    samples = []
    perf = time.perf_counter_ns
    for _ in range(iterations):
        clock.advance(2 * MS)
        invalidate = getattr(engine.quoter, "invalidate", None)  # a baseline may lack it
        if invalidate is not None:
            invalidate()  # every cache: microprice, ladder, level sizes, targets
        else:
            engine.quoter.dirty = True
        timer = Timer(clock.now_ns())
        start = perf()
        out = engine.handle(timer)
        samples.append(perf() - start)
        if out:
            raise SystemExit(f"an unchanged re-quote sent {len(out)} actions")
    return percentiles(samples)


TARGETS = {
    "a": ("(a) deep delta, no re-quote", "p99 ≤ 3 µs"),
    "a2": ("(a2) top delta < threshold", "p99 ≤ 3 µs"),
    "b0": ("(b0) full re-quote, nothing sent", "p99 ≤ 150 µs"),
    "b2": ("(b2) one order put back", "p99 ≤ 50 µs"),
    "b1": ("(b1) market moved", "p99 ≤ 400 µs"),
}


def child(iterations: int) -> dict[str, object]:
    """One build's figures (this process's MMS_CORE), as JSON."""
    _, _, placed = build()
    tune_garbage_collector()
    a, rate_a = bench_no_requote(iterations)
    a2, rate_a2 = bench_top_no_requote(iterations)
    b0 = bench_requote_unchanged(max(1000, iterations // 10))
    b2, refill_actions = bench_refill_one(max(1000, iterations // 10))
    b1, orders = bench_requote_all_moved(max(1000, iterations // 20))
    return {
        "build": getattr(core, "BUILD", "interpreted"),
        "resting_orders": placed,
        "a": a,
        "a_per_s": rate_a,
        "a2": a2,
        "a2_per_s": rate_a2,
        "b0": b0,
        "b2": {**b2, "actions": refill_actions},
        "b1": {**b1, "actions": orders},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50_000)
    parser.add_argument("--builds", default="interpreted,compiled")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also measure the core of this checkout (e.g. a worktree of the commit "
        "before), interpreted, in the same run: the 'before' column",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.iterations)))
        return
    load_before = os.getloadavg()
    runs = [(b, {"MMS_CORE": b}) for b in args.builds.split(",")]
    baseline = ""
    if args.baseline:
        code = Path(args.baseline).resolve()
        head = subprocess.run(  # noqa: S603 - git, the checkout given
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        baseline = f"before ({head})" if head else "before"
        runs.insert(0, (baseline, {"MMS_CORE": "interpreted", "MMS_BENCH_CODE": str(code)}))
    results = {}
    for name, env in runs:
        run = subprocess.run(  # noqa: S603 - this interpreter, this script
            [sys.executable, __file__, "--child", "--iterations", str(args.iterations)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise SystemExit(f"{name}: {run.stderr.strip()[-2000:]}")
        results[name] = json.loads(run.stdout)
    print("PoolEngine quote path: 10 members × 5 levels per side (100 orders resting)")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, one core; "
        f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    print(f"{'path':<40}{'code':<19}{'p50 µs':>8}{'p99 µs':>8}{'p99.9 µs':>10}  target")
    for key, (name, target) in TARGETS.items():
        for build_name, figures in results.items():
            stats = figures[key]
            label = name
            if "actions" in stats:
                label = f"{name} ({stats['actions']} actions)"
            print(
                f"{label:<40}{build_name:<19}{stats['p50_us']:>8.1f}{stats['p99_us']:>8.1f}"
                f"{stats['p99_9_us']:>10.1f}  {target}"
            )
    for key in ("a", "a2"):
        rates = ", ".join(f"{b} {f[key + '_per_s']:,.0f}" for b, f in results.items())
        print(f"({key}) throughput, deltas/s: {rates} (target ≥ 1,000,000)")
    out = ROOT / "bench" / "results" / "quote_path.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "members": 10,
                "levels_per_side": 5,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "targets": {k: t for k, (_n, t) in TARGETS.items()},
                "baseline": baseline or None,
                "builds": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
