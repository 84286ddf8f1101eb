# mypy: ignore-errors
# (a benchmark that instruments the worker by wrapping its internals at run time)
"""One runquoter hosting many pools under a full-rate market: memory, event lag, kills.

    .venv/bin/python bench/load.py [--pools 200] [--members 10] [--minutes 10]
                                   [--kill-every 60] [--order-rate 100]

Issue 8, row 14: "200 pools x 10 members in one worker with the simulator's
market at full rate for 10 minutes; guarantee: no unbounded growth, guards still
fire on time; figures: RSS growth, p99 event lag, kill -> last cancel p99 under
load".

The machinery is bench/quoter_throughput.py's (imported, not copied): a
throwaway PostgreSQL database (dropped at exit), a Redis database of its own
(flushed at exit), an Apache Kafka 4.1.1 node of its own (devstack/kafka.py's
KafkaNode: KRaft, one JVM that is broker and controller, in a folder under this
run's log directory, on free ports, stopped at exit; MMS's topics from
messaging.topics, no namespace, created by ensure_topics: the consumed ones
stamped by the broker, LogAppendTime), the Schema Registry, Order Service and
Metadata stand-ins as subprocesses on free ports, the Metadata stand-in
serving the --pools synthetic symbols (--instrument), and the QuoterWorker
in a thread of this process (so its engines can be watched).

Each pool: --members members of equal weight, --levels levels a side, ACTIVE,
warmed up with a snapshot, a mark and 30 public trades; staleness guard on
(--staleness-ms). The market is produced by a child process (its own GIL, its
memory not in the figures): size deltas round-robin over the symbols (Feed of
quoter_throughput: 1-2 level size changes, the microprice moves < 1 bps, so
the pools do not re-quote on them), a mark per symbol every second and a
public trade per symbol every --trade-every-s.

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
              ORM, in a process of its own (as the API's; in this one it would
              wait for the worker's GIL); kill ->
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
share, per market delta (a wrap of the worker's `_take`, in its consumer
thread): producer -> broker append (the record's ts_ns, its market step's
time, to the broker's LogAppendTime stamp: the step's produce loop, the
producer's linger and the append) and broker append -> the worker's
poll()/consume() returned it (stamped by a Consumer subclass from
quoter_throughput.py); the stamp has millisecond resolution and is taken at
the middle of its millisecond (±0.5 ms). The worker's own
mm_kafka_consume_wait_seconds is, per batch, now - the oldest message's
broker append time.

Prints a table and writes bench/results/load-kafka.json (--out; the Tansu runs'
load*.json are kept for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quoter_throughput import (  # noqa: E402  (bench/ is on sys.path when run as a script)
    LOT,
    MIN_NOTIONAL,
    TICK,
    Feed,
    Hold,
    Processes,
    _ok,
    append_ns,
    bench_consumer_class,
    free_port,
    machine_busy,
    machine_cpu,
    proc_rss_mb,
    start_kafka,
    stop_worker_and_processes,
    wait_for,
    wait_port,
)
from scratch import scratch_database  # noqa: E402

from messaging.topics import DELTA, ENGINE, MARK  # noqa: E402
from messaging.topics import SNAPSHOT as SNAP  # noqa: E402
from simulator.model import instrument_options  # noqa: E402

PARTITIONS = 12
# Flushed at exit, and its worker keys are the peers the worker checks before hosting
# (another run's workers in the same database stop it hosting): give each run its own.
REDIS_URL = "redis://127.0.0.1:6379/13"
MARK_EVERY_S = 1.0
VENUE_POLL_S = 0.05
GATE_POLL_S = 0.01  # finer polling from this process takes the GIL from the worker


# ---------------------------------------------------------------- measuring


def rss_mb() -> float:
    """This process's resident set (the worker runs in it), MB."""
    rss = proc_rss_mb()
    if rss is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return rss


def kafka_rss_mb(pid: int | None) -> float | None:
    """The Kafka JVM's resident set, MB (None when it is gone)."""
    rss = None if pid is None else proc_rss_mb(pid)
    return None if rss is None else round(rss, 1)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LagHistogram:
    """Counts in logarithmic buckets 2 % wide from 10 µs to ~1000 s: constant memory
    however long the run (a list of samples would itself grow the RSS)."""

    LOW = 1e-5
    BASE = 1.02
    SIZE = int(math.log(1e8) / math.log(1.02)) + 2

    def __init__(self) -> None:
        self.counts = [0] * self.SIZE
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds <= self.LOW:
            i = 0
        else:
            i = min(self.SIZE - 1, int(math.log(seconds / self.LOW) / math.log(self.BASE)) + 1)
        self.counts[i] += 1
        self.n += 1
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LagHistogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.n += other.n
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile (at most 2 % high)."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(self.max, self.LOW * self.BASE**i)
        return self.max

    def summary(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return {
            "n": self.n,
            "p50_ms": ms(self.quantile(0.50)),
            "p90_ms": ms(self.quantile(0.90)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max if self.n else None),
        }


class LagTap:
    """Stands in for the worker's mm_pool_event_lag_seconds histogram: each
    per-symbol child observes into the real one and into the bench's current
    interval (swapped by the monitor; during a kill cycle, also the kill one)."""

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self.interval = LagHistogram()
        self.kill: LagHistogram | None = None

    def labels(self, *labels: str) -> _TapChild:
        return _TapChild(self, self.histogram.labels(*labels))

    def take(self) -> LagHistogram:
        taken, self.interval = self.interval, LagHistogram()
        return taken


class _TapChild:
    def __init__(self, tap: LagTap, child: Any) -> None:
        self.tap = tap
        self.child = child

    def observe(self, value: float) -> None:
        self.child.observe(value)
        self.tap.interval.add(value)
        kill = self.tap.kill
        if kill is not None:
            kill.add(value)


class BrokerSplit:
    """Per market delta the worker takes, its way through Kafka in two shares:
    producer -> broker append and broker append -> the worker's consumer call
    returned it. Installed on the worker's `_take` (its consumer thread); the
    monitor swaps the histograms (`take`) as it swaps the lag tap's."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.to_append = LagHistogram()
        self.from_append = LagHistogram()
        self.unstamped = 0  # deltas without the broker's append time (none expected)
        take = worker._take

        def bench_take(message: Any, stamps: Any) -> Any:
            item = take(message, stamps)
            if item is not None and item[1] == DELTA:
                appended = append_ns(message)
                if appended is None:
                    self.unstamped += 1
                else:
                    # (The mid-millisecond estimate can come out a little below 0: bucket 0.)
                    self.to_append.add((appended - item[4]["ts_ns"]) / 1e9)
                    self.from_append.add((hold.received_ns - appended) / 1e9)
            return item

        worker._take = bench_take

    def take(self) -> tuple[LagHistogram, LagHistogram]:
        taken = self.to_append, self.from_append
        self.to_append, self.from_append = LagHistogram(), LagHistogram()
        return taken


def prometheus_buckets(registry: Any, name: str) -> dict[float, float]:
    """Histogram `name`: cumulative count per bucket edge, summed over its labels."""
    out: dict[float, float] = Counter()
    for metric in registry.collect():
        if metric.name != name:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                out[float(sample.labels["le"])] += sample.value
    return dict(out)


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> Any:
    """The q-quantile from cumulative bucket counts (the bucket's upper edge)."""
    edges = sorted(after)
    diff = [after[e] - before.get(e, 0.0) for e in edges]
    total = diff[-1] if diff else 0
    if not total:
        return None
    for edge, cumulative in zip(edges, diff, strict=True):
        if cumulative >= q * total:
            return "+Inf" if math.isinf(edge) else edge
    return "+Inf"


def quantiles_s(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

    return {
        "n": len(ordered),
        "p50_s": at(0.50),
        "p99_s": at(0.99),
        "max_s": round(ordered[-1], 4),
        "mean_s": round(statistics.fmean(ordered), 4),
    }


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if not den:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60


# ---------------------------------------------------------------- the market (child process)


def market_process(
    bootstrap: str,
    registry: str,
    symbols: list[str],
    first_seq: int,
    trade_every_s: float,
    step_s: float,
    rate: Any,
    stop: Any,
    produced: Any,
    excluded: Any,
    queued: Any,
) -> None:
    """The market in steps of `step_s`, as the simulator's (simulator/market.py
    steps its symbols every 0.1 s and flushes its feed after each step): each
    step publishes `rate.value` x `step_s` size deltas round-robin over
    `symbols`, stamped with the step's time; a mark per symbol every second and
    a public trade per symbol every `trade_every_s`. Symbols flagged in
    `excluded` get nothing. `produced`: the deltas handed to the producer so
    far; `queued`: messages in the producer not yet acknowledged by the broker."""
    from confluent_kafka import Producer

    from quoting_worker.adapters.kafka_config import producer_config
    from quoting_worker.adapters.serde import AvroCodec

    codec = AvroCodec(registry)
    producer = Producer(producer_config(bootstrap=bootstrap, client_id="load-market"))
    feed = Feed(symbols)
    feed.seq = dict.fromkeys(symbols, first_seq)
    encode = codec.encode
    n_symbols = len(symbols)

    def send(topic: str, record: dict[str, Any], key: str) -> None:
        value = encode(topic, record)
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                producer.poll(0.01)

    i = count = 0
    credit = 0.0
    next_step = time.monotonic()
    next_mark = next_step + MARK_EVERY_S
    next_trade = next_step + trade_every_s
    trade_no = 0
    while not stop.value:
        now = time.monotonic()
        if now < next_step:
            producer.poll(min(0.01, next_step - now))
            queued.value = len(producer)
            continue
        # A step the process could not keep up with is not made up later.
        next_step = max(next_step + step_s, now)
        credit += rate.value * step_s
        n = int(credit)
        credit -= n
        t_ns = time.time_ns()
        for _ in range(n):
            k = i % n_symbols
            i += 1
            if excluded[k]:
                continue
            symbol = symbols[k]
            send(DELTA, feed.size_delta(symbol, t_ns), symbol)
            count += 1
        produced.value = count
        if now >= next_mark:
            next_mark += MARK_EVERY_S
            for k, symbol in enumerate(symbols):
                if not excluded[k]:
                    mark = {"symbol": symbol, "mark_price": "60000.0", "index_price": None}
                    send(MARK, {**mark, "ts_ns": t_ns}, symbol)
        if now >= next_trade:
            next_trade += trade_every_s
            trade_no += 1
            for k, symbol in enumerate(symbols):
                if not excluded[k]:
                    send(
                        ENGINE,
                        {
                            "type": "PublicTrade",
                            "trade_id": f"lt-{symbol}-{trade_no}",
                            "symbol": symbol,
                            "price": "60000.5" if trade_no % 2 else "59999.5",
                            "size": "0.010",
                            "aggressor_side": "BUY",
                            "ts_ns": t_ns,
                        },
                        symbol,
                    )
        producer.poll(0)
        queued.value = len(producer)
    producer.flush(10)


class Market:
    """The market child process and its controls."""

    def __init__(
        self,
        bootstrap: str,
        registry: str,
        symbols: list[str],
        trade_every_s: float,
        step_s: float,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.symbols = symbols
        self.rate = ctx.Value("d", 0.0, lock=False)
        self.stop_flag = ctx.Value("b", 0, lock=False)
        self.produced = ctx.Value("q", 0, lock=False)
        self.excluded = ctx.Array("b", len(symbols), lock=False)
        self.queued = ctx.Value("q", 0, lock=False)  # in the child's producer, not yet acked
        self.proc = ctx.Process(
            target=market_process,
            args=(
                bootstrap,
                registry,
                symbols,
                1,  # the warm-up snapshot was seq 1
                trade_every_s,
                step_s,
                self.rate,
                self.stop_flag,
                self.produced,
                self.excluded,
                self.queued,
            ),
            name="load-market",
            daemon=True,
        )

    def start(self) -> None:
        self.proc.start()

    def set_rate(self, per_s: float) -> None:
        self.rate.value = float(per_s)

    def exclude(self, indexes: list[int]) -> None:
        for k in indexes:
            self.excluded[k] = 1

    def stop(self) -> None:
        if self.proc.pid is None:
            return
        self.rate.value = 0.0
        self.stop_flag.value = 1
        self.proc.join(20)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# ---------------------------------------------------------------- ops (another process)

OPS_SERVER = """
import json, sys, time
import django
django.setup()
from common.actors import Actor
from pools import services
from pools.models import PoolConfig
ops = Actor("load-bench-ops")  # a person: resuming a HALTED pool needs one
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    verb, n = line.split()
    t0 = time.time()
    if verb == "kill":
        done = len(services.emergency_kill(actor=ops, reason=f"load bench kill {n}"))
    elif verb == "resume":
        done = 0
        for pool in PoolConfig.objects.filter(state="HALTED", archived_at__isnull=True):
            services.pool_resume(pool=pool, actor=ops, note=f"load bench: resume {n}")
            done += 1
    else:
        break
    print(json.dumps({"t0": t0, "t1": time.time(), "n": done}), flush=True)
"""


class Ops:
    """The desk's calls (`emergency_kill`, `pool_resume`) through the ORM in a process
    of their own, as the API's would be: not competing with the worker for this
    process's GIL (in this process a 200-pool kill took 8-12 s of GIL waits)."""

    def __init__(self, logdir: Path) -> None:
        self.log = (logdir / "ops.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", OPS_SERVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=os.environ.copy(),
        )
        if json.loads(self._line()).get("ready") is not True:
            raise RuntimeError("the ops process did not start")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the ops process exited ({self.proc.poll()}): see ops.log")
        return line

    def send(self, verb: str, n: int) -> None:
        """Starts a call; `result` returns its answer (wall times t0, t1; count n)."""
        self.proc.stdin.write(f"{verb} {n}\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self._line()))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# ---------------------------------------------------------------- the worker's state


async def read_structures(worker: Any, submitted: float) -> dict[str, Any]:
    """The worker's per-symbol and global structures, read on its event loop."""
    started = time.monotonic()
    hosted = list(worker.hosted.values())
    engines = [h.engine for h in hosted]
    tasks = asyncio.all_tasks()
    offsets = worker.offsets
    with offsets._lock:
        started_lens = [len(d) for d in offsets._started.values()]
        done_lens = [len(s) for s in offsets._done.values()]
        partitions = len(offsets._next)

    def top(values: list[int]) -> int:
        return max(values, default=0)

    owner = [len(e.owner) for e in engines]
    bound = [len(e.members) * e.params.num_levels * 2 for e in engines]
    budget = worker.client.budget
    return {
        "loop_delay_ms": round((started - submitted) * 1000, 2),
        "hosted": len(hosted),
        "tasks": len(tasks),
        "tasks_top": dict(
            Counter(getattr(t.get_coro(), "__qualname__", "?") for t in tasks).most_common(4)
        ),
        "queue_max": top([h.queue.qsize() for h in hosted]),
        "queue_sum": sum(h.queue.qsize() for h in hosted),
        "sends_max": top([h.sends.qsize() for h in hosted]),
        "urgent_max": top([len(h.urgent) for h in hosted]),
        "offsets_started_max": top(started_lens),
        "offsets_started_sum": sum(started_lens),
        "offsets_done_max": top(done_lens),
        "offsets_partitions": partitions,
        "engine_owner_max": top(owner),
        "engine_owner_sum": sum(owner),
        "engine_owner_over_bound": sum(1 for o, b in zip(owner, bound, strict=True) if o > b),
        "engine_order_bound": top(bound),
        "member_open_orders_sum": sum(
            len(m.runtime.open_orders) for e in engines for m in e.members.values()
        ),
        "engine_cancelling_sum": sum(len(e.cancelling) for e in engines),
        "engine_unknown_sum": sum(len(e.unknown) for e in engines),
        "engine_cancel_sent_sum": sum(len(e.cancel_sent_ns) for e in engines),
        "engine_not_found_sum": sum(len(e.not_found) for e in engines),
        "engine_last_query_sum": sum(len(e.last_query_ns) for e in engines),
        "engine_seen_fills_sum": sum(len(e.seen_fills) for e in engines),
        "vol_increments_sum": sum(len(e.vol._increments) for e in engines),
        "sink_unknown_since": len(worker.sink.unknown_since),
        "sink_settled": len(worker.sink._settled),
        "sink_cancelling": sum(len(c) for c in worker.sink._cancelling.values()),
        "status_changes": sum(len(v) for v in worker._status_changes.values()),
        "sink_placing": len(worker.sink._placing),
        "noticed": worker._noticed.qsize(),
        "budget_waiters": budget.waiting,
        "user_ids": len(worker.user_ids),
        "metric_samples": len(worker.metrics.samples),
        "books_unsynced": sum(1 for e in engines if not e.book.synced),
        "book_gaps": sum(e.book.gaps for e in engines),
        "quoting": sum(1 for e in engines if _quoting(e)),
        "active": sum(1 for e in engines if e.mode.value == "ACTIVE"),
    }


def _quoting(engine: Any) -> bool:
    from quoting_worker.core.types import Side

    return (
        engine.gate() == ""
        and sum(engine.own_levels[Side.BUY].values()) > 0
        and sum(engine.own_levels[Side.SELL].values()) > 0
        and not engine.unknown
    )


# ---------------------------------------------------------------- the bench


def main() -> None:
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
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load-kafka.json"))
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    procs = Processes(logdir)
    worker_stop: dict[str, Any] = {}
    closers: list[Any] = []  # the market and the ops process, stopped before the rest
    result: dict[str, Any] = {}
    print(f"logs in {logdir}", flush=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(scratch_database("mms_load", redis_url=args.redis_url))
        cleanup.callback(stop_worker_and_processes, worker_stop, procs)
        # Before the worker and the processes (the Kafka node last of all).
        cleanup.callback(lambda: [close() for close in reversed(closers)])
        result = run(args, procs, worker_stop, closers)
    if args.keep_logs:
        print(f"logs kept in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    if result:
        result["wall_s"] = round(time.monotonic() - started, 1)
        report(result, Path(args.out))


class GcPauses:
    """Every cyclic garbage collection in this process (the worker's threads hold
    the GIL it runs under: a collection stops them all), timed by generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(time.perf_counter() - self.started)

    def figures(self) -> dict[str, dict[str, Any]]:
        return {
            str(gen): {**quantiles_s(times), "total_s": round(sum(times), 2)}
            for gen, times in self.by_generation.items()
        }


def run(
    args: argparse.Namespace,
    procs: Processes,
    worker_stop: dict[str, Any],
    closers: list[Any],
) -> dict[str, Any]:
    import httpx
    from confluent_kafka import Producer

    from common.actors import Actor
    from participants.models import Participant
    from pools import services
    from pools.models import PoolConfig, PoolMember
    from quoting_worker import worker as worker_module
    from quoting_worker.adapters.kafka_config import ensure_topics, mms_topics, producer_config
    from quoting_worker.adapters.serde import AvroCodec
    from quoting_worker.core.types import PoolMode
    from quoting_worker.worker import QuoterWorker, WorkerConfig, tune_garbage_collector

    symbols = [f"LD{i:03d}USDT-PERP" for i in range(args.pools)]
    desk = Actor("load-bench-ops")  # a person: resuming a HALTED pool needs one
    load_at_start = os.getloadavg()
    t_setup = time.monotonic()

    # ------------------------------------------------------------ services
    kafka = start_kafka(procs)
    bootstrap = kafka.bootstrap
    rport, oport, mport = free_port(), free_port(), free_port()
    instruments = instrument_options(f"{s}:{TICK}:{LOT}:{MIN_NOTIONAL}" for s in symbols)
    rproc = procs.start(
        "schema-registry", [sys.executable, "-m", "simulator.schema_registry", "--port", str(rport)]
    )
    oproc = procs.start(
        "order-service",
        [sys.executable, "-m", "simulator.order_service", "--port", str(oport), *instruments],
    )
    mproc = procs.start(
        "metadata",
        [sys.executable, "-m", "simulator.metadata_service", "--port", str(mport), *instruments],
    )
    for port, p, name in (
        (rport, rproc, "schema registry"),
        (oport, oproc, "order service"),
        (mport, mproc, "metadata"),
    ):
        wait_port(port, p, name)
    registry = f"http://127.0.0.1:{rport}"
    order_url = f"http://127.0.0.1:{oport}"
    wait_for("the order service", lambda: _ok(httpx, f"{order_url}/healthz"))
    wait_for("the schema registry", lambda: _ok(httpx, f"{registry}/subjects"))
    ensure_topics(bootstrap, mms_topics(PARTITIONS))
    codec = AvroCodec(registry)
    codec.register_all()
    venue = httpx.Client(base_url=order_url, timeout=10)

    def venue_stats() -> dict[str, Any]:
        return dict(venue.get("/admin/stats").json())

    # ------------------------------------------------------------ pools
    order_size = Decimal(120 * args.members)  # 2 lots (60 USDT a lot) per member a level
    pools = PoolConfig.objects.bulk_create(
        PoolConfig(
            symbol=symbol,
            enabled=True,
            gamma=Decimal("0.0001"),
            kappa=Decimal("2"),
            vol_lookback_seconds=3600,
            tau=Decimal("1"),
            num_levels=args.levels,
            level_spacing_bps=Decimal("2"),
            min_spread_bps=Decimal("2"),
            max_spread_bps=Decimal("40"),
            order_size_usdt=order_size,
            max_pool_position_usdt=Decimal("10000000"),
            max_pool_loss_usdt=Decimal("1000000"),
            check_staleness=True,
            staleness_threshold_ms=args.staleness_ms,
            quote_interval_ms=250,
            price_threshold_bps=Decimal("1"),
        )
        for symbol in symbols
    )
    participants = []
    short_ids: set[str] = set()
    for i in range(args.pools):
        for m in range(args.members):
            pid = uuid.uuid4()
            while str(pid)[:8] in short_ids:
                pid = uuid.uuid4()
            short_ids.add(str(pid)[:8])
            participants.append(
                Participant(
                    id=pid,
                    short_id=str(pid)[:8],
                    name=f"load {i}-{m}",
                    user_id=f"user-{i}-{m}",
                    account_id=f"acct-{i}-{m}",
                    tier="TIER_2",
                    state="ACTIVE",
                )
            )
    Participant.objects.bulk_create(participants, batch_size=1000)
    PoolMember.objects.bulk_create(
        (
            PoolMember(
                pool=pools[k // args.members],
                participant=participant,
                weight=Decimal(1),
                max_position_usdt=Decimal("1000000"),
            )
            for k, participant in enumerate(participants)
        ),
        batch_size=1000,
    )
    print(
        f"{args.pools} pools x {args.members} members created "
        f"({time.monotonic() - t_setup:.1f} s since start)",
        flush=True,
    )

    # ------------------------------------------------------------ the worker
    hold = Hold()  # only its receipt stamp is used: the consumer is never paused here
    worker_module.Consumer = bench_consumer_class(hold)  # bench-only: stamps each receipt
    worker = QuoterWorker(
        WorkerConfig(
            kafka_brokers=bootstrap,
            registry_url=registry,
            order_service_url=order_url,
            metadata_target=f"127.0.0.1:{mport}",
            redis_url=args.redis_url,
            group_id=f"load-quoter-{uuid.uuid4().hex[:8]}",
            partitions=PARTITIONS,
            worker_id="load-worker",
            order_rate_per_s=args.order_rate,
            cancel_reserve=min(10, max(1, args.order_rate // 10)),
        )
    )
    worker_stop["worker"] = worker
    tap = LagTap(worker.metrics.event_lag)
    worker.metrics.event_lag = tap  # before any drain task asks it for its child
    split = BrokerSplit(worker, hold)

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            worker_stop["stop"] = stop
            worker_stop["loop"] = asyncio.get_running_loop()
            await worker.run(stop)

        asyncio.run(main())

    tune_garbage_collector()  # as runquoter does before it starts its worker
    thread = threading.Thread(target=serve, name="quoter", daemon=True)
    worker_stop["thread"] = thread
    t = time.monotonic()
    thread.start()
    wait_for(
        f"the worker to host {len(symbols)} symbols",
        lambda: len(worker.hosted) == len(symbols),
        timeout=600,
        step=0.2,
    )
    host_s = time.monotonic() - t
    loop = worker_stop["loop"]
    print(f"worker hosted {len(symbols)} pools in {host_s:.1f} s", flush=True)

    def engines() -> list[Any]:
        return [h.engine for h in list(worker.hosted.values())]

    # ------------------------------------------------------------ warm-up
    producer = Producer(producer_config(bootstrap=bootstrap, client_id="load-warmup"))
    feed = Feed(symbols)
    now = time.time_ns()
    for symbol in symbols:
        for topic, record in [
            (SNAP, feed.snapshot(symbol, now)),
            (MARK, {"symbol": symbol, "mark_price": "60000.0", "index_price": None, "ts_ns": now}),
        ] + [
            (
                ENGINE,
                {
                    "type": "PublicTrade",
                    "trade_id": f"w-{symbol}-{k}",
                    "symbol": symbol,
                    "price": "60000.5" if k % 2 else "59999.5",
                    "size": "0.010",
                    "aggressor_side": "BUY",
                    "ts_ns": now - (30 - k) * 1_000_000_000,
                },
            )
            for k in range(30)
        ]:
            while True:
                try:
                    producer.produce(topic, key=symbol, value=codec.encode(topic, record))
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    producer.flush(30)

    def warmed() -> bool:
        t_ns = time.time_ns()
        return all(
            e.book.synced and e.mark is not None and e.vol.sigma(t_ns) is not None
            for e in engines()
        )

    wait_for("books, marks and σ in every engine", warmed, timeout=120, step=0.2)
    # The market starts before the pools are enabled: the staleness guard needs it.
    market = Market(bootstrap, registry, symbols, args.trade_every_s, args.step_ms / 1000)
    closers.append(market.stop)
    market.start()
    market.set_rate(min(1000.0, 20.0 * len(symbols)))
    t = time.monotonic()
    for pool in PoolConfig.objects.filter(symbol__in=symbols):
        services.pool_enable(pool=pool, actor=desk)
    enable_calls_s = time.monotonic() - t

    def quoting_count() -> int:
        return sum(1 for e in engines() if _quoting(e))

    deadline = time.monotonic() + args.quoting_timeout_s
    while quoting_count() < len(symbols) and time.monotonic() < deadline:
        time.sleep(0.2)
    enable_s = time.monotonic() - t
    quoting_after_enable = quoting_count()
    print(
        f"{quoting_after_enable}/{len(symbols)} pools quoting {enable_s:.1f} s after the "
        f"enables ({enable_calls_s:.1f} s of pool_enable calls; budget {args.order_rate}/s)",
        flush=True,
    )
    setup_s = time.monotonic() - t_setup

    # ------------------------------------------------------------ calibration
    def applied_total() -> int:
        return sum(e.book.seq for e in engines())

    # The least rate that keeps every book younger than half the staleness threshold:
    # what the producer sends while it lets a backlog drain (silence would halt the pools).
    trickle = max(10.0, 2.0 * len(symbols) / (args.staleness_ms / 1000))
    seq_base = len(symbols)  # every book's snapshot was seq 1; the market's deltas follow

    def backlog() -> int:
        return market.produced.value - (applied_total() - seq_base)

    calib: list[dict[str, float]] = []
    rate = market.rate.value
    prev_applied, prev_t = applied_total(), time.monotonic()
    prev_produced = market.produced.value
    t_cal = time.monotonic()
    while time.monotonic() - t_cal < args.calibrate_s:
        time.sleep(1.0)
        now_t = time.monotonic()
        applied = applied_total()
        produced = market.produced.value
        dt = now_t - prev_t
        applied_rate = (applied - prev_applied) / dt
        produced_rate = (produced - prev_produced) / dt
        pending = backlog()
        prev_applied, prev_t, prev_produced = applied, now_t, produced
        calib.append(
            {
                "t": round(now_t - t_cal, 2),
                "rate": round(rate),
                "produced_per_s": round(produced_rate),
                "applied_per_s": round(applied_rate),
                "backlog": pending,
            }
        )
        saturated = pending >= max(300.0, 0.3 * rate)
        calib[-1]["saturated"] = saturated
        if not saturated:
            rate *= 1.25
        else:
            rate = max(100.0, min(rate, applied_rate) * 0.85)
        market.set_rate(rate)
        print(f"calibrating: {calib[-1]}", flush=True)
    # The worker's capacity: what it applied while a backlog waited (saturated);
    # never saturated: the most it applied (a lower bound).
    at_capacity = [c["applied_per_s"] for c in calib if c["saturated"]]
    reached = bool(at_capacity)
    capacity = statistics.median(at_capacity) if reached else max(c["applied_per_s"] for c in calib)
    producer_bound = any(c["produced_per_s"] < 0.9 * c["rate"] for c in calib[-5:])
    steady_rate = args.rate or args.load_fraction * capacity
    market.set_rate(trickle)
    wait_for(
        "the calibration's backlog to drain",
        lambda: backlog() < max(100.0, trickle),
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

    # ------------------------------------------------------------ steady state
    duration = args.minutes * 60
    samples: list[dict[str, Any]] = []
    intervals_total = LagHistogram()
    quiet_total = LagHistogram()  # outside kill cycles
    to_append_total = LagHistogram()  # market deltas: producer -> broker append
    from_append_total = LagHistogram()  # broker append -> the worker's consumer call
    kafka_pid = kafka.pid()
    overload = {"pauses": 0, "paused_s": 0.0}
    monitor_stop = threading.Event()
    monitor_errors: list[str] = []
    stats_client = httpx.Client(base_url=order_url, timeout=10)

    def structures() -> dict[str, Any]:
        submitted = time.monotonic()
        future = asyncio.run_coroutine_threadsafe(read_structures(worker, submitted), loop)
        return future.result(timeout=30)

    def monitor(t0: float) -> None:
        """1 s ticks: the producer's overload guard; every sample interval, a sample."""
        last_sample = t0 - args.sample_every_s
        paused_at: float | None = None
        applied0, produced0, at0 = applied_total(), market.produced.value, t0
        while not monitor_stop.is_set():
            now_t = time.monotonic()
            pending = backlog()
            if paused_at is None and pending > args.max_backlog_s * steady_rate:
                paused_at = now_t
                overload["pauses"] += 1
                market.set_rate(trickle)
            elif paused_at is not None and pending < 0.1 * steady_rate:
                overload["paused_s"] += now_t - paused_at
                paused_at = None
                market.set_rate(steady_rate)
            if now_t - last_sample >= args.sample_every_s - 0.05:
                last_sample = now_t
                try:
                    lag = tap.take()
                    intervals_total.merge(lag)
                    to_append, from_append = split.take()
                    to_append_total.merge(to_append)
                    from_append_total.merge(from_append)
                    state = structures()
                    applied, produced = applied_total(), market.produced.value
                    dt = max(1e-9, now_t - at0)
                    stats = stats_client.get("/admin/stats").json()
                    samples.append(
                        {
                            "t": round(now_t - t0, 1),
                            "rss_mb": round(rss_mb(), 1),
                            "kafka_rss_mb": kafka_rss_mb(kafka_pid),
                            "produced_per_s": round((produced - produced0) / dt),
                            "applied_per_s": round((applied - applied0) / dt),
                            "backlog": pending,
                            "producer_queue": market.queued.value,
                            "lag": lag.summary(),
                            "producer_to_broker_append": to_append.summary(),
                            "broker_append_to_consumer": from_append.summary(),
                            "venue_live_orders": stats["live_orders"],
                            "venue_dms_fired": stats["dead_man_switch"]["fired"],
                            **state,
                        }
                    )
                    applied0, produced0, at0 = applied, produced, now_t
                    x = samples[-1]
                    print(
                        f"t={x['t']:.0f} s rss {x['rss_mb']} MB (kafka {x['kafka_rss_mb']} MB), "
                        f"{x['applied_per_s']}/s applied, "
                        f"backlog {pending} ({x['producer_queue']} in the producer), "
                        f"lag p99 {x['lag']['p99_ms']} max {x['lag']['max_ms']} ms (to append "
                        f"{x['producer_to_broker_append']['p99_ms']}, from append "
                        f"{x['broker_append_to_consumer']['p99_ms']}), active {x['active']} "
                        f"quoting {x['quoting']}, tasks {x['tasks']}, "
                        f"queue max {x['queue_max']}, loop delay {x['loop_delay_ms']} ms",
                        flush=True,
                    )
                except Exception as exc:  # a sample lost is reported, the run goes on
                    monitor_errors.append(repr(exc))
            monitor_stop.wait(1.0)
        if paused_at is not None:
            overload["paused_s"] += time.monotonic() - paused_at

    ops = Ops(procs.logdir)
    closers.append(ops.close)
    prom_before = prometheus_buckets(worker.metrics.registry, "mm_pool_event_lag_seconds")
    wait_before = prometheus_buckets(worker.metrics.registry, "mm_kafka_consume_wait_seconds")
    orders_before = Counter(worker.client.outcomes)
    stats_before = venue_stats()
    machine0 = machine_cpu()
    cpu0 = time.process_time()
    pids = {name: proc.pid for name, proc in procs.procs}
    pids["market (child)"] = market.proc.pid
    pids["this process (worker + bench)"] = os.getpid()
    if kafka_pid is not None:
        pids["kafka"] = kafka_pid
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    tap.take()  # calibration's lag is not the steady state's
    split.take()
    pauses = GcPauses()
    gc.callbacks.append(pauses.callback)
    market.set_rate(steady_rate)
    t0 = time.monotonic()
    monitor_thread = threading.Thread(target=monitor, args=(t0,), name="monitor", daemon=True)
    monitor_thread.start()
    kills: list[dict[str, Any]] = []
    gate_per_pool: list[float] = []
    kill_lag = LagHistogram()

    def all_quoting_or_deadline(deadline_t: float) -> float | None:
        t_resume = time.monotonic()
        while time.monotonic() < deadline_t:
            if quoting_count() == len(symbols):
                return time.monotonic() - t_resume
            time.sleep(0.05)
        return None

    k = 0
    while True:
        kill_at = t0 + (k + 0.5) * args.kill_every
        if kill_at > t0 + duration - 5:
            break
        time.sleep(max(0.0, kill_at - time.monotonic()))
        watched = [
            (h.symbol, h.engine)
            for h in list(worker.hosted.values())
            if h.engine.mode is PoolMode.ACTIVE
        ]
        quoting_before = quoting_count()
        live_before = venue_stats()["live_orders"]
        tap.kill = LagHistogram()
        killed = time.monotonic()
        ops.send("kill", k)
        closed: dict[str, float] = {}  # wall time each pool's gate was seen closed
        open_ = dict(watched)
        while open_ and time.monotonic() - killed < 240:
            for symbol, engine in list(open_.items()):
                if engine.mode is not PoolMode.ACTIVE:
                    closed[symbol] = time.time()
                    del open_[symbol]
            time.sleep(GATE_POLL_S)
        empty_wall = None
        while time.monotonic() - killed < 300:
            if venue_stats()["live_orders"] == 0:
                empty_wall = time.time()
                break
            time.sleep(VENUE_POLL_S)
        answer = ops.result()
        killed_wall = answer["t0"]
        call_s = answer["t1"] - answer["t0"]
        gates = [t - killed_wall for t in closed.values()]
        gates_s = max(gates) if gates else None
        empty_s = None if empty_wall is None else empty_wall - killed_wall
        log = venue.get("/admin/requests", params={"route": "cancel_all"}).json()["requests"]
        cancel_alls = [r["t"] for r in log if r["t"] >= killed_wall]
        last_cancel_all_s = max(cancel_alls) - killed_wall if cancel_alls else None
        gate_per_pool.extend(gates)
        ops.send("resume", k)
        resumed_answer = ops.result()
        resumed = resumed_answer["n"]
        resume_calls_s = resumed_answer["t1"] - resumed_answer["t0"]
        next_kill = t0 + (k + 1.5) * args.kill_every
        requote_s = all_quoting_or_deadline(min(next_kill - 1.0, t0 + duration))
        if requote_s is not None:
            requote_s = time.time() - resumed_answer["t0"]
        kill_hist, tap.kill = tap.kill, None
        kill_lag.merge(kill_hist)
        kills.append(
            {
                "n": k,
                "at_s": round(killed - t0, 1),
                "pools_active_at_kill": len(watched),
                "pools_quoting_at_kill": quoting_before,
                "venue_live_orders_at_kill": live_before,
                "pools_halted_by_call": answer["n"],
                "emergency_kill_call_s": round(call_s, 4),
                "kill_to_all_gates_closed_s": None if gates_s is None else round(gates_s, 4),
                "gates_never_closed": len(open_),
                "kill_to_venue_empty_s": None if empty_s is None else round(empty_s, 4),
                "kill_to_last_cancel_all_arrival_s": None
                if last_cancel_all_s is None
                else round(last_cancel_all_s, 4),
                "cancel_alls_logged": len(cancel_alls),
                "pools_resumed": resumed,
                "resume_calls_s": round(resume_calls_s, 3),
                "resume_to_all_quoting_s": None if requote_s is None else round(requote_s, 3),
                "event_lag_during_cycle": kill_hist.summary(),
            }
        )
        print(
            f"kill {k} at {killed - t0:.0f} s: emergency_kill {call_s:.2f} s, all gates closed "
            f"{gates_s if gates_s is None else round(gates_s, 3)} s, venue empty "
            f"{empty_s if empty_s is None else round(empty_s, 3)} s, "
            f"all quoting again {requote_s if requote_s is None else round(requote_s, 1)} s "
            f"after the resume began",
            flush=True,
        )
        k += 1
    time.sleep(max(0.0, t0 + duration - time.monotonic()))
    # One last sample at the end of the steady state.
    monitor_stop.set()
    monitor_thread.join(60)
    steady_s = time.monotonic() - t0
    machine1 = machine_cpu()
    cpu_s = time.process_time() - cpu0
    cpu_share = {
        name: round((cpu_seconds(pid) - cpu_before[name]) / steady_s, 3)
        for name, pid in pids.items()
    }
    prom_after = prometheus_buckets(worker.metrics.registry, "mm_pool_event_lag_seconds")
    wait_after = prometheus_buckets(worker.metrics.registry, "mm_kafka_consume_wait_seconds")
    lag = tap.take()
    intervals_total.merge(lag)
    to_append, from_append = split.take()
    to_append_total.merge(to_append)
    from_append_total.merge(from_append)
    end_state = structures()
    end_rss = rss_mb()
    samples.append(
        {
            "t": round(steady_s, 1),
            "rss_mb": round(end_rss, 1),
            "kafka_rss_mb": kafka_rss_mb(kafka_pid),
            "backlog": backlog(),
            "lag": lag.summary(),
            "producer_to_broker_append": to_append.summary(),
            "broker_append_to_consumer": from_append.summary(),
            **end_state,
        }
    )
    quiet_total.merge(intervals_total)
    for i, c in enumerate(kill_lag.counts):  # outside kill cycles = all - during
        quiet_total.counts[i] -= c
    quiet_total.n -= kill_lag.n
    orders_during = Counter(worker.client.outcomes)
    orders_during.subtract(orders_before)
    stats_after = venue_stats()

    # ------------------------------------------------------------ canaries
    canary_idx = list(range(len(symbols) - args.canaries, len(symbols)))
    canaries: list[dict[str, Any]] = []
    if args.canaries:
        hosted_now = worker.hosted
        engines_c = {symbols[i]: hosted_now[symbols[i]].engine for i in canary_idx}
        for pool in PoolConfig.objects.filter(symbol__in=list(engines_c), state="HALTED"):
            services.pool_resume(pool=pool, actor=desk, note="load bench: canary")
        wait_for(
            "the canary pools ACTIVE",
            lambda: all(e.mode is PoolMode.ACTIVE for e in engines_c.values()),
            timeout=60,
        )
        market.exclude(canary_idx)
        pending_c = dict(engines_c)
        t_c = time.monotonic()
        while pending_c and time.monotonic() - t_c < args.staleness_ms / 1000 + 60:
            for symbol, engine in list(pending_c.items()):
                if engine.mode is not PoolMode.ACTIVE:
                    halted_ns = time.time_ns()
                    heard = max(engine.book.last_received_ns, engine.active_since_ns)
                    canaries.append(
                        {
                            "symbol": symbol,
                            "halt_reason": engine.halt_reason,
                            "silence_to_halt_s": round((halted_ns - heard) / 1e9, 4),
                            "lateness_s": round(
                                (halted_ns - heard) / 1e9 - args.staleness_ms / 1000, 4
                            ),
                        }
                    )
                    del pending_c[symbol]
            time.sleep(GATE_POLL_S)
        for symbol in pending_c:
            canaries.append({"symbol": symbol, "halt_reason": None, "lateness_s": None})
    market.set_rate(0)
    kill_switch_by_trigger: Counter[str] = Counter()
    for metric in worker.metrics.registry.collect():
        if metric.name == "mm_pool_kill_switch":
            for s in metric.samples:
                if s.name == "mm_pool_kill_switch_total":
                    kill_switch_by_trigger[s.labels["trigger"]] += s.value
    orders_sent: Counter[str] = Counter()
    for metric in worker.metrics.registry.collect():
        if metric.name == "mm_pool_orders_sent":
            for s in metric.samples:
                if s.name == "mm_pool_orders_sent_total":
                    orders_sent[s.labels["action"]] += s.value

    # ------------------------------------------------------------ figures
    first = samples[0] if samples else {}
    start_rss = first.get("rss_mb")
    kafka_rss = [s["kafka_rss_mb"] for s in samples if s.get("kafka_rss_mb") is not None]
    half = steady_s / 2
    second_half = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= half]
    struct_keys = [k for k in end_state if k not in ("loop_delay_ms", "tasks_top")]
    struct_max = {key: max(s.get(key, 0) or 0 for s in samples) for key in struct_keys}
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": os.getloadavg(),
        "config": {
            "pools": args.pools,
            "members": args.members,
            "levels": args.levels,
            "minutes": args.minutes,
            "kill_every_s": args.kill_every,
            "order_rate_per_s": args.order_rate,
            "staleness_ms": args.staleness_ms,
            "partitions": PARTITIONS,
            "kafka": "Apache Kafka 4.1.1, one KRaft node (devstack/kafka.py)",
            "trade_every_s": args.trade_every_s,
            "load_fraction": None if args.rate else args.load_fraction,
        },
        "setup": {
            "setup_s": round(setup_s, 1),
            "host_s": round(host_s, 1),
            "enable_calls_s": round(enable_calls_s, 1),
            "enable_to_all_quoting_s": round(enable_s, 1),
            "pools_quoting_after_enable": quoting_after_enable,
        },
        "calibration": {
            "capacity_deltas_per_s": round(capacity),
            "saturated": reached,
            "producer_bound": producer_bound,
            "steady_rate_per_s": round(steady_rate),
            "ticks": calib,
        },
        "steady": {
            "duration_s": round(steady_s, 1),
            "deltas_per_s_mean": round(
                statistics.fmean(
                    s["applied_per_s"] for s in samples if s["t"] >= 1 and "applied_per_s" in s
                )
            )
            if any(s["t"] >= 1 and "applied_per_s" in s for s in samples)
            else None,
            "overload_pauses": overload["pauses"],
            "overload_paused_s": round(overload["paused_s"], 1),
            "worker_process_cpu_s": round(cpu_s, 1),
            "machine_cpu_busy": round(machine_busy(machine0, machine1), 3),
            "cpu_cores_by_process": cpu_share,
            "monitor_errors": monitor_errors,
        },
        "gc_pauses": pauses.figures(),
        "rss": {
            "source": "/proc/self/status VmRSS (the bench process: worker thread + bench)",
            "start_mb": start_rss,
            "end_mb": round(end_rss, 1),
            "growth_mb": None if start_rss is None else round(end_rss - start_rss, 1),
            "slope_mb_per_min_second_half": None
            if (sl := slope_per_minute(second_half)) is None
            else round(sl, 3),
            "max_mb": max(s["rss_mb"] for s in samples) if samples else None,
            "kafka_jvm": {
                "source": "/proc/PID/status VmRSS of the Kafka node's JVM (-Xmx384m)",
                "start_mb": kafka_rss[0] if kafka_rss else None,
                "end_mb": kafka_rss[-1] if kafka_rss else None,
                "max_mb": max(kafka_rss) if kafka_rss else None,
            },
        },
        "event_lag": {
            "steady_tap": intervals_total.summary(),
            "outside_kill_cycles_tap": quiet_total.summary(),
            "during_kill_cycles_tap": kill_lag.summary(),
            "producer_to_broker_append_tap": to_append_total.summary(),
            "broker_append_to_consumer_tap": from_append_total.summary(),
            "market_deltas_without_append_time": split.unstamped,
            "broker_leg_prometheus_buckets": {
                "what": "mm_kafka_consume_wait_seconds: per consumed batch, now - its oldest "
                "message's broker append time (LogAppendTime), as the consumer thread takes it "
                "(before the worker's queues and engines)",
                "p50_le_s": bucket_quantile(wait_before, wait_after, 0.50),
                "p99_le_s": bucket_quantile(wait_before, wait_after, 0.99),
            },
            "steady_prometheus_buckets": {
                "p50_le_s": bucket_quantile(prom_before, prom_after, 0.50),
                "p99_le_s": bucket_quantile(prom_before, prom_after, 0.99),
                "resolution": "bucket edges of mm_pool_event_lag_seconds (IO_BUCKETS)",
            },
        },
        "kills": kills,
        "kill_figures": {
            "kill_to_all_gates_closed": quantiles_s(
                [
                    k["kill_to_all_gates_closed_s"]
                    for k in kills
                    if k["kill_to_all_gates_closed_s"] is not None
                ]
            ),
            "kill_to_gate_closed_per_pool": quantiles_s(gate_per_pool),
            "kill_to_venue_empty": quantiles_s(
                [
                    k["kill_to_venue_empty_s"]
                    for k in kills
                    if k["kill_to_venue_empty_s"] is not None
                ]
            ),
            "kill_to_last_cancel_all_arrival": quantiles_s(
                [
                    k["kill_to_last_cancel_all_arrival_s"]
                    for k in kills
                    if k["kill_to_last_cancel_all_arrival_s"] is not None
                ]
            ),
            "emergency_kill_call": quantiles_s([k["emergency_kill_call_s"] for k in kills]),
            "resume_to_all_quoting": quantiles_s(
                [
                    k["resume_to_all_quoting_s"]
                    for k in kills
                    if k["resume_to_all_quoting_s"] is not None
                ]
            ),
            "resumes_not_all_quoting_before_next_kill": sum(
                1 for k in kills if k["resume_to_all_quoting_s"] is None
            ),
        },
        "canaries": canaries,
        "structures": {"start": first, "end": end_state, "max": struct_max},
        "samples": samples,
        "kill_switch_total_by_trigger": dict(kill_switch_by_trigger),
        "orders_sent_total_by_action": dict(orders_sent),
        "order_client_outcomes_steady": {k: v for k, v in orders_during.items() if v},
        "order_service_stand_in": {
            "requests_steady": _diff_requests(stats_before["requests"], stats_after["requests"]),
            "dead_man_switch": stats_after["dead_man_switch"],
            "duplicate_live_orders": stats_after["duplicate_live_orders"],
            "orders_total": stats_after["orders_total"],
        },
        "skipped": dict(worker.skipped),
        "book_gaps": sum(e.book.gaps for e in engines()),
        "notes": [
            "RSS is the whole bench process: the worker thread, its consumer and DB threads, "
            "and the bench's monitor (constant-memory lag histograms); the market runs in a "
            "child process and the desk's calls in another.",
            "Event lag is the worker's own measure: for each batch its drain takes, now - the "
            "oldest event's timestamp; market events carry their step's time, so the broker "
            "leg is included; timers carry their enqueue time.",
            "Kafka: Apache Kafka 4.1.1, one KRaft node (devstack/kafka.py: JVM heap 384 MB, "
            "C1 only, 2 network and 2 I/O threads); the consumed topics are stamped "
            "LogAppendTime, so each market delta's way through it splits at the broker's "
            "append (ms resolution, taken mid-millisecond: ±0.5 ms per share).",
            "kill -> venue empty counts whatever emptied the venue: MMS's cancels or the "
            "venue's dead-man's switches (see order_service_stand_in.dead_man_switch and "
            "cancel_alls_logged per kill).",
        ],
    }


def _diff_requests(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for route, outcomes in after.items():
        for outcome, n in outcomes.items():
            d = n - before.get(route, {}).get(outcome, 0)
            if d:
                out.setdefault(route, {})[outcome] = d
    return out


def report(r: dict[str, Any], out: Path) -> None:
    c, rss, lag, kf = r["config"], r["rss"], r["event_lag"], r["kill_figures"]
    print()
    print(
        f"load: {c['pools']} pools x {c['members']} members x {c['levels']} level(s) in one "
        f"worker, {r['steady']['duration_s']:.0f} s steady state, kill every "
        f"{c['kill_every_s']:.0f} s, budget {c['order_rate_per_s']} req/s; Python {r['python']}, "
        f"{r['machine']} (load {r['loadavg_at_start'][0]:.1f} at start)"
    )
    cal = r["calibration"]
    print(
        f"market: calibrated capacity {cal['capacity_deltas_per_s']:,} deltas/s "
        f"({'saturated' if cal['saturated'] else 'not saturated'}"
        f"{', producer-bound' if cal['producer_bound'] else ''}), steady rate "
        f"{cal['steady_rate_per_s']:,}/s, applied {r['steady']['deltas_per_s_mean']}/s mean; "
        f"overload pauses {r['steady']['overload_pauses']} "
        f"({r['steady']['overload_paused_s']} s); machine CPU busy "
        f"{r['steady']['machine_cpu_busy']:.0%}"
    )
    print(f"CPU (cores) by process in steady state: {r['steady']['cpu_cores_by_process']}")
    s = r["setup"]
    print(
        f"setup: hosted in {s['host_s']} s; {s['pools_quoting_after_enable']}/{c['pools']} "
        f"quoting {s['enable_to_all_quoting_s']} s after the enables"
    )
    print()
    print(f"{'figure':<52}{'value':>30}")
    rows = [
        ("RSS at start of steady state (MB)", rss["start_mb"]),
        ("RSS at end (MB)", rss["end_mb"]),
        ("RSS growth (MB)", rss["growth_mb"]),
        ("RSS slope over the second half (MB/min)", rss["slope_mb_per_min_second_half"]),
        (
            "Kafka JVM RSS start / end / max (MB)",
            f"{rss['kafka_jvm']['start_mb']} / {rss['kafka_jvm']['end_mb']} / "
            f"{rss['kafka_jvm']['max_mb']}",
        ),
        (
            "event lag p50 / p99 / max, steady (ms)",
            _trio(lag["steady_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  outside kill cycles p50 / p99 (ms)",
            _trio(lag["outside_kill_cycles_tap"], "p50_ms", "p99_ms"),
        ),
        (
            "  during kill cycles p50 / p99 (ms)",
            _trio(lag["during_kill_cycles_tap"], "p50_ms", "p99_ms"),
        ),
        (
            "  from the histogram's buckets: p50 / p99 <= (s)",
            f"{lag['steady_prometheus_buckets']['p50_le_s']} / "
            f"{lag['steady_prometheus_buckets']['p99_le_s']}",
        ),
        (
            "  producer -> broker append p50 / p99 / max (ms)",
            _trio(lag["producer_to_broker_append_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  broker append -> consumer call p50 / p99 / max (ms)",
            _trio(lag["broker_append_to_consumer_tap"], "p50_ms", "p99_ms", "max_ms"),
        ),
        (
            "  append -> consumer thread, per batch: p50 / p99 <= (s)",
            f"{lag['broker_leg_prometheus_buckets']['p50_le_s']} / "
            f"{lag['broker_leg_prometheus_buckets']['p99_le_s']}",
        ),
        *(
            (f"GC pauses, generation {gen}: n / p99 / max (s)", _trio(g, "n", "p99_s", "max_s"))
            for gen, g in r["gc_pauses"].items()
        ),
        ("kills", len(r["kills"])),
        ("emergency_kill() call p50 / p99 (s)", _trio(kf["emergency_kill_call"], "p50_s", "p99_s")),
        (
            "kill -> all gates closed p50 / p99 / max (s)",
            _trio(kf["kill_to_all_gates_closed"], "p50_s", "p99_s", "max_s"),
        ),
        (
            "kill -> a pool's gate closed, per pool p50 / p99 (s)",
            _trio(kf["kill_to_gate_closed_per_pool"], "p50_s", "p99_s"),
        ),
        (
            "kill -> venue empty p50 / p99 / max (s)",
            _trio(kf["kill_to_venue_empty"], "p50_s", "p99_s", "max_s"),
        ),
        (
            "kill -> last cancel-all at venue p50 / p99 (s)",
            _trio(kf["kill_to_last_cancel_all_arrival"], "p50_s", "p99_s"),
        ),
        (
            "resume -> all pools quoting p50 / max (s)",
            _trio(kf["resume_to_all_quoting"], "p50_s", "max_s"),
        ),
        (
            "resumes not all quoting before next kill",
            kf["resumes_not_all_quoting_before_next_kill"],
        ),
        (
            "staleness guard lateness (s)",
            ", ".join(str(x.get("lateness_s")) for x in r["canaries"]) or "-",
        ),
    ]
    for name, value in rows:
        print(f"{name:<52}{value if value is not None else '-'!s:>30}")
    st = r["structures"]
    print()
    print(f"{'structure':<28}{'start':>12}{'end':>12}{'max':>12}")
    for key in (
        "tasks",
        "queue_max",
        "queue_sum",
        "sends_max",
        "offsets_started_max",
        "offsets_done_max",
        "engine_owner_max",
        "engine_order_bound",
        "engine_owner_over_bound",
        "engine_cancelling_sum",
        "engine_unknown_sum",
        "vol_increments_sum",
        "sink_settled",
        "status_changes",
        "budget_waiters",
        "quoting",
        "loop_delay_ms",
    ):
        print(
            f"{key:<28}{st['start'].get(key, '-')!s:>12}{st['end'].get(key, '-')!s:>12}"
            f"{st['max'].get(key, '-')!s:>12}"
        )
    osi = r["order_service_stand_in"]
    print()
    print(
        f"venue: dead-man's switches fired {osi['dead_man_switch']['fired']} "
        f"({osi['dead_man_switch']['orders_cancelled']} orders); duplicate live orders "
        f"{osi['duplicate_live_orders']}; requests in steady state {osi['requests_steady']}"
    )
    print(
        f"kill switches by trigger: {r['kill_switch_total_by_trigger']}; orders sent by action: "
        f"{r['orders_sent_total_by_action']}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2, default=str))
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"wrote {where} (wall time {r['wall_s']} s)")


def _trio(d: dict[str, Any], *keys: str) -> str:
    if not d.get("n"):
        return "-"
    return " / ".join(str(d.get(k)) for k in keys)


if __name__ == "__main__":
    main()
