# mypy: ignore-errors
# (a benchmark that instruments the worker and the simulator by wrapping internals at run time)
"""The full stack against the TradeX simulator: its own matching speed, market data
to order latency, and the orders per second one pool sustains.

    .venv/bin/python bench/e2e.py [--ops 100000] [--market-hours 24] [--latency-s 15]
                                  [--window-s 10] [--drive-ms 200,20] [--keep-logs]

(1) The simulator alone, in this process, no I/O: its exchange on a seeded mix
    of calls and its market stepping --market-hours of simulated time
    (bench/e2e_alone.py).

(2)/(3) The full stack, torn down at the end (bench/harness/): a throwaway
    PostgreSQL database (migrated here, dropped at exit), Redis database 12, an
    Apache Kafka 4.1.1 node of its own (devstack/kafka.py's KafkaNode: KRaft,
    one JVM that is broker and controller, in a folder under this run's log
    directory, stopped at exit; MMS's topics from messaging.topics, no
    namespace, created by ensure_topics: the consumed ones stamped by the
    broker, LogAppendTime), the schema registry and the Metadata stand-in, all
    on free ports; TradeX (`python -m simulator`'s own `main`, --symbol
    ETHUSDT-PERP --seed 11 --speed 1) as a subprocess through the bench's
    launcher (bench/harness/tradex_probe.py: it stamps every delta published
    and every order placed or cancelled, and adds a "shaker" that moves the
    best bid every interval_ms); the QuoterWorker in a thread of this process
    (as tests/e2e and bench/quoter_throughput.py run it), with the default
    Order Service budget (WorkerConfig.order_rate_per_s = 100/s,
    ORDER_SERVICE_RATE_PER_S's default). One pool, ETHUSDT-PERP, created,
    joined and resumed through pools.services, re-quoting on every move
    (quote_interval_ms 1, price_threshold_bps 0). Everything the bench reads of
    the worker's state it reads on the worker's event loop.

(2) Delta published -> placement accepted by TradeX, with its legs (the
    worker's side from bench/harness/latency.py's StackProbe; the correlation
    and its definitions in bench/e2e_report.py). The pool: 2 members × 1 level
    a side, a shaker every --latency-shake-ms (200 ms); --latency-s with the
    default budget (100/s), then as long with the budget replaced by 5000/s
    (burst 5000, reserve 10): the I/O path without the budget's waits.

(3) Orders per second: the pool grows to 4 members × 5 levels a side (40
    orders: a full replace is 80 requests); for each shaker interval of
    --drive-ms (200 and 20 ms: each asks for more re-quotes than can be
    carried out), with the default budget and then with 5000/s: 2 s of
    warm-up, then over --window-s the simulator's counters (/admin/stats:
    placements answered 201, cancels answered 200) per second. Beside them:
    placements the engine decided, the client's outcomes, request round trips,
    the longest the engine's queue and the sender's queue grew (sampled),
    the CPU of the simulator, the Kafka JVM and this process (the worker), and when a
    window halted the pool (the audit log's reason). Between windows the
    shaker stops until the worker's queues have drained, so one window's
    backlog does not spill into the next; a halted pool is resumed
    (pools.services.pool_resume) first. At the end the pool is paused
    (pools.services.pool_pause) and drained before the worker stops.

(4) The quoting core's figures (bench/results/quote_path.json) beside the full
    stack's: the cost of the I/O path.

Prints a table and writes bench/results/e2e-kafka.json (the Tansu run's
e2e.json is kept for comparison). The probes stay installed in (3); their cost
is a few µs per event and request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from e2e_alone import bench_exchange, bench_market
from e2e_report import correlate, pair_request_log, print_table
from e2e_stack import ETH, E2EStack
from harness import RESULTS
from harness.database import scratch_database
from harness.report import machine, stats_ms, write_json
from harness.sampling import other_test_processes
from harness.stack import Stack, log_directory

REDIS_URL = "redis://127.0.0.1:6379/12"
HIGH_BUDGET = 5000
WARMUP_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000, help="exchange calls in (1a)")
    parser.add_argument("--market-hours", type=float, default=24.0, help="simulated, in (1b)")
    parser.add_argument("--latency-s", type=float, default=15.0, help="each window of (2)")
    parser.add_argument("--latency-shake-ms", type=float, default=200.0)
    parser.add_argument("--window-s", type=float, default=10.0, help="each window of (3)")
    parser.add_argument(
        "--drive-ms",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[200.0, 20.0],
        help="the shaker's intervals in (3), comma-separated",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    load_at_start = os.getloadavg()
    others_at_start = other_test_processes()

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)  # so the clean-up below runs
    print(f"load at start {load_at_start[0]:.2f} (other pytest processes: {others_at_start})")
    alone = simulator_alone(args)
    stack, worker_stop_s = run_stack(args)
    quote_path_file = RESULTS / "quote_path.json"
    quote_path = json.loads(quote_path_file.read_text()) if quote_path_file.exists() else None
    result = {
        **machine(),
        "loadavg_at_start": load_at_start,
        "other_pytest_processes_at_start": others_at_start,
        "loadavg_at_end": os.getloadavg(),
        "parameters": vars(args),
        "simulator_alone": alone,
        **stack,
        "quote_path_json": quote_path,
        "worker_graceful_stop_s": worker_stop_s,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print_table(result)
    write_json(result, RESULTS / "e2e-kafka.json", wall_s=result["wall_s"])


def simulator_alone(args: argparse.Namespace) -> dict[str, Any]:
    """(1), in-process, first."""
    exchange = bench_exchange(args.ops, args.seed)
    print(
        f"exchange: {args.ops:,} calls, {exchange['ops_per_s']:,.0f}/s "
        f"({exchange['us_per_op']:.1f} µs each)",
        flush=True,
    )
    market = bench_market(args.market_hours, args.seed)
    print(
        f"market + exchange: {args.market_hours:g} h simulated in {market['wall_s']:.1f} s "
        f"({market['simulated_s_per_wall_s']:,.0f}× real time)",
        flush=True,
    )
    return {"exchange_mix": exchange, "market_day": market}


def run_stack(args: argparse.Namespace) -> tuple[dict[str, Any], float | None]:
    """(2) and (3) on the full stack; the figures and how long the worker took to stop.
    On a failure the last lines of the worker's and TradeX's logs are printed."""
    with log_directory(
        "e2e-bench-", keep=args.keep_logs, keep_on_failure=False, announce=False
    ) as logdir:
        try:
            with contextlib.ExitStack() as cleanup:
                cleanup.enter_context(
                    scratch_database(
                        "mms_bench_e2e",
                        redis_url=REDIS_URL,
                        before_migrate=lambda: worker_log(logdir),
                    )
                )
                stack = Stack(logdir)
                cleanup.callback(stack.stop_all)
                bench = E2EStack(args, stack, REDIS_URL)
                figures = E2EScenario(bench).run(cleanup)
        except BaseException:
            for name in ("worker", "tradex"):
                with contextlib.suppress(OSError):
                    tail = (logdir / f"{name}.log").read_text().splitlines()[-15:]
                    print(f"--- last lines of {name}.log", *tail, sep="\n", file=sys.stderr)
            raise
    return figures, bench.thread.stop_s


def worker_log(logdir: Path) -> None:
    handler = logging.FileHandler(logdir / "worker.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().handlers = [handler]  # the worker's log, not this table
    logging.getLogger("mms.quoter").setLevel(logging.INFO)


class E2EScenario:
    """(2) the latency windows and (3) the orders-per-second windows, then the analysis."""

    def __init__(self, bench: E2EStack) -> None:
        self.bench = bench
        self.args = bench.args

    def run(self, cleanup: contextlib.ExitStack) -> dict[str, Any]:
        bench = self.bench
        bench.start(cleanup)
        default = bench.default_budget["rate_per_s"]
        latency_windows, request_log, sim_after_latency = self.latency(default)
        windows = self.orders_per_second(default)
        bench.settle()
        sim = bench.tradex.log()
        final_stats = bench.tradex.stats()
        probe = bench.thread.on_loop(bench.probe.frozen)
        transitions = bench.finish()
        self.analyse(latency_windows, windows, sim, probe, transitions)
        cross_check = pair_request_log(request_log, sim_after_latency["places"])
        arrivals = cross_check.pop("arrivals")
        for w in latency_windows.values():
            span = (sim, probe, w["t_from_ns"], w["t_to_ns"])
            w.update(correlate(*span, {"market", "shaker"}, arrivals))
            w["own_request_deltas"] = correlate(*span, {"client"})["counts"]
        return self.figures(latency_windows, cross_check, windows, probe, transitions, final_stats)

    def latency(self, default: int) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
        bench, args = self.bench, self.args
        windows: dict[str, Any] = {}
        bench.tradex.shake(args.latency_shake_ms)
        for label, rate in (("default", default), ("high", HIGH_BUDGET)):
            resumed = bench.ensure_active(1, 2)
            if resumed:
                bench.tradex.shake(args.latency_shake_ms)
            if label == "high":
                bench.set_budget(rate)
            time.sleep(1.0)
            windows[label] = {**bench.window(args.latency_s, rate), "resumed_before": resumed}
            print(f"latency window, budget {rate}/s: done", flush=True)
        bench.tradex.shake(0)
        time.sleep(0.5)  # the last deltas' orders
        return windows, bench.tradex.request_log(), bench.tradex.log()

    def orders_per_second(self, default: int) -> list[dict[str, Any]]:
        bench, args = self.bench, self.args
        bench.ensure_active(1, 2)
        bench.set_budget(default)
        bench.grow()
        windows: list[dict[str, Any]] = []
        for drive_ms in args.drive_ms:
            for label, rate in (("default", default), ("high", HIGH_BUDGET)):
                settled = bench.settle()
                resumed = bench.ensure_active(5, 4)
                bench.set_budget(rate)
                drive_started = time.time_ns()
                bench.tradex.shake(drive_ms)
                time.sleep(WARMUP_S)
                w = {
                    "label": label,
                    "drive_ms": drive_ms,
                    "drive_started_ns": drive_started,
                    "settled_before_s": settled,
                    "resumed_before": resumed,
                    **bench.window(args.window_s, rate),
                }
                windows.append(w)
                print(
                    f"shaker {drive_ms:g} ms, budget {rate}/s: {w['orders_per_s']:,.0f} orders/s "
                    f"({w['placed_per_s']:,.0f} placed + {w['cancelled_per_s']:,.0f} cancelled), "
                    f"pool {w['pool_mode_after']}",
                    flush=True,
                )
        return windows

    def analyse(
        self,
        latency_windows: dict[str, Any],
        windows: list[dict[str, Any]],
        sim: dict[str, Any],
        probe: Any,
        transitions: list[dict[str, Any]],
    ) -> None:
        """Each orders-per-second window: when it halted the pool, its latency and
        its requests' round trips."""
        for w in windows:
            w["halted_after_s"] = [
                round((t["at_ns"] - w["drive_started_ns"]) / 1e9, 1)
                for t in transitions
                if t["action"] == "halt" and w["drive_started_ns"] <= t["at_ns"] < w["t_to_ns"]
            ]
            w["latency_under_load"] = correlate(
                sim, probe, w["t_from_ns"], w["t_to_ns"], {"market", "shaker"}
            )
            rtt: dict[str, list[int]] = {"POST": [], "DELETE": []}
            for (method, _coid), (t_req, t_resp, _status) in probe.requests.items():
                if w["t_from_ns"] <= t_req < w["t_to_ns"]:
                    rtt[method].append(t_resp - t_req)
            w["request_round_trip"] = {
                "place": stats_ms(rtt["POST"]),
                "cancel": stats_ms(rtt["DELETE"]),
            }

    def figures(
        self,
        latency_windows: dict[str, Any],
        cross_check: dict[str, Any],
        windows: list[dict[str, Any]],
        probe: Any,
        transitions: list[dict[str, Any]],
        final_stats: dict[str, Any],
    ) -> dict[str, Any]:
        bench, args = self.bench, self.args
        by_trigger: dict[str, int] = {}
        for _t, trigger, n in probe.placed:
            by_trigger[trigger] = by_trigger.get(trigger, 0) + n
        hosted = bench.worker.hosted.get(ETH)
        return {
            "stack": {
                "worker": "QuoterWorker in a thread of this process (as tests/e2e run it)",
                "tradex": f"python -m simulator's main via the bench launcher: --symbol {ETH} "
                "--seed 11 --speed 1",
                "kafka": "Apache Kafka 4.1.1 (KRaft, one node: devstack/kafka.py), "
                f"{bench.partitions} partitions, consumed topics stamped LogAppendTime",
                "default_budget": bench.default_budget,
            },
            "latency": {
                "pool": {
                    "symbol": ETH,
                    "members": 2,
                    "levels_per_side": 1,
                    "quote_interval_ms": 1,
                    "price_threshold_bps": 0,
                },
                "seconds": args.latency_s,
                "shake_ms": args.latency_shake_ms,
                "windows": latency_windows,
                "request_log_cross_check": cross_check,
            },
            "orders_per_second": {
                "pool": {"symbol": ETH, "members": 4, "levels_per_side": 5},
                "warmup_s": WARMUP_S,
                "windows": windows,
            },
            "placements_decided_by_trigger": by_trigger,
            "pool_transitions": transitions,
            "engine_replaced_during_run": hosted is None or hosted.engine is not bench.engine,
            "pool_mode_at_end": str(bench.engine.mode),
            "simulator_at_end": {
                "duplicate_live_orders": final_stats.get("duplicate_live_orders"),
                "dead_man_switch": final_stats.get("dead_man_switch"),
                "orders_total": final_stats.get("orders_total"),
            },
        }


if __name__ == "__main__":
    main()
