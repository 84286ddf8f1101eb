"""The runquoter end to end: the real Tansu broker, schema registry, Order Service
and Metadata stand-ins, PostgreSQL and Redis; a pool driven through its
lifecycle by the same service functions the API calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from django.conf import settings

from common.actors import Actor
from common.redis import redis_client
from participants.models import Participant
from pools import services
from pools.models import PoolConfig, SymbolLease
from quoting_worker.adapters.kafka_config import ensure_topics, mms_topics, producer_config
from quoting_worker.adapters.serde import AvroCodec
from quoting_worker.worker import QuoterWorker, WorkerConfig
from tests.adapters import broker_fixture
from tests.adapters.order_service_fixture import SimAdmin, run_order_service
from tests.adapters.test_metadata import metadata_target  # noqa: F401  (fixture)
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from trading.models import MMOrder

kafka_broker = broker_fixture.kafka_broker
SYMBOL = "BTCUSDT-PERP"
OPS = Actor("olga-ops")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def order_service() -> Iterator[str]:
    with run_order_service() as url:
        yield url


class Market:
    """Publishes a BTC book, marks, trades and heartbeats like the venue's feed."""

    def __init__(self, bootstrap: str, codec: AvroCodec) -> None:
        self.producer = Producer(producer_config(bootstrap=bootstrap))
        self.codec = codec
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def send(self, topic: str, record: dict[str, Any]) -> None:
        self.producer.produce(topic, key=SYMBOL, value=self.codec.encode(topic, record))
        self.producer.poll(0)

    def open(self) -> None:
        now = time.time_ns()
        self.seq += 1
        levels = [
            (
                {"price": f"{59_999.5 - i:.1f}", "size": "2.000"},
                {"price": f"{60_000.5 + i:.1f}", "size": "2.000"},
            )
            for i in range(10)
        ]
        self.send(
            "md.orderbook.snap.v1",
            {
                "symbol": SYMBOL,
                "seq": self.seq,
                "bids": [b for b, _ in levels],
                "asks": [a for _, a in levels],
                "reason": "START",
                "ts_ns": now,
            },
        )
        self.send(
            "md.mark.v1",
            {"symbol": SYMBOL, "mark_price": "60000.0", "index_price": None, "ts_ns": now},
        )
        for i in range(25):
            self.send(
                "engine.event.v1",
                {
                    "type": "PublicTrade",
                    "trade_id": f"t-{now}-{i}",
                    "symbol": SYMBOL,
                    "price": "60000.5" if i % 2 else "59999.5",
                    "size": "0.010",
                    "aggressor_side": "BUY",
                    "ts_ns": now - (25 - i) * 1_000_000_000,
                },
            )
        self.producer.flush(10)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(0.3):
            self.send(
                "md.orderbook.delta.v1",
                {
                    "type": "BookHeartbeat",
                    "symbol": SYMBOL,
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


def open_orders(url: str, account_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/v1/orders", params={"account_id": account_id, "symbol": SYMBOL})
    response.raise_for_status()
    body = response.json()
    return list(body["orders"] if isinstance(body, dict) else body)


@pytest.mark.django_db(transaction=True)
def test_a_pool_is_driven_through_its_lifecycle_against_a_running_worker(
    kafka_broker: str,
    schema_registry_url: str,
    order_service: str,
    metadata_target: str,  # noqa: F811
) -> None:
    ensure_topics(kafka_broker, mms_topics(1))
    codec = AvroCodec(schema_registry_url)
    codec.register_all()
    SimAdmin(order_service).reset()
    SimAdmin(order_service).book(SYMBOL, "59999.5", "60000.5")
    pool = PoolFactory(
        symbol=SYMBOL,
        enabled=True,
        gamma=Decimal("0.0001"),
        kappa=Decimal("2"),
        min_spread_bps=Decimal("2"),
        max_spread_bps=Decimal("40"),
        order_size_usdt=Decimal("1200"),
        num_levels=2,
        staleness_threshold_ms=5000,
    )
    alice = ParticipantFactory(state="ACTIVE", account_id="acct-alice")
    bob = ParticipantFactory(state="ACTIVE", account_id="acct-bob")
    MemberFactory(
        pool=pool, participant=alice, weight=Decimal(1), max_position_usdt=Decimal(50_000)
    )
    MemberFactory(pool=pool, participant=bob, weight=Decimal(3), max_position_usdt=Decimal(50_000))

    market = Market(kafka_broker, codec)
    worker = QuoterWorker(
        WorkerConfig(
            kafka_brokers=kafka_broker,
            registry_url=schema_registry_url,
            order_service_url=order_service,
            metadata_target=metadata_target,
            redis_url=settings.SERVICE.redis_url,
            group_id=broker_fixture.unique_group("quoter"),
            partitions=1,
            development=True,
            worker_id="worker-1",
            reread_interval_s=1.0,
        )
    )
    stop_holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            stop_holder["stop"] = stop
            stop_holder["loop"] = asyncio.get_running_loop()
            await worker.run(stop)

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        market.open()
        wait_for("the worker to host the pool", lambda: SYMBOL in worker.hosted)
        lease = SymbolLease.objects.get(symbol=SYMBOL)
        assert (lease.owner, lease.token) == ("worker-1", 1)
        assert PoolConfig.objects.get(symbol=SYMBOL).state == "PAUSED"
        assert open_orders(order_service, "acct-alice") == []

        services.pool_enable(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)
        alice_orders = wait_for("alice's quotes", lambda: open_orders(order_service, "acct-alice"))
        bob_orders = wait_for("bob's quotes", lambda: open_orders(order_service, "acct-bob"))
        assert {o["side"] for o in alice_orders} == {"BUY", "SELL"}
        assert all(o["account_type"] == "SYSTEM_MARKET_MAKER" for o in alice_orders + bob_orders)
        bob_size = sum(Decimal(o["size"]) for o in bob_orders)
        alice_size = sum(Decimal(o["size"]) for o in alice_orders)
        assert bob_size > alice_size  # weight 3 against 1
        wait_for("orders on record", lambda: MMOrder.objects.filter(status="OPEN").count() >= 4)
        status = wait_for("live status", lambda: redis_client().get(f"mms:live:pool:{SYMBOL}"))
        assert b'"mode":"ACTIVE"' in status

        services.pool_pause(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)
        wait_for(
            "every order cancelled",
            lambda: (
                not open_orders(order_service, "acct-alice")
                and not open_orders(order_service, "acct-bob")
            ),
        )
        wait_for(
            "cancels on record",
            lambda: not MMOrder.objects.filter(status__in=["OPEN", "PENDING"]).exists(),
        )
        assert Participant.objects.count() == 2
    finally:
        market.close()
        loop, stop = stop_holder.get("loop"), stop_holder.get("stop")
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    assert not thread.is_alive()
    assert SymbolLease.objects.get(symbol=SYMBOL).released_at is not None
