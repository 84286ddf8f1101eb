"""Issue 8, row 11: PostgreSQL restarts under a quoting runquoter.

A real `manage.py runquoter` runs against a PostgreSQL server of the test's own
(a copy of the test database), quoting a pool on the TradeX simulator. The
server stops while the pool's orders rest and the market jumps through them,
so fills happen at the venue while nothing can be put on record:

- no fill is lost: each one waits (its offset uncommitted, its symbol's queue
  held) until the database takes it, and mm_fills ends equal to the venue's
  ledger;
- nothing is quoted without a durable record: the first failed write suspends
  the pool (its orders withdrawn, cancels need no record) and no placement
  reaches the venue while the server is down;
- it recovers by itself: once the server is back the pool quotes again with
  no one resuming it, and the pool was never HALTED (a suspension is not a
  kill switch).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.adapters.worker_harness import wait_for
from tests.conftest import ROOT
from tests.e2e.conftest import TradeXAdmin
from tests.e2e.test_safety import (  # noqa: F401 - tradex is a shared fixture
    ACCOUNTS,
    book_empty,
    both_members_quoting,
    hosted_by,
    placements,
    start_runquoter,
    stop_all,
    tradex,
    venue_trades,
)
from tests.e2e.test_stack import ETH, eth_pool
from tests.figures import record
from tests.kafka import Bus, unique_group
from tests.private_postgres import PrivatePostgres, private_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


def in_database(url: str, code: str) -> None:
    """`code` run by Django against the database at `url` (a process of its own:
    this one's ORM belongs to the test database)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mms.settings.test", "POSTGRES_URL": url}
    subprocess.run(  # noqa: S603
        [sys.executable, "-c", f"import django\ndjango.setup()\n{code}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def fills_by_account(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.account_id, count(*) FROM mm_fills f"
            " JOIN mm_participants p ON p.id = f.participant_id"
            " WHERE f.symbol = %s GROUP BY p.account_id",
            (ETH,),
        ).fetchall()
    return {account: int(n) for account, n in rows}


def pool_state(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state FROM mm_pool_configs WHERE symbol = %s", (ETH,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_postgres_restart_loses_no_fill_quotes_nothing_meanwhile_and_recovers_by_itself(
    server: PrivatePostgres,
    tradex: TradeXAdmin,  # noqa: F811
    broker: Bus,
    schema_registry_url: str,
    metadata_target: str,
    tmp_path: Path,
) -> None:
    eth_pool()
    url = server.copy_from(
        f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}", "mms_private"
    )
    log = tmp_path / "runquoter.log"
    proc = start_runquoter(
        log,
        broker=broker,
        registry=schema_registry_url,
        order_service=tradex.url,
        metadata=metadata_target,
        group=unique_group("pg-restart"),
        extra_env={"POSTGRES_URL": url},
    )
    alive: Callable[[], dict | None] = hosted_by(proc, log)
    try:
        wait_for("the runquoter to host ETH", alive)
        in_database(
            url,
            "from pools import services\n"
            "from pools.models import PoolConfig\n"
            "from common.actors import Actor\n"
            f"services.pool_resume(pool=PoolConfig.objects.get(symbol={ETH!r}),"
            " actor=Actor('olga-ops'), note='row 11')",
        )
        wait_for("both members quoting", lambda: both_members_quoting(tradex), timeout=30)

        # The database goes away with orders resting, and the market jumps through
        # them while the venue is slow to cancel: fills the worker cannot record.
        before = sum(venue_trades(tradex).values())
        tradex.faults(latency_ms=2000, routes=["cancel", "cancel_all"])
        server.stop()
        down = time.monotonic()
        tradex.move(ETH, 40)
        wait_for(
            "fills at the venue during the outage",
            lambda: sum(venue_trades(tradex).values()) > before,
            timeout=10,
        )
        tradex.faults()
        wait_for("every member order withdrawn", lambda: book_empty(tradex), timeout=15)
        withdrawn_s = time.monotonic() - down
        during = sum(venue_trades(tradex).values()) - before
        placed_before = placements(tradex)
        time.sleep(3.0)  # the outage goes on: the worker retries, placing nothing
        placed_while_down = placements(tradex) - placed_before
        assert placed_while_down == 0, "placed while the database was down"
        assert book_empty(tradex)
        assert alive() is not None  # the worker lives on (live status in Redis)

        server.start()
        up = time.monotonic()
        wait_for("quoting again, no one resuming", lambda: both_members_quoting(tradex), timeout=30)
        recovered_s = time.monotonic() - up
        assert pool_state(url) == "ACTIVE"

        # Every fill the venue made is on record once, those of the outage included.
        in_database(
            url,
            "from pools import services\n"
            "from pools.models import PoolConfig\n"
            "from common.actors import Actor\n"
            f"services.pool_pause(pool=PoolConfig.objects.get(symbol={ETH!r}),"
            " actor=Actor('olga-ops'), reason='row 11')",
        )
        wait_for("every order cancelled", lambda: book_empty(tradex))
        with contextlib.suppress(AssertionError):
            wait_for(
                "mm_fills equal to the venue's ledger",
                lambda: fills_by_account(url) == venue_trades(tradex),
                timeout=20,
            )
        stored, venue = fills_by_account(url), venue_trades(tradex)
        lost = sum(max(0, venue[a] - stored.get(a, 0)) for a in venue)
        record(
            11,
            fills_during_outage=during,
            fills_lost=lost,
            placements_while_down=placed_while_down,
            withdrawn_after_stop_s=round(withdrawn_s, 3),
            recover_s=round(recovered_s, 3),
        )
        assert stored == venue, "fills lost or doubled across the restart"
    finally:
        stop_all([proc])
