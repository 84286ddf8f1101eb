"""The simulator's feed against the session's Kafka (a namespace for this module) and the
registry stand-in: what it publishes decodes, through the worker's own codec and
translation, to the book, marks and engine events the exchange reported, in
sequence, with the gaps the fault controls make and no others.

Every test publishes for symbols of its own and reads the topics back from the
start, keeping those symbols' records; a test that must show something was NOT
published ends with a later message on the same topic and key (a sentinel), so
reading up to it proves what came before."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from messaging.avro import AvroCodec
from messaging.kafka import consumer_config
from quoting_worker.adapters import translate
from quoting_worker.core import types as core
from quoting_worker.core.book import OrderBook
from simulator.feed import (
    DELTA_TOPIC,
    ENGINE_TOPIC,
    FEED_TOPICS,
    MARK_TOPIC,
    SNAPSHOT_TOPIC,
    BookChange,
    BookState,
    DeliveryCallback,
    Feed,
    make_producer,
)
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
from tests.kafka import Bus, namespace_on, unique_group

PARTITIONS = 3
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TICK, LOT = Decimal("0.1"), Decimal("0.001")
D = Decimal


def unique_symbol(base: str = "BTC") -> str:
    return f"{base}{uuid.uuid4().hex[:8].upper()}USDT-PERP"


def instrument(symbol: str, tick: Decimal = TICK, lot: Decimal = LOT) -> core.Instrument:
    return core.Instrument(symbol, tick_size=tick, lot_size=lot)


def level(symbol: str, side: Side, price: str, size: str, ts_ns: int = T0) -> LevelChanged:
    return LevelChanged(symbol, side, D(price), D(size), ts_ns)


class Clock:
    """The feed's clock, moved by the test."""

    def __init__(self) -> None:
        self.now_ns = T0

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)


class Recorder:
    """The module's real producer, noting the order of what the feed produced
    (across topics, the produce order is the only order there is)."""

    def __init__(self, producer: Producer, codec: AvroCodec, bus: Bus) -> None:
        self.producer = producer
        self.codec = codec
        self.bus = bus
        self.sent: list[tuple[str, str, str | None]] = []  # (topic, key, record type)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: str | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        assert value is not None
        assert key is not None
        logical = self.bus.topics.logical(topic)
        self.sent.append((logical, key, self.codec.decode(logical, value).get("type")))
        self.producer.produce(topic, value=value, key=key, on_delivery=on_delivery)

    def poll(self, timeout: float = -1) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        return self.producer.flush(timeout)

    def of(self, symbol: str) -> list[tuple[str, str | None]]:
        return [(topic, kind) for topic, key, kind in self.sent if key == symbol]


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    partition: int
    timestamp_ms: int
    record: dict[str, Any]


class Tape:
    """Reads the feed's topics from the start, keeping the decoded records of `symbols`."""

    def __init__(self, bus: Bus, codec: AvroCodec, *symbols: str) -> None:
        self.bus = bus
        self.codec = codec
        self.symbols = set(symbols)
        self.received: dict[str, list[Received]] = {symbol: [] for symbol in symbols}
        config = consumer_config(bootstrap=bus.bootstrap, group_id=unique_group("feed-test"))
        self.consumer = Consumer(config)
        # Assigned, not subscribed: no group join, every partition from the start.
        self.consumer.assign(
            [
                TopicPartition(bus.name(topic), partition, OFFSET_BEGINNING)
                for topic in FEED_TOPICS
                for partition in range(PARTITIONS)
            ]
        )

    def close(self) -> None:
        self.consumer.close()

    def records(self, symbol: str, topic: str) -> list[dict[str, Any]]:
        return [r.record for r in self.received[symbol] if r.topic == topic]

    def until(self, what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: got {self.received}")
            message = self.consumer.poll(0.05)
            if message is None:
                continue
            assert message.error() is None, message.error()
            key, name, value = message.key(), message.topic(), message.value()
            assert key is not None
            assert name is not None
            topic = self.bus.topics.logical(name)
            assert value is not None
            symbol = key.decode()
            if symbol in self.symbols:
                record = self.codec.decode(topic, value)
                partition = message.partition()
                assert partition is not None
                timestamp = message.timestamp()[1]
                self.received[symbol].append(Received(topic, partition, timestamp, record))

    def until_delta(self, symbol: str, seq: int) -> None:
        self.until(
            f"{symbol} delta {seq}",
            lambda: any(
                r["type"] == "BookDelta" and r["seq"] == seq
                for r in self.records(symbol, DELTA_TOPIC)
            ),
        )


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bootstrap(kafka_broker: str) -> Iterator[Bus]:
    """A namespace of this module's own on the session's Kafka."""
    with namespace_on(kafka_broker, PARTITIONS) as bus:
        yield bus


@pytest.fixture(scope="module")
def codec(schema_registry_url: str) -> AvroCodec:
    return AvroCodec(schema_registry_url)


@pytest.fixture(scope="module")
def producer(bootstrap: Bus) -> Iterator[Producer]:
    producer = make_producer(bootstrap.bootstrap, linger_ms=1)
    yield producer
    producer.flush(10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder(producer: Producer, codec: AvroCodec, bootstrap: Bus) -> Recorder:
    return Recorder(producer, codec, bootstrap)


@pytest.fixture
def feed(recorder: Recorder, codec: AvroCodec, clock: Clock, bootstrap: Bus) -> Iterator[Feed]:
    feed = Feed(recorder, codec, clock_ns=clock, topics=bootstrap.topics)
    yield feed
    feed.close()
    assert feed.delivery_failures == 0


@pytest.fixture
def tape(bootstrap: Bus, codec: AvroCodec) -> Iterator[Callable[..., Tape]]:
    """Opens tapes for the test's symbols (after it published: reading starts at once)."""
    tapes: list[Tape] = []

    def open_tape(*symbols: str) -> Tape:
        tapes.append(Tape(bootstrap, codec, *symbols))
        return tapes[-1]

    yield open_tape
    for t in tapes:
        t.close()


def book_in_ticks(
    book: BookState, instr: core.Instrument
) -> tuple[list[core.Level], list[core.Level]]:
    bids, asks = book.levels()
    return (
        [(instr.ticks(price), instr.lots(size)) for price, size in bids],
        [(instr.ticks(price), instr.lots(size)) for price, size in asks],
    )


def replay(book: OrderBook, events: list[core.Event | None]) -> list[bool]:
    """Feeds the worker's book as its engine does; True for each event applied."""
    applied = []
    for event in events:
        if isinstance(event, core.BookSnapshot):
            applied.append(book.apply_snapshot(event))
        elif isinstance(event, core.BookDelta):
            applied.append(book.apply_delta(event))
        else:
            raise AssertionError(f"not a book event: {event}")
    return applied


# ---------------------------------------------------------------- BookState, pure


def test_book_state_nets_one_calls_changes_into_one_ordered_change() -> None:
    book = BookState("BTCUSDT-PERP")
    changes: list[tuple[Side, str, str]] = [
        ("BUY", "99.0", "1"),
        ("BUY", "100.0", "2"),
        ("SELL", "102.0", "1"),
        ("SELL", "101.0", "5"),
        ("SELL", "101.0", "4"),  # the last change of a level wins
    ]
    for side, price, size in changes:
        book.change(side, D(price), D(size), T0)

    change = book.take_change()

    assert change is not None
    assert change.seq == 1
    assert change.bids == ((D("100.0"), D(2)), (D("99.0"), D(1)))  # best first
    assert change.asks == ((D("101.0"), D(4)), (D("102.0"), D(1)))
    assert book.levels(depth=1) == (((D("100.0"), D(2)),), ((D("101.0"), D(4)),))
    # Added and removed before the flush, or set to what was published: no delta, no seq.
    book.change("BUY", D("98.0"), D(3), T0)
    book.change("BUY", D("98.0"), D(0), T0)
    book.change("SELL", D("102.0"), D(1), T0)
    assert book.take_change() is None
    assert book.seq == 1
    # A removal is published as size 0 and leaves the book.
    book.change("BUY", D("99.0"), D(0), T0 + 5)
    book.skip_sequence()
    removal = book.take_change()
    assert removal == BookChange(3, ((D("99.0"), D(0)),), (), T0 + 5)
    assert D("99.0") not in book.bids
    with pytest.raises(ValueError, match="negative size"):
        book.change("SELL", D("101.0"), D(-1), T0)


# ---------------------------------------------------------------- deltas and snapshots


def test_level_changes_of_one_exchange_call_become_one_delta(
    feed: Feed, recorder: Recorder, tape: Callable[..., Tape]
) -> None:
    btc, pepe = unique_symbol("BTC"), unique_symbol("PEPE")
    pepe_instr = instrument(pepe, tick=D("0.0000001"), lot=D(1000))
    for event in [
        level(btc, "BUY", "65000.1", "1.250", T0 + 1),
        level(btc, "BUY", "64999.9", "0.004", T0 + 2),
        level(btc, "SELL", "65000.3", "0.731", T0 + 3),
        level(btc, "SELL", "65000.2", "2.5", T0 + 4),
        # A small cap: prices to the 7th decimal, sizes in millions, never an exponent.
        LevelChanged(pepe, "BUY", D("1.23E-5"), D("5E+6"), T0 + 5),
    ]:
        feed.on_event(event)
    assert recorder.sent == []  # buffered until the exchange call ends

    feed.flush()
    feed.on_event(level(btc, "SELL", "65000.2", "0", T0 + 9))
    feed.flush()

    t = tape(btc, pepe)
    t.until_delta(btc, 2)
    t.until_delta(pepe, 1)
    first, second = t.records(btc, DELTA_TOPIC)
    assert first == {
        "type": "BookDelta",
        "symbol": btc,
        "seq": 1,
        "bids": [{"price": "65000.1", "size": "1.250"}, {"price": "64999.9", "size": "0.004"}],
        "asks": [{"price": "65000.2", "size": "2.5"}, {"price": "65000.3", "size": "0.731"}],
        "ts_ns": T0 + 4,  # the venue time of the call's last change
    }
    btc_instr = instrument(btc)
    assert translate.to_event(DELTA_TOPIC, first, btc_instr) == core.BookDelta(
        1, ((650001, 1250), (649999, 4)), ((650002, 2500), (650003, 731)), T0 + 4
    )
    assert translate.to_event(DELTA_TOPIC, second, btc_instr) == core.BookDelta(
        2, (), ((650002, 0),), T0 + 9
    )
    (pepe_delta,) = t.records(pepe, DELTA_TOPIC)
    assert pepe_delta["bids"] == [{"price": "0.0000123", "size": "5000000"}]
    assert translate.to_event(DELTA_TOPIC, pepe_delta, pepe_instr) == core.BookDelta(
        1, ((123, 5000),), (), T0 + 5
    )


def test_a_snapshot_carries_the_book_and_the_seq_the_next_delta_follows(
    recorder: Recorder, codec: AvroCodec, clock: Clock, tape: Callable[..., Tape]
) -> None:
    symbol = unique_symbol()
    feed = Feed(recorder, codec, clock_ns=clock, snapshot_depth=2, topics=recorder.bus.topics)
    feed.snapshot(symbol, "START")  # the empty book, seq 0
    for price in ("99.0", "100.0", "98.0"):
        feed.on_event(level(symbol, "BUY", price, "1"))
    for price in ("102.0", "101.0", "103.0"):
        feed.on_event(level(symbol, "SELL", price, "2"))
    feed.flush()
    clock.advance(0.5)
    feed.snapshot(symbol, "REQUEST")
    feed.on_event(level(symbol, "BUY", "100.0", "3", T0 + 10**9))
    feed.flush()
    feed.close()

    t = tape(symbol)
    t.until_delta(symbol, 2)
    t.until("two snapshots", lambda: len(t.records(symbol, SNAPSHOT_TOPIC)) == 2)
    start, request = t.records(symbol, SNAPSHOT_TOPIC)
    assert start == {
        "symbol": symbol,
        "seq": 0,
        "bids": [],
        "asks": [],
        "reason": "START",
        "ts_ns": T0,
    }
    assert request == {
        "symbol": symbol,
        "seq": 1,
        "bids": [{"price": "100.0", "size": "1"}, {"price": "99.0", "size": "1"}],
        "asks": [{"price": "101.0", "size": "2"}, {"price": "102.0", "size": "2"}],
        "reason": "REQUEST",
        "ts_ns": T0 + 500_000_000,
    }
    # The worker's book, synced from the snapshot, takes the next delta.
    instr = instrument(symbol)
    snap = translate.to_event(SNAPSHOT_TOPIC, request, instr)
    delta = translate.to_event(DELTA_TOPIC, t.records(symbol, DELTA_TOPIC)[-1], instr)
    book = OrderBook(symbol)
    assert replay(book, [snap, delta]) == [True, True]
    assert book.synced
    assert (book.best_bid(), book.best_bid_size()) == (1000, 3000)
    assert book.levels(core.Side.SELL) == [(1010, 2000), (1020, 2000)]
    with pytest.raises(ValueError, match="reason"):
        feed.snapshot(symbol, "WHENEVER")


def test_heartbeats_go_only_to_quiet_books_with_the_last_seq(
    feed: Feed, clock: Clock, tape: Callable[..., Tape]
) -> None:
    busy, quiet = unique_symbol("BUSY"), unique_symbol("QUIET")
    feed.snapshot(busy, "START")
    feed.snapshot(quiet, "START")
    clock.advance(0.6)
    feed.on_event(level(busy, "BUY", "100.0", "1"))
    feed.flush()
    feed.heartbeat_due()  # nobody quiet for a second yet
    clock.advance(0.6)  # busy's delta 0.6 s ago, quiet's snapshot 1.2 s ago
    feed.heartbeat_due()
    clock.advance(0.5)  # busy quiet for 1.1 s, quiet's heartbeat 0.5 s ago
    feed.heartbeat_due()
    for symbol in (busy, quiet):  # sentinels: everything before them has arrived
        feed.on_event(level(symbol, "SELL", "101.0", "1"))
    feed.flush()

    t = tape(busy, quiet)
    t.until_delta(busy, 2)
    t.until_delta(quiet, 1)
    kinds = {
        symbol: [(r["type"], r["seq"], r["ts_ns"]) for r in t.records(symbol, DELTA_TOPIC)]
        for symbol in (busy, quiet)
    }
    assert kinds[busy] == [
        ("BookDelta", 1, T0),
        ("BookHeartbeat", 1, T0 + 1_700_000_000),
        ("BookDelta", 2, T0),
    ]
    assert kinds[quiet] == [("BookHeartbeat", 0, T0 + 1_200_000_000), ("BookDelta", 1, T0)]
    heartbeat = t.records(busy, DELTA_TOPIC)[1]
    assert translate.to_event(DELTA_TOPIC, heartbeat, instrument(busy)) == core.BookHeartbeat(
        1, T0 + 1_700_000_000
    )


def test_a_fill_follows_the_book_change_before_it_and_only_its_symbols(
    feed: Feed, recorder: Recorder, tape: Callable[..., Tape]
) -> None:
    taken, other = unique_symbol("TAKEN"), unique_symbol("OTHER")
    coid = f"mm-3f9a1c2e-{taken}-0-SELL-{T0}"
    feed.on_event(level(taken, "SELL", "101.0", "0.5"))
    feed.flush()  # our ask rests: delta 1
    feed.on_event(level(other, "BUY", "50.0", "1"))
    # One exchange call: a taker lifts our ask; the book change comes first.
    feed.on_event(level(taken, "SELL", "101.0", "0", T0 + 1))
    feed.on_event(
        Filled("F-1", "O-1", coid, "acct-mm", taken, "SELL", D("101.0"), D("0.5"), D("-0.01"),
               "MAKER", T0 + 1)
    )  # fmt: skip
    feed.on_event(Traded("T-1", taken, D("101.0"), D("0.5"), "BUY", T0 + 1))
    feed.flush()

    assert recorder.of(taken)[1:] == [
        (DELTA_TOPIC, "BookDelta"),
        (ENGINE_TOPIC, "Fill"),
        (ENGINE_TOPIC, "PublicTrade"),
    ]
    # The other symbol's pending change waited for the end of the call.
    assert recorder.sent.index((DELTA_TOPIC, other, "BookDelta")) == len(recorder.sent) - 1

    t = tape(taken, other)
    t.until_delta(other, 1)
    t.until_delta(taken, 2)
    t.until("the fill and the trade", lambda: len(t.records(taken, ENGINE_TOPIC)) == 2)
    _, delta = (r for r in t.received[taken] if r.topic == DELTA_TOPIC)
    assert delta.record["asks"] == [{"price": "101.0", "size": "0"}]
    fill, trade = (r for r in t.received[taken] if r.topic == ENGINE_TOPIC)
    # Co-partitioned: the book and the engine events of a symbol reach the same worker.
    assert delta.partition == fill.partition == trade.partition
    assert delta.timestamp_ms <= fill.timestamp_ms
    assert translate.to_event(ENGINE_TOPIC, fill.record, instrument(taken)) == core.Fill(
        fill_id="F-1",
        client_order_id=coid,
        side=core.Side.SELL,
        price_ticks=1010,
        size_lots=500,
        fee=D("-0.01"),
        ts_ns=T0 + 1,
    )


# ---------------------------------------------------------------- fault controls


def test_a_paused_book_resyncs_from_a_snapshot_after_a_gap(
    feed: Feed, clock: Clock, tape: Callable[..., Tape]
) -> None:
    symbol = unique_symbol()
    coid = f"mm-3f9a1c2e-{symbol}-0-BUY-{T0}"
    instr = instrument(symbol)
    feed.snapshot(symbol, "START")
    feed.on_event(level(symbol, "BUY", "100.0", "1"))
    feed.on_event(level(symbol, "SELL", "101.0", "1"))
    feed.flush()  # delta 1

    feed.pause(symbol)
    feed.on_event(level(symbol, "BUY", "100.0", "2"))
    feed.flush()  # delta 2, never published
    feed.snapshot(symbol, "PERIODIC")
    feed.on_event(MarkChanged(symbol, D("100.5"), D("100.4"), T0))
    clock.advance(5)
    feed.heartbeat_due()
    feed.on_event(OrderAccepted(coid, "O-1", "acct-mm", symbol, T0))  # the engine goes on
    feed.resume(symbol)
    feed.on_event(level(symbol, "SELL", "101.0", "3"))
    feed.flush()  # delta 3: a consumer at 1 sees the gap
    feed.snapshot(symbol, "REQUEST")  # the resync: the book as of delta 3
    feed.on_event(level(symbol, "SELL", "102.0", "1"))
    feed.on_event(MarkChanged(symbol, D("100.7"), D("100.6"), T0 + 7))
    feed.flush()  # delta 4

    t = tape(symbol)
    t.until_delta(symbol, 4)
    t.until("the REQUEST snapshot", lambda: len(t.records(symbol, SNAPSHOT_TOPIC)) == 2)
    t.until("the mark", lambda: len(t.records(symbol, MARK_TOPIC)) == 1)
    t.until("the acceptance", lambda: len(t.records(symbol, ENGINE_TOPIC)) == 1)
    deltas = t.records(symbol, DELTA_TOPIC)
    snapshots = t.records(symbol, SNAPSHOT_TOPIC)
    assert [(r["type"], r["seq"]) for r in deltas] == [
        ("BookDelta", 1),
        ("BookDelta", 3),
        ("BookDelta", 4),
    ]  # no heartbeat while paused either
    assert [(r["reason"], r["seq"]) for r in snapshots] == [("START", 0), ("REQUEST", 3)]
    assert snapshots[1]["bids"] == [{"price": "100.0", "size": "2"}]  # the change paused
    assert t.records(symbol, MARK_TOPIC) == [
        {"symbol": symbol, "mark_price": "100.7", "index_price": "100.6", "ts_ns": T0 + 7}
    ]
    assert t.records(symbol, ENGINE_TOPIC)[0]["type"] == "OrderAccepted"

    start, request = (translate.to_event(SNAPSHOT_TOPIC, r, instr) for r in snapshots)
    d1, d3, d4 = (translate.to_event(DELTA_TOPIC, r, instr) for r in deltas)
    book = OrderBook(symbol)
    assert replay(book, [start, d1, d3]) == [True, True, False]
    assert (book.synced, book.gaps) == (False, 1)
    assert replay(book, [request, d4]) == [True, True]
    assert book.synced
    assert (book.levels(core.Side.BUY), book.levels(core.Side.SELL)) == book_in_ticks(
        feed.book(symbol), instr
    )


def test_pausing_every_symbol_covers_new_ones_until_resumed(feed: Feed, recorder: Recorder) -> None:
    old, new = unique_symbol("OLD"), unique_symbol("NEW")
    feed.snapshot(old, "START")
    feed.pause()
    for symbol in (old, new):
        feed.on_event(level(symbol, "BUY", "100.0", "1"))
        feed.on_event(MarkChanged(symbol, D("100.5"), D("100.4"), T0))
        feed.snapshot(symbol, "PERIODIC")
        feed.on_event(StatusChanged(symbol, halted=True, ts_ns=T0))
    assert [topic for topic, _, _ in recorder.sent] == [SNAPSHOT_TOPIC, ENGINE_TOPIC, ENGINE_TOPIC]

    feed.resume(old)
    feed.on_event(level(old, "BUY", "100.0", "2"))
    feed.on_event(level(new, "BUY", "100.0", "2"))
    feed.flush()
    assert recorder.sent[3:] == [(DELTA_TOPIC, old, "BookDelta")]
    assert feed.is_paused(new)

    feed.resume()
    feed.snapshot(new, "REQUEST")
    assert recorder.sent[4:] == [(SNAPSHOT_TOPIC, new, None)]
    assert (feed.book(old).seq, feed.book(new).seq) == (2, 2)


def test_skip_sequence_makes_a_gap_of_exactly_one(feed: Feed, tape: Callable[..., Tape]) -> None:
    symbol = unique_symbol()
    feed.on_event(level(symbol, "BUY", "100.0", "1"))
    feed.flush()
    feed.skip_sequence(symbol)
    feed.on_event(level(symbol, "BUY", "100.0", "2"))
    feed.flush()
    feed.on_event(level(symbol, "BUY", "100.0", "3"))
    feed.flush()

    t = tape(symbol)
    t.until_delta(symbol, 4)
    assert [r["seq"] for r in t.records(symbol, DELTA_TOPIC)] == [1, 3, 4]


# ---------------------------------------------------------------- engine events and marks


def test_every_engine_event_and_the_mark_round_trip_with_their_fields(
    feed: Feed, tape: Callable[..., Tape]
) -> None:
    s = unique_symbol()
    coid = f"mm-3f9a1c2e-{s}-0-BUY-{T0}"
    events: list[ExchangeEvent] = [
        OrderAccepted(coid, "O-7", "acct-mm", s, T0 + 1),
        OrderRejected(coid, "acct-mm", s, "POST_ONLY_WOULD_CROSS", T0 + 2),
        OrderCancelled(coid, "O-7", "acct-mm", s, "DEAD_MANS_SWITCH", T0 + 3),
        Filled("F-9", "O-7", coid, "acct-mm", s, "BUY", D("65000.10"), D("0.015"),
               D("-0.00975150"), "MAKER", T0 + 4),
        Traded("T-9", s, D("65000.10"), D("0.015"), "SELL", T0 + 5),
        StatusChanged(s, halted=True, ts_ns=T0 + 6),
        StatusChanged(s, halted=False, ts_ns=T0 + 7),
        FundingPaid("P-1", "acct-alice", s, D("-1.2500"), D("0.0001"), T0 + 8),
        MarkChanged(s, D("65000.15"), D("64998.70"), T0 + 9),
    ]  # fmt: skip
    for event in events:
        feed.on_event(event)

    t = tape(s)
    t.until("every event", lambda: len(t.received[s]) == len(events))
    ids = {"client_order_id": coid, "account_id": "acct-mm", "symbol": s}
    assert t.records(s, ENGINE_TOPIC) == [
        {"type": "OrderAccepted", **ids, "order_id": "O-7", "ts_ns": T0 + 1},
        {"type": "OrderRejected", **ids, "reason": "POST_ONLY_WOULD_CROSS", "ts_ns": T0 + 2},
        {"type": "OrderCancelled", **ids, "order_id": "O-7", "reason": "DEAD_MANS_SWITCH",
         "ts_ns": T0 + 3},
        {"type": "Fill", **ids, "fill_id": "F-9", "order_id": "O-7", "side": "BUY",
         "price": "65000.10", "size": "0.015", "fee": "-0.00975150", "fee_asset": "USDT",
         "liquidity": "MAKER", "ts_ns": T0 + 4},
        {"type": "PublicTrade", "trade_id": "T-9", "symbol": s, "price": "65000.10",
         "size": "0.015", "aggressor_side": "SELL", "ts_ns": T0 + 5},
        {"type": "InstrumentStatus", "symbol": s, "status": "HALTED", "ts_ns": T0 + 6},
        {"type": "InstrumentStatus", "symbol": s, "status": "TRADING", "ts_ns": T0 + 7},
        {"type": "FundingPayment", "payment_id": "P-1", "account_id": "acct-alice", "symbol": s,
         "amount": "-1.2500", "rate": "0.0001", "ts_ns": T0 + 8},
    ]  # fmt: skip
    assert t.records(s, MARK_TOPIC) == [
        {"symbol": s, "mark_price": "65000.15", "index_price": "64998.70", "ts_ns": T0 + 9}
    ]
    # And the worker reads them as the core's events.
    instr = instrument(s, tick=D("0.01"))
    worker_events = [
        translate.to_event(topic, record, instr)
        for topic in (ENGINE_TOPIC, MARK_TOPIC)
        for record in t.records(s, topic)
    ]
    assert worker_events == [
        core.OrderAccepted(coid, "O-7", T0 + 1),
        core.OrderRejected(coid, "POST_ONLY_WOULD_CROSS", T0 + 2),
        core.OrderCancelled(coid, T0 + 3),
        core.Fill("F-9", coid, core.Side.BUY, 6500010, 15, D("-0.00975150"), T0 + 4),
        core.PublicTrade(6500010, 15, T0 + 5),
        core.InstrumentStatus(halted=True, ts_ns=T0 + 6),
        core.InstrumentStatus(halted=False, ts_ns=T0 + 7),
        core.FundingPayment("P-1", "acct-alice", D("-1.2500"), T0 + 8),
        core.MarkPrice(D("65000.15"), T0 + 9),
    ]
