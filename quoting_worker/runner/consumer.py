"""The Kafka consumer: poll, decode, route, offsets (SPEC Part B.8).

The consumer runs in a thread of its own (librdkafka blocks). It decodes each
message there (a schema registry outage makes a message wait, never skips
it) and hands each batch to the event loop in one call; on the loop each
record becomes the core's event (`translate.to_event`) and goes to its
symbol's actor, with a callback that marks its offset done. Offsets are
committed only for messages whose effects are done (applied; for fills,
stored): at-least-once, with the engine and the store idempotent.

Rebalance callbacks block the consumer thread until the loop has hosted or
released the symbols (`on_assign`, `on_revoke` coroutines, given by the
wiring), so a revoked symbol stops quoting before its partition moves.

It also measures the consumer lag, as time (now − the newest message's
broker timestamp) and in messages (the partition's end offset − the next
offset to take).

Doors: `start()`/`join()`, `offsets`, `skipped`, and `take`/`route` (the two
halves of a message's way in, which benchmarks may wrap).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition
from opentelemetry.trace import SpanKind

from messaging import topics as names
from messaging.avro import AvroCodec, DecodeError, RegistryUnavailableError
from messaging.kafka import consumer_config
from messaging.topics import Topics
from quoting_worker.adapters.metrics import QuoterMetrics
from quoting_worker.adapters.translate import to_event
from quoting_worker.runner.actor import PoolActor
from quoting_worker.runner.config import WorkerConfig
from telemetry import tracing
from telemetry.tracing import Cause

logger = logging.getLogger("mms.quoter")

# (symbol, logical topic, partition, offset, record, trace context)
Consumed = tuple[str, str, int, int, dict[str, Any], Cause | None]
Partitions = set[tuple[str, int]]  # (logical topic, partition)
BATCH_SIZE = 500  # messages per consumer wake-up
COMMIT_INTERVAL_S = 0.1
BACKLOG_INTERVAL_S = 1.0  # the consumer lag in messages, from the last fetch's end offsets
REGISTRY_FIRST_DELAY_S = 0.1  # a decode waiting for the registry tries again after this, doubling
REGISTRY_MAX_DELAY_S = 5.0
REBALANCE_TIMEOUT_S = 30.0


class OffsetTracker:
    """Per partition, the offset up to which every handed-out message is done.

    Offsets are started in increasing order per partition (the consumer reads a
    partition in order) and finished in any order (symbols share a partition);
    the committable position advances past the finished head of each queue,
    amortised O(1) per message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[str, int], deque[int]] = defaultdict(deque)
        self._done: dict[tuple[str, int], set[int]] = defaultdict(set)
        self._next: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def started(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._started[(topic, partition)].append(offset)
            self._next[(topic, partition)] = offset + 1

    def done(self, topic: str, partition: int, offset: int) -> None:
        with self._lock:
            self._done[(topic, partition)].add(offset)

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset this process will take from the partition (None: none taken)."""
        with self._lock:
            return self._next.get((topic, partition))

    def forget(self, topic: str, partition: int) -> None:
        with self._lock:
            for book in (self._started, self._done, self._next, self._committed):
                book.pop((topic, partition), None)

    def to_commit(self, name: Callable[[str], str] = str) -> list[TopicPartition]:
        """The positions that moved since the last call; `name` gives a topic's
        name on the broker."""
        out = []
        with self._lock:
            for tp, nxt in self._next.items():
                started, done = self._started[tp], self._done[tp]
                while started and started[0] in done:
                    done.discard(started.popleft())
                position = started[0] if started else nxt
                if self._committed.get(tp) != position:
                    self._committed[tp] = position
                    out.append(TopicPartition(name(tp[0]), tp[1], position))
        return out


def decode_patiently(
    codec: AvroCodec,
    topic: str,
    value: bytes,
    *,
    stopping: threading.Event,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> dict[str, Any]:
    """`codec.decode`, waiting out an unreachable schema registry (a message with a
    schema id not seen yet needs it). A registry outage is not the message's
    fault: it is neither skipped nor lost, and the consumer thread does not die of
    it; it waits, backing off, and decodes once the registry answers. Raises
    DecodeError for a bad message, and the registry's error if the worker is
    stopping meanwhile (the message was not taken: it is read again next time)."""
    delay = REGISTRY_FIRST_DELAY_S
    while True:
        try:
            return codec.decode(topic, value)
        except RegistryUnavailableError as exc:
            if stopping.is_set():
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            if stopping.wait(delay):
                raise
            delay = min(delay * 2, REGISTRY_MAX_DELAY_S)


class KafkaIntake:
    """The consumer thread and the routing of what it takes (module docstring).
    `hosted`: the symbols' actors, by symbol (ownership's)."""

    def __init__(
        self,
        *,
        config: WorkerConfig,
        codec: AvroCodec,
        metrics: QuoterMetrics,
        hosted: Mapping[str, PoolActor],
        on_assign: Callable[[Partitions], Awaitable[None]],
        on_revoke: Callable[[Partitions, bool], Awaitable[None]],
        stopping: threading.Event,
    ) -> None:
        self.config = config
        self.codec = codec
        self.metrics = metrics
        self.hosted = hosted
        self.topics = Topics(config.topic_namespace)
        self.offsets = OffsetTracker()
        self.skipped: defaultdict[str, int] = defaultdict(int)
        self.assigned: Partitions = set()  # as the consumer thread last heard it
        # What a rebalance runs on the loop (ownership's; benchmarks may wrap them).
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.stopping = stopping
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.Thread(target=self._consume, name="kafka-consumer", daemon=True)
        self.thread.start()

    async def join(self, seconds: float) -> bool:
        """Waits for the thread to close the consumer (after `stopping` is set);
        whether it did within `seconds`."""
        if self.thread is None:
            return True
        await asyncio.get_running_loop().run_in_executor(None, self.thread.join, seconds)
        return not self.thread.is_alive()

    # ------------------------------------------------------------------ the thread

    def _consume(self) -> None:
        consumer = Consumer(
            consumer_config(
                bootstrap=self.config.kafka_brokers,
                group_id=self.config.group_id,
                client_id=self.config.worker_id,
                session_timeout_ms=self.config.session_timeout_ms,
                instance_id=self.config.instance_id,
            )
        )
        consumer.subscribe(
            self.topics.names(names.CONSUMED),
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )
        last_commit = last_backlog = 0.0
        try:
            while not self.stopping.is_set():
                # Wake on the first message, then take what is already buffered: one
                # hand-over to the event loop per batch, and no wait for a batch to fill.
                first = consumer.poll(0.05)
                messages = [] if first is None else [first, *consumer.consume(BATCH_SIZE, 0)]
                stamps: dict[tuple[str, int], list[int]] = {}
                items = [
                    item for item in (self.take(m, stamps) for m in messages) if item is not None
                ]
                if stamps:
                    self._measure_consumed(items, stamps)
                if items:
                    self._loop().call_soon_threadsafe(self.route_batch, items)
                if time.monotonic() - last_backlog >= BACKLOG_INTERVAL_S:
                    last_backlog = time.monotonic()
                    self._measure_backlog(consumer)
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    last_commit = time.monotonic()
                    self._commit(consumer, asynchronous=True)
        finally:
            self._commit(consumer, asynchronous=False)
            consumer.close()

    def _commit(self, consumer: Consumer, *, asynchronous: bool) -> None:
        commits = self.offsets.to_commit(self.topics.name)
        if not commits:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=commits, asynchronous=True)
            else:
                consumer.commit(offsets=commits, asynchronous=False)
        except Exception:
            logger.warning("offset commit failed", exc_info=True)

    def take(self, message: Message, stamps: dict[tuple[str, int], list[int]]) -> Consumed | None:
        """Decodes one message in the consumer thread; None when it is skipped.
        `stamps`: per partition, the batch's first and last message timestamps (ms)."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("kafka error: %s", error)
            return None
        name, partition, offset = message.topic(), message.partition(), message.offset()
        topic = self.topics.logical(name) if name is not None else None
        key = message.key()
        value = message.value()
        if topic is None or partition is None or offset is None or key is None or value is None:
            self._skip("no_key_or_value")
            logger.warning("skipped %s[%s]@%s: no key or value", topic, partition, offset)
            return None
        try:
            record = decode_patiently(
                self.codec, topic, value, stopping=self.stopping, on_retry=self._registry_retry
            )
        except DecodeError as exc:
            self._skip("undecodable")
            logger.warning("skipped %s[%s]@%s: %s", topic, partition, offset, exc)
            return None
        self.offsets.started(topic, partition, offset)
        kind, ts_ms = message.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE:
            seen = stamps.get((topic, partition))
            if seen is None:
                stamps[(topic, partition)] = [ts_ms, ts_ms]
            else:
                seen[1] = ts_ms
        symbol = key.decode()
        cause = None
        if tracing.enabled:
            # The consume span (child of the producer's, when it sent one) is what
            # the orders this event causes hang from; started only if it causes any.
            cause = tracing.Deferred(
                f"kafka.consume {topic}",
                parent=tracing.context_from_headers(message.headers()),
                kind=SpanKind.CONSUMER,
                attributes={
                    "mms.symbol": symbol,
                    "messaging.kafka.partition": partition,
                    "messaging.kafka.offset": offset,
                },
                start_ns=time.time_ns(),
            )
        return symbol, topic, partition, offset, record, cause

    def _registry_retry(self, exc: Exception, delay: float) -> None:
        self.metrics.registry_retries.inc()
        logger.warning("schema registry unreachable; the message waits %.1f s: %s", delay, exc)

    def _skip(self, reason: str) -> None:
        self.skipped[reason] += 1
        self.metrics.kafka_skipped.labels(reason).inc()

    def _measure_consumed(
        self, items: list[Consumed], stamps: dict[tuple[str, int], list[int]]
    ) -> None:
        """Messages taken; per partition the consumer lag as time, now − the newest
        message's timestamp (SPEC Part B.8); per topic, the oldest message's wait
        (where a backlog shows: before the worker or in its queues)."""
        now_ms = time.time_ns() // 1_000_000
        for (topic, partition), (oldest, newest) in stamps.items():
            self.metrics.kafka_lag.labels(topic, str(partition)).set(
                max(0.0, (now_ms - newest) / 1000)
            )
            self.metrics.kafka_wait.labels(topic).observe(max(0.0, (now_ms - oldest) / 1000))
        for topic, n in Counter(item[1] for item in items).items():
            self.metrics.kafka_messages.labels(topic).inc(n)

    def _measure_backlog(self, consumer: Consumer) -> None:
        """Per assigned partition, the consumer lag in messages: the broker's end
        offset (as of the last fetch, no request) − the next offset to consume."""
        for topic, partition in list(self.assigned):
            tp = TopicPartition(self.topics.name(topic), partition)
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            position = self.offsets.position(topic, partition)
            if high >= 0 and position is not None:
                self.metrics.kafka_backlog.labels(topic, str(partition)).set(
                    max(0, high - position)
                )

    # ------------------------------------------------------------------ rebalances

    def _logical(self, partitions: list[TopicPartition]) -> Partitions:
        return {(self.topics.logical(tp.topic), tp.partition) for tp in partitions}

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = self._logical(partitions)
        self.assigned |= assigned
        self._run_on_loop(self.on_assign(assigned))

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked(consumer, partitions, lost=True)

    def _revoked(
        self, consumer: Consumer, partitions: list[TopicPartition], *, lost: bool = False
    ) -> None:
        revoked = self._logical(partitions)
        self.assigned -= revoked
        for topic, partition in revoked:
            self.offsets.forget(topic, partition)
            self.metrics.partition_revoked(topic, partition)
        self._run_on_loop(self.on_revoke(revoked, lost))

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError("the worker's event loop is not running")
        return self.loop

    def _run_on_loop(self, coroutine: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop())
        try:
            future.result(timeout=REBALANCE_TIMEOUT_S)
        except Exception:
            logger.exception("rebalance handling failed")

    # ------------------------------------------------------------------ on the loop

    def route_batch(self, items: list[Consumed]) -> None:
        for item in items:
            self.route(*item)

    def route(
        self,
        symbol: str,
        topic: str,
        partition: int,
        offset: int,
        record: dict[str, Any],
        cause: Cause | None = None,
    ) -> None:
        """A decoded record to its symbol's actor, as the core's event; its offset is
        done once the actor has applied it (at once if no actor wants it)."""

        def done() -> None:
            self.offsets.done(topic, partition, offset)

        actor = self.hosted.get(symbol)
        if actor is None:
            done()
            return
        try:
            event = to_event(topic, record, actor.instrument)
        except (ValueError, KeyError) as exc:
            self._skip("untranslatable")
            logger.warning("skipped %s[%s]@%s: %s", topic, partition, offset, exc)
            done()
            return
        if event is None:
            done()
            return
        actor.put(event, done, cause)
