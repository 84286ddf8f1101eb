# mypy: ignore-errors
# (a benchmark that instruments the worker by wrapping its internals at run time)
"""One runquoter through the real broker: sustained throughput and delta-to-order latency.

    .venv/bin/python bench/quoter_throughput.py [--symbols 50] [--deltas 200000]
                                                [--latency-samples 1000]

Everything runs on this machine and is torn down at the end: a throwaway
PostgreSQL database (migrated here, dropped at exit), Redis database 13, an
Apache Kafka 4.1.1 node of its own (devstack/kafka.py's KafkaNode: KRaft, one
JVM that is broker and controller, formatted in a folder under this run's log
directory, on free ports, stopped at exit; its classpath from `make kafka`),
and the Schema Registry, Order Service and Metadata Service stand-ins as
subprocesses on free ports. The topics are MMS's own (messaging.topics, no
namespace: the broker is this run's), created by ensure_topics, so the consumed
ones are stamped by the broker (message.timestamp.type=LogAppendTime). The
QuoterWorker runs in a thread of this process, as in
tests/adapters/test_worker.py.

The Metadata stand-in (simulator/metadata_service.py) has no option for its
instruments and knows 3 symbols, so this script serves the stand-in's own
servicer classes with a bench InstrumentBook of --symbols synthetic symbols
(BX00USDT-PERP ..., BTC's rules) in a subprocess; the Order Service stand-in
takes them with its --instrument option. No application code is changed.

Each pool: 1 member (--members), 1 level per side, ACTIVE, warmed up with a
snapshot, a mark and 30 public trades.

(1) Raw baseline. With the worker's consumer paused, N deltas (1-2 level
    size changes each, round-robin over the symbols, 12 partitions) are
    produced; a plain confluent-kafka consumer (the worker's consumer
    settings) reads exactly those offsets (the partitions' end offsets before
    and after, from the broker) and decodes each with
    AvroCodec.decode (fastavro): messages/s, with consume(500) batches as the
    worker reads (the ratio's denominator) and with one poll() per message.
(2) MMS. The worker's consumer is resumed on the same messages: events/s
    from the resume until every hosted engine's book.seq reached the last
    delta's seq (decoded, routed to the symbol's engine task, applied, the
    re-quote decision taken: pool config quote_interval_ms 250,
    price_threshold_bps 1). Ratio = (2) / (1); target >= 0.5.
(3) Latency, with every pool set to re-quote on every delta
    (quote_interval_ms 1, price_threshold_bps 0). Deltas are produced one at a
    time (producer linger 0) carrying their produce time; each sweeps or
    refills the top 5 bid levels, so the microprice moves ~0.4 bps and every
    resting order is replaced.
    (a) broker transport alone: produce -> a plain consumer's poll() returns
        it (the delta topic in a namespace of its own, so with the same
        settings; same consumer settings), in the same run;
    (b) MMS in-process: the worker's consumer call (poll()/consume())
        returns the message -> the first resulting Order Service request
        enters the HTTP transport (timestamps from hooks installed by this
        script only: a Consumer subclass, the worker's _take and
        codec.decode, each engine's handle and release (the drain applies
        events under the engine's hold and quotes once when it releases it),
        the worker's order journal and the HTTP exchange). Target p99 <= 1 ms.
        The first request is usually a cancel (it needs no journal record);
        the first placement follows the journal's write-ahead record, and is
        reported too.
    The broker's share: each consumed record carries the broker's append
    time (LogAppendTime, ms), the record's ts_ns the producer's; (a) and the
    broker leg of (b) are split into producer -> broker append and broker
    append -> the consumer call returns it. The stamp has millisecond
    resolution: the split is taken at the middle of its millisecond, so
    each share is within ±0.5 ms (their sum is exact). One clock: one
    machine.
    During (3) the client's rate budget (100 requests/s per process by
    default) is replaced by an unlimited one, so that the figures are MMS's
    processing and not the budget's waits; (1) and (2) keep the default.

Prints a table and writes bench/results/quoter_throughput-kafka.json (the Tansu
run's quoter_throughput.json is kept for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_database  # noqa: E402  (bench/ is on sys.path when run as a script)

from devstack.kafka import KafkaNode  # noqa: E402
from messaging.topics import DELTA, ENGINE, MARK, Topics  # noqa: E402
from messaging.topics import SNAPSHOT as SNAP  # noqa: E402
from simulator.model import instrument_options  # noqa: E402

PARTITIONS = 12
TICK, LOT, MIN_NOTIONAL = "0.1", "0.001", "5"
LEVELS = 20
BATCH = 500  # the raw consumer's consume() batch, as the worker's BATCH_SIZE
SWEEP = 5  # bid levels a latency delta removes / refills
REDIS_URL = "redis://127.0.0.1:6379/13"
# (3a)'s topic: the delta topic in a namespace of its own, created with its settings.
TRANSPORT = Topics("bench-transport")
# The broker stamps its append time in ms: the split is taken mid-millisecond.
HALF_MS_NS = 500_000


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port} within {timeout} s")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine_busy(a: tuple[int, int], b: tuple[int, int]) -> float:
    return (b[0] - a[0]) / max(1, b[1] - a[1])


def start_kafka(procs: Processes) -> KafkaNode:
    """An Apache Kafka node of this run's own (devstack/kafka.py), in the run's log
    directory, on free ports; `procs.stop_all` stops it after the other processes.
    Returns once it is ready (a topic created, an idempotent producer wrote)."""
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    node = KafkaNode(home=procs.logdir / "kafka", port=port, controller_port=controller_port)
    procs.kafka = node
    node.start(timeout=120)
    return node


def proc_rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident set (VmRSS), MB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def append_ns(message: Any) -> int | None:
    """The broker's append time of a consumed record (LogAppendTime), ns, taken at
    the middle of its millisecond; None when the record carries no such stamp."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    kind, ms = message.timestamp()
    return ms * 1_000_000 + HALF_MS_NS if kind == TIMESTAMP_LOG_APPEND_TIME else None


def high_watermarks(consumer: Any, topic: str, partitions: int, timeout: float = 30.0) -> list[int]:
    """Each partition's end offset (high watermark), asked of the broker; retried
    while a new topic's leader is not yet known to the client."""
    from confluent_kafka import KafkaException, TopicPartition

    deadline = time.monotonic() + timeout
    while True:
        try:
            return [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in range(partitions)
            ]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stamp_appends(worker: Any, hold: Hold) -> None:
    """Wraps the worker's `_take` (its consumer thread, one call per message, the
    decode inside it): `hold.append_ns` is the message's broker append time while
    it is decoded. Undone by popping `_take` from the worker's __dict__."""
    take = worker._take

    def bench_take(message: Any, stamps: Any) -> Any:
        hold.append_ns = append_ns(message)
        return take(message, stamps)

    worker._take = bench_take


def stats_ms(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"n": 0}
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1] / 1e6,
        "mean_ms": statistics.fmean(ordered) / 1e6,
        "n": len(ordered),
    }


class Processes:
    """Subprocesses started here, each stopped by its own handle at the end."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.kafka: KafkaNode | None = None  # stopped last: the others may still use it

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env or os.environ.copy()
        )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.kafka is not None:
            self.kafka.stop()  # SIGTERM; SIGKILL after 30 s


# ---------------------------------------------------------------- market data


class Feed:
    """Each symbol's book as the bench publishes it, with its own seq."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.seq = dict.fromkeys(symbols, 0)
        self.swept = dict.fromkeys(symbols, False)
        self.rng = random.Random(7)

    @staticmethod
    def bid(i: int) -> str:
        return f"{59_999.5 - i:.1f}"

    @staticmethod
    def ask(i: int) -> str:
        return f"{60_000.5 + i:.1f}"

    def snapshot(self, symbol: str, now: int) -> dict[str, Any]:
        self.seq[symbol] += 1
        return {
            "symbol": symbol,
            "seq": self.seq[symbol],
            "bids": [{"price": self.bid(i), "size": "2.000"} for i in range(LEVELS)],
            "asks": [{"price": self.ask(i), "size": "2.000"} for i in range(LEVELS)],
            "reason": "START",
            "ts_ns": now,
        }

    def size_delta(self, symbol: str, now: int) -> dict[str, Any]:
        """1-2 size changes in the top 10 levels: moves the microprice by far less
        than 1 bps, so a pool with the default threshold does not re-quote."""
        rng = self.rng
        self.seq[symbol] += 1
        bids, asks = [], []
        for _ in range(rng.choice((1, 2))):
            level = {"price": "", "size": f"{rng.randint(500, 3000) / 1000:.3f}"}
            i = rng.randrange(SWEEP, 10) if self.swept[symbol] else rng.randrange(10)
            if rng.random() < 0.5:
                level["price"] = self.bid(i)
                bids.append(level)
            else:
                level["price"] = self.ask(i)
                asks.append(level)
        return {
            "type": "BookDelta",
            "symbol": symbol,
            "seq": self.seq[symbol],
            "bids": bids,
            "asks": asks,
            "ts_ns": now,
        }

    def sweep_delta(self, symbol: str) -> dict[str, Any]:
        """Removes or refills the top SWEEP bid levels: the microprice moves ~2.5
        (~0.4 bps), so every order of a re-quote-always pool is replaced."""
        self.seq[symbol] += 1
        size = "2.000" if self.swept[symbol] else "0"
        self.swept[symbol] = not self.swept[symbol]
        return {
            "type": "BookDelta",
            "symbol": symbol,
            "seq": self.seq[symbol],
            "bids": [{"price": self.bid(i), "size": size} for i in range(SWEEP)],
            "asks": [],
            "ts_ns": 0,
        }


# ---------------------------------------------------------------- hooks (bench only)


class Hold:
    """Pauses / resumes the worker's consumer from inside its own poll loop."""

    def __init__(self) -> None:
        self.want = threading.Event()
        self.paused = threading.Event()
        self.resumed_ns = 0
        self.taken = 0  # messages poll() returned since the last resume
        self.all_taken_ns = 0  # when `taken` reached `expect`
        self.expect = 0
        self.commits = 0  # consumer.commit() calls since the last resume
        self.received_ns = 0  # when the worker's last poll()/consume() returned messages
        self.append_ns: int | None = None  # the broker's append time of the message in _take


def bench_consumer_class(hold: Hold) -> type:
    from confluent_kafka import Consumer

    class BenchConsumer(Consumer):  # type: ignore[misc,valid-type]
        """The worker's consumer, pausable by the bench; whichever of poll() and
        consume() the worker calls, the gate runs first and the receipt is stamped."""

        held = False

        def _gate(self) -> None:
            want = hold.want.is_set()
            if want != self.held:
                parts = self.assignment()
                if want:
                    self.pause(parts)
                    hold.paused.set()
                else:
                    hold.taken = hold.commits = hold.all_taken_ns = 0
                    self.resume(parts)
                    hold.resumed_ns = time.time_ns()
                    hold.paused.clear()
                self.held = want

        def _count(self, n: int) -> None:
            hold.received_ns = time.time_ns()
            before = hold.taken
            hold.taken += n
            if before < hold.expect <= hold.taken:
                hold.all_taken_ns = hold.received_ns

        def poll(self, timeout: float = -1) -> Any:
            self._gate()
            message = super().poll(timeout)
            if message is not None:
                self._count(1)
            return message

        def consume(self, num_messages: int = 1, timeout: float = -1) -> Any:
            self._gate()
            messages = super().consume(num_messages, timeout)
            if messages:
                self._count(len(messages))
            return messages

        def commit(self, *args: Any, **kwargs: Any) -> Any:
            hold.commits += 1
            return super().commit(*args, **kwargs)

    return BenchConsumer


class LatencyProbe:
    """Timestamps of one delta's way through the worker, keyed by (symbol, seq)."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.worker = worker
        self.hold = hold
        self.taken: dict[tuple[str, int], tuple[int, int, int, int | None]] = {}
        self.records: dict[tuple[str, int], dict[str, Any]] = {}
        self.waiters: dict[tuple[str, int], threading.Event] = {}
        self.current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
            "bench_delta", default=None
        )
        self._engines: list[Any] = []

    def install(self) -> None:

        from quoting_worker.core.types import BookDelta

        w = self.worker
        decode = w.codec.decode
        record = w.journal.record
        by_action: dict[int, dict[str, Any]] = {}
        taken, records, waiters, current = (
            self.taken,
            self.records,
            self.waiters,
            self.current,
        )
        now = time.time_ns

        hold = self.hold

        def probe_decode(topic: str, data: bytes) -> dict[str, Any]:
            record = decode(topic, data)
            if topic == DELTA and record.get("type") == "BookDelta":
                # t0: when poll()/consume() handed the message (its batch) to the worker.
                taken[(record["symbol"], record["seq"])] = (
                    hold.received_ns,
                    record["ts_ns"],
                    now(),
                    hold.append_ns,
                )
            return record

        async def probe_journal(**kwargs: Any) -> Any:
            rec = current.get()
            if rec is None:
                return await record(**kwargs)
            rec["j_start"] = now()
            try:
                return await record(**kwargs)
            finally:
                rec["j_end"] = now()

        def wrap(engine: Any) -> None:
            handle, release = engine.handle, engine.release
            symbol = engine.symbol
            # The drain applies its events under the engine's hold and quotes once in
            # `release`: a delta's actions come from there (its newest delta's).
            held: dict[str, dict[str, Any]] = {}

            def decided(rec: dict[str, Any], actions: list[Any]) -> None:
                rec["actions"] = Counter(type(a).__name__ for a in actions)
                current.set(rec if actions else None)
                for action in actions:  # the sender task finds its delta by them
                    by_action[id(action)] = rec
                if not actions:
                    waiter = waiters.get(rec["key"])
                    if waiter is not None:
                        waiter.set()

            def probe_release() -> Any:
                rec = held.pop("delta", None)
                actions = release()
                if rec is not None:
                    rec["t2"] = now()  # the quote decided: release ends
                    decided(rec, actions)
                return actions

            def probe_handle(event: Any) -> Any:
                if type(event) is not BookDelta:
                    current.set(None)
                    return handle(event)
                t1 = now()
                actions = handle(event)
                t2 = now()
                key = (symbol, event.seq)
                got = taken.pop(key, None)
                if got is None:
                    current.set(None)
                    return actions
                rec = {
                    "key": key,
                    "t0": got[0],
                    "produced": got[1],
                    "decoded": got[2],
                    "appended": got[3],
                    "t1": t1,
                    "t2": t2,
                }
                records[key] = rec
                if engine.holding and not actions:
                    held["delta"] = rec  # quoted when the hold is released
                    current.set(None)
                else:
                    decided(rec, actions)
                return actions

            engine.handle = probe_handle
            engine.release = probe_release
            self._engines.append(engine)

        exchange = w.client._exchange

        async def probe_exchange(method: str, url: str, **options: Any) -> Any:
            rec = current.get()
            if rec is not None:
                t = now()
                if "t_req" not in rec:
                    rec["t_req"] = t
                    rec["first"] = method
                if method == "POST" and "t_place" not in rec:
                    rec["t_place"] = t
                    waiter = waiters.get(rec["key"])
                    if waiter is not None:
                        waiter.set()
            return await exchange(method, url, **options)

        w.codec.decode = probe_decode
        w.journal.record = probe_journal

        send = w._send

        async def probe_send(hosted: Any, actions: list[Any]) -> Any:
            # Runs in the symbol's sender task: carry the delta's record into it.
            found = [by_action.pop(id(a), None) for a in actions]
            rec = next((r for r in found if r is not None), None)
            current.set(rec)
            if rec is not None:
                rec["t_sender"] = now()
            return await send(hosted, actions)

        w._send = probe_send
        for hosted in w.hosted.values():
            wrap(hosted.engine)
        w.client._exchange = probe_exchange
        stamp_appends(w, hold)

    def uninstall(self) -> None:
        w = self.worker
        w.__dict__.pop("_take", None)
        w.journal.__dict__.pop("record", None)
        w.__dict__.pop("_send", None)
        w.codec.__dict__.pop("decode", None)
        for engine in self._engines:
            engine.__dict__.pop("handle", None)
            engine.__dict__.pop("release", None)
        w.client.__dict__.pop("_exchange", None)


# ---------------------------------------------------------------- the bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--deltas", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--latency-samples", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=10.0, help="pause between latency deltas")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="sys.setswitchinterval for this process (default: Python's, 5 ms)",
    )
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    logdir = Path(tempfile.mkdtemp(prefix="quoter-bench-"))
    procs = Processes(logdir)
    worker_stop: dict[str, Any] = {}
    result: dict[str, Any] = {}
    print(f"logs in {logdir}", flush=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(scratch_database("mms_bench", redis_url=REDIS_URL))
        cleanup.callback(stop_worker_and_processes, worker_stop, procs)
        result = run(
            args, procs, logdir, worker_stop, lambda th: worker_stop.__setitem__("thread", th)
        )
    # Logs stay on a failure (the exception names the run's directory too).
    if args.keep_logs:
        print(f"logs kept in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    if result:
        result["wall_s"] = round(time.monotonic() - started, 1)
        report(result)


def stop_worker_and_processes(worker_stop: dict[str, Any], procs: Processes) -> None:
    """Stops the worker thread (its shutdown cancels unmetered) and the processes."""
    loop, stop = worker_stop.get("loop"), worker_stop.get("stop")
    worker_thread = worker_stop.get("thread")
    if worker_stop.get("worker") is not None:
        # Shutdown cancels every pool's orders: not measured, so not rate-limited.
        from quoting_worker.adapters.order_service import RateBudget

        worker_stop["worker"].client.budget = RateBudget(rate_per_s=1e9, burst=10**9)
    if loop is not None and stop is not None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
    if worker_thread is not None:
        worker_thread.join(60)
        if worker_thread.is_alive():
            print("warning: the worker thread did not stop within 60 s", file=sys.stderr)
    procs.stop_all()


def run(
    args: argparse.Namespace,
    procs: Processes,
    logdir: Path,
    worker_stop: dict[str, Any],
    set_thread: Callable[[threading.Thread], None],
) -> dict[str, Any]:
    import httpx
    from confluent_kafka import Consumer, Producer, TopicPartition

    from common.actors import Actor
    from participants.models import Participant
    from pools import services
    from pools.models import PoolConfig, PoolMember
    from quoting_worker import worker as worker_module
    from quoting_worker.adapters.kafka_config import (
        consumer_config,
        ensure_topics,
        mms_topics,
        producer_config,
    )
    from quoting_worker.adapters.order_service import RateBudget
    from quoting_worker.adapters.serde import AvroCodec
    from quoting_worker.core.types import Side
    from quoting_worker.worker import QuoterWorker, WorkerConfig

    symbols = [f"BX{i:02d}USDT-PERP" for i in range(args.symbols)]
    load_at_start = os.getloadavg()
    ops = Actor("bench-ops")

    # ------------------------------------------------------------ services
    kafka = start_kafka(procs)
    bootstrap = kafka.bootstrap
    rport, oport, mport = free_port(), free_port(), free_port()
    rproc = procs.start(
        "schema-registry", [sys.executable, "-m", "simulator.schema_registry", "--port", str(rport)]
    )
    instruments = instrument_options(f"{s}:{TICK}:{LOT}:{MIN_NOTIONAL}" for s in symbols)
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
    transport_topic = TRANSPORT.name(DELTA)
    ensure_topics(bootstrap, {transport_topic: PARTITIONS}, namespace=TRANSPORT, co_partitioned=())
    codec = AvroCodec(registry)
    codec.register_all()

    # ------------------------------------------------------------ pools
    for i, symbol in enumerate(symbols):
        pool = PoolConfig.objects.create(
            symbol=symbol,
            enabled=True,
            gamma=Decimal("0.0001"),
            kappa=Decimal("2"),
            vol_lookback_seconds=3600,
            tau=Decimal("1"),
            num_levels=1,
            level_spacing_bps=Decimal("2"),
            min_spread_bps=Decimal("2"),
            max_spread_bps=Decimal("40"),
            order_size_usdt=Decimal("1200"),
            max_pool_position_usdt=Decimal("10000000"),
            max_pool_loss_usdt=Decimal("1000000"),
            check_staleness=True,
            staleness_threshold_ms=600_000,
            quote_interval_ms=250,
            price_threshold_bps=Decimal("1"),
        )
        for m in range(args.members):
            pid = uuid.uuid4()
            participant = Participant.objects.create(
                id=pid,
                short_id=str(pid)[:8],
                name=f"bench {i}-{m}",
                user_id=f"user-{i}-{m}",
                account_id=f"acct-{i}-{m}",
                tier="TIER_2",
                state="ACTIVE",
            )
            PoolMember.objects.create(
                pool=pool,
                participant=participant,
                weight=Decimal(1 + m),
                max_position_usdt=Decimal("1000000"),
            )

    # ------------------------------------------------------------ the worker
    hold = Hold()
    worker_module.Consumer = bench_consumer_class(hold)  # bench-only: pause/resume handle
    worker = QuoterWorker(
        WorkerConfig(
            kafka_brokers=bootstrap,
            registry_url=registry,
            order_service_url=order_url,
            metadata_target=f"127.0.0.1:{mport}",
            redis_url=REDIS_URL,
            group_id=f"bench-quoter-{uuid.uuid4().hex[:8]}",
            partitions=PARTITIONS,
            worker_id="bench-worker",
        )
    )
    worker_stop["worker"] = worker
    rebalances = Counter()
    on_assign, on_revoke = worker._on_assign, worker._on_revoke

    def counted_assign(consumer: Any, partitions: Any) -> None:
        rebalances["assign"] += 1
        on_assign(consumer, partitions)

    def counted_revoke(consumer: Any, partitions: Any) -> None:
        rebalances["revoke"] += 1
        on_revoke(consumer, partitions)

    worker._on_assign = counted_assign  # type: ignore[method-assign]
    worker._on_revoke = counted_revoke  # type: ignore[method-assign]

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            worker_stop["stop"] = stop
            worker_stop["loop"] = asyncio.get_running_loop()
            await worker.run(stop)

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="quoter", daemon=True)
    set_thread(thread)
    t = time.monotonic()
    thread.start()
    wait_for(
        f"the worker to host {len(symbols)} symbols",
        lambda: len(worker.hosted) == len(symbols),
        timeout=120,
    )
    host_s = time.monotonic() - t
    print(f"worker hosted {len(symbols)} symbols in {host_s:.1f} s", flush=True)

    # ------------------------------------------------------------ warm-up
    feed = Feed(symbols)
    producer = Producer(producer_config(bootstrap=bootstrap))

    failed: Counter[str] = Counter()

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed[str(err)] += 1

    def send(topic: str, record: dict[str, Any], key: str) -> None:
        value = codec.encode(topic, record)
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    now = time.time_ns()
    for symbol in symbols:
        send(SNAP, feed.snapshot(symbol, now), symbol)
        send(
            MARK,
            {"symbol": symbol, "mark_price": "60000.0", "index_price": None, "ts_ns": now},
            symbol,
        )
        for k in range(30):
            send(
                ENGINE,
                {
                    "type": "PublicTrade",
                    "trade_id": f"t-{symbol}-{k}",
                    "symbol": symbol,
                    "price": "60000.5" if k % 2 else "59999.5",
                    "size": "0.010",
                    "aggressor_side": "BUY",
                    "ts_ns": now - (30 - k) * 1_000_000_000,
                },
                symbol,
            )
    producer.flush(30)

    def engines() -> list[Any]:
        return [h.engine for h in worker.hosted.values()]

    def warmed() -> bool:
        t_ns = time.time_ns()
        return all(
            e.book.synced and e.mark is not None and e.vol.sigma(t_ns) is not None
            for e in engines()
        )

    wait_for("books, marks and σ in every engine", warmed, timeout=60)
    t = time.monotonic()
    for pool in PoolConfig.objects.filter(symbol__in=symbols):
        services.pool_enable(pool=pool, actor=ops)

    def quoting() -> bool:
        return all(
            e.gate() == ""
            and sum(e.own_levels[Side.BUY].values()) > 0
            and sum(e.own_levels[Side.SELL].values()) > 0
            and not e.unknown
            for e in engines()
        )

    wait_for("every pool ACTIVE with quotes resting", quoting, timeout=180, step=0.2)
    enable_s = time.monotonic() - t
    print(
        f"{len(symbols)} pools ACTIVE and quoting after {enable_s:.1f} s "
        "(default rate budget: 100 requests/s)",
        flush=True,
    )
    time.sleep(1.0)

    # ------------------------------------------------------------ (1) raw baseline
    hold.want.set()
    wait_for("the worker's consumer to pause", hold.paused.is_set, timeout=10)
    # The deltas' offsets: each partition's end offset before and after them, from the broker.
    offsets_client = Consumer(
        consumer_config(bootstrap=bootstrap, group_id=f"bench-offsets-{uuid.uuid4().hex[:8]}")
    )
    before = high_watermarks(offsets_client, DELTA, PARTITIONS)
    t = time.monotonic()
    for i in range(args.deltas):
        symbol = symbols[i % len(symbols)]
        send(DELTA, feed.size_delta(symbol, time.time_ns()), symbol)
    left = producer.flush(60)
    produce_s = time.monotonic() - t
    if left or failed:
        raise RuntimeError(f"{left} deltas undelivered, delivery errors: {dict(failed)}")
    after = high_watermarks(offsets_client, DELTA, PARTITIONS)
    offsets_client.close()
    start_offsets = {p: before[p] for p in range(PARTITIONS) if after[p] > before[p]}
    end_offsets = {p: after[p] for p in start_offsets}
    produced = sum(end_offsets[p] - start_offsets[p] for p in end_offsets)
    if produced != args.deltas:
        raise RuntimeError(f"the end offsets moved by {produced} messages, not {args.deltas}")
    print(f"produced {args.deltas:,} deltas in {produce_s:.1f} s", flush=True)
    final_seq = dict(feed.seq)

    decoder = AvroCodec(registry)
    warm = {"type": "BookDelta", "symbol": "X", "seq": 0, "bids": [], "asks": [], "ts_ns": 0}
    decoder.decode(DELTA, codec.encode(DELTA, warm))  # fetches the writer schema once

    def raw_run(batch: int) -> tuple[float, float, int]:
        """(msgs/s, CPU µs per msg, count) of a plain consumer reading exactly the
        deltas from their first offset: poll() per message (batch 0) or consume(batch)."""
        consumer = Consumer(
            consumer_config(
                bootstrap=bootstrap,
                group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
            )
        )
        pending = set(end_offsets)
        consumer.assign([TopicPartition(DELTA, p, start_offsets[p]) for p in pending])
        count = 0
        decode = decoder.decode
        cpu0 = time.thread_time()
        t0 = time.perf_counter()
        while pending:
            if batch:
                messages = consumer.consume(batch, 1.0)
            else:
                one = consumer.poll(1.0)
                messages = [one] if one is not None else []
            if not messages and time.perf_counter() - t0 > 120:
                raise RuntimeError("the raw consumer stalled")
            for message in messages:
                if message.error() is not None:
                    continue
                decode(message.topic(), message.value())
                count += 1
                p = message.partition()
                if message.offset() >= end_offsets[p] - 1:
                    pending.discard(p)
        elapsed = time.perf_counter() - t0
        cpu_us = (time.thread_time() - cpu0) / count * 1e6
        consumer.close()
        return count / elapsed, cpu_us, count

    raw_poll_rate, raw_poll_cpu_us, count = raw_run(0)
    raw_rate, raw_cpu_us, count = raw_run(BATCH)
    print(
        f"raw consumer: {count:,} messages, {raw_rate:,.0f}/s with consume({BATCH}), "
        f"{raw_poll_rate:,.0f}/s with poll()",
        flush=True,
    )

    # ------------------------------------------------------------ (2) MMS throughput
    outcomes_before = Counter(worker.client.outcomes)
    books = [(h.engine.book, final_seq[h.symbol]) for h in worker.hosted.values()]
    seq_before = sum(book.seq for book, _ in books)
    progress: list[tuple[float, int]] = []  # (s since resume, deltas applied)
    pending_sets = worker.offsets._started  # offsets handed out and not yet committable
    max_in_flight = 0
    hold.expect = args.deltas
    machine0, proc0, main0 = machine_cpu(), time.process_time(), time.thread_time()
    hold.want.clear()
    t_resume = time.perf_counter()
    deadline = t_resume + 300
    while any(book.seq < last for book, last in books):
        progress.append(
            (time.perf_counter() - t_resume, sum(book.seq for book, _ in books) - seq_before)
        )
        if time.perf_counter() > deadline:
            raise RuntimeError("the worker did not apply every delta within 300 s")
        with contextlib.suppress(RuntimeError):  # the dict may change size meanwhile
            max_in_flight = max(max_in_flight, sum(len(v) for v in list(pending_sets.values())))
        time.sleep(0.02)
    mms_s = time.perf_counter() - t_resume
    mms_rate = args.deltas / mms_s
    progress.append((mms_s, args.deltas))

    def time_to(fraction: float) -> float:
        return next(t for t, applied in progress if applied >= fraction * args.deltas)

    milestones = {f"t{int(q * 100)}_s": time_to(q) for q in (0.5, 0.9, 0.99)}
    machine1 = machine_cpu()
    worker_cpu_s = (time.process_time() - proc0) - (time.thread_time() - main0)
    taken_s = (hold.all_taken_ns - hold.resumed_ns) / 1e9 if hold.all_taken_ns else None
    commits = hold.commits
    gaps = sum(e.book.gaps for e in engines())
    unsynced = sum(1 for e in engines() if not e.book.synced)
    tp_outcomes = Counter(worker.client.outcomes)
    tp_outcomes.subtract(outcomes_before)
    print(
        f"runquoter: {args.deltas:,} deltas in {mms_s:.2f} s = {mms_rate:,.0f}/s "
        f"(ratio {mms_rate / raw_rate:.2f})",
        flush=True,
    )

    # ------------------------------------------------------------ (3a) broker transport alone
    lat_producer = Producer({**producer_config(bootstrap=bootstrap), "linger.ms": 0})
    plain = Consumer(
        consumer_config(
            bootstrap=bootstrap,
            group_id=f"bench-transport-{uuid.uuid4().hex[:8]}",
        )
    )
    # A topic of its own, created empty in this run: read from offset 0.
    plain.assign([TopicPartition(transport_topic, p, 0) for p in range(PARTITIONS)])
    time.sleep(0.5)
    transport_ns: list[int] = []
    transport_to_append: list[int] = []  # produce -> the broker's append stamp
    transport_from_append: list[int] = []  # the broker's append stamp -> poll() returns it
    transport_unstamped = 0
    probe_feed = Feed(symbols)
    n = args.latency_samples
    for i in range(n + 20):
        symbol = symbols[i % len(symbols)]
        record = probe_feed.sweep_delta(symbol)
        record["ts_ns"] = time.time_ns()
        lat_producer.produce(transport_topic, key=symbol, value=codec.encode(DELTA, record))
        lat_producer.poll(0)
        got = None
        t_wait = time.monotonic()
        while got is None and time.monotonic() - t_wait < 5:
            message = plain.poll(1.0)
            if message is not None and message.error() is None:
                got = time.time_ns()
                decoded = decoder.decode(DELTA, message.value())
                if i >= 20:  # the first few warm the connections
                    transport_ns.append(got - decoded["ts_ns"])
                    appended = append_ns(message)
                    if appended is None:
                        transport_unstamped += 1
                    else:
                        transport_to_append.append(appended - decoded["ts_ns"])
                        transport_from_append.append(got - appended)
        time.sleep(args.gap_ms / 1000)
    plain.close()
    print(f"broker transport alone: {len(transport_ns)} samples", flush=True)

    # ------------------------------------------------------------ (3b) MMS in-process latency
    worker.client.budget = RateBudget(rate_per_s=1e9, burst=10**9, reserve=5)
    for pool in PoolConfig.objects.filter(symbol__in=symbols):
        services.pool_update(
            pool=pool,
            config={"quote_interval_ms": 1, "price_threshold_bps": Decimal(0)},
            actor=ops,
        )
    wait_for(
        "every engine to take the re-quote-always config",
        lambda: all(
            e.params.quote_interval_ms == 1 and e.params.price_threshold_bps == 0 for e in engines()
        ),
        timeout=30,
    )
    time.sleep(1.0)
    probe = LatencyProbe(worker, hold)
    loop = worker_stop["loop"]
    installed = threading.Event()

    def install() -> None:
        probe.install()
        installed.set()

    loop.call_soon_threadsafe(install)  # engines are only touched on the loop's thread
    installed.wait(10)
    outcomes_before = Counter(worker.client.outcomes)
    missing = 0
    keys: list[tuple[str, int]] = []
    for i in range(n + 20):
        symbol = symbols[i % len(symbols)]
        record = feed.sweep_delta(symbol)
        key = (symbol, record["seq"])
        waiter = threading.Event()
        probe.waiters[key] = waiter
        record["ts_ns"] = time.time_ns()
        lat_producer.produce(DELTA, key=symbol, value=codec.encode(DELTA, record))
        lat_producer.poll(0)
        if not waiter.wait(2):
            missing += 1
            consumer_thread = worker._consumer_thread
            if consumer_thread is None or not consumer_thread.is_alive():
                raise RuntimeError("the worker's consumer thread died (see its traceback)")
            if missing > 50:
                raise RuntimeError("more than 50 latency deltas got no order request")
        if i >= 20:
            keys.append(key)
        time.sleep(args.gap_ms / 1000)
    time.sleep(0.5)
    uninstalled = threading.Event()

    def uninstall() -> None:
        probe.uninstall()
        uninstalled.set()

    loop.call_soon_threadsafe(uninstall)
    uninstalled.wait(10)
    lat_outcomes = Counter(worker.client.outcomes)
    lat_outcomes.subtract(outcomes_before)
    lat_producer.flush(10)
    producer.flush(10)

    series: dict[str, list[int]] = {
        k: []
        for k in (
            "in_process",
            "to_place",
            "hop",
            "handle",
            "journal",
            "after_handle",
            "broker_leg",
            "producer_to_append",
            "append_to_receipt",
            "end_to_end",
            "decode_hop",
        )
    }
    no_request = 0
    no_request_actions: Counter[str] = Counter()
    actions_seen: Counter[str] = Counter()
    for key in keys:
        rec = probe.records.get(key)
        if rec is None or "t_req" not in rec:
            no_request += 1
            if rec is not None:
                no_request_actions.update(rec.get("actions", {"never released": 1}))
            continue
        actions_seen.update(rec.get("actions", {}))
        series["in_process"].append(rec["t_req"] - rec["t0"])
        if "t_place" in rec:
            series["to_place"].append(rec["t_place"] - rec["t0"])
        series["hop"].append(rec["t1"] - rec["t0"])
        series["decode_hop"].append(rec["decoded"] - rec["t0"])
        series["handle"].append(rec["t2"] - rec["t1"])
        if "j_end" in rec:
            series["journal"].append(rec["j_end"] - rec["j_start"])
        series["after_handle"].append(rec["t_req"] - rec["t2"])
        series["broker_leg"].append(rec["t0"] - rec["produced"])
        if rec["appended"] is not None:
            series["producer_to_append"].append(rec["appended"] - rec["produced"])
            series["append_to_receipt"].append(rec["t0"] - rec["appended"])
        series["end_to_end"].append(rec["t_req"] - rec["produced"])

    stand_in = httpx.get(f"{order_url}/admin/stats", timeout=10).json()
    # Shut down fast: the pools' cancels are not part of the measurement.
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "gil_switch_interval_ms": sys.getswitchinterval() * 1000,
        "django_debug": os.environ["DJANGO_DEBUG"],
        "loadavg_at_start": load_at_start,
        "symbols": len(symbols),
        "members_per_pool": args.members,
        "partitions": PARTITIONS,
        "deltas": args.deltas,
        "kafka": f"Apache Kafka 4.1.1 (KRaft, one node: devstack/kafka.py), {PARTITIONS} "
        "partitions, consumed topics stamped LogAppendTime",
        "setup": {
            "host_s": round(host_s, 2),
            "enable_to_quoting_s": round(enable_s, 2),
            "produce_s": round(produce_s, 2),
        },
        "throughput": {
            "raw_msgs_per_s": raw_rate,
            "mms_events_per_s": mms_rate,
            "mms_s": mms_s,
            "ratio": mms_rate / raw_rate,
            "target_ratio": 0.5,
            "mms_time_to_applied_fraction": milestones,
            "mms_events_per_s_first_90pct": 0.9 * args.deltas / milestones["t90_s"],
            "raw_cpu_us_per_msg": raw_cpu_us,
            "raw_poll_msgs_per_s": raw_poll_rate,
            "raw_poll_cpu_us_per_msg": raw_poll_cpu_us,
            "mms_cpu_us_per_delta": worker_cpu_s / args.deltas * 1e6,
            "mms_consumer_thread_took_all_s": taken_s,
            "mms_max_in_flight_offsets": max_in_flight,
            "mms_offset_commits": commits,
            "machine_cpu_busy_during_mms": machine_busy(machine0, machine1),
            "loadavg_after": os.getloadavg(),
            "book_gaps": gaps,
            "unsynced_books": unsynced,
            "order_service_outcomes_during": {k: v for k, v in tp_outcomes.items() if v},
            "pool_config": {"quote_interval_ms": 250, "price_threshold_bps": 1},
        },
        "latency": {
            "samples": n,
            "gap_ms": args.gap_ms,
            "pool_config": {"quote_interval_ms": 1, "price_threshold_bps": 0},
            "rate_budget": "unlimited during this phase (default 100 requests/s)",
            "broker_transport_alone": stats_ms(transport_ns),
            "broker_transport_alone_split": {
                "producer_to_broker_append": stats_ms(transport_to_append),
                "broker_append_to_poll": stats_ms(transport_from_append),
                "records_without_append_time": transport_unstamped,
            },
            "mms_in_process_to_first_request": stats_ms(series["in_process"]),
            "mms_in_process_to_first_place": stats_ms(series["to_place"]),
            "breakdown": {
                "poll_to_decoded": stats_ms(series["decode_hop"]),
                "poll_to_engine_handle": stats_ms(series["hop"]),
                "engine_handle": stats_ms(series["handle"]),
                "handle_end_to_first_request": stats_ms(series["after_handle"]),
                "write_ahead_journal": stats_ms(series["journal"]),
            },
            "broker_leg_in_mms_run": stats_ms(series["broker_leg"]),
            "broker_leg_in_mms_run_split": {
                "producer_to_broker_append": stats_ms(series["producer_to_append"]),
                "broker_append_to_receipt": stats_ms(series["append_to_receipt"]),
            },
            "end_to_end_produce_to_first_request": stats_ms(series["end_to_end"]),
            "target_in_process_p99_ms": 1.0,
            "deltas_without_request": no_request,
            "their_actions": dict(no_request_actions),
            "waits_timed_out": missing,
            "actions_per_delta": {
                k: v / max(1, len(keys) - no_request) for k, v in actions_seen.items()
            },
            "order_service_outcomes_during": {k: v for k, v in lat_outcomes.items() if v},
        },
        "rebalances": dict(rebalances),
        "skipped": dict(worker.skipped),
        "order_service_stand_in": {
            "dead_man_switch": stand_in.get("dead_man_switch"),
            "duplicate_live_orders": stand_in.get("duplicate_live_orders"),
            "orders_total": stand_in.get("orders_total"),
        },
        "notes": [
            "Metadata stand-in has no instrument option (3 built-in symbols): served here from "
            "its own servicer classes with a bench InstrumentBook of the synthetic symbols.",
            "Latency phase replaces the client's RateBudget (100 req/s per process) with an "
            "unlimited one; throughput phase keeps the default.",
            "Hooks (bench only): Consumer subclass for pause/resume; _take, codec.decode, "
            "engine.handle and engine.release, the order journal's record and the client's "
            "HTTP exchange wrapped for timestamps in phase 3b.",
            "Broker share: the broker's append time (LogAppendTime, ms resolution, taken at the "
            "middle of its millisecond: each share within ±0.5 ms) splits produce -> receipt "
            "into producer -> append (the record's ts_ns to the stamp) and append -> the "
            "consumer call returns it.",
        ],
    }


def _ok(httpx: Any, url: str) -> bool:
    try:
        httpx.get(url, timeout=0.5)
        return True
    except httpx.HTTPError:
        return False


def report(r: dict[str, Any]) -> None:
    tp, lat = r["throughput"], r["latency"]
    print()
    print(
        f"runquoter through Apache Kafka (one node): {r['symbols']} symbols x "
        f"{r['members_per_pool']} member, {r['partitions']} partitions, {r['deltas']:,} "
        f"deltas; Python {r['python']}, {r['machine']}"
    )
    print(f"{'throughput':<58}{'events/s':>12}")
    print(
        f"{'(1) raw: confluent-kafka consume(500) + AvroCodec.decode':<58}"
        f"{tp['raw_msgs_per_s']:>12,.0f}"
    )
    print(f"{'    (same, one poll() per message)':<58}{tp['raw_poll_msgs_per_s']:>12,.0f}")
    print(
        f"{'(2) runquoter: decoded, applied, re-quote decided':<58}{tp['mms_events_per_s']:>12,.0f}"
    )
    print(f"{'ratio (2)/(1)':<58}{tp['ratio']:>12.2f}  target >= 0.5")
    taken = tp["mms_consumer_thread_took_all_s"]
    m = tp["mms_time_to_applied_fraction"]
    print(
        f"runquoter applied 50% / 90% / 99% / 100% of the deltas after {m['t50_s']:.1f} / "
        f"{m['t90_s']:.1f} / {m['t99_s']:.1f} / {tp['mms_s']:.1f} s "
        f"(first 90%: {tp['mms_events_per_s_first_90pct']:,.0f}/s, "
        f"ratio {tp['mms_events_per_s_first_90pct'] / tp['raw_msgs_per_s']:.2f})"
    )
    print(
        f"CPU per message: raw {tp['raw_cpu_us_per_msg']:.1f} µs, runquoter "
        f"{tp['mms_cpu_us_per_delta']:.1f} µs (all its threads); consumer thread took all "
        f"{r['deltas']:,} in {taken if taken is None else round(taken, 2)} s; "
        f"{tp['mms_offset_commits']:,} offset commits; up to {tp['mms_max_in_flight_offsets']:,} "
        f"offsets in flight; machine CPU busy {tp['machine_cpu_busy_during_mms']:.0%} "
        f"(load at start {r['loadavg_at_start'][0]:.1f})"
    )
    print()
    print(
        f"latency, re-quote on every delta, n={lat['samples']}"
        f"{'p50 ms':>{60 - 38 - len(str(lat['samples']))}}{'p99 ms':>9}{'max ms':>9}"
    )
    rows = [
        ("(a) broker transport alone (produce -> poll())", lat["broker_transport_alone"], ""),
        (
            "    producer -> broker append",
            lat["broker_transport_alone_split"]["producer_to_broker_append"],
            "",
        ),
        (
            "    broker append -> poll() returns it",
            lat["broker_transport_alone_split"]["broker_append_to_poll"],
            "",
        ),
        (
            "(b) MMS in-process: receipt -> first order request out",
            lat["mms_in_process_to_first_request"],
            "target p99 <= 1 ms",
        ),
        ("    receipt -> decoded", lat["breakdown"]["poll_to_decoded"], ""),
        ("    receipt -> engine.handle starts", lat["breakdown"]["poll_to_engine_handle"], ""),
        ("    engine.handle -> release (full re-quote)", lat["breakdown"]["engine_handle"], ""),
        (
            "    handle end -> first request out",
            lat["breakdown"]["handle_end_to_first_request"],
            "",
        ),
        (
            "    write-ahead journal (PENDING, 1 statement)",
            lat["breakdown"]["write_ahead_journal"],
            "",
        ),
        (
            "    receipt -> first placement out (after journal)",
            lat["mms_in_process_to_first_place"],
            "",
        ),
        ("broker leg inside the MMS run", lat["broker_leg_in_mms_run"], ""),
        (
            "    producer -> broker append",
            lat["broker_leg_in_mms_run_split"]["producer_to_broker_append"],
            "",
        ),
        (
            "    broker append -> worker's consumer call returns",
            lat["broker_leg_in_mms_run_split"]["broker_append_to_receipt"],
            "",
        ),
        (
            "end to end: produce -> first request out",
            lat["end_to_end_produce_to_first_request"],
            "",
        ),
    ]
    for name, s, target in rows:
        if not s.get("n"):
            print(f"{name:<52}{'-':>8}")
            continue
        print(f"{name:<52}{s['p50_ms']:>8.3f}{s['p99_ms']:>9.3f}{s['max_ms']:>9.3f}  {target}")
    alone, leg = lat["broker_transport_alone"], lat["broker_leg_in_mms_run"]
    if alone.get("n") and leg.get("n"):
        print(
            "the broker leg inside the MMS run exceeds the broker alone by "
            f"{leg['p50_ms'] - alone['p50_ms']:.2f} ms at p50, "
            f"{leg['p99_ms'] - alone['p99_ms']:.2f} ms at p99 (the worker's consumer thread "
            "shares this process's GIL with its event loop)"
        )
    split = lat["broker_leg_in_mms_run_split"]
    e2e = lat["end_to_end_produce_to_first_request"]
    if e2e.get("n") and split["broker_append_to_receipt"].get("n"):
        to_append = split["producer_to_broker_append"]["p50_ms"]
        from_append = split["broker_append_to_receipt"]["p50_ms"]
        print(
            f"of end to end p50 {e2e['p50_ms']:.3f} ms: producer -> append {to_append:.3f}, "
            f"append -> receipt {from_append:.3f} (the broker's share "
            f"{(to_append + from_append) / e2e['p50_ms']:.0%}, medians of each leg; "
            "the broker's stamp is ms-resolution, ±0.5 ms per share)"
        )
    dms = r["order_service_stand_in"]["dead_man_switch"] or {}
    print(
        f"venue dead-man's switches fired during the run: {dms.get('fired')} "
        f"({dms.get('orders_cancelled')} MMS orders cancelled by the venue); "
        f"order traffic during (2): {tp['order_service_outcomes_during']}"
    )
    print(
        f"actions per delta: {lat['actions_per_delta']}; "
        f"without request: {lat['deltas_without_request']}; rebalances: {r['rebalances']}"
    )
    out = ROOT / "bench" / "results" / "quoter_throughput-kafka.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)} (wall time {r['wall_s']} s)")


if __name__ == "__main__":
    main()
