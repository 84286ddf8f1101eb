# mypy: ignore-errors
# (a benchmark that instruments the worker by wrapping its internals at run time)
"""One runquoter hosting many pools under a full-rate market: memory, event lag, kills.

    .venv/bin/python bench/load.py [--pools 200] [--members 10] [--minutes 10]
                                   [--kill-every 60] [--order-rate 100]

Issue 8, row 14: "200 pools x 10 members in one worker with the simulator's
market at full rate for 10 minutes; guarantee: no unbounded growth, guards still
fire on time; figures: RSS growth, p99 event lag, kill -> last cancel p99 under
load".

The machinery is bench/harness/'s: a throwaway PostgreSQL database (dropped at
exit), a Redis database of its own (flushed at exit), an Apache Kafka 4.1.1
node of its own (devstack/kafka.py's KafkaNode: KRaft, one JVM that is broker
and controller, in a folder under this run's log directory, on free ports,
stopped at exit; MMS's topics from messaging.topics, no namespace, created by
ensure_topics: the consumed ones stamped by the broker, LogAppendTime), the
Schema Registry, Order Service and Metadata stand-ins as subprocesses on free
ports, the Metadata stand-in serving the --pools synthetic symbols
(--instrument), and the QuoterWorker in a thread of this process (so its
engines can be watched).

Each pool: --members members of equal weight, --levels levels a side, ACTIVE,
warmed up with a snapshot, a mark and 30 public trades; staleness guard on
(--staleness-ms). The market is produced by a child process (its own GIL, its
memory not in the figures; harness/market.py's MarketProcess): size deltas
round-robin over the symbols (1-2 level size changes, the microprice moves
< 1 bps, so the pools do not re-quote on them), a mark per symbol every second
and a public trade per symbol every --trade-every-s.

Phases:
  setup       host every pool, warm up, enable, wait until every pool quotes
              (--quoting-timeout-s at most).
  calibrate   --calibrate-s of a rising market (x1.25 a second while the worker
              keeps up; x0.85 of what it applied when a backlog of
              produced-but-unapplied deltas beyond 0.3 s of the rate forms): the
              worker's capacity = the median it applied while saturated. The
              steady rate = --load-fraction (0.5) x that, or --rate: at 0.8 a
              kill under load (its cancels, halts and re-reads) built a backlog
              that did not drain before the next one, in a 20-pool trial.
  steady      --minutes at that rate, open loop (a backlog beyond
              --max-backlog-s of the rate drops the market to a trickle that
              keeps every book fresh, until it drains: counted). Every
              --sample-every-s: the process RSS (/proc/self/status VmRSS; psutil
              is not installed), the worker's structures read on its event loop
              (queues, OffsetTracker deques and sets, the engines' order maps,
              tasks by coroutine, budget waiters, ...) and the interval's event
              lag; the Kafka JVM's RSS beside it. Every --kill-every s (the
              first at half of it): the desk's `emergency_kill` through the
              ORM, in a process of its own (harness/desk.py: as the API's; in
              this one it would wait for the worker's GIL); kill ->
              each pool's engine gate closed (polled every 10 ms), kill -> the
              Order Service stand-in shows no live member order (/admin/stats
              live_orders, polled every 50 ms), kill -> the last cancel-all's
              arrival there (its request log); then every pool resumed
              (`pool_resume` by a person, with a note, same process) and
              resume -> every pool quoting again (until the next kill at most).
  canaries    --canaries pools stop getting market data: the staleness guard's
              lateness = the halt (polled every 10 ms) - (the last book
              message's timestamp + --staleness-ms); the guard is checked on the
              worker's 50 ms timer.

Event lag: the worker's own measure (its drain observes, for each batch it
takes, now - the oldest event's timestamp into mm_pool_event_lag_seconds), read
exactly by a tap on that histogram's per-symbol children (log buckets of 2 %,
constant memory) and, for comparison, from the histogram's buckets
(bucket-resolution). Market events carry their produce time, so their lag
includes the broker; the 50 ms timers carry their enqueue time. The broker's
share, per market delta (a wrap of the consumer thread's `take`): producer ->
broker append (the record's ts_ns, its market step's time, to the broker's
LogAppendTime stamp: the step's produce loop, the producer's linger and the
append) and broker append -> the worker's poll()/consume() returned it
(stamped by harness/probes.py's Consumer subclass); the stamp has millisecond
resolution and is taken at the middle of its millisecond (±0.5 ms). The
worker's own mm_kafka_consume_wait_seconds is, per batch, now - the oldest
message's broker append time.

Prints a table (bench/load_report.py) and writes bench/results/load-kafka.json
(--out; the Tansu runs' load*.json are kept for comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import RESULTS
from harness.database import scratch_database
from harness.desk import Desk
from harness.market import (
    Feed,
    MarketProcess,
    Publisher,
    create_pools,
    instrument_specs,
    warm_up,
)
from harness.probes import BrokerSplit, Hold, LagTap, install_consumer, quoting, warmed
from harness.report import write_json
from harness.sampling import GcPauses
from harness.stack import Stack, WorkerThread, log_directory, wait_for
from load_report import figures, print_table
from load_steady import KillCycles, Monitor

PARTITIONS = 12
# Flushed at exit, and its worker keys are the peers the worker checks before hosting
# (another run's workers in the same database stop it hosting): give each run its own.
REDIS_URL = "redis://127.0.0.1:6379/13"
GATE_POLL_S = 0.01  # finer polling from this process takes the GIL from the worker


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    with (
        log_directory("load-bench-", keep=args.keep_logs) as logdir,
        contextlib.ExitStack() as cleanup,
    ):
        cleanup.enter_context(scratch_database("mms_load", redis_url=args.redis_url))
        stack = Stack(logdir)
        cleanup.callback(stack.stop_all)
        result = LoadBench(args, stack).run(cleanup)
    result["wall_s"] = round(time.monotonic() - started, 1)
    print_table(result)
    write_json(result, Path(args.out), wall_s=result["wall_s"])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--levels", type=int, default=1, help="levels a side per pool")
    parser.add_argument("--minutes", type=float, default=10.0, help="steady-state duration")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="deltas/s in steady state (0: calibrated)"
    )
    parser.add_argument("--load-fraction", type=float, default=0.5)
    parser.add_argument("--calibrate-s", type=float, default=40.0)
    parser.add_argument("--max-backlog-s", type=float, default=5.0)
    parser.add_argument("--sample-every-s", type=float, default=10.0)
    parser.add_argument("--trade-every-s", type=float, default=5.0)
    parser.add_argument("--step-ms", type=float, default=100.0, help="the market's step")
    parser.add_argument("--staleness-ms", type=int, default=5000)
    parser.add_argument("--canaries", type=int, default=2)
    parser.add_argument(
        "--order-rate",
        type=int,
        default=100,
        help="the worker's Order Service budget, requests/s (WorkerConfig default 100)",
    )
    parser.add_argument("--quoting-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help="a Redis database of this run's own (flushed)"
    )
    parser.add_argument("--out", default=str(RESULTS / "load-kafka.json"))
    parser.add_argument("--keep-logs", action="store_true")
    return parser.parse_args()


class LoadBench:
    """The run: set-up, calibration, the steady state with its kills, the canaries."""

    def __init__(self, args: argparse.Namespace, stack: Stack) -> None:
        self.args = args
        self.stack = stack
        self.symbols = [f"LD{i:03d}USDT-PERP" for i in range(args.pools)]
        self.hold = Hold()  # only its receipt stamp is used: the consumer is never paused here
        self.setup: dict[str, Any] = {}

    def run(self, cleanup: contextlib.ExitStack) -> dict[str, Any]:
        load_at_start = os.getloadavg()
        t_setup = time.monotonic()
        self.start_services()
        self.create_pools(t_setup)
        self.start_worker(cleanup)
        self.warm_up_and_enable(cleanup)
        self.setup["setup_s"] = time.monotonic() - t_setup
        calibration = self.calibrate()
        self.desk = Desk(self.stack.logdir)
        cleanup.callback(self.desk.close)
        steady = self.steady(calibration["steady_rate_per_s"])
        steady["canaries"] = self.canaries()
        self.market.set_rate(0)
        return figures(self, load_at_start, calibration, steady)

    # ------------------------------------------------------------ set-up

    def start_services(self) -> None:
        import httpx

        from messaging.avro import AvroCodec
        from messaging.kafka import ensure_topics, mms_topics

        self.kafka = self.stack.start_kafka()
        self.bootstrap = self.kafka.bootstrap
        specs = instrument_specs(self.symbols)
        self.registry = self.stack.schema_registry().url
        self.order_url = self.stack.order_service(specs).url
        self.metadata_target = self.stack.metadata(specs).target
        ensure_topics(self.bootstrap, mms_topics(PARTITIONS))
        self.codec = AvroCodec(self.registry)
        self.codec.register_all()
        self.venue = httpx.Client(base_url=self.order_url, timeout=10)

    def venue_stats(self) -> dict[str, Any]:
        return dict(self.venue.get("/admin/stats").json())

    def create_pools(self, t_setup: float) -> None:
        args = self.args
        create_pools(
            self.symbols,
            args.members,
            name="load",
            levels=args.levels,
            order_size_usdt=Decimal(120 * args.members),  # 2 lots (60 USDT a lot) a member a level
            staleness_ms=args.staleness_ms,
            weight=lambda _m: 1,
        )
        print(
            f"{args.pools} pools x {args.members} members created "
            f"({time.monotonic() - t_setup:.1f} s since start)",
            flush=True,
        )

    def start_worker(self, cleanup: contextlib.ExitStack) -> None:
        from quoting_worker.worker import QuoterWorker, WorkerConfig, tune_garbage_collector

        args = self.args
        install_consumer(self.hold)  # bench-only: stamps each receipt
        self.worker = QuoterWorker(
            WorkerConfig(
                kafka_brokers=self.bootstrap,
                registry_url=self.registry,
                order_service_url=self.order_url,
                metadata_target=self.metadata_target,
                redis_url=args.redis_url,
                group_id=f"load-quoter-{uuid.uuid4().hex[:8]}",
                partitions=PARTITIONS,
                worker_id="load-worker",
                order_rate_per_s=args.order_rate,
                cancel_reserve=min(10, max(1, args.order_rate // 10)),
            )
        )
        self.tap = LagTap(self.worker)
        self.split = BrokerSplit(self.worker, self.hold)
        tune_garbage_collector()  # as runquoter does before it starts its worker
        self.thread = WorkerThread(self.worker)
        cleanup.callback(self.thread.stop)
        n = len(self.symbols)
        self.setup["host_s"] = self.thread.start_hosting(n, timeout=600)
        print(f"worker hosted {n} pools in {self.setup['host_s']:.1f} s", flush=True)

    def warm_up_and_enable(self, cleanup: contextlib.ExitStack) -> None:
        from confluent_kafka import Producer

        from common.actors import Actor
        from messaging.kafka import producer_config
        from pools import services
        from pools.models import PoolConfig

        args, symbols = self.args, self.symbols
        producer = Producer(producer_config(bootstrap=self.bootstrap, client_id="load-warmup"))
        warm_up(Publisher(producer, self.codec), Feed(symbols), symbols, "w")
        engines = self.thread.hosted_engines
        wait_for("books, marks and σ in every engine", lambda: warmed(engines()), 120, step=0.2)
        # The market starts before the pools are enabled: the staleness guard needs it.
        step_s = args.step_ms / 1000
        self.market = MarketProcess(
            self.bootstrap, self.registry, symbols, args.trade_every_s, step_s
        )
        cleanup.callback(self.market.stop)
        self.market.start()
        self.market.set_rate(min(1000.0, 20.0 * len(symbols)))
        t = time.monotonic()
        desk = Actor("load-bench-ops")  # a person: resuming a HALTED pool needs one
        for pool in PoolConfig.objects.filter(symbol__in=symbols):
            services.pool_enable(pool=pool, actor=desk)
        self.setup["enable_calls_s"] = time.monotonic() - t
        deadline = time.monotonic() + args.quoting_timeout_s
        while self.quoting_count() < len(symbols) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.setup["enable_to_all_quoting_s"] = time.monotonic() - t
        self.setup["pools_quoting_after_enable"] = self.quoting_count()
        print(
            f"{self.setup['pools_quoting_after_enable']}/{len(symbols)} pools quoting "
            f"{self.setup['enable_to_all_quoting_s']:.1f} s after the enables "
            f"({self.setup['enable_calls_s']:.1f} s of pool_enable calls; "
            f"budget {args.order_rate}/s)",
            flush=True,
        )

    def quoting_count(self) -> int:
        return sum(1 for e in self.thread.hosted_engines() if quoting(e))

    # ------------------------------------------------------------ calibration

    def applied_total(self) -> int:
        return sum(e.book.seq for e in self.thread.hosted_engines())

    def backlog(self) -> int:
        """Deltas produced and not yet applied (every book's snapshot was seq 1; the
        market's deltas follow)."""
        return self.market.produced.value - (self.applied_total() - len(self.symbols))

    @property
    def trickle(self) -> float:
        """The least rate that keeps every book younger than half the staleness
        threshold: what the producer sends while it lets a backlog drain (silence
        would halt the pools)."""
        return max(10.0, 2.0 * len(self.symbols) / (self.args.staleness_ms / 1000))

    def calibrate(self) -> dict[str, Any]:
        market = self.market
        ticks: list[dict[str, Any]] = []
        rate = market.rate.value
        prev_applied, prev_t = self.applied_total(), time.monotonic()
        prev_produced = market.produced.value
        t_cal = time.monotonic()
        while time.monotonic() - t_cal < self.args.calibrate_s:
            time.sleep(1.0)
            now_t, applied, produced = time.monotonic(), self.applied_total(), market.produced.value
            dt = now_t - prev_t
            applied_rate = (applied - prev_applied) / dt
            pending = self.backlog()
            prev_applied, prev_t = applied, now_t
            saturated = pending >= max(300.0, 0.3 * rate)
            ticks.append(
                {
                    "t": round(now_t - t_cal, 2),
                    "rate": round(rate),
                    "produced_per_s": round((produced - prev_produced) / dt),
                    "applied_per_s": round(applied_rate),
                    "backlog": pending,
                    "saturated": saturated,
                }
            )
            prev_produced = produced
            rate = rate * 1.25 if not saturated else max(100.0, min(rate, applied_rate) * 0.85)
            market.set_rate(rate)
            print(f"calibrating: {ticks[-1]}", flush=True)
        return self._calibrated(ticks)

    def _calibrated(self, ticks: list[dict[str, Any]]) -> dict[str, Any]:
        # The worker's capacity: what it applied while a backlog waited (saturated);
        # never saturated: the most it applied (a lower bound).
        at_capacity = [c["applied_per_s"] for c in ticks if c["saturated"]]
        reached = bool(at_capacity)
        capacity = (
            statistics.median(at_capacity) if reached else max(c["applied_per_s"] for c in ticks)
        )
        producer_bound = any(c["produced_per_s"] < 0.9 * c["rate"] for c in ticks[-5:])
        steady_rate = self.args.rate or self.args.load_fraction * capacity
        self.market.set_rate(self.trickle)
        wait_for(
            "the calibration's backlog to drain",
            lambda: self.backlog() < max(100.0, self.trickle),
            timeout=300,
            step=0.2,
        )
        print(
            f"calibrated: the worker applies ~{capacity:,.0f} deltas/s "
            f"({'saturated' if reached else 'never saturated: a lower bound'}"
            f"{', producer-bound' if producer_bound else ''}); "
            f"steady rate {steady_rate:,.0f}/s",
            flush=True,
        )
        return {
            "capacity_deltas_per_s": round(capacity),
            "saturated": reached,
            "producer_bound": producer_bound,
            "steady_rate_per_s": steady_rate,
            "ticks": ticks,
        }

    # ------------------------------------------------------------ steady state

    def steady(self, steady_rate: float) -> dict[str, Any]:
        monitor = Monitor(self, steady_rate)
        monitor.before()
        pauses = GcPauses()
        gc.callbacks.append(pauses.callback)
        self.market.set_rate(steady_rate)
        t0 = time.monotonic()
        monitor.start(t0)
        kills = KillCycles(self, t0)
        kills.run()
        time.sleep(max(0.0, t0 + self.args.minutes * 60 - time.monotonic()))
        steady = monitor.finish(kills.lag)
        steady["gc_pauses"] = pauses.figures()
        steady["kills"] = kills.kills
        steady["gate_per_pool"] = kills.gate_per_pool
        return steady

    # ------------------------------------------------------------ canaries

    def canaries(self) -> list[dict[str, Any]]:
        """The last --canaries pools lose their market: when the staleness guard halts them."""
        from common.actors import Actor
        from pools import services
        from pools.models import PoolConfig
        from quoting_worker.core.types import PoolMode

        symbols, args = self.symbols, self.args
        if not args.canaries:
            return []
        canary_idx = list(range(len(symbols) - args.canaries, len(symbols)))
        engines = {symbols[i]: self.worker.hosted[symbols[i]].engine for i in canary_idx}
        desk = Actor("load-bench-ops")
        for pool in PoolConfig.objects.filter(symbol__in=list(engines), state="HALTED"):
            services.pool_resume(pool=pool, actor=desk, note="load bench: canary")
        wait_for(
            "the canary pools ACTIVE",
            lambda: all(e.mode is PoolMode.ACTIVE for e in engines.values()),
            timeout=60,
        )
        self.market.exclude(canary_idx)
        return self._watch_canaries(engines)

    def _watch_canaries(self, pending: dict[str, Any]) -> list[dict[str, Any]]:
        from quoting_worker.core.types import PoolMode

        staleness_s = self.args.staleness_ms / 1000
        canaries: list[dict[str, Any]] = []
        t_c = time.monotonic()
        while pending and time.monotonic() - t_c < staleness_s + 60:
            for symbol, engine in list(pending.items()):
                if engine.mode is not PoolMode.ACTIVE:
                    halted_ns = time.time_ns()
                    heard = max(engine.book.last_received_ns, engine.active_since_ns)
                    silence_s = (halted_ns - heard) / 1e9
                    canaries.append(
                        {
                            "symbol": symbol,
                            "halt_reason": engine.halt_reason,
                            "silence_to_halt_s": round(silence_s, 4),
                            "lateness_s": round(silence_s - staleness_s, 4),
                        }
                    )
                    del pending[symbol]
            time.sleep(GATE_POLL_S)
        for symbol in pending:
            canaries.append({"symbol": symbol, "halt_reason": None, "lateness_s": None})
        return canaries

    def kill_switch_totals(self) -> tuple[Counter[str], Counter[str]]:
        """The worker's kill switches by trigger and orders sent by action (its metrics)."""
        from harness.report import prometheus_totals

        registry = self.worker.metrics.registry
        return (
            Counter(prometheus_totals(registry, "mm_pool_kill_switch", "trigger")),
            Counter(prometheus_totals(registry, "mm_pool_orders_sent", "action")),
        )


if __name__ == "__main__":
    main()
