"""Issue 8, row 3: placements whose outcome is unknown — the venue took the order
and answered 500, never answered (timeout), or cut the connection mid-answer;
or answered 503 before doing anything — while a pool quotes on the TradeX
simulator.

The worker (in a thread of the test process) resolves each by a query of its
client order id and never places the same order twice: the venue never holds
two live orders with one id, nothing stays unresolved once the pool pauses,
and the book is empty after the pause. Figures: unknown outcomes, time from
the unknown outcome to the first answer about it (p50, p99, max), duplicate
live orders (sampled while quoting and at the end).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from pools import services
from tests.adapters.worker_harness import wait_for
from tests.e2e.conftest import TradeXAdmin
from tests.e2e.test_safety import (  # noqa: F401 - quoter and tradex are shared fixtures
    book_empty,
    both_members_quoting,
    hosted,
    quoter,
    row,
    tradex,
)
from tests.e2e.test_stack import ETH, OPS, eth_pool
from tests.figures import record

pytestmark = pytest.mark.django_db(transaction=True)


def duplicates(tradex: TradeXAdmin) -> int:  # noqa: F811
    return int(tradex.get("/admin/stats")["duplicate_live_orders"])


def test_unknown_placement_outcomes_are_resolved_by_client_order_id_and_never_doubled(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Callable[..., Any],  # noqa: F811
) -> None:
    pool, _ = eth_pool()
    # Re-quotes often (every order is replaced when the price moves 0.5 bps).
    services.pool_update(
        pool=pool, config={"quote_interval_ms": 200, "price_threshold_bps": "0.5"}, actor=OPS
    )
    resolved: list[float] = []
    with quoter() as running:
        worker = running.worker
        timed = worker.sink.on_resolved

        def on_resolved(seconds: float) -> None:
            resolved.append(seconds)
            if timed is not None:
                timed(seconds)

        worker.sink.on_resolved = on_resolved
        wait_for("the worker to host ETH", lambda: hosted(worker))
        services.pool_resume(pool=row(pool), actor=OPS, note="row 3")
        wait_for("both members quoting", lambda: both_members_quoting(tradex), timeout=30)
        tradex.faults(
            error_after_accept_rate=0.1,
            timeout_after_accept_rate=0.1,
            hang_ms=4000,  # past the client's 2 s timeout
            reset_rate=0.1,
            error_rate=0.1,
            routes=["place"],
            seed=3,
        )
        sampled = []
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline or worker.client.outcomes["place.unknown"] < 10:
            assert time.monotonic() < deadline + 30, "too few unknown outcomes to test"
            sampled.append(duplicates(tradex))
            time.sleep(0.1)
        tradex.faults()
        services.pool_pause(pool=row(pool), actor=OPS, reason="row 3")
        engine = worker.hosted[ETH].engine
        wait_for("every unknown outcome resolved", lambda: not engine.orders.unknown, timeout=30)
        wait_for("the book empty", lambda: book_empty(tradex), timeout=30)
        unknown = worker.client.outcomes["place.unknown"]
        at_end = duplicates(tradex)
    ordered = sorted(resolved)
    record(
        3,
        unknown_outcomes=unknown,
        resolved=len(resolved),
        resolve_p50_s=round(statistics.median(ordered), 4) if ordered else None,
        resolve_p99_s=round(ordered[int(0.99 * (len(ordered) - 1))], 4) if ordered else None,
        resolve_max_s=round(ordered[-1], 4) if ordered else None,
        duplicate_live_orders=max([*sampled, at_end]),
    )
    assert max([*sampled, at_end]) == 0
    assert unknown >= 10
    assert resolved, "no unknown outcome was resolved by a query"
