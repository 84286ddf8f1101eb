"""Stopping is bounded: a runquoter told to stop exits within SHUTDOWN_TIMEOUT,
whatever is down around it (RELIABILITY.md: a process that cannot be stopped
cannot be replaced). If it does not, the test asks it for every thread's stack
(SIGUSR1, faulthandler) and shows where it waits."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import transaction

from pools import services
from pools.models import PoolConfig, SymbolLease
from quoting_worker.management.commands.runquoter import EXIT_GRACE_S
from tests.adapters.worker_harness import wait_for
from tests.e2e.conftest import TradeXAdmin, running_tradex
from tests.e2e.test_safety import hosted_by, start_runquoter, stop_within
from tests.e2e.test_stack import ETH, OPS, WEIGHTS, eth_pool, resting_ladders
from tests.kafka import own_bus, unique_group

pytestmark = pytest.mark.django_db(transaction=True)

SHUTDOWN_S = 5
MARGIN_S = 10  # interpreter start-up aside, what a stop may take beyond SHUTDOWN_TIMEOUT


@contextmanager
def quoting_runquoter(
    tmp_path: Path, registry: str, metadata: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path, TradeXAdmin]]:
    """A runquoter process (SHUTDOWN_TIMEOUT of SHUTDOWN_S) quoting ETH on a TradeX
    simulator and a broker of its own, both stopped when the block ends; the
    process is killed if the block fails."""
    pool, _ = eth_pool()
    log = tmp_path / "runquoter.log"
    with (
        own_bus(tmp_path / "kafka", partitions=3) as broker,
        running_tradex(broker, registry, tmp_path, "--symbol", ETH, "--seed", "11") as tradex,
    ):
        proc = start_runquoter(
            log,
            broker=broker,
            registry=registry,
            order_service=tradex.url,
            metadata=metadata,
            group=unique_group("shutdown"),
            extra_env={"SHUTDOWN_TIMEOUT": f"{SHUTDOWN_S}s"},
        )
        try:
            wait_for("the runquoter to host ETH", hosted_by(proc, log))
            services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="t")
            wait_for("orders on the book", lambda: resting_ladders(tradex))
            yield proc, log, tradex
        except BaseException:
            proc.kill()
            raise


@pytest.mark.parametrize("gone", ["venue and broker", "nothing"])
def test_a_runquoter_stops_within_shutdown_timeout_even_with_the_venue_and_broker_gone(
    gone: str, schema_registry_url: str, metadata_target: str, tmp_path: Path
) -> None:
    with quoting_runquoter(tmp_path, schema_registry_url, metadata_target) as (proc, log, _):
        if gone == "nothing":
            took = stop_within(proc, log, SHUTDOWN_S + MARGIN_S)
            assert proc.returncode == 0, log.read_text()[-4000:]
            assert took < SHUTDOWN_S + MARGIN_S
            return
    # The venue and the broker are gone (their context managers ended them).
    took = stop_within(proc, log, SHUTDOWN_S + MARGIN_S)
    assert took < SHUTDOWN_S + MARGIN_S


def test_a_runquoter_held_past_shutdown_timeout_exits_1_with_its_stacks(
    schema_registry_url: str, metadata_target: str, tmp_path: Path
) -> None:
    """The lease row locked by another transaction: the release's last write
    blocks the worker's database thread, which the interpreter would wait for
    at exit forever. The release is cut short at SHUTDOWN_TIMEOUT (exit code 1)
    and the process ends EXIT_GRACE_S later, every thread's stack in its log."""
    with quoting_runquoter(tmp_path, schema_registry_url, metadata_target) as (proc, log, tradex):
        with transaction.atomic():
            SymbolLease.objects.select_for_update().get(symbol=ETH)
            took = stop_within(proc, log, SHUTDOWN_S + EXIT_GRACE_S + MARGIN_S)
        # The gate closed and the orders went before the write that blocked.
        assert all(not tradex.open_orders(account, ETH) for account in WEIGHTS)
    output = log.read_text()
    assert proc.returncode == 1, output[-4000:]
    assert took >= SHUTDOWN_S + EXIT_GRACE_S
    assert "shutdown took longer than SHUTDOWN_TIMEOUT" in output
    assert "(most recent call first)" in output  # faulthandler's dump of the threads
