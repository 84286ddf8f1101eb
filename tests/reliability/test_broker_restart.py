"""The quoter through a Kafka outage (issue 17): the broker stopped (SIGTERM) or
killed (SIGKILL) while a pool quotes on the TradeX simulator, then started again
on the same data.

While the broker is down no book message arrives: the pool's staleness guard
halts it (STALE_DATA, SPEC Part A) and every member order leaves the venue (the
Order Service is reached over HTTP, not Kafka). When the broker is back the
worker reconnects and reads on from its committed offsets; the pool stays
HALTED (nothing resumes by itself) and nothing is placed; every fill the venue
made reaches mm_fills once, including those the simulator could only deliver
after the restart. An outage longer than the consumer group's session gives
the pool back to the worker PAUSED (the last test).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from messaging.kafka import DEFAULT_SESSION_TIMEOUT_MS
from messaging.partitioning import partition_for
from messaging.topics import DELTA
from pools import services
from pools.models import PoolConfig
from quoting_worker.core.types import PoolMode
from quoting_worker.worker import QuoterWorker
from tests.adapters.worker_harness import (
    TEST_SESSION_TIMEOUT_MS,
    running_worker,
    wait_for,
    worker_config,
)
from tests.e2e.conftest import TradeXAdmin, running_tradex
from tests.e2e.test_safety import placements, venue_trades
from tests.e2e.test_stack import ETH, OPS, WEIGHTS, eth_pool, hosted, resting_ladders
from tests.kafka import Bus, own_bus, unique_group
from trading.models import MMFill

pytestmark = pytest.mark.django_db(transaction=True)

PARTITIONS = 3
STALENESS_MS = 3000  # eth_pool's
HALT_WITHIN_S = STALENESS_MS / 1000 + 3.0  # the guard's threshold, its timer, a loaded machine
CALM_S = 5.0  # how long the pool is watched staying HALTED once the book is back


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    """A Kafka node of this test's own (it is stopped and started again)."""
    with own_bus(tmp_path / "kafka", partitions=PARTITIONS) as bus:
        yield bus


def delta_position(worker: QuoterWorker) -> int:
    """The next offset the worker will take from ETH's delta partition."""
    return worker.offsets.position(DELTA, partition_for(ETH, PARTITIONS)) or -1


def stored_fills() -> dict[str, int]:
    return {
        account: MMFill.objects.filter(symbol=ETH, participant__account_id=account).count()
        for account in WEIGHTS
    }


def no_orders(tradex: TradeXAdmin) -> bool:
    return all(not tradex.open_orders(account, ETH) for account in WEIGHTS)


@contextlib.contextmanager
def quoting_eth(
    bus: Bus, registry: str, metadata: str, tmp_path: Path, *, session_timeout_ms: int
) -> Iterator[tuple[PoolConfig, TradeXAdmin, QuoterWorker]]:
    """The ETH pool ACTIVE on the simulator, its ladders on the book and fills stored."""
    pool, _ = eth_pool()
    args = ("--symbol", ETH, "--seed", "11")
    with running_tradex(bus, registry, tmp_path, *args) as tradex:
        config = worker_config(
            bus=bus,
            registry_url=registry,
            order_service_url=tradex.url,
            metadata_target=metadata,
            group_id=unique_group("outage"),
            partitions=PARTITIONS,
            session_timeout_ms=session_timeout_ms,
        )
        with running_worker(config) as running:
            worker = running.worker
            wait_for("the worker to host ETH", lambda: hosted(worker))
            services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="t")
            wait_for("both ladders on the book", lambda: resting_ladders(tradex))
            wait_for("fills stored", lambda: sum(stored_fills().values()) >= 2, timeout=120)
            yield pool, tradex, worker


def assert_every_fill_stored_once(tradex: TradeXAdmin) -> int:
    """Every venue fill of the members in mm_fills, each once (those the simulator
    could deliver only after the restart too); how many there are."""
    wait_for("mm_fills equal to the venue's ledger", lambda: stored_fills() == venue_trades(tradex))
    fills = MMFill.objects.filter(symbol=ETH)
    assert fills.count() == fills.values("fill_id").distinct().count()
    return fills.count()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_broker_outage_halts_on_stale_data_resumes_nothing_and_loses_no_fill(
    how: str,
    bus: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The group outlives the outage (production's session timeout): the worker
    keeps its partitions and the staleness guard halts the pool."""
    assert bus.node is not None
    node = bus.node
    with quoting_eth(
        bus,
        schema_registry_url,
        metadata_target,
        tmp_path,
        session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS,
    ) as (pool, tradex, worker):
        down = time.monotonic()
        if how == "SIGKILL":
            node.kill()
        else:
            node.stop()
        wait_for(
            "the pool HALTED on stale data",
            lambda: PoolConfig.objects.get(pk=pool.pk).state == "HALTED",
            timeout=HALT_WITHIN_S,
        )
        halt_s = time.monotonic() - down
        halted = PoolConfig.objects.get(pk=pool.pk)
        assert "STALE_DATA" in halted.state_reason, halted.state_reason
        wait_for("every member order off the venue", lambda: no_orders(tradex))
        placed_at_halt = placements(tradex)

        node.start()
        back = time.monotonic()
        position = delta_position(worker)
        wait_for(
            "the worker reading the book again",
            lambda: delta_position(worker) > position,
            timeout=60,
        )
        reconnect_s = time.monotonic() - back
        fills = assert_every_fill_stored_once(tradex)
        time.sleep(CALM_S)  # the book is fresh again: nothing may resume the pool
        assert PoolConfig.objects.get(pk=pool.pk).state == "HALTED"
        assert worker.hosted[ETH].engine.mode is PoolMode.HALTED
        assert no_orders(tradex)
        assert placements(tradex) == placed_at_halt
    with capsys.disabled():
        print(
            f"\nbroker {how}: pool HALTED (STALE_DATA) {halt_s:.1f} s after the broker went"
            f" down; worker reading again {reconnect_s:.1f} s after the start returned;"
            f" {fills} fills, each stored once"
        )


def test_an_outage_longer_than_the_group_session_gives_the_pool_back_paused(
    bus: Bus, schema_registry_url: str, metadata_target: str, tmp_path: Path
) -> None:
    """With a session shorter than the outage (2 s here; 45 s in production) the
    consumer gives its partitions up before the staleness guard trips: the
    worker releases the pool (gate closed, every order cancelled, lease given
    back). When the broker is back the worker takes the pool over again, and a
    takeover sets an ACTIVE pool PAUSED (SPEC Part B.9): it never quotes again
    by itself."""
    assert bus.node is not None
    node = bus.node
    with quoting_eth(
        bus,
        schema_registry_url,
        metadata_target,
        tmp_path,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    ) as (pool, tradex, worker):
        node.kill()
        wait_for("the pool released", lambda: not hosted(worker))
        wait_for("every member order off the venue", lambda: no_orders(tradex))
        placed_at_release = placements(tradex)
        node.start()
        wait_for("the pool hosted again", lambda: hosted(worker), timeout=60)
        assert_every_fill_stored_once(tradex)
        time.sleep(CALM_S)
        assert PoolConfig.objects.get(pk=pool.pk).state in ("PAUSED", "HALTED")
        assert worker.hosted[ETH].engine.mode is not PoolMode.ACTIVE
        assert no_orders(tradex)
        assert placements(tradex) == placed_at_release
