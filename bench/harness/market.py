"""The market the benches make up for their pools, and the pools themselves.

- `Feed`: each symbol's book as a bench publishes it (20 levels a side around
  60,000, BTC's rules), with its own seq: the snapshot, size deltas that move
  the microprice by far less than 1 bps (a pool with the default threshold
  does not re-quote), and sweeps of the top 5 bid levels (~0.4 bps: every
  order of a re-quote-always pool is replaced);
- `Publisher` and `warm_up`: what every pool needs before it quotes (a
  snapshot, a mark and 30 public trades);
- `MarketProcess`: a market at a settable rate in a child process (its own
  GIL, its memory not in the bench's figures), in steps as the simulator's;
- `create_pools`: the bench pools and their members, by bulk_create.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from messaging.topics import DELTA, ENGINE, MARK, SNAPSHOT

TICK, LOT, MIN_NOTIONAL = "0.1", "0.001", "5"
LEVELS = 20
SWEEP = 5  # bid levels a sweep removes / refills
MARK_EVERY_S = 1.0


def instrument_specs(symbols: list[str]) -> list[str]:
    """The stand-ins' SYMBOL:TICK:LOT:MIN_NOTIONAL for the synthetic symbols."""
    return [f"{s}:{TICK}:{LOT}:{MIN_NOTIONAL}" for s in symbols]


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


def mark(symbol: str, ts_ns: int) -> dict[str, Any]:
    return {"symbol": symbol, "mark_price": "60000.0", "index_price": None, "ts_ns": ts_ns}


def public_trade(symbol: str, trade_id: str, buy_side: bool, ts_ns: int) -> dict[str, Any]:
    """A small public trade at the bid or the ask: material for σ."""
    return {
        "type": "PublicTrade",
        "trade_id": trade_id,
        "symbol": symbol,
        "price": "60000.5" if buy_side else "59999.5",
        "size": "0.010",
        "aggressor_side": "BUY",
        "ts_ns": ts_ns,
    }


class Publisher:
    """A Kafka producer with the bench's codec; a full local queue is waited out,
    delivery errors are counted (`failed`)."""

    def __init__(self, producer: Any, codec: Any) -> None:
        self.producer = producer
        self.codec = codec
        self.failed: Counter[str] = Counter()

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed[str(err)] += 1

    def send(self, topic: str, record: dict[str, Any], key: str) -> None:
        value = self.codec.encode(topic, record)
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout: float) -> int:
        return int(self.producer.flush(timeout))


def warm_up(publisher: Publisher, feed: Feed, symbols: list[str], trade_prefix: str) -> None:
    """Per symbol a snapshot, a mark and 30 public trades over the last 30 s (σ's
    material), flushed."""
    now = time.time_ns()
    for symbol in symbols:
        publisher.send(SNAPSHOT, feed.snapshot(symbol, now), symbol)
        publisher.send(MARK, mark(symbol, now), symbol)
        for k in range(30):
            trade_id = f"{trade_prefix}-{symbol}-{k}"
            ts_ns = now - (30 - k) * 1_000_000_000
            publisher.send(ENGINE, public_trade(symbol, trade_id, k % 2 == 1, ts_ns), symbol)
    publisher.flush(30)


def create_pools(
    symbols: list[str],
    members: int,
    *,
    name: str,
    levels: int,
    order_size_usdt: Decimal,
    staleness_ms: int,
    weight: Callable[[int], int],
) -> None:
    """One pool per symbol (re-quoting at most every 250 ms, on a 1 bps move) with
    `members` ACTIVE participants each; member m weighs `weight(m)`."""
    from participants.models import Participant
    from pools.models import PoolConfig, PoolMember

    pools = PoolConfig.objects.bulk_create(
        PoolConfig(
            symbol=symbol,
            enabled=True,
            gamma=Decimal("0.0001"),
            kappa=Decimal("2"),
            vol_lookback_seconds=3600,
            tau=Decimal("1"),
            num_levels=levels,
            level_spacing_bps=Decimal("2"),
            min_spread_bps=Decimal("2"),
            max_spread_bps=Decimal("40"),
            order_size_usdt=order_size_usdt,
            max_pool_position_usdt=Decimal("10000000"),
            max_pool_loss_usdt=Decimal("1000000"),
            check_staleness=True,
            staleness_threshold_ms=staleness_ms,
            quote_interval_ms=250,
            price_threshold_bps=Decimal("1"),
        )
        for symbol in symbols
    )
    participants = _participants(len(symbols), members, name)
    Participant.objects.bulk_create(participants, batch_size=1000)
    PoolMember.objects.bulk_create(
        (
            PoolMember(
                pool=pools[k // members],
                participant=participant,
                weight=Decimal(weight(k % members)),
                max_position_usdt=Decimal("1000000"),
            )
            for k, participant in enumerate(participants)
        ),
        batch_size=1000,
    )


def _participants(pools: int, members: int, name: str) -> list[Any]:
    from participants.models import Participant

    participants = []
    short_ids: set[str] = set()
    for i in range(pools):
        for m in range(members):
            pid = uuid.uuid4()
            while str(pid)[:8] in short_ids:
                pid = uuid.uuid4()
            short_ids.add(str(pid)[:8])
            participants.append(
                Participant(
                    id=pid,
                    short_id=str(pid)[:8],
                    name=f"{name} {i}-{m}",
                    user_id=f"user-{i}-{m}",
                    account_id=f"acct-{i}-{m}",
                    tier="TIER_2",
                    state="ACTIVE",
                )
            )
    return participants


class _Stepper:
    """The child's market: `rate` x `step_s` size deltas a step round-robin over
    the symbols, stamped with the step's time; a mark per symbol every second and
    a public trade per symbol every `trade_every_s`. Symbols flagged in
    `excluded` get nothing."""

    def __init__(self, producer: Any, codec: Any, symbols: list[str], shared: Any) -> None:
        self.producer = producer
        self.encode = codec.encode
        self.symbols = symbols
        self.feed = Feed(symbols)
        self.feed.seq = dict.fromkeys(symbols, 1)  # the warm-up snapshot was seq 1
        self.rate, self.produced, self.excluded = shared
        self.i = self.count = self.trade_no = 0
        self.credit = 0.0

    def send(self, topic: str, record: dict[str, Any], key: str) -> None:
        value = self.encode(topic, record)
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                self.producer.poll(0.01)

    def deltas(self, step_s: float, t_ns: int) -> None:
        self.credit += self.rate.value * step_s
        n = int(self.credit)
        self.credit -= n
        for _ in range(n):
            k = self.i % len(self.symbols)
            self.i += 1
            if self.excluded[k]:
                continue
            symbol = self.symbols[k]
            self.send(DELTA, self.feed.size_delta(symbol, t_ns), symbol)
            self.count += 1
        self.produced.value = self.count

    def marks(self, t_ns: int) -> None:
        for k, symbol in enumerate(self.symbols):
            if not self.excluded[k]:
                self.send(MARK, mark(symbol, t_ns), symbol)

    def trades(self, t_ns: int) -> None:
        self.trade_no += 1
        n = self.trade_no
        for k, symbol in enumerate(self.symbols):
            if not self.excluded[k]:
                record = public_trade(symbol, f"lt-{symbol}-{n}", n % 2 == 1, t_ns)
                self.send(ENGINE, record, symbol)


def market_process(
    bootstrap: str,
    registry: str,
    symbols: list[str],
    trade_every_s: float,
    step_s: float,
    shared: tuple[Any, Any, Any, Any, Any],
) -> None:
    """The market in steps of `step_s`, as the simulator's (simulator/market.py
    steps its symbols every 0.1 s and flushes its feed after each step). `shared`:
    the rate, the stop flag, the deltas handed to the producer so far, the
    excluded symbols' flags and the messages in the producer not yet
    acknowledged by the broker."""
    from confluent_kafka import Producer

    from messaging.avro import AvroCodec
    from messaging.kafka import producer_config

    rate, stop, produced, excluded, queued = shared
    producer = Producer(producer_config(bootstrap=bootstrap, client_id="load-market"))
    market = _Stepper(producer, AvroCodec(registry), symbols, (rate, produced, excluded))
    next_step = time.monotonic()
    next_mark, next_trade = next_step + MARK_EVERY_S, next_step + trade_every_s
    while not stop.value:
        now = time.monotonic()
        if now < next_step:
            producer.poll(min(0.01, next_step - now))
            queued.value = len(producer)
            continue
        # A step the process could not keep up with is not made up later.
        next_step = max(next_step + step_s, now)
        t_ns = time.time_ns()
        market.deltas(step_s, t_ns)
        if now >= next_mark:
            next_mark += MARK_EVERY_S
            market.marks(t_ns)
        if now >= next_trade:
            next_trade += trade_every_s
            market.trades(t_ns)
        producer.poll(0)
        queued.value = len(producer)
    producer.flush(10)


class MarketProcess:
    """The market child process and its controls."""

    def __init__(
        self, bootstrap: str, registry: str, symbols: list[str], trade_every_s: float, step_s: float
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.symbols = symbols
        self.rate = ctx.Value("d", 0.0, lock=False)
        self.stop_flag = ctx.Value("b", 0, lock=False)
        self.produced = ctx.Value("q", 0, lock=False)
        self.excluded = ctx.Array("b", len(symbols), lock=False)
        self.queued = ctx.Value("q", 0, lock=False)  # in the child's producer, not yet acked
        shared = (self.rate, self.stop_flag, self.produced, self.excluded, self.queued)
        self.proc = ctx.Process(
            target=market_process,
            args=(bootstrap, registry, symbols, trade_every_s, step_s, shared),
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
