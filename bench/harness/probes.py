# mypy: ignore-errors
# (hooks wrapped around the worker's internals at run time)
"""The hooks the benches install in a QuoterWorker (bench only; no application
code is changed): instance attributes that wrap its methods, each undone by
`Patches.undo`.

- the worker's consumer: a Consumer subclass (`install_consumer`) that the
  bench can pause and resume from inside the worker's own poll loop, and that
  stamps when poll()/consume() returned (the "receipt"); its commits counted;
- the broker's append time of each message (LogAppendTime, ms) as the
  consumer thread takes it (`stamp_appends`, `BrokerSplit`);
- the worker's event-lag histogram, tapped per interval (`LagTap`);
- rebalances counted (`count_rebalances`);
- the worker's structures read on its loop (`read_structures`).
The latency probes built on these are in harness/latency.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from harness.report import LagHistogram
from messaging.topics import DELTA

# The broker stamps its append time in ms: the split is taken mid-millisecond.
HALF_MS_NS = 500_000


def append_ns(message: Any) -> int | None:
    """The broker's append time of a consumed record (LogAppendTime), ns, taken at
    the middle of its millisecond; None when the record carries no such stamp."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    kind, ms = message.timestamp()
    return ms * 1_000_000 + HALF_MS_NS if kind == TIMESTAMP_LOG_APPEND_TIME else None


class Patches:
    """Methods of live objects replaced by wrappers (instance attributes), each
    put back by `undo` (the class's method shows through again)."""

    def __init__(self) -> None:
        self.done: list[tuple[Any, str]] = []

    def wrap(self, obj: Any, name: str, make: Callable[[Callable[..., Any]], Any]) -> None:
        """obj.name = make(the current obj.name)."""
        setattr(obj, name, make(getattr(obj, name)))
        self.done.append((obj, name))

    def wrap_engine(
        self, owner: Any, makes: dict[str, Callable[[Callable[..., Any]], Any]]
    ) -> None:
        """owner.engine's methods `makes` names, wrapped. The compiled engine's
        methods cannot be replaced on it, so a proxy takes its place at its owner
        (the actor): the wrapped methods are the proxy's, every other attribute
        is the engine's, read and written through."""
        engine = owner.engine
        methods = {name: make(getattr(engine, name)) for name, make in makes.items()}
        owner.engine = EngineProxy(engine, methods)
        self.done.append((owner, "engine"))

    def undo(self) -> None:
        for obj, name in reversed(self.done):
            if name == "engine" and isinstance(obj.engine, EngineProxy):
                obj.engine = object.__getattribute__(obj.engine, "_engine")
            else:
                obj.__dict__.pop(name, None)
        self.done.clear()


class EngineProxy:
    """A PoolEngine with some methods wrapped (`Patches.wrap_engine`)."""

    def __init__(self, engine: Any, methods: dict[str, Callable[..., Any]]) -> None:
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_methods", methods)

    def __getattr__(self, name: str) -> Any:
        methods = object.__getattribute__(self, "_methods")
        if name in methods:
            return methods[name]
        return getattr(object.__getattribute__(self, "_engine"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_engine"), name, value)


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
        self.append_ns: int | None = None  # the broker's append time of the message in take


def bench_consumer_class(hold: Hold) -> type:
    from confluent_kafka import Consumer

    class BenchConsumer(Consumer):
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


def install_consumer(hold: Hold) -> None:
    """Every worker built from now on consumes through a BenchConsumer on `hold`."""
    from quoting_worker.runner import consumer as consumer_module

    consumer_module.Consumer = bench_consumer_class(hold)


def stamp_appends(worker: Any, hold: Hold, patches: Patches) -> None:
    """Wraps the consumer thread's `take` (one call per message, the decode inside
    it): `hold.append_ns` is the message's broker append time while it is decoded."""

    def make(take: Callable[..., Any]) -> Callable[..., Any]:
        def bench_take(message: Any, stamps: Any) -> Any:
            hold.append_ns = append_ns(message)
            return take(message, stamps)

        return bench_take

    patches.wrap(worker.intake, "take", make)


def count_rebalances(worker: Any) -> Counter[str]:
    """Partition assignments and revocations the worker hears, counted."""
    counts: Counter[str] = Counter()
    on_assign, on_revoke = worker.intake.on_assign, worker.intake.on_revoke

    async def counted_assign(partitions: Any) -> None:
        counts["assign"] += 1
        await on_assign(partitions)

    async def counted_revoke(partitions: Any, lost: bool) -> None:
        counts["revoke"] += 1
        await on_revoke(partitions, lost)

    worker.intake.on_assign = counted_assign
    worker.intake.on_revoke = counted_revoke
    return counts


class BrokerSplit:
    """Per market delta the worker takes, its way through Kafka in two shares:
    producer -> broker append and broker append -> the worker's consumer call
    returned it. Installed on the consumer thread's `take`; the monitor swaps
    the histograms (`take`) as it swaps the lag tap's."""

    def __init__(self, worker: Any, hold: Hold) -> None:
        self.to_append = LagHistogram()
        self.from_append = LagHistogram()
        self.unstamped = 0  # deltas without the broker's append time (none expected)
        self.hold = hold
        worker.intake.take = self._wrap(worker.intake.take)  # for the whole run

    def _wrap(self, take: Callable[..., Any]) -> Callable[..., Any]:
        def bench_take(message: Any, stamps: Any) -> Any:
            item = take(message, stamps)
            if item is not None and item[1] == DELTA:
                appended = append_ns(message)
                if appended is None:
                    self.unstamped += 1
                else:
                    # (The mid-millisecond estimate can come out a little below 0: bucket 0.)
                    self.to_append.add((appended - item[4]["ts_ns"]) / 1e9)
                    self.from_append.add((self.hold.received_ns - appended) / 1e9)
            return item

        return bench_take

    def take(self) -> tuple[LagHistogram, LagHistogram]:
        taken = self.to_append, self.from_append
        self.to_append, self.from_append = LagHistogram(), LagHistogram()
        return taken


class LagTap:
    """Stands in for the worker's mm_pool_event_lag_seconds histogram: each
    per-symbol child observes into the real one and into the bench's current
    interval (swapped by the monitor; during a kill cycle, also the kill one).
    Installed before any drain task asks it for its child."""

    def __init__(self, worker: Any) -> None:
        self.histogram = worker.metrics.event_lag
        self.interval = LagHistogram()
        self.kill: LagHistogram | None = None
        worker.metrics.event_lag = self

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


def quoting(engine: Any) -> bool:
    """The engine's gate is open and both sides rest orders, none of unknown outcome."""
    from quoting_worker.core.types import Side

    return (
        engine.gate() == ""
        and sum(engine.orders.own_levels[Side.BUY].values()) > 0
        and sum(engine.orders.own_levels[Side.SELL].values()) > 0
        and not engine.orders.unknown
    )


def warmed(engines: list[Any]) -> bool:
    """Every engine has its book, a mark and σ (enough public trades)."""
    t_ns = time.time_ns()
    return all(
        e.book.synced and e.mark is not None and e.vol.sigma(t_ns) is not None for e in engines
    )


def _sizes(worker: Any, engines: list[Any]) -> dict[str, Any]:
    """The per-symbol structures' sizes (the bound an engine's order map keeps to)."""
    hosted = list(worker.hosted.values())
    owner = [len(e.owner) for e in engines]
    bound = [len(e.members) * e.params.num_levels * 2 for e in engines]
    return {
        "queue_max": max((h.queue.qsize() for h in hosted), default=0),
        "queue_sum": sum(h.queue.qsize() for h in hosted),
        "sends_max": max((h.sends.qsize() for h in hosted), default=0),
        "urgent_max": max((len(h.urgent) for h in hosted), default=0),
        "owner": owner,
        "bound": bound,
    }


async def read_structures(worker: Any, submitted: float) -> dict[str, Any]:
    """The worker's per-symbol and global structures, read on its event loop."""
    started = time.monotonic()
    engines = [h.engine for h in worker.hosted.values()]
    tasks = asyncio.all_tasks()
    offsets = worker.offsets
    with offsets._lock:
        started_lens = [len(d) for d in offsets._started.values()]
        done_lens = [len(s) for s in offsets._done.values()]
        partitions = len(offsets._next)
    sizes = _sizes(worker, engines)
    owner, bound = sizes.pop("owner"), sizes.pop("bound")
    return {
        "loop_delay_ms": round((started - submitted) * 1000, 2),
        "hosted": len(engines),
        "tasks": len(tasks),
        "tasks_top": dict(
            Counter(getattr(t.get_coro(), "__qualname__", "?") for t in tasks).most_common(4)
        ),
        **sizes,
        "offsets_started_max": max(started_lens, default=0),
        "offsets_started_sum": sum(started_lens),
        "offsets_done_max": max(done_lens, default=0),
        "offsets_partitions": partitions,
        "engine_owner_max": max(owner, default=0),
        "engine_owner_sum": sum(owner),
        "engine_owner_over_bound": sum(1 for o, b in zip(owner, bound, strict=True) if o > b),
        "engine_order_bound": max(bound, default=0),
        **_engine_sums(worker, engines),
    }


def _engine_sums(worker: Any, engines: list[Any]) -> dict[str, Any]:
    sink = worker.sink
    return {
        "member_open_orders_sum": sum(
            len(m.runtime.open_orders) for e in engines for m in e.members.values()
        ),
        "engine_cancelling_sum": sum(len(e.orders.cancelling) for e in engines),
        "engine_unknown_sum": sum(len(e.orders.unknown) for e in engines),
        "engine_cancel_sent_sum": sum(len(e.orders.cancel_sent_ns) for e in engines),
        "engine_not_found_sum": sum(len(e.orders.not_found) for e in engines),
        "engine_last_query_sum": sum(len(e.orders.last_query_ns) for e in engines),
        "engine_seen_fills_sum": sum(len(e.seen_fills) for e in engines),
        "vol_increments_sum": sum(len(e.vol._increments) for e in engines),
        "sink_unknown_since": len(sink.unknown_since),
        "sink_settled": len(sink._settled),
        "sink_cancelling": sum(len(c) for c in sink._cancelling.values()),
        "status_changes": sum(len(a.status_changes) for a in worker.hosted.values()),
        "sink_placing": len(sink._placing),
        "noticed": worker.control.noticed.qsize(),
        "budget_waiters": worker.client.budget.waiting,
        "user_ids": len(worker.ownership.user_ids),
        "metric_samples": len(worker.metrics.samples),
        "books_unsynced": sum(1 for e in engines if not e.book.synced),
        "book_gaps": sum(e.book.gaps for e in engines),
        "quoting": sum(1 for e in engines if quoting(e)),
        "active": sum(1 for e in engines if e.mode.value == "ACTIVE"),
    }
