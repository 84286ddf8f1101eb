# mypy: ignore-errors
# (a benchmark that instruments the worker by wrapping its internals at run time)
"""One runquoter through the real broker: sustained throughput and delta-to-order latency.

    .venv/bin/python bench/quoter_throughput.py [--symbols 50] [--deltas 200000]
                                                [--latency-samples 1000]

Everything runs on this machine and is torn down at the end (bench/harness/):
a throwaway PostgreSQL database (migrated here, dropped at exit), Redis
database 13, an Apache Kafka 4.1.1 node of its own (devstack/kafka.py's
KafkaNode: KRaft, one JVM that is broker and controller, formatted in a folder
under this run's log directory, on free ports, stopped at exit; its classpath
from `make kafka`), and the Schema Registry, Order Service and Metadata Service
stand-ins as subprocesses on free ports, the last two serving --symbols
synthetic symbols (BX00USDT-PERP ..., BTC's rules; --instrument). The topics
are MMS's own (messaging.topics, no namespace: the broker is this run's),
created by ensure_topics, so the consumed ones are stamped by the broker
(message.timestamp.type=LogAppendTime). The QuoterWorker runs in a thread of
this process, as in tests/adapters/test_worker.py. No application code is
changed.

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
        enters the HTTP transport (timestamps from the hooks of
        bench/harness/latency.py: a Consumer subclass, the consumer thread's
        take and codec.decode, each engine's handle and release (the drain
        applies events under the engine's hold and quotes once when it
        releases it), the order journal and the HTTP exchange). Target p99
        <= 1 ms. The first request is usually a cancel (it needs no journal
        record); the first placement follows the journal's write-ahead
        record, and is reported too.
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

Prints a table (bench/quoter_throughput_report.py) and writes
bench/results/quoter_throughput-kafka.json (the Tansu run's
quoter_throughput.json is kept for comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from harness import RESULTS
from harness.database import scratch_database
from harness.latency import LatencyProbe
from harness.market import Feed, Publisher, create_pools, instrument_specs, warm_up
from harness.probes import Hold, append_ns, count_rebalances, install_consumer, quoting, warmed
from harness.report import counter_diff, machine, write_json
from harness.sampling import machine_busy, machine_cpu
from harness.stack import Stack, WorkerThread, log_directory, wait_for
from quoter_throughput_report import latency_figures, print_table

from messaging.topics import DELTA, Topics

PARTITIONS = 12
BATCH = 500  # the raw consumer's consume() batch, as the worker's BATCH_SIZE
REDIS_URL = "redis://127.0.0.1:6379/13"
# (3a)'s topic: the delta topic in a namespace of its own, created with its settings.
TRANSPORT = Topics("bench-transport")
WARM_UP_DELTAS = 20  # the first latency deltas warm the connections: not counted
NOTES = [
    "Metadata and Order Service stand-ins serve the synthetic symbols (--instrument).",
    "Latency phase replaces the client's RateBudget (100 req/s per process) with an "
    "unlimited one; throughput phase keeps the default.",
    "Hooks (bench only): Consumer subclass for pause/resume; the consumer thread's take, "
    "codec.decode, engine.handle and engine.release, each actor's _send, the order "
    "journal's record and the client's HTTP exchange wrapped for timestamps in phase 3b.",
    "Broker share: the broker's append time (LogAppendTime, ms resolution, taken at the "
    "middle of its millisecond: each share within ±0.5 ms) splits produce -> receipt "
    "into producer -> append (the record's ts_ns to the stamp) and append -> the "
    "consumer call returns it.",
]


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
    with (
        log_directory("quoter-bench-", keep=args.keep_logs) as logdir,
        contextlib.ExitStack() as cleanup,
    ):
        cleanup.enter_context(scratch_database("mms_bench", redis_url=REDIS_URL))
        stack = Stack(logdir)
        cleanup.callback(stack.stop_all)
        result = QuoterBench(args, stack).run(cleanup)
    result["wall_s"] = round(time.monotonic() - started, 1)
    print_table(result)
    write_json(result, RESULTS / "quoter_throughput-kafka.json", wall_s=result["wall_s"])


class QuoterBench:
    """The run: the stack, the pools and the worker, then the three phases."""

    def __init__(self, args: argparse.Namespace, stack: Stack) -> None:
        self.args = args
        self.stack = stack
        self.symbols = [f"BX{i:02d}USDT-PERP" for i in range(args.symbols)]
        self.hold = Hold()
        self.setup: dict[str, float] = {}

    def run(self, cleanup: contextlib.ExitStack) -> dict[str, Any]:
        args = self.args
        load_at_start = os.getloadavg()
        self.start_services()
        self.start_worker(cleanup)
        self.warm_up_and_enable()
        offsets = self.produce_deltas()
        throughput = self.mms_throughput(self.raw_baseline(offsets))
        latency = self.transport_alone()
        latency.update(self.mms_latency())
        return {
            **machine(),
            "gil_switch_interval_ms": sys.getswitchinterval() * 1000,
            "django_debug": os.environ["DJANGO_DEBUG"],
            "loadavg_at_start": load_at_start,
            "symbols": len(self.symbols),
            "members_per_pool": args.members,
            "partitions": PARTITIONS,
            "deltas": args.deltas,
            "kafka": f"Apache Kafka 4.1.1 (KRaft, one node: devstack/kafka.py), {PARTITIONS} "
            "partitions, consumed topics stamped LogAppendTime",
            "setup": {key: round(value, 2) for key, value in self.setup.items()},
            "throughput": throughput,
            "latency": latency_figures(latency, args.latency_samples, args.gap_ms),
            "rebalances": dict(self.rebalances),
            "skipped": dict(self.worker.skipped),
            "order_service_stand_in": self.stand_in_stats(),
            "notes": NOTES,
        }

    # ------------------------------------------------------------ set-up

    def start_services(self) -> None:
        from messaging.avro import AvroCodec
        from messaging.kafka import ensure_topics, mms_topics

        self.bootstrap = self.stack.start_kafka().bootstrap
        self.registry = self.stack.schema_registry().url
        specs = instrument_specs(self.symbols)
        self.order_url = self.stack.order_service(specs).url
        self.metadata_target = self.stack.metadata(specs).target
        ensure_topics(self.bootstrap, mms_topics(PARTITIONS))
        self.transport_topic = TRANSPORT.name(DELTA)
        ensure_topics(
            self.bootstrap,
            {self.transport_topic: PARTITIONS},
            namespace=TRANSPORT,
            co_partitioned=(),
        )
        self.codec = AvroCodec(self.registry)
        self.codec.register_all()

    def start_worker(self, cleanup: contextlib.ExitStack) -> None:
        from quoting_worker.worker import QuoterWorker, WorkerConfig

        create_pools(
            self.symbols,
            self.args.members,
            name="bench",
            levels=1,
            order_size_usdt=Decimal("1200"),
            staleness_ms=600_000,
            weight=lambda m: 1 + m,
        )
        install_consumer(self.hold)  # bench-only: pause/resume handle
        self.worker = QuoterWorker(
            WorkerConfig(
                kafka_brokers=self.bootstrap,
                registry_url=self.registry,
                order_service_url=self.order_url,
                metadata_target=self.metadata_target,
                redis_url=REDIS_URL,
                group_id=f"bench-quoter-{uuid.uuid4().hex[:8]}",
                partitions=PARTITIONS,
                worker_id="bench-worker",
            )
        )
        self.rebalances = count_rebalances(self.worker)
        self.thread = WorkerThread(self.worker)
        cleanup.callback(self.thread.stop)
        n = len(self.symbols)
        self.setup["host_s"] = self.thread.start_hosting(n, timeout=120)
        print(f"worker hosted {n} symbols in {self.setup['host_s']:.1f} s", flush=True)

    def warm_up_and_enable(self) -> None:
        from confluent_kafka import Producer

        from common.actors import Actor
        from messaging.kafka import producer_config
        from pools import services
        from pools.models import PoolConfig

        self.feed = Feed(self.symbols)
        self.publisher = Publisher(Producer(producer_config(bootstrap=self.bootstrap)), self.codec)
        warm_up(self.publisher, self.feed, self.symbols, "t")
        engines = self.thread.hosted_engines
        wait_for("books, marks and σ in every engine", lambda: warmed(engines()), timeout=60)
        t = time.monotonic()
        for pool in PoolConfig.objects.filter(symbol__in=self.symbols):
            services.pool_enable(pool=pool, actor=Actor("bench-ops"))
        wait_for(
            "every pool ACTIVE with quotes resting",
            lambda: all(quoting(e) for e in engines()),
            timeout=180,
            step=0.2,
        )
        self.setup["enable_to_quoting_s"] = time.monotonic() - t
        print(
            f"{len(self.symbols)} pools ACTIVE and quoting after "
            f"{self.setup['enable_to_quoting_s']:.1f} s (default rate budget: 100 requests/s)",
            flush=True,
        )
        time.sleep(1.0)

    # ------------------------------------------------------------ (1) raw baseline

    def produce_deltas(self) -> dict[int, tuple[int, int]]:
        """With the worker's consumer paused, the deltas; per partition the offsets
        they took (the end offsets before and after them, from the broker)."""
        from confluent_kafka import Consumer

        from messaging.kafka import consumer_config

        hold, args = self.hold, self.args
        hold.want.set()
        wait_for("the worker's consumer to pause", hold.paused.is_set, timeout=10)
        group = f"bench-offsets-{uuid.uuid4().hex[:8]}"
        offsets_client = Consumer(consumer_config(bootstrap=self.bootstrap, group_id=group))
        before = high_watermarks(offsets_client, DELTA, PARTITIONS)
        t = time.monotonic()
        for i in range(args.deltas):
            symbol = self.symbols[i % len(self.symbols)]
            self.publisher.send(DELTA, self.feed.size_delta(symbol, time.time_ns()), symbol)
        left = self.publisher.flush(60)
        self.setup["produce_s"] = time.monotonic() - t
        if left or self.publisher.failed:
            failed = dict(self.publisher.failed)
            raise RuntimeError(f"{left} deltas undelivered, delivery errors: {failed}")
        after = high_watermarks(offsets_client, DELTA, PARTITIONS)
        offsets_client.close()
        offsets = {p: (before[p], after[p]) for p in range(PARTITIONS) if after[p] > before[p]}
        produced = sum(end - start for start, end in offsets.values())
        if produced != args.deltas:
            raise RuntimeError(f"the end offsets moved by {produced} messages, not {args.deltas}")
        print(f"produced {args.deltas:,} deltas in {self.setup['produce_s']:.1f} s", flush=True)
        self.final_seq = dict(self.feed.seq)
        return offsets

    def raw_baseline(self, offsets: dict[int, tuple[int, int]]) -> dict[str, Any]:
        from messaging.avro import AvroCodec

        self.decoder = AvroCodec(self.registry)
        warm = {"type": "BookDelta", "symbol": "X", "seq": 0, "bids": [], "asks": [], "ts_ns": 0}
        self.decoder.decode(DELTA, self.codec.encode(DELTA, warm))  # fetches the writer schema
        poll_rate, poll_cpu_us, _ = self.raw_run(offsets, 0)
        rate, cpu_us, count = self.raw_run(offsets, BATCH)
        self.raw_rate = rate
        print(
            f"raw consumer: {count:,} messages, {rate:,.0f}/s with consume({BATCH}), "
            f"{poll_rate:,.0f}/s with poll()",
            flush=True,
        )
        return {
            "raw_msgs_per_s": rate,
            "raw_cpu_us_per_msg": cpu_us,
            "raw_poll_msgs_per_s": poll_rate,
            "raw_poll_cpu_us_per_msg": poll_cpu_us,
        }

    def raw_run(self, offsets: dict[int, tuple[int, int]], batch: int) -> tuple[float, float, int]:
        """(msgs/s, CPU µs per msg, count) of a plain consumer reading exactly the
        deltas from their first offset: poll() per message (batch 0) or consume(batch)."""
        from confluent_kafka import Consumer, TopicPartition

        from messaging.kafka import consumer_config

        group = f"bench-raw-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(consumer_config(bootstrap=self.bootstrap, group_id=group))
        pending = set(offsets)
        consumer.assign([TopicPartition(DELTA, p, offsets[p][0]) for p in pending])
        count = 0
        decode = self.decoder.decode
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
                if message.offset() >= offsets[p][1] - 1:
                    pending.discard(p)
        elapsed = time.perf_counter() - t0
        cpu_us = (time.thread_time() - cpu0) / count * 1e6
        consumer.close()
        return count / elapsed, cpu_us, count

    # ------------------------------------------------------------ (2) MMS throughput

    def mms_throughput(self, raw: dict[str, Any]) -> dict[str, Any]:
        worker, hold, n = self.worker, self.hold, self.args.deltas
        outcomes_before = Counter(worker.client.outcomes)
        books = [(h.engine.book, self.final_seq[h.symbol]) for h in worker.hosted.values()]
        hold.expect = n
        machine0, proc0, main0 = machine_cpu(), time.process_time(), time.thread_time()
        hold.want.clear()
        progress, max_in_flight = self._follow(books)
        mms_s = progress[-1][0]
        machine1 = machine_cpu()
        worker_cpu_s = (time.process_time() - proc0) - (time.thread_time() - main0)
        engines = self.thread.hosted_engines()
        milestones = {
            f"t{int(q * 100)}_s": next(t for t, applied in progress if applied >= q * n)
            for q in (0.5, 0.9, 0.99)
        }
        raw_rate = raw["raw_msgs_per_s"]
        print(
            f"runquoter: {n:,} deltas in {mms_s:.2f} s = {n / mms_s:,.0f}/s "
            f"(ratio {n / mms_s / raw_rate:.2f})",
            flush=True,
        )
        taken_s = (hold.all_taken_ns - hold.resumed_ns) / 1e9 if hold.all_taken_ns else None
        return {
            "raw_msgs_per_s": raw_rate,
            "mms_events_per_s": n / mms_s,
            "mms_s": mms_s,
            "ratio": n / mms_s / raw_rate,
            "target_ratio": 0.5,
            "mms_time_to_applied_fraction": milestones,
            "mms_events_per_s_first_90pct": 0.9 * n / milestones["t90_s"],
            "raw_cpu_us_per_msg": raw["raw_cpu_us_per_msg"],
            "raw_poll_msgs_per_s": raw["raw_poll_msgs_per_s"],
            "raw_poll_cpu_us_per_msg": raw["raw_poll_cpu_us_per_msg"],
            "mms_cpu_us_per_delta": worker_cpu_s / n * 1e6,
            "mms_consumer_thread_took_all_s": taken_s,
            "mms_max_in_flight_offsets": max_in_flight,
            "mms_offset_commits": hold.commits,
            "machine_cpu_busy_during_mms": machine_busy(machine0, machine1),
            "loadavg_after": os.getloadavg(),
            "book_gaps": sum(e.book.gaps for e in engines),
            "unsynced_books": sum(1 for e in engines if not e.book.synced),
            "order_service_outcomes_during": counter_diff(worker.client.outcomes, outcomes_before),
            "pool_config": {"quote_interval_ms": 250, "price_threshold_bps": 1},
        }

    def _follow(self, books: list[tuple[Any, int]]) -> tuple[list[tuple[float, int]], int]:
        """From the resume until every book reached its last delta's seq: (s since
        the resume, deltas applied) every 20 ms, and the most offsets in flight."""
        seq_before = sum(book.seq for book, _ in books)
        pending_sets = self.worker.offsets._started
        progress: list[tuple[float, int]] = []
        max_in_flight = 0
        t_resume = time.perf_counter()
        deadline = t_resume + 300
        while any(book.seq < last for book, last in books):
            applied = sum(book.seq for book, _ in books) - seq_before
            progress.append((time.perf_counter() - t_resume, applied))
            if time.perf_counter() > deadline:
                raise RuntimeError("the worker did not apply every delta within 300 s")
            with contextlib.suppress(RuntimeError):  # the dict may change size meanwhile
                in_flight = sum(len(v) for v in list(pending_sets.values()))
                max_in_flight = max(max_in_flight, in_flight)
            time.sleep(0.02)
        progress.append((time.perf_counter() - t_resume, self.args.deltas))
        return progress, max_in_flight

    # ------------------------------------------------------------ (3a) broker transport

    def transport_alone(self) -> dict[str, Any]:
        """Produce -> a plain consumer's poll() on a topic of its own, one at a time."""
        from confluent_kafka import Consumer, Producer, TopicPartition

        from messaging.kafka import consumer_config, producer_config

        self.lat_producer = Producer({**producer_config(bootstrap=self.bootstrap), "linger.ms": 0})
        group = f"bench-transport-{uuid.uuid4().hex[:8]}"
        plain = Consumer(consumer_config(bootstrap=self.bootstrap, group_id=group))
        # A topic of its own, created empty in this run: read from offset 0.
        plain.assign([TopicPartition(self.transport_topic, p, 0) for p in range(PARTITIONS)])
        time.sleep(0.5)
        got: dict[str, Any] = {"total": [], "to_append": [], "from_append": [], "unstamped": 0}
        probe_feed = Feed(self.symbols)
        for i in range(self.args.latency_samples + WARM_UP_DELTAS):
            symbol = self.symbols[i % len(self.symbols)]
            record = probe_feed.sweep_delta(symbol)
            record["ts_ns"] = time.time_ns()
            value = self.codec.encode(DELTA, record)
            self.lat_producer.produce(self.transport_topic, key=symbol, value=value)
            self.lat_producer.poll(0)
            self._receive(plain, got, counted=i >= WARM_UP_DELTAS)
            time.sleep(self.args.gap_ms / 1000)
        plain.close()
        print(f"broker transport alone: {len(got['total'])} samples", flush=True)
        return {"transport": got}

    def _receive(self, plain: Any, got: dict[str, Any], *, counted: bool) -> None:
        t_wait = time.monotonic()
        while time.monotonic() - t_wait < 5:
            message = plain.poll(1.0)
            if message is None or message.error() is not None:
                continue
            received = time.time_ns()
            produced = self.decoder.decode(DELTA, message.value())["ts_ns"]
            if counted:
                got["total"].append(received - produced)
                appended = append_ns(message)
                if appended is None:
                    got["unstamped"] += 1
                else:
                    got["to_append"].append(appended - produced)
                    got["from_append"].append(received - appended)
            return

    # ------------------------------------------------------------ (3b) MMS in-process

    def requote_always(self) -> None:
        from common.actors import Actor
        from pools import services
        from pools.models import PoolConfig
        from quoting_worker.adapters.order_service import RateBudget

        self.worker.client.budget = RateBudget(rate_per_s=1e9, burst=10**9, reserve=5)
        config = {"quote_interval_ms": 1, "price_threshold_bps": Decimal(0)}
        for pool in PoolConfig.objects.filter(symbol__in=self.symbols):
            services.pool_update(pool=pool, config=config, actor=Actor("bench-ops"))
        wait_for(
            "every engine to take the re-quote-always config",
            lambda: all(
                e.params.quote_interval_ms == 1 and e.params.price_threshold_bps == 0
                for e in self.thread.hosted_engines()
            ),
            timeout=30,
        )
        time.sleep(1.0)

    def mms_latency(self) -> dict[str, Any]:
        self.requote_always()
        probe = LatencyProbe(self.worker, self.hold)
        self.thread.on_loop(probe.install, timeout=10)
        outcomes_before = Counter(self.worker.client.outcomes)
        keys, missing = self._latency_deltas(probe)
        time.sleep(0.5)
        self.thread.on_loop(probe.uninstall, timeout=10)
        outcomes = counter_diff(self.worker.client.outcomes, outcomes_before)
        self.lat_producer.flush(10)
        self.publisher.flush(10)
        return {
            "records": [probe.records.get(key) for key in keys],
            "missing": missing,
            "outcomes": outcomes,
        }

    def _latency_deltas(self, probe: LatencyProbe) -> tuple[list[tuple[str, int]], int]:
        """Sweeps, one at a time, each waited for until its first placement went out."""
        missing = 0
        keys: list[tuple[str, int]] = []
        for i in range(self.args.latency_samples + WARM_UP_DELTAS):
            symbol = self.symbols[i % len(self.symbols)]
            record = self.feed.sweep_delta(symbol)
            key = (symbol, record["seq"])
            waiter = threading.Event()
            probe.waiters[key] = waiter
            record["ts_ns"] = time.time_ns()
            self.lat_producer.produce(DELTA, key=symbol, value=self.codec.encode(DELTA, record))
            self.lat_producer.poll(0)
            if not waiter.wait(2):
                missing += 1
                consumer_thread = self.worker.intake.thread
                if consumer_thread is None or not consumer_thread.is_alive():
                    raise RuntimeError("the worker's consumer thread died (see its traceback)")
                if missing > 50:
                    raise RuntimeError("more than 50 latency deltas got no order request")
            if i >= WARM_UP_DELTAS:
                keys.append(key)
            time.sleep(self.args.gap_ms / 1000)
        return keys, missing

    def stand_in_stats(self) -> dict[str, Any]:
        import httpx

        stand_in = httpx.get(f"{self.order_url}/admin/stats", timeout=10).json()
        # Shut down fast: the pools' cancels are not part of the measurement.
        return {
            "dead_man_switch": stand_in.get("dead_man_switch"),
            "duplicate_live_orders": stand_in.get("duplicate_live_orders"),
            "orders_total": stand_in.get("orders_total"),
        }


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


if __name__ == "__main__":
    main()
