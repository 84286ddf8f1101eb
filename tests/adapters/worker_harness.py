"""Helpers to run the runquoter end to end in a test: a market feed on the
test's own topic namespace (tests/kafka.py), the worker in a thread, and
polling with a deadline.

A namespace per test keeps each test's topics empty: a consumer group starts
from the earliest offset, so shared topics would replay another test's halts
and fills into this one's worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
from confluent_kafka import Producer
from django.conf import settings

from common.redis import redis_client
from messaging.avro import AvroCodec
from messaging.kafka import producer_config
from messaging.live_status import status_key
from quoting_worker.worker import QuoterWorker, WorkerConfig
from tests.kafka import Bus

SYMBOL = "BTCUSDT-PERP"
# The consumer group's session timeout in tests (the broker allows ≥ 500 ms):
# how long a killed worker's partitions wait before a successor gets them.
TEST_SESSION_TIMEOUT_MS = 2_000


def wait_for(what: str, check: Callable[[], Any], timeout: float = 45.0) -> Any:
    """Polls `check` until it returns something truthy; fails after `timeout` s
    (with what `check.explain()` says, when the check has one: a process's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    explain = getattr(check, "explain", None)
    detail = f":\n{explain()}" if callable(explain) else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


class Market:
    """Publishes one symbol's book, mark, trades and heartbeats like the venue's feed
    (BTC-like prices by default: best bid 59999.5, best ask 60000.5, 10 levels a
    side 1.0 apart, 2 units each)."""

    def __init__(
        self,
        bus: Bus,
        codec: AvroCodec,
        symbol: str = SYMBOL,
        *,
        best_bid: Decimal = Decimal("59999.5"),
        best_ask: Decimal = Decimal("60000.5"),
        step: Decimal = Decimal("1"),
    ) -> None:
        self.bus = bus
        self.producer = Producer(producer_config(bootstrap=bus.bootstrap, client_id="test-market"))
        self.codec = codec
        self.symbol = symbol
        self.best_bid, self.best_ask, self.step = best_bid, best_ask, step
        self.shift = Decimal(0)
        self.seq = 0
        # One sequence: a heartbeat never announces a seq before its delta is sent.
        self._seq_lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def send(self, topic: str, record: dict[str, Any]) -> None:
        """`record` on the logical `topic` (in this market's namespace)."""
        self.producer.produce(
            self.bus.name(topic), key=self.symbol, value=self.codec.encode(topic, record)
        )
        self.producer.poll(0)

    def send_raw(self, topic: str, value: bytes) -> None:
        self.producer.produce(self.bus.name(topic), key=self.symbol, value=value)
        self.producer.poll(0)

    def flush(self) -> None:
        self.producer.flush(10)

    def _levels(
        self, shift: Decimal, size: str
    ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        bid, ask = self.best_bid + shift, self.best_ask + shift
        return (
            [{"price": str(bid - i * self.step), "size": size} for i in range(10)],
            [{"price": str(ask + i * self.step), "size": size} for i in range(10)],
        )

    def _mark(self) -> None:
        mid = (self.best_bid + self.best_ask) / 2 + self.shift
        self.send(
            "md.mark.v1",
            {
                "symbol": self.symbol,
                "mark_price": str(mid),
                "index_price": None,
                "ts_ns": time.time_ns(),
            },
        )

    def snapshot(self) -> None:
        """The full book as it stands, and a mark."""
        with self._seq_lock:
            self.seq += 1
            bids, asks = self._levels(self.shift, "2.000")
            self.send(
                "md.orderbook.snap.v1",
                {
                    "symbol": self.symbol,
                    "seq": self.seq,
                    "bids": bids,
                    "asks": asks,
                    "reason": "START" if self.seq == 1 else "PERIODIC",
                    "ts_ns": time.time_ns(),
                },
            )
            self._mark()
        self.flush()

    def move(self, by: Decimal) -> None:
        """One delta moving the whole book by `by` (old levels out, new ones in), and a mark."""
        with self._seq_lock:
            old_bids, old_asks = self._levels(self.shift, "0")
            self.shift += by
            new_bids, new_asks = self._levels(self.shift, "2.000")
            self.seq += 1
            self.send(
                "md.orderbook.delta.v1",
                {
                    "type": "BookDelta",
                    "symbol": self.symbol,
                    "seq": self.seq,
                    "bids": old_bids + new_bids,
                    "asks": old_asks + new_asks,
                    "ts_ns": time.time_ns(),
                },
            )
            self._mark()
        self.flush()

    def trades(self) -> None:
        """25 s of public trades up to now, enough to warm σ up."""
        now = time.time_ns()
        bid, ask = self.best_bid + self.shift, self.best_ask + self.shift
        for i in range(25):
            self.send(
                "engine.event.v1",
                {
                    "type": "PublicTrade",
                    "trade_id": f"t-{self.symbol}-{now}-{i}",
                    "symbol": self.symbol,
                    "price": str(ask if i % 2 else bid),
                    "size": "0.010",
                    "aggressor_side": "BUY",
                    "ts_ns": now - (25 - i) * 1_000_000_000,
                },
            )
        self.flush()

    def open(self) -> None:
        """The book, a mark and the trades, then heartbeats every 0.3 s."""
        self.snapshot()
        self.trades()
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(0.3):
            with self._seq_lock:
                self.send(
                    "md.orderbook.delta.v1",
                    {
                        "type": "BookHeartbeat",
                        "symbol": self.symbol,
                        "seq": self.seq,
                        "ts_ns": time.time_ns(),
                    },
                )
            self.producer.flush(5)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(5)
        self.producer.flush(5)


def worker_config(
    *,
    bus: Bus,
    registry_url: str,
    order_service_url: str,
    metadata_target: str,
    group_id: str,
    worker_id: str = "worker-1",
    partitions: int = 1,
    shadow: bool = False,
    reread_interval_s: float = 1.0,
    session_timeout_ms: int = TEST_SESSION_TIMEOUT_MS,
) -> WorkerConfig:
    """The test's namespace, a short group session (a successor in the same group
    takes over a killed worker's partitions in seconds), a fast re-read, and the
    Redis the app itself uses (the live status is read back through the app's
    settings)."""
    return WorkerConfig(
        kafka_brokers=bus.bootstrap,
        topic_namespace=bus.namespace,
        session_timeout_ms=session_timeout_ms,
        registry_url=registry_url,
        order_service_url=order_service_url,
        metadata_target=metadata_target,
        redis_url=settings.SERVICE.redis_url,
        group_id=group_id,
        partitions=partitions,
        shadow=shadow,
        worker_id=worker_id,
        reread_interval_s=reread_interval_s,
    )


class RunningWorker:
    """A QuoterWorker run in a thread of its own, as `manage.py runquoter` runs it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.worker = QuoterWorker(config)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=config.worker_id)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self.worker.run(self._stop)

        asyncio.run(main())

    def start(self) -> RunningWorker:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the worker's event loop did not start")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """A graceful stop (SIGTERM): the worker cancels, releases and exits."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"worker {self.worker.config.worker_id} did not stop")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


@contextlib.contextmanager
def running_worker(config: WorkerConfig) -> Iterator[RunningWorker]:
    running = RunningWorker(config).start()
    try:
        yield running
    finally:
        running.stop()


def open_orders(url: str, account_id: str, symbol: str = SYMBOL) -> list[dict[str, Any]]:
    """The venue's live orders of one account on one symbol (the Order Service stand-in)."""
    response = httpx.get(
        f"{url}/v1/orders", params={"account_id": account_id, "symbol": symbol}, timeout=5
    )
    response.raise_for_status()
    body = response.json()
    return list(body["orders"] if isinstance(body, dict) else body)


def place_directly(
    url: str,
    *,
    account_id: str,
    user_id: str,
    symbol: str,
    side: str,
    price: str,
    size: str,
    coid: str,
) -> dict[str, Any]:
    """An order placed at the venue by someone else than MMS for a member's account."""
    response = httpx.post(
        f"{url}/v1/orders",
        json={
            "client_order_id": coid,
            "account_id": account_id,
            "user_id": user_id,
            "account_type": "SYSTEM_MARKET_MAKER",
            "symbol": symbol,
            "side": side,
            "type": "LIMIT",
            "time_in_force": "GTC",
            "post_only": True,
            "price": price,
            "size": size,
        },
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json())


def live_status(symbol: str = SYMBOL) -> dict[str, Any] | None:
    """The pool's live status record as the API reads it (Redis, SPEC B.10)."""
    raw = redis_client().get(status_key(symbol))
    return None if raw is None else dict(json.loads(raw))


def member_view(status: dict[str, Any], participant_id: str) -> dict[str, Any]:
    for member in status["members"]:
        if member["participant_id"] == participant_id:
            return dict(member)
    raise AssertionError(f"no member {participant_id} in the live status")
