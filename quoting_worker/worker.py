"""The runquoter process: hosts one PoolEngine per owned symbol and wires it to
Kafka, the Order Service, the Metadata Service, PostgreSQL and Redis.

Threads and tasks:
- the Kafka consumer runs in its own thread (librdkafka blocks); it decodes
  each message there and hands (symbol, topic, record, offset) to the event
  loop; rebalance callbacks block until the loop has hosted or released the
  symbols, so a revoked symbol stops quoting before its partition moves;
- one asyncio task per hosted symbol drains its engine's queue: a fill is
  persisted before the engine sees it, and the engine's actions are carried
  out (write-ahead: an order is recorded PENDING before it is sent) before
  the next event is looked at;
- side tasks: live status to Redis every second, dead-man's-switch renewal,
  a listener for pool changes (Redis) with a periodic re-read of every hosted
  pool from the database, and durable flatten requests.

Offsets are committed only for messages whose effects are done (applied, and
for fills stored): at-least-once, with the engine and the store idempotent.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import psycopg
import redis.asyncio as aioredis
import structlog
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition
from django.db import Error as DatabaseError
from django.db import close_old_connections, connections, transaction
from django.utils import timezone
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from common import tracing
from common.failpoints import failpoint
from common.notify import FLATTEN_CHANNEL, POOL_CHANGED_CHANNEL
from common.services import audit_record, outbox_enqueue
from common.tracing import Cause
from messaging import topics as names
from messaging.topics import Topics
from pools.enums import FlattenStatus
from pools.leases import StaleLease, lease_acquire, lease_release
from pools.models import FlattenRequest, PoolConfig, PoolMember
from quoting_worker.adapters import store
from quoting_worker.adapters.identity import (
    WORKER_KEY,
    WORKER_PATTERN,
    build_hash,
    config_hash,
    disagreeing_peers,
)
from quoting_worker.adapters.journal import OrderJournal, conninfo
from quoting_worker.adapters.kafka_config import DEFAULT_SESSION_TIMEOUT_MS, consumer_config
from quoting_worker.adapters.live import (
    LIVE_TTL_SECONDS,
    commands_for,
    status_key,
    status_payload,
    status_record,
)
from quoting_worker.adapters.metadata import MetadataClient, MetadataError
from quoting_worker.adapters.metrics import PoolSample, QuoterMetrics
from quoting_worker.adapters.order_service import (
    OrderServiceClient,
    OrderServiceSink,
    RateBudget,
)
from quoting_worker.adapters.partitioning import partition_for
from quoting_worker.adapters.serde import AvroCodec, DecodeError, RegistryUnavailableError
from quoting_worker.adapters.translate import to_event
from quoting_worker.core.engine import PoolEngine
from quoting_worker.core.ids import ClientOrderIds, parse
from quoting_worker.core.types import (
    Action,
    CancelAll,
    CancelOrder,
    Command,
    Event,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentStatus,
    OrderAbandoned,
    OrderAccepted,
    OrderCancelled,
    OrderQueryResult,
    OrderRejected,
    PlaceOrder,
    PlaceOutcomeUnknown,
    PoolMode,
    QueryOrder,
    RequestSnapshot,
    RiskTriggered,
    SimulatedQuote,
    Timer,
    VenueOpenOrders,
)
from trading.enums import OrderStatus

logger = logging.getLogger("mms.quoter")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
# An event for the engine, the callback that marks its message done (Kafka
# events), and the trace context it carries when tracing is on.
QueueItem = tuple[Event, Callable[[], None] | None, Cause | None]
Consumed = tuple[str, str, int, int, dict[str, Any], Cause | None]
BATCH_SIZE = 500  # messages per consumer wake-up
COMMIT_INTERVAL_S = 0.1
BACKLOG_INTERVAL_S = 1.0  # the consumer lag in messages, from the last fetch's end offsets
# The venue cancels a member's orders on a symbol if not renewed within this;
# renewed every third of it, so two renewals may be lost before it fires.
DEAD_MANS_SWITCH_MS = 15_000
DEAD_MANS_SWITCH_SLOTS = 10  # a round of renewals goes out in at most this many steps
DRAIN_SLICE_S = 0.002  # an engine's drain yields to the loop after this much work
ORDER_TRAFFIC = (PlaceOrder, CancelOrder, CancelAll, QueryOrder, RequestSnapshot)
# A change notice naming one of these states closes the gate before the re-read.
CLOSING_STATES = {"PAUSED": "pause", "HALTED": "kill"}
OPENING_COMMANDS = frozenset({"enable", "resume"})
REGISTRY_FIRST_DELAY_S = 0.1  # a decode waiting for the registry tries again after this, doubling
REGISTRY_MAX_DELAY_S = 5.0
DATABASE_FIRST_DELAY_S = 0.1  # a durable write that failed is tried again after this, doubling
DATABASE_MAX_DELAY_S = 2.0
DATABASE_CHECK_INTERVAL_S = 1.0  # the database thread's connection checked at most this often
SUPERVISOR_FIRST_DELAY_S = 0.1  # a failed side task starts again after this, doubling
SUPERVISOR_MAX_DELAY_S = 5.0
STATUS_BATCH_S = 0.02  # venue answers' status changes reach mm_orders in batches this often
REJECT_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
VENUE_ANSWERS: dict[type, str] = {
    OrderAccepted: "accepted",
    OrderRejected: "rejected",
    OrderCancelled: "cancelled",
    PlaceOutcomeUnknown: "unknown",
}
SENT_AS: dict[type, str] = {
    PlaceOrder: "place",
    CancelOrder: "cancel",
    CancelAll: "cancel_all",
    QueryOrder: "query",
    RequestSnapshot: "snapshot",
}


def _symbol_logged(method: F) -> F:
    """Every log line of the method (and what it awaits) carries its symbol."""

    @functools.wraps(method)
    async def bound(self: Any, symbol: str, *args: Any, **kwargs: Any) -> Any:
        with structlog.contextvars.bound_contextvars(symbol=symbol):
            return await method(self, symbol, *args, **kwargs)

    return cast(F, bound)


# Python's default (700, 10, 10) ran a full collection every 2 s at 200 pools,
# each 300-450 ms with every thread stopped: 28 % of the worker's time went to
# the collector, and its pauses were the event lag's tail (bench/load.py's GC
# figures). A young collection every 50,000 net allocations lets what a
# request or a batch holds die by reference count before it is promoted.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_garbage_collector() -> None:
    """For a process that hosts a worker, before it starts: what is alive now
    (modules, settings, the ORM's models) is moved out of the collector's way
    for good (`gc.freeze`), and young collections come less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


@dataclass
class WorkerConfig:
    kafka_brokers: str
    registry_url: str
    order_service_url: str
    metadata_target: str
    redis_url: str
    group_id: str = "mms-quoter"
    partitions: int = 12
    shadow: bool = False
    # messaging/topics.py: a prefix for the broker's topic names ("" in production).
    topic_namespace: str = ""
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    status_interval_s: float = 1.0
    reread_interval_s: float = 5.0
    timer_interval_s: float = 0.05
    reconcile_interval_s: float = 10.0
    # The Order Service request budget of this process (a token bucket of one
    # second's burst); `cancel_reserve` tokens are kept for cancels and renewals.
    order_rate_per_s: int = 100
    cancel_reserve: int = 10


@dataclass
class Hosted:
    symbol: str
    engine: PoolEngine
    instrument: Instrument
    token: int
    queue: asyncio.Queue[QueueItem | None]
    task: asyncio.Task[None] | None = None
    version: int = 0
    # Commands overtake the market events queued before them (a pause must not
    # wait behind a backlog of deltas): the engine takes these first.
    # Each with the monotonic ns of the row read that decided it (None: not a read).
    urgent: deque[tuple[Command, Cause | None, int | None]] = field(default_factory=deque)
    # Monotonic ns before which a row read cannot resume the engine: the gate was
    # closed by what the row may not show yet. A kill-switch trip: +inf while its
    # halt is being written, then when it is on record. A change notice: when it
    # was heard (a re-read already under way may have read the row before the
    # change committed).
    closed_ns: float = 0.0
    # Order traffic, in the engine's order: the sender works through it while
    # the drain goes on applying market data (a slow venue never stalls the book).
    sends: asyncio.Queue[tuple[list[Action], Cause | None] | None] = field(
        default_factory=asyncio.Queue
    )
    sender: asyncio.Task[None] | None = None
    # The trace context of the event or command being applied (tracing on): the
    # orders the engine decides now are sent under it.
    cause: Cause | None = None


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


class QuoterWorker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.clock = SystemClock()
        self.ids = ClientOrderIds(self.clock.now_ns)
        self.hosted: dict[str, Hosted] = {}
        self.instruments: dict[str, Instrument] = {}
        self.user_ids: dict[str, str] = {}
        self.topics = Topics(config.topic_namespace)
        self.offsets = OffsetTracker()
        self._status_changes: defaultdict[str, list[store.OrderChange]] = defaultdict(list)
        self._database_probe: asyncio.Task[None] | None = None  # while the database is lost
        # Symbols a change notice named, waiting for their re-read (in arrival order).
        self._noticed: asyncio.Queue[tuple[str, Cause | None]] = asyncio.Queue()
        self.skipped: defaultdict[str, int] = defaultdict(int)
        self.assigned: set[tuple[str, int]] = set()
        # Symbols whose partitions the group took away because it thought this worker
        # dead (its session expired: a broker outage, a stalled process): getting them
        # back is a takeover, as if another worker had held them meanwhile.
        self.lost: set[str] = set()
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.codec = AvroCodec(config.registry_url)
        self.client = OrderServiceClient(
            config.order_service_url,
            user_ids=self.user_ids,
            budget=RateBudget(
                rate_per_s=config.order_rate_per_s,
                burst=config.order_rate_per_s,
                reserve=config.cancel_reserve,
            ),
        )
        self.sink = OrderServiceSink(
            self.client,
            instruments=self.instruments,
            on_event=self._venue_event,
            may_place=self._may_place,
        )
        self.metrics = QuoterMetrics()
        self.client.on_request = self.metrics.order_request
        self.sink.on_resolved = self.metrics.unknown_resolved.observe
        self.metadata = MetadataClient(config.metadata_target)
        self.journal = OrderJournal(conninfo(connections["default"].settings_dict))
        self.redis = aioredis.from_url(config.redis_url)
        self._consumer_thread: threading.Thread | None = None
        # Every ORM call runs on this one thread: one connection, closed at shutdown.
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quoter-db")
        self._db_calls = DatabaseCalls()
        self._lock = asyncio.Lock()
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self.identity = {
            "worker_id": config.worker_id,
            "build": build_hash(),
            "config": config_hash(
                {"partitions": config.partitions, "group": config.group_id, "shadow": config.shadow}
            ),
        }
        self.metrics.info.labels(config.worker_id, self.identity["build"]).set(1)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self._consumer_thread = threading.Thread(
            target=self._consume, name="kafka-consumer", daemon=True
        )
        self._consumer_thread.start()
        side = [
            asyncio.create_task(self._supervised(loop_body), name=loop_body.__name__)
            for loop_body in (
                self._publish_status_forever,
                self._listen_forever,
                self._sync_noticed_forever,
                self._reread_forever,
                self._tick_forever,
                self._reconcile_forever,
                self._renew_dead_mans_switches_forever,
                self._record_statuses_forever,
            )
        ]
        try:
            await stop.wait()
        finally:
            if self._database_probe is not None:
                side.append(self._database_probe)
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self.shutdown()

    async def _supervised(self, loop_body: Callable[[], Awaitable[None]]) -> None:
        """Runs a side task for the life of the worker: an exception (Redis or the
        database restarting, a broken connection) is logged and counted, and the
        task starts again after a back-off, instead of ending for good while the
        worker goes on without it (no pool changes heard, no re-reads)."""
        name = getattr(loop_body, "__name__", "task").strip("_")
        delay = SUPERVISOR_FIRST_DELAY_S
        while True:
            started = time.monotonic()
            try:
                await loop_body()
                return
            except (DatabaseError, RedisError, psycopg.Error) as exc:
                # An outage the task outlives: one line, not a traceback per retry.
                self.metrics.task_restarts.labels(name).inc()
                logger.error("%s failed (%s); started again in %.1f s", name, exc, delay)
            except Exception:
                self.metrics.task_restarts.labels(name).inc()
                logger.exception("%s failed; started again in %.1f s", name, delay)
            if time.monotonic() - started > SUPERVISOR_MAX_DELAY_S:
                delay = SUPERVISOR_FIRST_DELAY_S  # it had run well for a while
            await asyncio.sleep(delay)
            delay = min(delay * 2, SUPERVISOR_MAX_DELAY_S)

    async def shutdown(self) -> None:
        """Every gate closes and every order is cancelled explicitly (a graceful exit
        does not fire the venue's cancel-on-disconnect), every symbol at once: one
        after another, 200 pools took longer than SHUTDOWN_TIMEOUT (bench/load.py)."""
        self.stopping.set()
        started = time.monotonic()
        symbols = list(self.hosted)
        released = await asyncio.gather(
            *(self._release(symbol, reason="shutdown") for symbol in symbols),
            return_exceptions=True,
        )
        for symbol, outcome in zip(symbols, released, strict=True):
            if isinstance(outcome, BaseException):
                logger.error("%s: release at shutdown failed: %r", symbol, outcome)
        logger.info(
            "shutdown: %d pools released in %.2f s", len(symbols), time.monotonic() - started
        )
        if self._consumer_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._consumer_thread.join, 15)
            if self._consumer_thread.is_alive():
                logger.error("shutdown: the Kafka consumer has not closed after 15 s")
            else:
                logger.info("shutdown: consumer closed at %.2f s", time.monotonic() - started)
        await self.client.aclose()
        await self.metadata.close()
        await self.journal.close()
        await self.redis.delete(WORKER_KEY.format(worker_id=self.config.worker_id))
        await self.redis.aclose()
        await self._db(connections.close_all)
        self._db_thread.shutdown(wait=True)

    async def _db(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Runs an ORM call on the worker's database thread, in a copy of the caller's
        context (its trace and log fields; Django's connections are per thread)."""
        loop = asyncio.get_running_loop()
        call = partial(contextvars.copy_context().run, self._db_calls, fn, *args, **kwargs)
        return await loop.run_in_executor(self._db_thread, call)

    async def _durably(
        self, hosted: Hosted, record: str, fn: Callable[..., T], /, **kwargs: Any
    ) -> T:
        """`fn` on the database thread until it succeeds: a fill, a funding payment
        or a halt that is not on record must be neither lost (its message's offset
        waits, and so does the symbol's queue) nor quoted past. The first failure
        suspends quoting (see `_database_lost`); this symbol's engine is told at
        once, since its queue waits here."""
        delay = DATABASE_FIRST_DELAY_S
        while True:
            try:
                return await self._db(fn, **kwargs)
            except DatabaseError as exc:
                self.metrics.database_retries.labels(hosted.symbol, record).inc()
                reason = self._database_lost(f"{hosted.symbol} {record}", exc)
                suspend = Command("suspend", self.clock.now_ns(), reason)
                await self._execute(hosted, hosted.engine.handle(suspend))
            await asyncio.sleep(delay)
            delay = min(delay * 2, DATABASE_MAX_DELAY_S)

    def _database_lost(self, what: str, exc: BaseException) -> str:
        """A durable write failed: no pool may quote without its record (nor while a
        pause could not reach it), so every hosted pool is suspended, its orders
        withdrawn, until the database answers again; then each resumes by itself
        (a suspension is not a halt: the mode is kept). Returns the reason."""
        reason = "database unavailable"
        if self._database_probe is not None and not self._database_probe.done():
            return reason
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.error(
            "%s not recorded (%s): quoting suspended on every pool until the database is back",
            what,
            first_line,
            extra={"record": what},
        )
        self.metrics.database_outages.inc()
        for hosted in self.hosted.values():
            self._command(hosted, Command("suspend", self.clock.now_ns(), reason))
        self._database_probe = asyncio.get_running_loop().create_task(self._await_database())
        return reason

    async def _await_database(self) -> None:
        delay = DATABASE_FIRST_DELAY_S
        lost = time.monotonic()
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, DATABASE_MAX_DELAY_S)
            try:
                await self._db(database_answers)
            except DatabaseError:
                continue
            break
        logger.warning(
            "database back after %.1f s: quoting resumes on every pool", time.monotonic() - lost
        )
        for hosted in self.hosted.values():
            self._command(hosted, Command("unsuspend", self.clock.now_ns()))

    # ------------------------------------------------------------------ Kafka thread

    def _consume(self) -> None:
        consumer = Consumer(
            consumer_config(
                bootstrap=self.config.kafka_brokers,
                group_id=self.config.group_id,
                client_id=self.config.worker_id,
                session_timeout_ms=self.config.session_timeout_ms,
            )
        )
        consumer.subscribe(
            self.topics.names(names.CONSUMED),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
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
                    item for item in (self._take(m, stamps) for m in messages) if item is not None
                ]
                if stamps:
                    self._measure_consumed(items, stamps)
                if items:
                    self._loop().call_soon_threadsafe(self._route_batch, items)
                if time.monotonic() - last_backlog >= BACKLOG_INTERVAL_S:
                    last_backlog = time.monotonic()
                    self._measure_backlog(consumer)
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                    last_commit = time.monotonic()
                    commits = self.offsets.to_commit(self.topics.name)
                    if commits:
                        try:
                            consumer.commit(offsets=commits, asynchronous=True)
                        except Exception:
                            logger.warning("offset commit failed", exc_info=True)
        finally:
            commits = self.offsets.to_commit(self.topics.name)
            if commits:
                try:
                    consumer.commit(offsets=commits, asynchronous=False)
                except Exception:
                    logger.warning("final offset commit failed", exc_info=True)
            consumer.close()

    def _take(self, message: Message, stamps: dict[tuple[str, int], list[int]]) -> Consumed | None:
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

    def _logical(self, partitions: list[TopicPartition]) -> set[tuple[str, int]]:
        return {(self.topics.logical(tp.topic), tp.partition) for tp in partitions}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._run_on_loop(self._assign(self._logical(partitions)))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._on_revoke(consumer, partitions, lost=True)

    def _on_revoke(
        self, consumer: Consumer, partitions: list[TopicPartition], *, lost: bool = False
    ) -> None:
        revoked = self._logical(partitions)
        for topic, partition in revoked:
            self.offsets.forget(topic, partition)
            self.metrics.partition_revoked(topic, partition)
        self._run_on_loop(self._revoke(revoked, lost=lost))

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError("the worker's event loop is not running")
        return self.loop

    def _run_on_loop(self, coroutine: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop())
        try:
            future.result(timeout=30)
        except Exception:
            logger.exception("rebalance handling failed")

    # ------------------------------------------------------------------ ownership

    async def _assign(self, partitions: set[tuple[str, int]]) -> None:
        self.assigned |= partitions
        for symbol in await self._db(self._enabled_symbols):
            if self._owns(symbol):
                await self._host(symbol)

    async def _revoke(self, partitions: set[tuple[str, int]], *, lost: bool = False) -> None:
        """`lost`: the group took the partitions because it thought this worker dead
        (its session expired); getting them back later is a takeover."""
        self.assigned -= partitions
        for symbol in list(self.hosted):
            if not self._owns(symbol):
                if lost:
                    self.lost.add(symbol)
                await self._release(
                    symbol, reason="consumer group session lost" if lost else "partition revoked"
                )

    def _owns(self, symbol: str, assigned: Collection[tuple[str, int]] | None = None) -> bool:
        """A symbol is owned only with its partition of every consumed topic: its
        book, marks and engine events all reach this worker, or none is used
        (`assigned`: the assignment as it was, by default as it is)."""
        assigned = self.assigned if assigned is None else assigned
        partition = partition_for(symbol, self.config.partitions)
        return all((topic, partition) in assigned for topic in names.CONSUMED)

    @staticmethod
    def _enabled_symbols() -> list[str]:
        return list(
            PoolConfig.objects.filter(enabled=True, archived_at__isnull=True).values_list(
                "symbol", flat=True
            )
        )

    @_symbol_logged
    async def _host(self, symbol: str, *, takeover: bool = True) -> None:
        """Hosts `symbol`'s engine. At boot and on taking a symbol over (`takeover`),
        an ACTIVE pool goes PAUSED first (SPEC B.9); not when the worker starts
        hosting a pool because a person just enabled it."""
        async with self._lock:
            if symbol in self.hosted or self.stopping.is_set():
                return
            strangers = await self._disagreeing_peers()
            if strangers:
                logger.error(
                    "%s: not hosted: peers %s run other code or config than %s",
                    symbol,
                    strangers,
                    self.identity,
                )
                return
            try:
                instrument, halted = await self.metadata.get_instrument(symbol)
            except MetadataError as exc:
                logger.error("%s: no metadata, not hosted: %s", symbol, exc)
                return
            token, previous = await self._db(
                lease_acquire, symbol=symbol, owner=self.config.worker_id
            )
            lost = symbol in self.lost
            self.lost.discard(symbol)
            if takeover and (previous != self.config.worker_id or lost):
                await self._db(
                    store.pool_boot_pause,
                    symbol=symbol,
                    worker_id=self.config.worker_id,
                    reason="worker start or takeover",
                )
            setup = await self._db(store.pool_setup, symbol=symbol)
            if setup is None:
                return
            restore = await self._db(store.restore_data, symbol=symbol, instrument=instrument)
            self.user_ids.update(setup.user_ids)
            self.instruments[symbol] = instrument
            engine = PoolEngine(
                instrument=instrument,
                params=setup.params,
                members=setup.members,
                clock=self.clock,
                ids=self.ids,
                shadow=self.config.shadow,
                mode=setup.mode,
            )
            engine.on_quote = partial(self.metrics.quote_timed, symbol)
            boot = engine.restore(
                fills=restore.fills, open_orders=restore.open_orders, funding=restore.funding
            )
            boot += engine.handle(InstrumentStatus(halted, self.clock.now_ns()))
            boot.append(RequestSnapshot(f"{symbol}: hosted"))
            hosted = Hosted(symbol, engine, instrument, token, asyncio.Queue())
            self.hosted[symbol] = hosted
            hosted.task = asyncio.create_task(self._drain(hosted), name=f"engine-{symbol}")
            hosted.sender = asyncio.create_task(self._send_forever(hosted), name=f"send-{symbol}")
            await self._execute(hosted, boot)
            logger.info("%s: hosted with token %s (%s)", symbol, token, setup.mode)

    async def _release(self, symbol: str, *, reason: str) -> None:
        """Stops quoting `symbol` and gives it up: gate closed, orders cancelled,
        queued work finished, lease released. A release asked for while one is
        under way (a shutdown, and the partition revoke the consumer's close
        brings) waits for that one instead of running a second beside it."""
        releasing = self._releasing.get(symbol)
        if releasing is None:
            releasing = asyncio.create_task(self._release_now(symbol, reason=reason))
            self._releasing[symbol] = releasing
            releasing.add_done_callback(lambda _: self._releasing.pop(symbol, None))
        await asyncio.shield(releasing)

    @_symbol_logged
    async def _release_now(self, symbol: str, *, reason: str) -> None:
        hosted = self.hosted.get(symbol)
        if hosted is None:
            return
        actions = hosted.engine.handle(Command("pause", self.clock.now_ns(), reason=reason))
        await self._execute(hosted, actions)
        await hosted.queue.put(None)
        if hosted.task is not None:
            done, _ = await asyncio.wait({hosted.task}, timeout=10)
            if not done:  # a durable write still waiting for the database: its offset is
                hosted.task.cancel()  # not committed, so the next owner reads it again
        hosted.sends.put_nowait(None)  # after everything the engine decided
        if hosted.sender is not None:
            await asyncio.wait({hosted.sender}, timeout=30)
        await self._record_statuses([symbol])
        self.hosted.pop(symbol, None)
        self.metrics.forget(symbol)
        await self.redis.delete(status_key(symbol))
        await self._db(
            lease_release, symbol=symbol, owner=self.config.worker_id, token=hosted.token
        )
        logger.info("%s: released (%s)", symbol, reason)

    # ------------------------------------------------------------------ events

    def _route_batch(self, items: list[Consumed]) -> None:
        for item in items:
            self._route(*item)

    def _route(
        self,
        symbol: str,
        topic: str,
        partition: int,
        offset: int,
        record: dict[str, Any],
        cause: Cause | None = None,
    ) -> None:
        def done() -> None:
            self.offsets.done(topic, partition, offset)

        hosted = self.hosted.get(symbol)
        if hosted is None:
            done()
            return
        try:
            event = to_event(topic, record, hosted.instrument)
        except (ValueError, KeyError) as exc:
            self._skip("untranslatable")
            logger.warning("skipped %s[%s]@%s: %s", topic, partition, offset, exc)
            done()
            return
        if event is None:
            done()
            return
        hosted.queue.put_nowait((event, done, cause))

    async def _venue_event(self, event: Event) -> None:
        """An Order Service answer: to its engine at once; the order's new status
        goes to mm_orders in the next batch (`_record_statuses_forever`). The
        record is history and the restart's hint, never the engine's source: an
        order whose last status a crash lost is settled by reconciliation."""
        symbol = self._symbol_of(event)
        hosted = self.hosted.get(symbol) if symbol else None
        if hosted is None:
            return
        change = _order_change(event)
        if change is not None:
            self._status_changes[hosted.symbol].append(change)
        answer = VENUE_ANSWERS.get(type(event))
        if answer is not None:
            self.metrics.order_events.labels(hosted.symbol, answer).inc()
        if isinstance(event, OrderRejected):
            self._rejected(hosted, event)
        hosted.queue.put_nowait((event, None, None))

    def _rejected(self, hosted: Hosted, reject: OrderRejected) -> None:
        """A rejection, counted by the venue's reason and logged with its order: a
        run of them trips REJECT_STORM, and the desk will ask why."""
        reason = reject_reason_label(reject.reason)
        self.metrics.order_rejects.labels(hosted.symbol, reason).inc()
        try:
            pid = hosted.engine.by_short.get(parse(reject.client_order_id).short_id)
        except ValueError:
            pid = None
        logger.warning(
            "%s: order %s rejected: %s",
            hosted.symbol,
            reject.client_order_id,
            reject.reason,
            extra={"symbol": hosted.symbol, "participant_id": pid, "reason": reason},
        )

    async def _record_statuses_forever(self) -> None:
        while True:
            await asyncio.sleep(STATUS_BATCH_S)
            await self._record_statuses()

    async def _record_statuses(self, symbols: Iterable[str] | None = None) -> None:
        """The waiting status changes (of `symbols`, or all), one transaction per symbol."""
        for symbol in list(self._status_changes if symbols is None else symbols):
            changes = self._status_changes.pop(symbol, [])
            hosted = self.hosted.get(symbol)
            if hosted is None or not changes:
                continue
            try:
                await self._db(
                    store.orders_record,
                    symbol=symbol,
                    token=hosted.token,
                    instrument=hosted.instrument,
                    changes=changes,
                )
                if any(c.status is OrderStatus.OPEN for c in changes):
                    failpoint("place.acked")
            except StaleLease:
                logger.error(
                    "%s: lease lost; %d status changes not recorded",
                    symbol,
                    len(changes),
                    extra={"symbol": symbol},
                )
            except DatabaseError as exc:
                # Kept for the next batch (one transaction: nothing of it was written).
                self._status_changes[symbol][:0] = changes
                self._database_lost(f"{symbol} order statuses", exc)
            except Exception:
                self._status_changes[symbol][:0] = changes
                logger.exception(
                    "%s: %d status changes not recorded; trying again",
                    symbol,
                    len(changes),
                    extra={"symbol": symbol},
                )

    @staticmethod
    def _symbol_of(event: Event) -> str | None:
        coid = getattr(event, "client_order_id", None)
        try:
            return parse(coid).symbol if coid else None
        except ValueError:
            return None

    async def _drain(self, hosted: Hosted) -> None:
        """The engine's one consumer. Commands waiting in `urgent` go before the next
        queued event. What is queued is applied under the engine's hold and quoted
        once at the end (a backlog is never re-quoted event by event, each time off
        a state already superseded); after DRAIN_SLICE_S of work the task quotes and
        yields, so a backlog on one symbol never holds up the loop's timers,
        renewals or other symbols."""
        structlog.contextvars.bind_contextvars(symbol=hosted.symbol)  # this task's lines
        loop = asyncio.get_running_loop()
        engine = hosted.engine
        lag = self.metrics.event_lag.labels(hosted.symbol)
        while True:
            item = await hosted.queue.get()
            if item is None:
                return
            slice_ends = loop.time() + DRAIN_SLICE_S
            # The oldest event of the batch: the most any of it waited.
            lag.observe(max(0, self.clock.now_ns() - item[0].ts_ns) / 1e9)
            stop = False
            engine.hold()
            try:
                while True:
                    while hosted.urgent:
                        command, cause, read_ns = hosted.urgent.popleft()
                        if self._stale_opening(hosted, command, read_ns):
                            continue
                        await self._apply(hosted, command, None, cause)
                    await self._apply(hosted, *item)
                    if hosted.queue.empty() or loop.time() >= slice_ends:
                        break
                    next_item = hosted.queue.get_nowait()
                    if next_item is None:
                        stop = True
                        break
                    item = next_item
            finally:
                await self._quote_held(hosted)
                hosted.cause = None
            if stop:
                return
            if loop.time() >= slice_ends:
                await asyncio.sleep(0)

    @staticmethod
    def _stale_opening(hosted: Hosted, command: Command, read_ns: int | None) -> bool:
        """Whether `command` would open the gate on a row read before the gate was
        last closed by what the row may not show yet (`Hosted.closed_ns`): that
        ACTIVE is stale, so it is dropped. Judged as the command is applied, not
        when it was decided: a closing notice can be heard in between."""
        if read_ns is None or command.kind not in OPENING_COMMANDS:
            return False
        if read_ns > hosted.closed_ns:
            return False
        logger.info(
            "%s: %s from a row read before the gate last closed: ignored",
            hosted.symbol,
            command.kind,
        )
        return True

    async def _quote_held(self, hosted: Hosted) -> None:
        try:
            actions = hosted.engine.release()
            if actions:
                await self._execute(hosted, actions)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", hosted.symbol)
        except Exception:
            logger.exception("%s: quoting after a drain failed", hosted.symbol)

    def _command(
        self,
        hosted: Hosted,
        command: Command,
        cause: Cause | None = None,
        *,
        read_ns: int | None = None,
    ) -> None:
        """Queues `command` ahead of the engine's events; `read_ns`: when the row
        that decided it was read (`_sync`)."""
        hosted.urgent.append((command, cause, read_ns))
        hosted.queue.put_nowait((Timer(self.clock.now_ns()), None, None))  # wakes an idle drain

    async def _apply(
        self,
        hosted: Hosted,
        event: Event,
        done: Callable[[], None] | None,
        cause: Cause | None = None,
    ) -> None:
        if cause is not None:
            hosted.cause = cause
        try:
            if isinstance(event, Fill):
                self.metrics.fills.labels(hosted.symbol).inc()
                await self._store_fill(hosted, event)
                failpoint("fill.stored")
            elif isinstance(event, FundingPayment):
                await self._store_funding(hosted, event)
            actions = hosted.engine.handle(event)
            if actions:
                await self._execute(hosted, actions)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", hosted.symbol)
        except Exception:
            logger.exception("%s: event %s failed", hosted.symbol, type(event).__name__)
        finally:
            if done is not None:
                done()

    async def _store_funding(self, hosted: Hosted, payment: FundingPayment) -> None:
        """Stored before the engine applies it, as fills are (offsets follow)."""
        pid = hosted.engine.by_account.get(payment.account_id)
        if pid is None:
            return
        await self._durably(
            hosted,
            "funding",
            store.funding_record,
            symbol=hosted.symbol,
            token=hosted.token,
            payments=[(pid, payment)],
        )

    async def _store_fill(self, hosted: Hosted, fill: Fill) -> None:
        """Stored with the PnL it realises for its member, before the engine books it."""
        member = hosted.engine._owner_of(fill.client_order_id)
        if member is None:
            return
        await self._durably(
            hosted,
            "fill",
            store.fills_record,
            symbol=hosted.symbol,
            token=hosted.token,
            instrument=hosted.instrument,
            fills=[(member.spec.participant_id, fill)],
            realised={fill.fill_id: member.runtime.realised_by(fill)},
        )

    async def _execute(self, hosted: Hosted, actions: Sequence[Action]) -> None:
        """Order traffic to the symbol's sender (first: cancels must not wait for a
        record); kill-switch trips and shadow quotes recorded here."""
        traffic: list[Action] = [a for a in actions if isinstance(a, ORDER_TRAFFIC)]
        if traffic:
            hosted.sends.put_nowait((traffic, hosted.cause))
        for action in actions:
            if isinstance(action, RiskTriggered):
                await self._record_trip(hosted, action, traffic)
            elif isinstance(action, OrderAbandoned):
                self._status_changes[hosted.symbol].append(
                    store.OrderChange(
                        action.client_order_id, OrderStatus.CANCELLED, reason=action.reason
                    )
                )
                self.metrics.order_events.labels(hosted.symbol, "abandoned").inc()
        simulated = [a for a in actions if isinstance(a, SimulatedQuote)]
        if simulated:
            await self._db(self._record_simulated, hosted, simulated)

    async def _record_trip(
        self, hosted: Hosted, trip: RiskTriggered, traffic: Sequence[Action]
    ) -> None:
        """A kill switch fired: counted, logged with the orders it cancels (under the
        trace of the event that tripped it), and the halt put on record."""
        self.metrics.kill_switches.labels(hosted.symbol, trip.trigger).inc()
        cancelled = sorted(a.client_order_id for a in traffic if isinstance(a, CancelOrder))
        accounts = sorted(
            {acc for a in traffic if isinstance(a, CancelAll) for acc in a.account_ids}
        )
        hosted.closed_ns = math.inf
        try:
            with tracing.span(
                "pool.halt",
                context=tracing.resolve(hosted.cause),
                attributes={"mms.symbol": hosted.symbol, "mms.trigger": trip.trigger},
            ):
                logger.warning(
                    "%s: pool HALTED by %s (%s); cancelling %d orders and all orders of %s",
                    hosted.symbol,
                    trip.trigger,
                    trip.detail,
                    len(cancelled),
                    accounts,
                    extra={
                        "symbol": hosted.symbol,
                        "trigger": trip.trigger,
                        "cancelled_orders": cancelled,
                    },
                )
                # Until the halt is on record a re-read of the row (still ACTIVE) is
                # stale and must not resume the pool: closed_ns stays at +inf.
                await self._durably(
                    hosted,
                    "halt",
                    store.pool_halt,
                    symbol=hosted.symbol,
                    worker_id=self.config.worker_id,
                    trigger=trip.trigger,
                    detail=trip.detail,
                )
        finally:
            hosted.closed_ns = time.monotonic_ns()

    async def _send_forever(self, hosted: Hosted) -> None:
        """Hands the engine's order traffic to the sink in order, without waiting
        for the last batch's answers (the sink holds back only what depends on a
        request under way, so a placement left hanging never holds up a cancel-all
        or a query). What queued meanwhile goes as one batch, so the sink can
        withdraw what it no longer wants: a placement a later cancel withdraws,
        and every placement once the pool is not ACTIVE (the gate is checked when
        an order leaves, not only when it was decided). The engine hears that
        those were never placed. On None, it returns once every batch under way
        is answered."""
        structlog.contextvars.bind_contextvars(symbol=hosted.symbol)  # this task's lines
        under_way: set[asyncio.Task[None]] = set()
        try:
            while True:
                first = await hosted.sends.get()
                if first is None:
                    return
                batch, cause = first
                causes = [cause] if cause is not None else []
                stop = False
                while not hosted.sends.empty():
                    more = hosted.sends.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch += more[0]
                    if more[1] is not None and more[1] not in causes:
                        causes.append(more[1])
                if batch:
                    task = asyncio.create_task(self._send_batch(hosted, batch, causes))
                    under_way.add(task)
                    task.add_done_callback(under_way.discard)
                if stop:
                    return
        finally:
            if under_way:
                await asyncio.wait(under_way)

    async def _send_batch(self, hosted: Hosted, batch: list[Action], causes: list[Cause]) -> None:
        try:
            parents = [tracing.resolve(c) for c in causes]
            with tracing.span(
                "orders.send",
                context=parents[0] if parents else None,
                links=[p for p in parents[1:] if p is not None],
                attributes={"mms.symbol": hosted.symbol, "mms.actions": len(batch)},
            ):
                await self._send(hosted, batch)
        except StaleLease:
            logger.error("%s: another worker holds the symbol now", hosted.symbol)
        except (DatabaseError, psycopg.Error) as exc:
            # The write-ahead record failed, so no placement went.
            self._database_lost(f"{hosted.symbol} orders", exc)
        except Exception:
            logger.exception("%s: order traffic failed", hosted.symbol)

    def _may_place(self, symbol: str) -> bool:
        """The gate as a placement leaves the process (after any wait for its turn):
        the pool ACTIVE, not suspended, and its book not gone stale meanwhile."""
        hosted = self.hosted.get(symbol)
        return (
            hosted is not None
            and hosted.engine.mode is PoolMode.ACTIVE
            and not hosted.engine.suspended
            and hosted.engine.book_fresh(self.clock.now_ns())
        )

    async def _send(self, hosted: Hosted, actions: list[Action]) -> None:
        sent = Counter(SENT_AS[type(a)] for a in actions if type(a) in SENT_AS)
        for action, n in sent.items():
            self.metrics.orders_sent.labels(hosted.symbol, action).inc(n)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: sending %s",
                hosted.symbol,
                dict(sent),
                extra={"client_order_ids": [getattr(a, "client_order_id", None) for a in actions]},
            )

        async def journal(placed: list[PlaceOrder]) -> None:
            """Write-ahead: an order is on record before it can exist at the venue
            (the placements that go; cancels need no record and do not wait)."""
            await self.journal.record(
                symbol=hosted.symbol,
                token=hosted.token,
                instrument=hosted.instrument,
                placed=placed,
                sent_ns=self.clock.now_ns(),
            )

        await self.sink.execute(hosted.symbol, actions, before_places=journal)

    def _record_simulated(self, hosted: Hosted, quotes: list[SimulatedQuote]) -> None:
        now = self.clock.now_ns()
        with transaction.atomic():
            for quote in quotes:
                outbox_enqueue(
                    topic=names.QUOTE_SIMULATED,
                    key=hosted.symbol,
                    event_type="SimulatedQuote",
                    payload={
                        "symbol": hosted.symbol,
                        "participant_id": quote.participant_id,
                        "side": quote.side.value,
                        "level": quote.level,
                        "price": str(hosted.instrument.price(quote.price_ticks)),
                        "size": str(hosted.instrument.size(quote.size_lots)),
                        "ts_ns": now,
                    },
                )

    # ------------------------------------------------------------------ side tasks

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.timer_interval_s)
            now = self.clock.now_ns()
            for hosted in list(self.hosted.values()):
                hosted.queue.put_nowait((Timer(now), None, None))

    async def _reconcile_forever(self) -> None:
        """Every reconcile interval, each member account's open orders at the venue are
        compared with the engine's (RELIABILITY.md): strangers are cancelled, missing
        ones queried."""
        while True:
            await asyncio.sleep(self.config.reconcile_interval_s)
            for hosted in list(self.hosted.values()):
                for member in list(hosted.engine.members.values()):
                    account = member.spec.account_id
                    asked_ns = self.clock.now_ns()
                    try:
                        listed = await self.client.open_orders(account, hosted.symbol)
                    except Exception:
                        logger.warning(
                            "%s: reconciliation of %s failed",
                            hosted.symbol,
                            account,
                            extra={
                                "symbol": hosted.symbol,
                                "participant_id": member.spec.participant_id,
                            },
                        )
                        continue
                    event = VenueOpenOrders(
                        account, frozenset(o.client_order_id for o in listed), asked_ns
                    )
                    hosted.queue.put_nowait((event, None, None))

    async def _disagreeing_peers(self) -> list[str]:
        peers = []
        async for key in self.redis.scan_iter(match=WORKER_PATTERN):
            raw = await self.redis.get(key)
            if raw:
                peers.append(json.loads(raw))
        return disagreeing_peers(self.identity, peers)

    async def _renew_dead_mans_switches_forever(self) -> None:
        """Every member account's timer on every ACTIVE symbol is renewed once per
        period (a third of its timeout). A round goes out in at most
        DEAD_MANS_SWITCH_SLOTS steps spread over the period, and no renewal waits
        for another's answer: the load stays smooth (one burst of requests would
        stall quoting), and a busy loop delays a round by a few of its
        iterations, never by one per account."""
        loop = asyncio.get_running_loop()
        period_s = DEAD_MANS_SWITCH_MS / 3000
        # At most one renewal per (account, symbol) under way: when the request
        # budget cannot keep up, rounds are skipped (and counted) instead of
        # piling up tasks without bound.
        pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        try:
            while True:
                started = loop.time()
                pairs = [
                    (member.spec.account_id, hosted.symbol)
                    for hosted in list(self.hosted.values())
                    if hosted.engine.mode is PoolMode.ACTIVE and not self.config.shadow
                    for member in list(hosted.engine.members.values())
                ]
                per_slot = max(1, -(-len(pairs) // DEAD_MANS_SWITCH_SLOTS))
                for slot, first in enumerate(range(0, len(pairs), per_slot)):
                    due = started + slot * period_s / DEAD_MANS_SWITCH_SLOTS
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    for pair in pairs[first : first + per_slot]:
                        if pair in pending:
                            self.metrics.renewals_skipped.inc()
                            continue
                        task = asyncio.create_task(self._renew_dead_mans_switch(*pair))
                        pending[pair] = task
                        task.add_done_callback(partial(_forget, pending, pair))
                await asyncio.sleep(max(0.0, started + period_s - loop.time()))
        finally:
            for task in list(pending.values()):
                task.cancel()

    async def _renew_dead_mans_switch(self, account_id: str, symbol: str) -> None:
        try:
            await self.client.renew_dead_mans_switch(account_id, symbol, DEAD_MANS_SWITCH_MS)
        except Exception as exc:
            hosted = self.hosted.get(symbol)
            logger.warning(
                "%s: dead-man's switch renewal for %s failed: %r",
                symbol,
                account_id,
                exc,
                extra={
                    "symbol": symbol,
                    "participant_id": hosted.engine.by_account.get(account_id) if hosted else None,
                },
            )

    async def _publish_status_forever(self) -> None:
        """Every status interval: each pool's live status to the metrics and Redis.
        A Redis outage costs the live status (the API reads the pool as down), not
        the metrics, and the next round tries again."""
        while True:
            statuses = []
            for hosted in list(self.hosted.values()):
                status = hosted.engine.status()
                self.metrics.sample(
                    hosted.symbol,
                    PoolSample(
                        status,
                        queue_depth=hosted.queue.qsize(),
                        book_received_ns=hosted.engine.book.last_received_ns,
                        mark=hosted.engine.mark,
                    ),
                )
                statuses.append((hosted, status))
            try:
                await self.redis.set(
                    WORKER_KEY.format(worker_id=self.config.worker_id),
                    json.dumps(self.identity),
                    ex=LIVE_TTL_SECONDS,
                )
                for hosted, status in statuses:
                    hosted.version += 1
                    record = status_record(
                        status,
                        worker_id=self.config.worker_id,
                        version=hosted.version,
                        now_ns=self.clock.now_ns(),
                    )
                    await self.redis.set(
                        status_key(hosted.symbol), status_payload(record), ex=LIVE_TTL_SECONDS
                    )
            except (RedisError, OSError) as exc:
                logger.warning("live status not published: %r", exc)
            await asyncio.sleep(self.config.status_interval_s)

    async def _listen_forever(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(POOL_CHANGED_CHANNEL, FLATTEN_CHANNEL)
        try:
            async for message in pubsub.listen():
                channel = message["channel"].decode()
                if channel == FLATTEN_CHANNEL:
                    await self._flatten_pending()
                    continue
                notice = json.loads(message["data"])
                cause = tracing.context_from_carrier(notice.get("trace"))
                self._close_on_notice(notice, cause)
                self._noticed.put_nowait((notice["symbol"], cause))
        finally:
            await pubsub.aclose()

    def _close_on_notice(self, notice: dict[str, Any], cause: Cause | None) -> None:
        """A pause or halt closes the gate as soon as it is heard, before the row is
        read again: each re-read waits its turn on the one database thread, which
        at a kill of every pool is one pool after another. A notice is never
        trusted to open the gate (the re-read decides a resume), so a stray one
        can only stop quoting, the safe direction."""
        kind = CLOSING_STATES.get(str(notice.get("state")))
        hosted = self.hosted.get(notice["symbol"])
        if kind is None or hosted is None:
            return
        # A re-read under way may have read the row before the change: its ACTIVE
        # must not resume the engine, whatever its mode now (the notice's own
        # re-read comes after, and a later resume has a notice of its own).
        hosted.closed_ns = max(hosted.closed_ns, time.monotonic_ns())
        if hosted.engine.mode is PoolMode.ACTIVE:
            reason = f"{notice.get('reason', 'change')} notice"
            self._command(hosted, Command(kind, self.clock.now_ns(), reason=reason), cause)

    async def _sync_noticed_forever(self) -> None:
        """Re-reads the pools change notices name: every notice waiting is taken
        in one read (a kill of every pool sends one notice each)."""
        while True:
            noticed = dict([await self._noticed.get()])
            while not self._noticed.empty():
                symbol, cause = self._noticed.get_nowait()
                noticed[symbol] = cause
            await self._sync(noticed)

    async def _reread_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reread_interval_s)
            await self._sync(every_enabled=True)
            await self._flatten_pending()

    async def _sync(
        self, noticed: Mapping[str, Cause | None] | None = None, *, every_enabled: bool = False
    ) -> None:
        """Applies what the database says (the one authority) about the `noticed`
        pools (with the trace of the notice that asked), or, with `every_enabled`,
        about every hosted and every enabled pool: all of them in one read."""
        noticed = noticed or {}
        # Decided before reading the rows: a symbol assigned meanwhile is hosted by
        # the assignment (with its boot pause), never from a row read before it.
        assigned = frozenset(self.assigned)
        named = noticed.keys() | (self.hosted.keys() if every_enabled else set())
        hosted = {symbol: self.hosted.get(symbol) for symbol in named}
        read_ns = time.monotonic_ns()
        setups = await self._db(self._setups, list(hosted), every_enabled)
        for symbol in sorted(hosted.keys() | setups.keys()):
            await self._sync_one(
                symbol,
                setups.get(symbol),
                hosted.get(symbol),
                owned_before=self._owns(symbol, assigned),
                read_ns=read_ns,
                cause=noticed.get(symbol),
            )

    @_symbol_logged
    async def _sync_one(
        self,
        symbol: str,
        setup: store.PoolSetup | None,
        hosted: Hosted | None,
        *,
        owned_before: bool,
        read_ns: int,
        cause: Cause | None,
    ) -> None:
        """`symbol`'s row, read at `read_ns` while `hosted` was its engine, applied."""
        if hosted is None:
            if setup is not None and setup.enabled and owned_before and self._owns(symbol):
                # Enabled while this worker owns the partition: not a takeover, so an
                # ACTIVE pool stays ACTIVE (the engine starts in the row's state).
                await self._host(symbol, takeover=False)
            return
        if self.hosted.get(symbol) is not hosted:
            return  # released (or hosted again, from a read of its own) meanwhile
        if setup is None or not setup.enabled:
            await self._release(symbol, reason="pool archived or disabled")
            return
        self.user_ids.update(setup.user_ids)  # a new member's, read with the row
        for command in commands_for(setup, hosted.engine, now_ns=self.clock.now_ns()):
            self._command(hosted, command, cause, read_ns=read_ns)

    @staticmethod
    def _setups(symbols: list[str], every_enabled: bool) -> dict[str, store.PoolSetup]:
        return store.pool_setups(symbols=symbols, every_enabled=every_enabled)

    async def _flatten_pending(self) -> None:
        """Carries out durable flatten requests: cancel-all for every member account on
        every symbol, hosted here or not; completion recorded once."""
        requests = await self._db(self._pending_flattens)
        if not requests:
            return
        pairs = await self._db(self._all_member_accounts)
        for account_id, symbol in pairs:
            try:
                await self.client.cancel_all(account_id, symbol)
            except Exception:
                logger.exception(
                    "flatten: cancel-all %s %s failed", account_id, symbol, extra={"symbol": symbol}
                )
                return
        for hosted in list(self.hosted.values()):
            actions = hosted.engine.handle(Command("flatten", self.clock.now_ns()))
            await self._execute(hosted, [a for a in actions if not isinstance(a, CancelAll)])
        await self._db(self._complete_flattens, requests)

    @staticmethod
    def _pending_flattens() -> list[int]:
        return list(
            FlattenRequest.objects.filter(status=FlattenStatus.REQUESTED).values_list(
                "pk", flat=True
            )
        )

    @staticmethod
    def _all_member_accounts() -> list[tuple[str, str]]:
        return sorted(
            set(PoolMember.objects.values_list("participant__account_id", "pool__symbol"))
        )

    def _complete_flattens(self, ids: list[int]) -> None:
        with transaction.atomic():
            for request in FlattenRequest.objects.select_for_update().filter(
                pk__in=ids, status=FlattenStatus.REQUESTED
            ):
                request.status = FlattenStatus.COMPLETED
                request.completed_at = timezone.now()
                request.save(update_fields=["status", "completed_at"])
                audit_record(
                    entity_type="flatten",
                    entity_id=request.pk,
                    action="complete",
                    actor=store.quoter_actor(self.config.worker_id),
                    from_state=FlattenStatus.REQUESTED,
                    to_state=FlattenStatus.COMPLETED,
                )


def _forget(pending: dict[Any, Any], key: Any, _task: asyncio.Task[None]) -> None:
    pending.pop(key, None)


def database_answers() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


class DatabaseCalls:
    """Runs the worker's ORM calls on its one database thread. Before a call, at
    most once every DATABASE_CHECK_INTERVAL_S, the thread's connection is closed
    if it outlived CONN_MAX_AGE, and Django's health check (a `SELECT 1`) armed
    for its next query, so one idle across a server restart is replaced before
    use. Not before every call: at 200 pools those checks were 27 % of the
    thread (bench/load.py, py-spy). On a database error the connection is closed
    if it broke, so the next call connects afresh instead of failing on it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._checked_at = -math.inf

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        now = self._clock()
        if now - self._checked_at >= DATABASE_CHECK_INTERVAL_S:
            close_old_connections()
            self._checked_at = now
        try:
            return fn(*args, **kwargs)
        except DatabaseError:
            close_old_connections()
            raise


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


def reject_reason_label(reason: str) -> str:
    """The venue's reject code as a metric label: codes look like POST_ONLY_WOULD_CROSS;
    anything else (free text) is OTHER, so the label set stays small."""
    return reason if REJECT_CODE.fullmatch(reason) else "OTHER"


def _order_change(event: Event) -> store.OrderChange | None:
    if isinstance(event, OrderAccepted):
        return store.OrderChange(event.client_order_id, OrderStatus.OPEN, event.venue_order_id)
    if isinstance(event, OrderRejected):
        return store.OrderChange(event.client_order_id, OrderStatus.REJECTED, reason=event.reason)
    if isinstance(event, OrderCancelled):
        return store.OrderChange(event.client_order_id, OrderStatus.CANCELLED)
    if isinstance(event, OrderQueryResult) and event.found and not event.open:
        return store.OrderChange(event.client_order_id, OrderStatus.CANCELLED)
    return None
