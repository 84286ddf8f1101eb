"""The runquoter end to end: the session's Kafka, schema registry, Order Service
and Metadata stand-ins, PostgreSQL and Redis; a pool driven through its
lifecycle by the same service functions the API calls."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from common.actors import Actor
from common.redis import redis_client
from messaging.avro import AvroCodec
from participants.models import Participant
from pools import services
from pools.models import PoolConfig, SymbolLease
from quoting_worker.core.types import Command, PoolMode
from quoting_worker.worker import QuoterWorker
from tests.adapters.order_service_fixture import SimAdmin, run_order_service
from tests.adapters.test_metadata import metadata_target  # noqa: F401  (fixture)
from tests.adapters.worker_harness import (
    Market,
    RunningWorker,
    open_orders,
    wait_for,
    worker_config,
)
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from tests.kafka import Bus, unique_group
from trading.models import MMOrder

SYMBOL = "BTCUSDT-PERP"
OPS = Actor("olga-ops")


@pytest.fixture(scope="module")
def order_service() -> Iterator[str]:
    with run_order_service() as url:
        yield url


def _pool(symbol: str, weights: dict[str, Decimal], **fields: Any) -> PoolConfig:
    """An enabled pool (one level unless `fields` say otherwise) whose members are
    new ACTIVE participants, one per account, with these weights."""
    pool = PoolFactory(
        symbol=symbol, enabled=True, **{"num_levels": 1, "staleness_threshold_ms": 5000, **fields}
    )
    for account, weight in weights.items():
        participant = ParticipantFactory(state="ACTIVE", account_id=account)
        MemberFactory(
            pool=pool, participant=participant, weight=weight, max_position_usdt=Decimal(50_000)
        )
    return pool


def _quoting(market: Market, worker: QuoterWorker, order_service: str) -> None:
    """The market open, SYMBOL hosted and enabled, and alice's quotes at the venue."""
    market.open()
    wait_for("the worker to host the pool", lambda: SYMBOL in worker.hosted)
    services.pool_enable(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)
    wait_for("alice's quotes", lambda: open_orders(order_service, "acct-alice"))


@pytest.fixture
def start_worker(
    bus: Bus,
    schema_registry_url: str,
    order_service: str,
    metadata_target: str,  # noqa: F811
) -> Iterator[Callable[[], tuple[Market, RunningWorker]]]:
    """Starts, when the test's pools are in place, the topics and schemas, a venue
    with a book on SYMBOL, a market producer and a worker on them; both are closed
    at the end of the test."""
    started: list[tuple[Market, RunningWorker]] = []

    def start() -> tuple[Market, RunningWorker]:
        codec = AvroCodec(schema_registry_url)
        codec.register_all()
        SimAdmin(order_service).reset()
        SimAdmin(order_service).book(SYMBOL, "59999.5", "60000.5")
        config = worker_config(
            bus=bus,
            registry_url=schema_registry_url,
            order_service_url=order_service,
            metadata_target=metadata_target,
            group_id=unique_group("quoter"),
        )
        started.append((Market(bus, codec), RunningWorker(config).start()))
        return started[-1]

    yield start
    for market, running in started:
        market.close()
        running.stop()


@pytest.mark.django_db(transaction=True)
def test_a_pool_is_driven_through_its_lifecycle_against_a_running_worker(
    start_worker: Callable[[], tuple[Market, RunningWorker]],
    order_service: str,
) -> None:
    _pool(
        SYMBOL,
        {"acct-alice": Decimal(1), "acct-bob": Decimal(3)},
        gamma=Decimal("0.0001"),
        kappa=Decimal("2"),
        min_spread_bps=Decimal("2"),
        max_spread_bps=Decimal("40"),
        order_size_usdt=Decimal("1200"),
        num_levels=2,
    )

    market, running = start_worker()
    worker = running.worker
    market.open()
    wait_for("the worker to host the pool", lambda: SYMBOL in worker.hosted)
    lease = SymbolLease.objects.get(symbol=SYMBOL)
    assert (lease.owner, lease.token) == ("worker-1", 1)
    assert PoolConfig.objects.get(symbol=SYMBOL).state == "PAUSED"
    assert open_orders(order_service, "acct-alice") == []

    services.pool_enable(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)

    def both_sides(account: str) -> list[dict[str, Any]]:
        orders = open_orders(order_service, account)
        return orders if {o["side"] for o in orders} == {"BUY", "SELL"} else []

    # A ladder's orders reach the venue one request each: wait for both sides.
    alice_orders = wait_for("alice's quotes on both sides", lambda: both_sides("acct-alice"))
    bob_orders = wait_for("bob's quotes on both sides", lambda: both_sides("acct-bob"))
    assert all(o["account_type"] == "SYSTEM_MARKET_MAKER" for o in alice_orders + bob_orders)
    bob_size = sum(Decimal(o["size"]) for o in bob_orders)
    alice_size = sum(Decimal(o["size"]) for o in alice_orders)
    assert bob_size > alice_size  # weight 3 against 1
    wait_for("orders on record", lambda: MMOrder.objects.filter(status="OPEN").count() >= 4)
    # Published every second: the beat after the enable says ACTIVE.
    wait_for(
        "the live status ACTIVE",
        lambda: b'"mode":"ACTIVE"' in (redis_client().get(f"mms:live:pool:{SYMBOL}") or b""),
    )

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
    running.stop()
    assert not running.alive
    assert SymbolLease.objects.get(symbol=SYMBOL).released_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_pause_closes_the_gate_before_the_worker_can_read_the_row_again(
    start_worker: Callable[[], tuple[Market, RunningWorker]],
    order_service: str,
) -> None:
    """The change notice names the new state: a pause takes effect while the
    worker's one database thread is still busy (at a kill of every pool each
    re-read waits its turn there), and the venue is emptied without it."""
    _pool(SYMBOL, {"acct-alice": Decimal(1)})
    market, running = start_worker()
    worker = running.worker
    busy = threading.Event()
    _quoting(market, worker, order_service)

    worker.database.executor.submit(busy.wait, 20)  # every re-read now waits behind this
    try:
        services.pool_pause(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)
        engine = worker.hosted[SYMBOL].engine
        wait_for("the engine paused", lambda: engine.mode is PoolMode.PAUSED, timeout=5)
        wait_for("the venue empty", lambda: not open_orders(order_service, "acct-alice"), 5)
        assert not busy.is_set()  # all of it while the database thread was held
    finally:
        busy.set()

    # The re-read agrees, and a resume (which only a re-read may apply) works.
    services.pool_resume(pool=PoolConfig.objects.get(symbol=SYMBOL), actor=OPS)
    wait_for("the engine active again", lambda: engine.mode is PoolMode.ACTIVE, timeout=10)
    wait_for("alice's quotes again", lambda: open_orders(order_service, "acct-alice"))
    running.stop()
    assert not running.alive


@pytest.mark.django_db(transaction=True)
def test_a_row_read_before_a_notice_closed_the_gate_never_opens_it_again(
    start_worker: Callable[[], tuple[Market, RunningWorker]],
    order_service: str,
) -> None:
    """A periodic re-read reads the row ACTIVE; the kill commits and its notice
    closes the gate; then the re-read's answer arrives. It is older than the
    closure and must not resume the pool (seen in tests/reliability/
    test_kill_timing.py: 6 placements passed the gate after a kill, until the
    notice's own re-read halted the pool again)."""
    _pool(SYMBOL, {"acct-alice": Decimal(1)})
    market, running = start_worker()
    worker = running.worker
    read, answer = threading.Event(), threading.Event()
    setups_of = worker.control.setups
    held: list[PoolMode] = []

    def read_then_hold(*args: Any) -> Any:
        setups = setups_of(*args)
        if not held:  # the first read only: the re-read this test races
            held.append(setups[SYMBOL].mode)
            read.set()
            answer.wait(20)
        return setups

    applied: list[str] = []  # the commands the engine was given

    _quoting(market, worker, order_service)
    actor = worker.hosted[SYMBOL]
    engine = actor.engine
    apply = actor._apply

    async def recorded(event: Any, *args: Any) -> None:
        if isinstance(event, Command):
            applied.append(event.kind)
        await apply(event, *args)

    worker.control.setups = read_then_hold  # type: ignore[method-assign]
    actor._apply = recorded  # type: ignore[method-assign]
    rereading = asyncio.run_coroutine_threadsafe(
        worker.control.sync(every_enabled=True), worker.loop
    )
    try:
        assert read.wait(10)
        assert held == [PoolMode.ACTIVE]
        services.emergency_kill(actor=OPS, reason="race")
        wait_for("the engine halted", lambda: engine.mode is PoolMode.HALTED, timeout=5)
    finally:
        answer.set()
    rereading.result(timeout=10)  # its commands are queued for the engine now
    hosted_pool = worker.hosted[SYMBOL]
    wait_for("the re-read's commands taken", lambda: not hosted_pool.urgent, timeout=5)
    assert applied == ["kill"]
    assert engine.mode is PoolMode.HALTED


@pytest.mark.django_db(transaction=True)
def test_at_shutdown_every_pool_is_released_at_once_not_one_after_another(
    start_worker: Callable[[], tuple[Market, RunningWorker]],
    bus: Bus,
    schema_registry_url: str,
    order_service: str,
) -> None:
    """With the venue's cancel-all taking 1 s, both pools' cancel-alls arrive
    together; one release after another, the second came a whole second later
    (and 200 pools overran SHUTDOWN_TIMEOUT in bench/load.py)."""
    eth = "ETHUSDT-PERP"
    for symbol, account in ((SYMBOL, "acct-alice"), (eth, "acct-bob")):
        _pool(symbol, {account: Decimal(1)})
    market, running = start_worker()
    SimAdmin(order_service).book(eth, "2999.5", "3000.5")
    eth_market = Market(
        bus,
        AvroCodec(schema_registry_url),
        eth,
        best_bid=Decimal("2999.5"),
        best_ask=Decimal("3000.5"),
        step=Decimal("0.5"),
    )
    worker = running.worker
    try:
        market.open()
        eth_market.open()
        wait_for("both pools hosted", lambda: {SYMBOL, eth} <= set(worker.hosted))
        for symbol in (SYMBOL, eth):
            services.pool_enable(pool=PoolConfig.objects.get(symbol=symbol), actor=OPS)
        wait_for("alice's quotes", lambda: open_orders(order_service, "acct-alice", SYMBOL))
        wait_for("bob's quotes", lambda: open_orders(order_service, "acct-bob", eth))
        SimAdmin(order_service).faults(latency_ms=1000, routes=["cancel_all"])
        stopping = time.time()
        running.stop()
    finally:
        eth_market.close()
        SimAdmin(order_service).faults()
    log = SimAdmin(order_service).requests("cancel_all")
    times = sorted(r["t"] for r in log if r["t"] >= stopping)
    assert len(times) >= 2
    assert times[-1] - times[0] < 1.0, times
    assert not open_orders(order_service, "acct-alice", SYMBOL)
    assert not open_orders(order_service, "acct-bob", eth)


@pytest.mark.django_db(transaction=True)
def test_a_release_asked_for_twice_at_once_happens_once(
    start_worker: Callable[[], tuple[Market, RunningWorker]],
    order_service: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At shutdown the consumer's close revokes the partitions while the shutdown
    is releasing the same pools: the second release waits for the first instead
    of pausing, cancelling and giving up the lease a second time (a second one
    finishing after the symbol was hosted again would drop the new host)."""
    _pool(SYMBOL, {"acct-alice": Decimal(1)})
    market, running = start_worker()
    worker = running.worker
    _quoting(market, worker, order_service)
    caplog.set_level(logging.INFO, logger="mms.quoter")

    async def release_twice() -> None:
        await asyncio.gather(
            worker.ownership.release(SYMBOL, reason="shutdown"),
            worker.ownership.release(SYMBOL, reason="partition revoked"),
        )

    asyncio.run_coroutine_threadsafe(release_twice(), worker.loop).result(timeout=30)
    assert SYMBOL not in worker.hosted
    assert not open_orders(order_service, "acct-alice")
    released = [r.getMessage() for r in caplog.records if "released (" in r.getMessage()]
    assert released == [f"{SYMBOL}: released (shutdown)"]
