"""Stopping is bounded: a runquoter told to stop exits within SHUTDOWN_TIMEOUT,
whatever is down around it (RELIABILITY.md: a process that cannot be stopped
cannot be replaced). If it does not, the test asks it for every thread's stack
(SIGUSR1, faulthandler) and shows where it waits."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from pools import services
from pools.models import PoolConfig
from tests.adapters.broker_fixture import unique_group
from tests.adapters.worker_harness import tansu_broker, wait_for
from tests.e2e.conftest import running_tradex
from tests.e2e.test_safety import hosted_by, start_runquoter
from tests.e2e.test_stack import OPS, eth_pool, resting_ladders

pytestmark = pytest.mark.django_db(transaction=True)

SHUTDOWN_S = 5
MARGIN_S = 10  # interpreter start-up aside, what a stop may take beyond SHUTDOWN_TIMEOUT


def stop_within(proc: subprocess.Popen[bytes], log: Path, seconds: float) -> float:
    """SIGTERM, then the seconds the process took to exit; fails with its threads'
    stacks if it is still running after `seconds`."""
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        proc.wait()
        pytest.fail(
            f"runquoter still running {seconds} s after SIGTERM:\n{log.read_text()[-12000:]}"
        )
    return time.monotonic() - asked


@pytest.mark.parametrize("gone", ["venue and broker", "nothing"])
def test_a_runquoter_stops_within_shutdown_timeout_even_with_the_venue_and_broker_gone(
    gone: str, schema_registry_url: str, metadata_target: str, tmp_path: Path
) -> None:
    pool, _ = eth_pool()
    log = tmp_path / "runquoter.log"
    with (
        tansu_broker(tmp_path, partitions=3) as broker,
        running_tradex(
            broker, schema_registry_url, tmp_path, "--symbol", "ETHUSDT-PERP", "--seed", "11"
        ) as tradex,
    ):
        proc = start_runquoter(
            log,
            broker=broker,
            registry=schema_registry_url,
            order_service=tradex.url,
            metadata=metadata_target,
            group=unique_group("shutdown"),
            extra_env={"SHUTDOWN_TIMEOUT": f"{SHUTDOWN_S}s"},
        )
        try:
            wait_for("the runquoter to host ETH", hosted_by(proc, log))
            services.pool_resume(pool=PoolConfig.objects.get(pk=pool.pk), actor=OPS, note="t")
            wait_for("orders on the book", lambda: resting_ladders(tradex))
            if gone == "nothing":
                took = stop_within(proc, log, SHUTDOWN_S + MARGIN_S)
                assert proc.returncode == 0, log.read_text()[-4000:]
                assert took < SHUTDOWN_S + MARGIN_S
                return
        except BaseException:
            proc.kill()
            raise
    # The venue and the broker are gone (their context managers ended them).
    took = stop_within(proc, log, SHUTDOWN_S + MARGIN_S)
    assert took < SHUTDOWN_S + MARGIN_S
