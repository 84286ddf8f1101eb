"""The TradeX simulator's publisher: the exchange's events as the venue's Kafka records.

The matching engine (`simulator.exchange`) reports what happens as the events
of `simulator.model`; `Feed.on_event` turns them into the records of
contracts/avro and produces them, keyed by symbol, in the Confluent wire format
(`AvroCodec`):

- `LevelChanged` → `md.orderbook.delta.v1` (`BookDelta`). Level changes are
  buffered per symbol until `flush()`, so everything one exchange call changed
  (a sweep through five levels) is ONE delta with the next sequence number.
  Changes that cancel out before the flush (a level added and removed again)
  publish nothing and use no sequence number.
- `MarkChanged` → `md.mark.v1`.
- the other events → `engine.event.v1` at once, after the symbol's pending
  delta: a consumer that reads the fill has been sent the book change that
  came before it (per topic, Kafka keeps a key's order; across topics the
  produce order is the only order there is).
- `snapshot()` → `md.orderbook.snap.v1`, the published book (depth-limited)
  with the last delta's seq; `heartbeat_due()` → `BookHeartbeat` for every
  book that sent nothing for `heartbeat_s`.

Units follow contracts/avro/README.md: prices, sizes, fees and amounts as
decimal strings (`format(d, "f")`: every digit, no exponent, never a float),
times as integer nanoseconds (`ts_ns`). Deltas carry the venue time of their
last level change; snapshots and heartbeats the feed's clock (`clock_ns`),
which also times the heartbeats.

Fault controls for tests (the simulator's admin API): `pause()` silences a
symbol's book and mark messages while its book and sequence keep moving, so a
consumer sees a gap after `resume()` unless a snapshot is sent; and
`skip_sequence()` makes the next delta skip one sequence number.

Not thread-safe: the simulator calls it from one thread (its event loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from messaging.avro import AvroCodec
from messaging.kafka import DEFAULT_LINGER_MS, producer_config
from messaging.topics import DELTA as DELTA_TOPIC
from messaging.topics import ENGINE as ENGINE_TOPIC
from messaging.topics import MARK as MARK_TOPIC
from messaging.topics import SNAPSHOT as SNAPSHOT_TOPIC
from messaging.topics import Topics
from simulator.model import (
    ExchangeEvent,
    Filled,
    FundingPaid,
    LevelChanged,
    MarkChanged,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Side,
    StatusChanged,
    Traded,
)

logger = logging.getLogger(__name__)

FEED_TOPICS = (SNAPSHOT_TOPIC, DELTA_TOPIC, MARK_TOPIC, ENGINE_TOPIC)
SNAPSHOT_REASONS = frozenset({"START", "PERIODIC", "REQUEST"})
FEE_ASSET = "USDT"
CLIENT_ID = "tradex-sim-feed"

EngineEvent = (
    OrderAccepted | OrderRejected | OrderCancelled | Filled | Traded | StatusChanged | FundingPaid
)
LevelList = tuple[tuple[Decimal, Decimal], ...]  # (price, size), in the side's best-first order
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class FeedProducer(Protocol):
    """What the feed needs of a producer: confluent_kafka.Producer has it."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: str | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...


def make_producer(brokers: str, *, linger_ms: int = DEFAULT_LINGER_MS) -> Producer:
    """A producer with MMS's settings (idempotent, acks=all, the Java client's
    partitioner, so a symbol lands on the partition number any client would pick).
    The schemas are registered by `Feed`, which holds the codec."""
    return Producer(producer_config(bootstrap=brokers, client_id=CLIENT_ID, linger_ms=linger_ms))


def decimal_text(value: Decimal) -> str:
    """A decimal string as the contracts want it: every digit, never an exponent."""
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class BookChange:
    """One delta to publish: the changed levels' new totals (0 = gone)."""

    seq: int
    bids: LevelList  # price descending
    asks: LevelList  # price ascending
    ts_ns: int


@dataclass(slots=True)
class BookState:
    """One symbol's book as published (price → size per side) and its sequence.

    `change` buffers a level's new size; `take_change` folds the buffered
    changes into the book and returns them as the next delta, or None when
    they changed nothing. `seq` is the last delta's sequence number (0 before
    any), which a snapshot of this book carries.
    """

    symbol: str
    seq: int = 0
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    _pending: dict[tuple[Side, Decimal], Decimal] = field(default_factory=dict)
    _pending_ts_ns: int = 0
    _skip: int = 0

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def change(self, side: Side, price: Decimal, size: Decimal, ts_ns: int) -> None:
        if size < 0:
            raise ValueError(f"{self.symbol}: negative size {size} at {price}")
        self._pending[(side, price)] = size  # the last change of a level wins
        self._pending_ts_ns = max(self._pending_ts_ns, ts_ns)

    def skip_sequence(self) -> None:
        """The next delta's seq jumps by 2, leaving one number unused."""
        self._skip += 1

    def take_change(self) -> BookChange | None:
        bids: list[tuple[Decimal, Decimal]] = []
        asks: list[tuple[Decimal, Decimal]] = []
        for (side, price), size in self._pending.items():
            book, out = (self.bids, bids) if side == "BUY" else (self.asks, asks)
            if book.get(price, Decimal(0)) == size:
                continue  # back where it was published: nothing to tell
            if size:
                book[price] = size
            else:
                del book[price]
            out.append((price, size))
        self._pending.clear()
        if not bids and not asks:
            return None
        self.seq += 1 + self._skip
        self._skip = 0
        bids.sort(reverse=True)
        asks.sort()
        return BookChange(self.seq, tuple(bids), tuple(asks), self._pending_ts_ns)

    def levels(self, depth: int | None = None) -> tuple[LevelList, LevelList]:
        """The best `depth` levels of each side: bids descending, asks ascending."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return tuple(bids), tuple(asks)


def _levels_record(levels: LevelList) -> list[dict[str, str]]:
    return [{"price": decimal_text(price), "size": decimal_text(size)} for price, size in levels]


def engine_record(event: EngineEvent) -> dict[str, Any]:
    """The engine.event.v1 record of `event`, with the union branch in "type"."""
    match event:
        case Filled():
            return {
                "type": "Fill",
                "fill_id": event.fill_id,
                "order_id": event.order_id,
                "client_order_id": event.client_order_id,
                "account_id": event.account_id,
                "symbol": event.symbol,
                "side": event.side,
                "price": decimal_text(event.price),
                "size": decimal_text(event.size),
                "fee": decimal_text(event.fee),
                "fee_asset": FEE_ASSET,
                "liquidity": event.liquidity,
                "ts_ns": event.ts_ns,
            }
        case OrderAccepted():
            return {
                "type": "OrderAccepted",
                "client_order_id": event.client_order_id,
                "order_id": event.order_id,
                "account_id": event.account_id,
                "symbol": event.symbol,
                "ts_ns": event.ts_ns,
            }
        case OrderRejected():
            return {
                "type": "OrderRejected",
                "client_order_id": event.client_order_id,
                "account_id": event.account_id,
                "symbol": event.symbol,
                "reason": event.reason,
                "ts_ns": event.ts_ns,
            }
        case OrderCancelled():
            return {
                "type": "OrderCancelled",
                "client_order_id": event.client_order_id,
                "order_id": event.order_id,
                "account_id": event.account_id,
                "symbol": event.symbol,
                "reason": event.reason,
                "ts_ns": event.ts_ns,
            }
        case Traded():
            return {
                "type": "PublicTrade",
                "trade_id": event.trade_id,
                "symbol": event.symbol,
                "price": decimal_text(event.price),
                "size": decimal_text(event.size),
                "aggressor_side": event.aggressor_side,
                "ts_ns": event.ts_ns,
            }
        case StatusChanged():
            return {
                "type": "InstrumentStatus",
                "symbol": event.symbol,
                "status": "HALTED" if event.halted else "TRADING",
                "ts_ns": event.ts_ns,
            }
        case FundingPaid():
            return {
                "type": "FundingPayment",
                "payment_id": event.payment_id,
                "account_id": event.account_id,
                "symbol": event.symbol,
                "amount": decimal_text(event.amount),
                "rate": decimal_text(event.rate),
                "ts_ns": event.ts_ns,
            }


def mark_record(event: MarkChanged) -> dict[str, Any]:
    return {
        "symbol": event.symbol,
        "mark_price": decimal_text(event.mark_price),
        "index_price": decimal_text(event.index_price),
        "ts_ns": event.ts_ns,
    }


class Feed:
    """Publishes the exchange's events (see the module docstring)."""

    def __init__(
        self,
        producer: FeedProducer,
        codec: AvroCodec,
        *,
        clock_ns: Callable[[], int],
        heartbeat_s: float = 1.0,
        snapshot_depth: int = 50,
        topics: Topics | None = None,
    ) -> None:
        if heartbeat_s <= 0 or snapshot_depth < 1:
            raise ValueError("heartbeat_s must be > 0 and snapshot_depth ≥ 1")
        self._producer = producer
        self._codec = codec
        self._topics = topics or Topics()
        self._clock_ns = clock_ns
        self._heartbeat_ns = round(heartbeat_s * 1e9)
        self._depth = snapshot_depth
        self._books: dict[str, BookState] = {}
        self._dirty: dict[str, None] = {}  # symbols with pending changes, in arrival order
        self._last_book_message_ns: dict[str, int] = {}
        self._paused: set[str] = set()
        self._all_paused = False
        self._resumed: set[str] = set()  # exceptions while all are paused
        self.delivery_failures = 0
        # Producers register their schemas at start: a registry that is down or
        # refuses a schema fails here, not at the first event.
        for topic in FEED_TOPICS:
            codec.schema_id(topic)

    def book(self, symbol: str) -> BookState:
        """The symbol's published book (created empty, seq 0, on first use)."""
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = BookState(symbol)
        return book

    # ------------------------------------------------------------ events

    def on_event(self, event: ExchangeEvent) -> None:
        match event:
            case LevelChanged():
                self.book(event.symbol).change(event.side, event.price, event.size, event.ts_ns)
                self._dirty[event.symbol] = None
            case MarkChanged():
                self._flush_symbol(event.symbol)
                if not self.is_paused(event.symbol):
                    self._produce(MARK_TOPIC, event.symbol, mark_record(event))
                self._producer.poll(0)
            case _:
                self._flush_symbol(event.symbol)
                self._produce(ENGINE_TOPIC, event.symbol, engine_record(event))
                self._producer.poll(0)

    def flush(self) -> None:
        """Publishes one delta per symbol with pending level changes."""
        for symbol in list(self._dirty):
            self._flush_symbol(symbol)
        self._producer.poll(0)

    def snapshot(self, symbol: str, reason: str) -> None:
        """Publishes the symbol's book as published so far (pending changes come
        in the next delta, seq + 1), the best `snapshot_depth` levels a side."""
        if reason not in SNAPSHOT_REASONS:
            raise ValueError(f"snapshot reason must be one of {sorted(SNAPSHOT_REASONS)}")
        book = self.book(symbol)
        if self.is_paused(symbol):
            return
        bids, asks = book.levels(self._depth)
        now = self._clock_ns()
        self._produce(
            SNAPSHOT_TOPIC,
            symbol,
            {
                "symbol": symbol,
                "seq": book.seq,
                "bids": _levels_record(bids),
                "asks": _levels_record(asks),
                "reason": reason,
                "ts_ns": now,
            },
        )
        self._last_book_message_ns[symbol] = now
        self._producer.poll(0)

    def heartbeat_due(self) -> None:
        """A heartbeat for every book that sent nothing for `heartbeat_s`."""
        now = self._clock_ns()
        for symbol, book in self._books.items():
            if self.is_paused(symbol):
                continue
            last = self._last_book_message_ns.get(symbol)
            if last is not None and now - last < self._heartbeat_ns:
                continue
            record = {"type": "BookHeartbeat", "symbol": symbol, "seq": book.seq, "ts_ns": now}
            self._produce(DELTA_TOPIC, symbol, record)
            self._last_book_message_ns[symbol] = now
        self._producer.poll(0)

    def close(self, timeout_s: float = 10) -> None:
        """Publishes the pending deltas and waits for every message's delivery."""
        self.flush()
        left = self._producer.flush(timeout_s)
        if left:
            logger.warning("feed closed with %d messages undelivered after %s s", left, timeout_s)

    # ------------------------------------------------------------ fault controls

    def pause(self, symbol: str | None = None) -> None:
        """Stops the book and mark messages of `symbol` (None: of every symbol)."""
        if symbol is None:
            self._all_paused = True
            self._resumed.clear()
        else:
            self._paused.add(symbol)
            self._resumed.discard(symbol)

    def resume(self, symbol: str | None = None) -> None:
        if symbol is None:
            self._all_paused = False
            self._paused.clear()
            self._resumed.clear()
        else:
            self._paused.discard(symbol)
            if self._all_paused:
                self._resumed.add(symbol)

    def is_paused(self, symbol: str) -> bool:
        return symbol in self._paused or (self._all_paused and symbol not in self._resumed)

    def skip_sequence(self, symbol: str) -> None:
        """The symbol's next delta has seq + 2: a consumer sees exactly one missing."""
        self.book(symbol).skip_sequence()

    # ------------------------------------------------------------ internals

    def _flush_symbol(self, symbol: str) -> None:
        if symbol not in self._dirty:
            return
        del self._dirty[symbol]
        change = self._books[symbol].take_change()
        if change is None or self.is_paused(symbol):
            return  # a paused book still moves, and so does its seq
        record = {
            "type": "BookDelta",
            "symbol": symbol,
            "seq": change.seq,
            "bids": _levels_record(change.bids),
            "asks": _levels_record(change.asks),
            "ts_ns": change.ts_ns,
        }
        self._produce(DELTA_TOPIC, symbol, record)
        self._last_book_message_ns[symbol] = self._clock_ns()

    def _produce(self, topic: str, symbol: str, record: dict[str, Any]) -> None:
        value = self._codec.encode(topic, record)
        while True:
            try:
                self._producer.produce(
                    self._topics.name(topic), value=value, key=symbol, on_delivery=self._delivered
                )
                return
            except BufferError:
                # The local queue is full: serve deliveries until there is room
                # (back-pressure on the simulator rather than a lost book change).
                self._producer.poll(0.1)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.delivery_failures += 1
            logger.error("feed: %s [%s] not delivered: %s", message.topic(), message.key(), error)
