"""The runquoter's safety guarantees end to end (SPEC Part A "Safety guarantees",
Part B.3-B.13, RELIABILITY.md): fills, restarts, the boot pause (and an enable
while the worker runs, which is not one), kill switch, malformed input,
flatten, two workers sharing symbols, shadow mode.

Each test has a topic namespace of its own on the session's Kafka, the schema
registry, the Order Service and Metadata stand-ins, PostgreSQL and Redis, with
the worker in a thread; every wait polls with a deadline."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone

from common.actors import Actor
from common.models import AuditLog, OutboxEvent
from common.notify import POOL_CHANGED_CHANNEL
from common.redis import redis_client
from messaging.avro import AvroCodec
from messaging.live_status import status_key
from messaging.partitioning import partition_for
from messaging.topics import ENGINE as ENGINE_TOPIC
from participants.models import Participant
from pools import services
from pools.models import FlattenRequest, PoolConfig, SymbolLease
from quoting_worker.adapters.order_service import OrderServiceUnavailable
from quoting_worker.core.types import PoolMode, Timer
from quoting_worker.worker import QuoterWorker, WorkerConfig
from tests.adapters.order_service_fixture import SimAdmin, run_order_service
from tests.adapters.test_metadata import metadata_target  # noqa: F401  (fixture)
from tests.adapters.worker_harness import (
    SYMBOL,
    Market,
    RunningWorker,
    live_status,
    member_view,
    open_orders,
    place_directly,
    running_worker,
    wait_for,
    worker_config,
)
from tests.conftest import free_port
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory
from tests.figures import record
from tests.kafka import Bus, namespace_on, unique_group
from trading.models import MMFill, MMOrder

OPS = Actor("olga-ops")
BTC_LOT = Decimal("0.001")

pytestmark = pytest.mark.django_db(transaction=True)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def order_service() -> Iterator[str]:
    with run_order_service() as url:
        yield url


@pytest.fixture
def venue(order_service: str) -> SimAdmin:
    admin = SimAdmin(order_service)
    admin.reset()
    admin.book(SYMBOL, "59999.5", "60000.5")
    return admin


@pytest.fixture
def codec(schema_registry_url: str) -> AvroCodec:
    codec = AvroCodec(schema_registry_url)
    codec.register_all()
    return codec


@pytest.fixture
def broker(bus: Bus) -> Bus:
    """The test's namespace on the session's Kafka (tests/kafka.py)."""
    return bus


@pytest.fixture
def market(broker: Bus, codec: AvroCodec) -> Iterator[Market]:
    market = Market(broker, codec)
    yield market
    market.close()


ConfigFactory = Callable[..., WorkerConfig]


@pytest.fixture
def make_config(
    schema_registry_url: str,
    order_service: str,
    metadata_target: str,  # noqa: F811
) -> ConfigFactory:
    """WorkerConfig for a broker; one consumer group per test unless told."""
    group = unique_group("quoter")

    def make(broker: Bus, **overrides: Any) -> WorkerConfig:
        overrides.setdefault("group_id", group)
        return worker_config(
            bus=broker,
            registry_url=schema_registry_url,
            order_service_url=order_service,
            metadata_target=metadata_target,
            **overrides,
        )

    return make


@dataclass
class BtcPool:
    pool: PoolConfig
    alice: Participant
    bob: Participant

    def refresh(self) -> PoolConfig:
        return PoolConfig.objects.get(pk=self.pool.pk)


def btc_pool(**overrides: Any) -> BtcPool:
    """An enabled (so hosted), PAUSED BTC pool quoting 2 levels, alice weight 1, bob 3."""
    config: dict[str, Any] = {
        "symbol": SYMBOL,
        "enabled": True,
        "gamma": Decimal("0.0001"),
        "kappa": Decimal("2"),
        "min_spread_bps": Decimal("2"),
        "max_spread_bps": Decimal("40"),
        "order_size_usdt": Decimal("1200"),
        "num_levels": 2,
        "staleness_threshold_ms": 5000,
    }
    pool = PoolFactory(**{**config, **overrides})
    alice = ParticipantFactory(state="ACTIVE", account_id="acct-alice", user_id="user-alice")
    bob = ParticipantFactory(state="ACTIVE", account_id="acct-bob", user_id="user-bob")
    MemberFactory(
        pool=pool, participant=alice, weight=Decimal(1), max_position_usdt=Decimal(50_000)
    )
    MemberFactory(pool=pool, participant=bob, weight=Decimal(3), max_position_usdt=Decimal(50_000))
    return BtcPool(pool, alice, bob)


def fill_record(order: dict[str, Any], fill_id: str, size: Decimal) -> dict[str, Any]:
    """The matching engine's Fill of `size` of a venue order (as the stand-in lists it)."""
    return {
        "type": "Fill",
        "fill_id": fill_id,
        "order_id": order["order_id"],
        "client_order_id": order["client_order_id"],
        "account_id": order["account_id"],
        "symbol": order["symbol"],
        "side": order["side"],
        "price": order["price"],
        "size": str(size),
        "fee": "-0.01",
        "fee_asset": "USDT",
        "liquidity": "MAKER",
        "ts_ns": time.time_ns(),
    }


def signed(side: str, size: Decimal) -> Decimal:
    return size if side == "BUY" else -size


def hosted(worker: QuoterWorker, symbol: str = SYMBOL) -> bool:
    return symbol in worker.hosted


def no_orders_at_venue(url: str, *accounts: str, symbol: str = SYMBOL) -> bool:
    return all(not open_orders(url, account, symbol) for account in accounts)


def warmed_status(worker_id: str) -> Callable[[], dict[str, Any] | None]:
    """A live status from `worker_id` with σ known: trades, book and mark consumed."""

    def check() -> dict[str, Any] | None:
        status = live_status()
        if status and status["worker_id"] == worker_id and status["sigma"] is not None:
            return status
        return None

    return check


# ---------------------------------------------------------------- 1. fills


def test_a_fill_delivered_twice_is_stored_once_for_its_member_and_counted_once(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    with running_worker(make_config(broker)) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        alice_order = wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))[0]
        bob_order = wait_for("bob's quotes", lambda: open_orders(venue.url, "acct-bob"))[0]

        fill = fill_record(alice_order, "venue-fill-1", BTC_LOT)
        market.send(ENGINE_TOPIC, fill)
        market.send(ENGINE_TOPIC, fill)  # at-least-once: the broker delivers it again
        # Behind both copies on the partition: once it shows, both were handled.
        market.send(ENGINE_TOPIC, fill_record(bob_order, "venue-fill-2", BTC_LOT))
        market.flush()

        wait_for(
            "bob's fill stored", lambda: MMFill.objects.filter(fill_id="venue-fill-2").exists()
        )
        stored = list(MMFill.objects.filter(fill_id="venue-fill-1"))
        assert len(stored) == 1
        assert stored[0].participant_id == pool.alice.pk
        assert stored[0].client_order_id == alice_order["client_order_id"]
        assert stored[0].size == BTC_LOT

        def both_positions() -> dict[str, Any] | None:
            status = live_status()
            if status is None:
                return None
            bob_position = Decimal(member_view(status, str(pool.bob.pk))["position"])
            return status if bob_position != 0 else None

        status = wait_for("bob's fill in the live status", both_positions)
        alice_view = member_view(status, str(pool.alice.pk))
        assert Decimal(alice_view["position"]) == signed(alice_order["side"], BTC_LOT)
        assert alice_view["trade_count"] == 1
        assert Decimal(member_view(status, str(pool.bob.pk))["position"]) == signed(
            bob_order["side"], BTC_LOT
        )


# ---------------------------------------------------------------- 2. restart


def test_a_restart_rebuilds_positions_from_stored_fills_and_comes_back_paused(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    with running_worker(make_config(broker, worker_id="worker-1")) as first:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(first.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        order = wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))[0]
        market.send(ENGINE_TOPIC, fill_record(order, "venue-fill-r1", 2 * BTC_LOT))
        market.flush()
        wait_for("the fill stored", lambda: MMFill.objects.filter(fill_id="venue-fill-r1").exists())
    assert pool.refresh().state == "ACTIVE"  # the worker went away; the row still says ACTIVE
    stored = sum(
        (signed(f.side, f.size) for f in MMFill.objects.filter(participant=pool.alice)),
        Decimal(0),
    )
    assert stored == signed(order["side"], 2 * BTC_LOT)
    # Someone left an order resting for alice while no worker ran.
    place_directly(
        venue.url,
        account_id="acct-alice",
        user_id="user-alice",
        symbol=SYMBOL,
        side="BUY",
        price="59000.0",
        size="0.001",
        coid="left-behind-1",
    )

    # This test is about what the restart rebuilds, not the periodic re-read.
    second_config = make_config(broker, worker_id="worker-2", reread_interval_s=60.0)
    with running_worker(second_config) as second:
        wait_for("the new worker to host the pool", lambda: hosted(second.worker))
        engine = second.worker.hosted[SYMBOL].engine
        position_lots = engine.members[str(pool.alice.pk)].runtime.position_lots
        assert position_lots * BTC_LOT == stored
        assert pool.refresh().state == "PAUSED"
        assert AuditLog.objects.filter(
            entity_type="pool", entity_id=SYMBOL, action="pause", to_state="PAUSED"
        ).exists()

        market.snapshot()  # the venue's periodic snapshot and tape reach the new worker
        market.trades()
        status = wait_for("the new worker's live status", warmed_status("worker-2"))
        assert status["mode"] == "PAUSED"
        assert Decimal(member_view(status, str(pool.alice.pk))["position"]) == stored
        wait_for(
            "the left-behind order cancelled", lambda: no_orders_at_venue(venue.url, "acct-alice")
        )
        assert no_orders_at_venue(venue.url, "acct-alice", "acct-bob")

        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("quotes once enabled again", lambda: open_orders(venue.url, "acct-bob"))


# ---------------------------------------------------------------- 3. boot pause


def pool_configs_lock_waiters() -> int:
    """Sessions waiting for a lock on mm_pool_configs (the worker's database thread)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks"
            " WHERE NOT granted AND relation = 'mm_pool_configs'::regclass"
        )
        return int(cursor.fetchone()[0])


def test_an_enable_sent_while_no_worker_runs_does_not_quote_when_a_worker_starts(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    services.pool_enable(pool=pool.refresh(), actor=OPS)
    assert pool.refresh().state == "ACTIVE"
    market.open()
    running = RunningWorker(make_config(broker, reread_interval_s=60.0))
    try:
        # The database is slow while the worker joins its group, and ops touch the
        # pool meanwhile (a pool-changed hint for the symbol reaches the worker).
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE mm_pool_configs IN ACCESS EXCLUSIVE MODE")
            running.start()

            def hinted() -> bool:
                redis_client().publish(
                    POOL_CHANGED_CHANNEL, json.dumps({"symbol": SYMBOL, "reason": "config"})
                )
                return pool_configs_lock_waiters() > 0

            wait_for("the worker reading the pool", hinted)
            wait_for("the worker's partitions", lambda: running.worker.assigned)
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        assert pool.refresh().state == "PAUSED"
        status = wait_for("a warmed-up live status", warmed_status("worker-1"))
        # Three more beats of a warm book: an ACTIVE pool quotes within the first.
        version = status["version"]
        wait_for(
            "three more status beats",
            lambda: (live_status() or {}).get("version", 0) >= version + 3,
        )
        assert live_status()["mode"] == "PAUSED"  # type: ignore[index]
        assert "place" not in venue.stats()["requests"]
        assert no_orders_at_venue(venue.url, "acct-alice", "acct-bob")
    finally:
        running.stop()


def test_an_enable_sent_while_the_worker_runs_quotes_and_stays_active(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    """The other side of SPEC B.9: starting to host a pool because of an enable is
    not a boot or a takeover, so the enable stands."""
    pool = btc_pool(enabled=False)  # no engine hosted for it
    with running_worker(make_config(broker)) as running:
        market.open()
        wait_for("the worker to join its group", lambda: running.worker.assigned)
        assert not hosted(running.worker)
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        # The book and tape market.open() sent may have been read before the pool
        # was hosted (and dropped: no engine for it then): the venue's periodic
        # snapshot and tape reach the new engine, as in production. (Without this
        # the test raced the consumer, and failed 3 times in about 20 runs.)
        market.snapshot()
        market.trades()
        wait_for("quotes", lambda: open_orders(venue.url, "acct-bob"))
        # Past a periodic re-read of the row (1 s) and two status beats.
        status = wait_for("a live status", warmed_status("worker-1"))
        version = status["version"]
        wait_for(
            "two more status beats",
            lambda: (live_status() or {}).get("version", 0) >= version + 2,
        )
        assert pool.refresh().state == "ACTIVE"
        assert live_status()["mode"] == "ACTIVE"  # type: ignore[index]
        assert open_orders(venue.url, "acct-bob")


def test_a_pause_overtakes_a_backlog_of_market_events(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    """A command must not wait behind the events already queued for its engine:
    with a backlog of 1,000,000 events (seconds of work) queued, a pause reaches
    the engine and its cancels reach the venue while most of the backlog waits.
    The test's market sends no book message meanwhile: the staleness guard is
    set out of the way (on a loaded machine the flood alone can take 5 s)."""
    pool = btc_pool(staleness_threshold_ms=120_000)
    with running_worker(make_config(broker, worker_id="worker-b")) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("bob's quotes", lambda: open_orders(venue.url, "acct-bob"))
        engine_host = running.worker.hosted[SYMBOL]
        queued = threading.Event()

        def flood() -> None:
            now = time.time_ns()
            for _ in range(1_000_000):
                engine_host.queue.put_nowait((Timer(now), None))
            queued.set()

        def drop_backlog() -> None:
            while engine_host.queue.qsize():
                engine_host.queue.get_nowait()

        assert running.worker.loop is not None
        running.worker.loop.call_soon_threadsafe(flood)
        assert queued.wait(10)
        services.pool_pause(pool=pool.refresh(), actor=OPS)
        wait_for("the engine paused", lambda: engine_host.engine.mode is PoolMode.PAUSED)
        backlog = engine_host.queue.qsize()
        wait_for(
            "every order cancelled", lambda: no_orders_at_venue(venue.url, "acct-alice", "acct-bob")
        )
        assert backlog > 50_000, f"the pause waited for the backlog (only {backlog} left)"


# ---------------------------------------------------------------- 4. kill switch


def test_an_exchange_halt_halts_the_pool_once_and_cancels_every_order(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    with running_worker(make_config(broker, worker_id="worker-k")) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))
        wait_for("bob's quotes", lambda: open_orders(venue.url, "acct-bob"))

        market.send(
            ENGINE_TOPIC,
            {
                "type": "InstrumentStatus",
                "symbol": SYMBOL,
                "status": "HALTED",
                "ts_ns": time.time_ns(),
            },
        )
        market.flush()

        wait_for("the pool HALTED", lambda: pool.refresh().state == "HALTED")
        wait_for(
            "every order cancelled at the venue",
            lambda: no_orders_at_venue(venue.url, "acct-alice", "acct-bob"),
        )
        # The halt's status beat: the worker applied it (and had time to repeat it).
        wait_for(
            "the halt in the live status", lambda: (live_status() or {}).get("mode") == "HALTED"
        )

    halts = list(AuditLog.objects.filter(entity_type="pool", entity_id=SYMBOL, action="halt"))
    assert len(halts) == 1
    assert (halts[0].actor, halts[0].actor_kind, halts[0].to_state) == (
        "worker-k",
        "quoter",
        "HALTED",
    )
    risk = list(OutboxEvent.objects.filter(topic="mm.risk.triggered.v1", key=SYMBOL))
    assert len(risk) == 1
    assert risk[0].payload["trigger"] == "EXCHANGE_HALT"
    assert risk[0].payload["actor"] == "worker-k"
    halted = [
        e
        for e in OutboxEvent.objects.filter(topic="mm.state.changed.v1", key=SYMBOL)
        if e.payload["to_state"] == "HALTED"
    ]
    assert len(halted) == 1
    assert halted[0].payload["from_state"] == "ACTIVE"


def test_the_venues_timer_is_renewed_per_member_account_and_fires_when_renewals_stop(
    broker: Bus,
    market: Market,
    venue: SimAdmin,
    make_config: ConfigFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RELIABILITY.md's dead-man's switch: while quoting, every member account's
    timer on the symbol is renewed (here with a 0.9 s timeout, renewed every
    0.3 s); a worker that stops renewing (dead, or cut off from the venue) has
    its orders cancelled by the venue itself."""
    monkeypatch.setattr("quoting_worker.runner.upkeep.DEAD_MANS_SWITCH_MS", 900)
    pool = btc_pool()
    with running_worker(make_config(broker, worker_id="worker-d")) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))
        wait_for("bob's quotes", lambda: open_orders(venue.url, "acct-bob"))
        outcomes = running.worker.client.outcomes
        start = outcomes["dead_man_switch.renewed"]
        # Six more renewals: three timeouts' worth of periods for two accounts.
        wait_for("renewals", lambda: outcomes["dead_man_switch.renewed"] >= start + 6)
        stats = venue.stats()["dead_man_switch"]
        assert stats["armed"] == 2  # (acct-alice, BTC) and (acct-bob, BTC)
        assert stats["fired"] == 0

        async def cut_off(account_id: str, symbol: str, timeout_ms: int) -> None:
            raise OrderServiceUnavailable("the venue is unreachable (test)")

        monkeypatch.setattr(running.worker.client, "renew_dead_mans_switch", cut_off)
        fired = wait_for(
            "the venue's timers to fire",
            lambda: (s := venue.stats()["dead_man_switch"])["fired"] == 2 and s,
            timeout=10,
        )
        assert fired["orders_cancelled"] >= 4  # both members' two levels on each side
        assert fired["armed"] == 0


# ---------------------------------------------------------------- 5. malformed input


def test_malformed_messages_are_skipped_and_counted_and_quoting_goes_on(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    with running_worker(make_config(broker)) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))

        for garbage in (b"not avro at all", b"\x01\x00\x00\x00\x01junk", b"\x00\x00"):
            market.send_raw("md.orderbook.delta.v1", garbage)
        # Behind the garbage on the same partition: the book moves up 50.
        venue.book(SYMBOL, "60049.5", "60050.5")
        market.move(Decimal(50))

        wait_for("the garbage counted", lambda: running.worker.skipped["undecodable"] == 3)
        record(10, malformed_sent=3, skipped=running.worker.skipped["undecodable"])

        def requoted() -> bool:
            orders = open_orders(venue.url, "acct-alice") + open_orders(venue.url, "acct-bob")
            return bool(orders) and all(Decimal(o["price"]) > Decimal("60020") for o in orders)

        wait_for("quotes around the moved book", requoted)
        assert pool.refresh().state == "ACTIVE"
        assert running.worker.skipped["undecodable"] == 3


# ---------------------------------------------------------------- 6. flatten


def test_flatten_cancels_every_member_order_at_the_venue_and_completes(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    # A pool no worker hosts (not enabled) where alice is a member too.
    eth = PoolFactory(symbol="ETHUSDT-PERP", enabled=False)
    MemberFactory(pool=eth, participant=pool.alice)
    with running_worker(make_config(broker)) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        wait_for("alice's quotes", lambda: open_orders(venue.url, "acct-alice"))
        wait_for("bob's quotes", lambda: open_orders(venue.url, "acct-bob"))
        # Orders MMS never knew, for member accounts, on a hosted and an unhosted symbol.
        for symbol, price, size in (
            (SYMBOL, "59000.0", "0.001"),
            ("ETHUSDT-PERP", "2900.00", "0.01"),
        ):
            place_directly(
                venue.url,
                account_id="acct-alice",
                user_id="user-alice",
                symbol=symbol,
                side="BUY",
                price=price,
                size=size,
                coid=f"unknown-to-mms-{symbol}",
            )

        request, _ = services.emergency_flatten(actor=OPS, reason="drill")

        def completed() -> FlattenRequest | None:
            current = FlattenRequest.objects.get(pk=request.pk)
            return current if current.status == "COMPLETED" else None

        done = wait_for("the flatten completed", completed)
        assert done.completed_at is not None
        wait_for(
            "every member order cancelled",
            lambda: (
                no_orders_at_venue(venue.url, "acct-alice", "acct-bob")
                and no_orders_at_venue(venue.url, "acct-alice", symbol="ETHUSDT-PERP")
            ),
        )
        assert pool.refresh().state == "HALTED"
        assert PoolConfig.objects.get(symbol="ETHUSDT-PERP").state == "HALTED"
        wait_for(
            "the halt in the live status", lambda: (live_status() or {}).get("mode") == "HALTED"
        )
        assert no_orders_at_venue(venue.url, "acct-alice", "acct-bob")


# ---------------------------------------------------------------- 7. two workers


def pools_on_two_partitions() -> tuple[tuple[str, str], int]:
    """Two enabled (PAUSED) pools whose symbols fall on partitions 0 and 1 of the
    fewest partitions that separate them: two workers of a group get one each."""
    symbols = ("BTCUSDT-PERP", "ETHUSDT-PERP", "PEPEUSDT-PERP")
    partitions = 2
    while True:
        by_partition: dict[int, str] = {}
        for symbol in symbols:
            by_partition.setdefault(partition_for(symbol, partitions), symbol)
        if 0 in by_partition and 1 in by_partition:
            break
        partitions += 1
    pair = (by_partition[0], by_partition[1])
    for symbol in pair:
        member = MemberFactory(pool=PoolFactory(symbol=symbol, enabled=True))
        assert member.pool.state == "PAUSED"
    return pair, partitions


class OwnershipWatch:
    """Samples which worker hosts which symbol, every 10 ms, and records any overlap."""

    def __init__(self, workers: list[QuoterWorker], symbols: tuple[str, ...]) -> None:
        self.workers, self.symbols = workers, symbols
        self.overlaps: list[tuple[str, list[str]]] = []
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def hosts(self, symbol: str) -> list[str]:
        owners = []
        for worker in self.workers:
            for _ in range(5):  # the loop thread may resize the dict meanwhile
                try:
                    if symbol in set(worker.hosted):
                        owners.append(worker.config.worker_id)
                    break
                except RuntimeError:
                    continue
        return owners

    def _watch(self) -> None:
        while not self.stop.wait(0.01):
            self.samples += 1
            for symbol in self.symbols:
                owners = self.hosts(symbol)
                if len(owners) > 1:
                    self.overlaps.append((symbol, owners))

    def __enter__(self) -> OwnershipWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        # Overlap time: samples 10 ms apart that saw two owners.
        record(12, samples=self.samples, overlap_samples=len(self.overlaps))


def test_two_workers_share_symbols_by_partition_and_one_takes_over_when_the_other_stops(
    kafka_broker: str, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pair, partitions = pools_on_two_partitions()

    with namespace_on(kafka_broker, partitions) as broker:
        config_a = make_config(broker, worker_id="worker-a", partitions=partitions)
        config_b = make_config(broker, worker_id="worker-b", partitions=partitions)
        with running_worker(config_a) as a:
            wait_for("worker a to host both", lambda: all(hosted(a.worker, s) for s in pair))
            b = RunningWorker(config_b).start()
            try:
                with OwnershipWatch([a.worker, b.worker], pair) as watch:

                    def settled() -> dict[str, list[str]] | None:
                        owners = {s: watch.hosts(s) for s in pair}
                        return owners if b.worker.hosted and all(owners.values()) else None

                    owners = wait_for("worker b to join, every symbol hosted", settled)
                    # One symbol each: the one on the partition each worker was assigned.
                    assert sorted(o for hosts in owners.values() for o in hosts) == [
                        "worker-a",
                        "worker-b",
                    ], owners
                    owner = {s: hosts[0] for s, hosts in owners.items()}
                    leases = {
                        lease.symbol: lease for lease in SymbolLease.objects.filter(symbol__in=pair)
                    }
                    assert {s: leases[s].owner for s in pair} == owner
                    moved = next(s for s in pair if owner[s] == "worker-b")
                    token_before = leases[moved].token

                    b.stop()  # worker b goes away: worker a takes its symbol over
                    wait_for(
                        "worker a to take the symbol over",
                        lambda: hosted(a.worker, moved),
                        timeout=30,
                    )
            finally:
                b.stop()
            lease = SymbolLease.objects.get(symbol=moved)
            assert lease.owner == "worker-a"
            assert lease.token > token_before
            assert a.worker.hosted[moved].token == lease.token
            assert hosted(a.worker, next(s for s in pair if s != moved))
        assert watch.overlaps == []


# ---------------------------------------------------------------- 8. shadow mode


def test_shadow_mode_records_simulated_quotes_and_places_nothing(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    pool = btc_pool()
    with running_worker(make_config(broker, shadow=True)) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)
        quotes = wait_for(
            "simulated quotes in the outbox",
            lambda: list(OutboxEvent.objects.filter(topic="mm.quote.simulated.v1")),
        )
        assert {q.payload["participant_id"] for q in quotes} == {
            str(pool.alice.pk),
            str(pool.bob.pk),
        }
        assert {q.payload["side"] for q in quotes} == {"BUY", "SELL"}
        assert all(q.key == SYMBOL for q in quotes)
        requests = venue.stats()["requests"]
        assert "place" not in requests, requests
        assert no_orders_at_venue(venue.url, "acct-alice", "acct-bob")


# ---------------------------------------------------------------- 11. Redis restarts


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A redis-server of this test's own (the machine's shared one is never restarted)."""
    proc = subprocess.Popen(  # noqa: S603
        [  # noqa: S607 - the binary the project's scripts start
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_for("the private redis", lambda: _answers(client), timeout=10)
    return proc


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_a_redis_restart_costs_the_listener_a_moment_not_for_good(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    """The worker's Redis goes away and comes back on its port while the pool
    quotes: the pool-change listener is started again by the supervisor (a
    pause reaches the engine through Redis long before the 60 s re-read), the
    live status is published again, and the restart is counted."""
    port = free_port()
    pool = btc_pool()
    config = dataclasses.replace(
        make_config(broker, worker_id="worker-r"),
        redis_url=f"redis://127.0.0.1:{port}/0",
        reread_interval_s=60.0,
    )
    private = redis.Redis(port=port)

    def notify() -> None:
        with contextlib.suppress(redis.ConnectionError):
            private.publish(POOL_CHANGED_CHANNEL, json.dumps({"symbol": SYMBOL}))

    server = start_redis(port)
    try:
        with running_worker(config) as running:
            market.open()
            wait_for("the worker to host the pool", lambda: hosted(running.worker))
            services.pool_enable(pool=pool.refresh(), actor=OPS)
            wait_for("the change heard through Redis", lambda: notify() or quoting(venue))
            stop_redis(server)
            restarts = running.worker.metrics.registry
            wait_for(
                "the listener to fail and be counted",
                lambda: restarts.get_sample_value(
                    "mm_quoter_task_restarts_total", {"task": "listen_forever"}
                ),
            )
            server = start_redis(port)
            assert private.get(status_key(SYMBOL)) is None  # a fresh, empty server
            services.pool_pause(pool=pool.refresh(), actor=OPS)
            engine = running.worker.hosted[SYMBOL].engine
            wait_for(
                "the pause heard through the restarted Redis",
                lambda: notify() or engine.mode is PoolMode.PAUSED,
                timeout=20,
            )
            wait_for(
                "every order cancelled",
                lambda: no_orders_at_venue(venue.url, "acct-alice", "acct-bob"),
            )
            wait_for("the live status published again", lambda: private.get(status_key(SYMBOL)))
    finally:
        stop_redis(server)


def quoting(venue: SimAdmin) -> bool:
    return bool(open_orders(venue.url, "acct-bob"))


# ---------------------------------------------------------------- 12. a mismatched worker


def test_a_worker_with_another_config_hosts_nothing_beside_a_running_one(
    kafka_broker: str, venue: SimAdmin, make_config: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A second worker joins the group with another config (shadow mode: another
    config hash). While the two disagree neither hosts a symbol it is assigned:
    a mismatch stops quoting rather than run two configs side by side, and never
    two owners. Once the stranger is gone the first worker takes both back."""
    pair, partitions = pools_on_two_partitions()
    with namespace_on(kafka_broker, partitions) as broker:
        config_a = make_config(broker, worker_id="worker-a", partitions=partitions)
        config_b = dataclasses.replace(
            make_config(broker, worker_id="worker-b", partitions=partitions), shadow=True
        )
        with running_worker(config_a) as a:
            wait_for("worker a to host both", lambda: all(hosted(a.worker, s) for s in pair))
            b = RunningWorker(config_b).start()
            try:
                with OwnershipWatch([a.worker, b.worker], pair) as watch:
                    wait_for(
                        "both workers to refuse beside a stranger",
                        lambda: (
                            "worker-a" in caplog.text
                            and caplog.text.count("run other code or config") >= 2
                        ),
                    )
                    assert not b.worker.hosted
                    assert not any(hosted(a.worker, s) for s in pair)
            finally:
                b.stop()
            wait_for(
                "worker a to host both again",
                lambda: all(hosted(a.worker, s) for s in pair),
                timeout=30,
            )
        assert watch.overlaps == []


def test_a_position_the_venue_holds_but_mms_never_heard_of_is_reported_until_it_clears(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    """Positions reconciled with the venue (issue 19, item 4): a difference the
    next check confirms shows in the live status and the metric, and goes when
    the venue and MMS agree again. The pool keeps its state: the desk decides."""
    pool = btc_pool()
    bob = str(pool.bob.pk)
    config = dataclasses.replace(make_config(broker), position_check_interval_s=0.2)
    with running_worker(config) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))

        def bobs(status: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if status is None else member_view(status, bob)

        checked = wait_for(
            "the venue's positions in the status",
            lambda: (s := live_status()) and bobs(s)["venue_position"] is not None and s,  # type: ignore[index]
        )
        assert checked["positions_reconciled"] is True
        assert bobs(checked)["venue_position"] == "0"  # type: ignore[index]

        venue.adjust_position("acct-bob", SYMBOL, "0.005")  # a fill MMS never heard of
        mismatched = wait_for(
            "the mismatch confirmed",
            lambda: (s := live_status()) and bobs(s)["position_mismatch"] == "0.005" and s,  # type: ignore[index]
        )
        assert mismatched["positions_reconciled"] is False
        assert member_view(mismatched, str(pool.alice.pk))["position_mismatch"] == "0"
        labels = {"symbol": SYMBOL, "participant_id": bob}
        gauge = running.worker.metrics.registry.get_sample_value
        wait_for("the metric", lambda: gauge("mm_pool_member_position_mismatch", labels) == 0.005)
        assert pool.refresh().state == "PAUSED"  # reported, not acted on

        venue.adjust_position("acct-bob", SYMBOL, "-0.005")
        cleared = wait_for(
            "the mismatch cleared",
            lambda: (s := live_status()) and s["positions_reconciled"] and s,
        )
        assert bobs(cleared)["position_mismatch"] == "0"  # type: ignore[index]


# ---------------------------------------------------------------- 13. unwinding


def test_an_unwinding_member_long_at_its_limit_returns_to_flat_with_sells_only(
    broker: Bus, market: Market, venue: SimAdmin, make_config: ConfigFactory
) -> None:
    """SPEC B.20 end to end: alice is filled on both her bids (long 0.010 BTC, her
    whole 600 USDT limit), the pool is killed, and a person unwinds it. Only
    alice's sells are placed, none crossing the book, never more than her
    position, and her position only shrinks; once she is flat the worker ends
    the unwind: the pool PAUSED on record, nothing left at the venue."""
    pool = btc_pool()
    pool.pool.members.filter(participant=pool.alice).update(max_position_usdt=Decimal(600))
    with running_worker(make_config(broker)) as running:
        market.open()
        wait_for("the worker to host the pool", lambda: hosted(running.worker))
        services.pool_enable(pool=pool.refresh(), actor=OPS)

        def alice_bids() -> list[dict[str, Any]]:
            bids = [o for o in open_orders(venue.url, "acct-alice") if o["side"] == "BUY"]
            return bids if len(bids) == 2 else []

        for i, bid in enumerate(wait_for("alice's two bids", alice_bids)):
            market.send(ENGINE_TOPIC, fill_record(bid, f"unwind-long-{i}", Decimal(bid["size"])))
        market.flush()
        wait_for(
            "alice's fills stored",
            lambda: MMFill.objects.filter(participant=pool.alice).count() == 2,
        )
        long = sum((f.size for f in MMFill.objects.filter(participant=pool.alice)), Decimal(0))
        assert long == Decimal("0.010")

        services.pool_halt(pool=pool.refresh(), actor=OPS, trigger="KILL", detail="desk")
        wait_for(
            "nothing at the venue", lambda: no_orders_at_venue(venue.url, "acct-alice", "acct-bob")
        )
        unwinding_since = timezone.now()
        services.pool_unwind(pool=pool.refresh(), actor=OPS, note="alice back to flat")

        sells = wait_for("alice's reducing sells", lambda: open_orders(venue.url, "acct-alice"))
        assert {o["side"] for o in sells} == {"SELL"}
        assert sum(Decimal(o["size"]) for o in sells) <= long
        assert all(Decimal(o["price"]) > Decimal("59999.5") for o in sells)  # none crossing
        assert open_orders(venue.url, "acct-bob") == []  # flat: nothing to unwind
        status = wait_for(
            "the live status UNWINDING", lambda: (live_status() or {}).get("mode") == "UNWINDING"
        )
        assert status

        def alice_position() -> Decimal | None:
            status = live_status()
            if status is None:
                return None
            return Decimal(member_view(status, str(pool.alice.pk))["position"])

        positions = [long]
        for i, sell in enumerate(sorted(sells, key=lambda o: Decimal(o["price"]))):
            size = Decimal(sell["size"])
            first = (size / BTC_LOT // 2) * BTC_LOT  # a partial fill first, on the lot grid
            for j, part in enumerate(p for p in (first, size - first) if p > 0):
                market.send(ENGINE_TOPIC, fill_record(sell, f"unwind-{i}-{j}", part))
                market.flush()
                expected = positions[-1] - part
                wait_for(
                    "the reducing fill booked",
                    lambda expected=expected: alice_position() == expected,
                )
                positions.append(expected)
        assert positions == sorted(positions, reverse=True)
        assert positions[-1] == 0
        assert min(positions) >= 0  # never through flat to a short

        wait_for("the pool PAUSED on record", lambda: pool.refresh().state == "PAUSED")
        wait_for("nothing at the venue", lambda: no_orders_at_venue(venue.url, "acct-alice"))
        audit = AuditLog.objects.filter(entity_id=SYMBOL, action="finish_unwind").get()
        assert audit.reason == "unwind over: every member flat"
        placed = set(
            MMOrder.objects.filter(created_at__gte=unwinding_since).values_list(
                "participant_id", "side", "status"
            )
        )
        assert placed
        assert {(pid, side) for pid, side, _ in placed} == {(pool.alice.pk, "SELL")}
        assert "REJECTED" not in {status for _, _, status in placed}
