"""Issue 8, row 4: the venue's answers about live orders get lost — cancels,
queries and cancel-alls fail with 503s and with connections cut mid-answer
(transport errors, as a DNS or network failure gives) — while a pool quotes on
the TradeX simulator, its takers fill the pool's orders and the market moves.

An order is final only when the venue says so, so every fill still reaches
its member: once the faults stop and the pool pauses, mm_fills equals the
venue's ledger for each account (lost fills 0) and each member's position in
the worker equals the venue's (position difference 0). Orders whose cancel
was lost are left to the engine's queries, so nothing stays at the venue.
(A fill for an order the engine no longer tracks is booked to its member by
client order id, or kept as unattributed: tests/core/test_engine.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from pools import services
from tests.adapters.worker_harness import wait_for
from tests.e2e.conftest import TradeXAdmin
from tests.e2e.test_safety import (  # noqa: F401 - quoter and tradex are shared fixtures
    ACCOUNTS,
    book_empty,
    both_members_quoting,
    hosted,
    quoter,
    row,
    tradex,
    venue_trades,
)
from tests.e2e.test_stack import ETH, OPS, eth_pool
from tests.figures import record
from trading.models import MMFill

pytestmark = pytest.mark.django_db(transaction=True)


def test_lost_answers_about_live_orders_lose_no_fill_and_leave_positions_equal(
    tradex: TradeXAdmin,  # noqa: F811
    quoter: Callable[..., Any],  # noqa: F811
) -> None:
    pool, members = eth_pool()
    services.pool_update(pool=pool, config={"quote_interval_ms": 200}, actor=OPS)
    with quoter() as running:
        worker = running.worker
        wait_for("the worker to host ETH", lambda: hosted(worker))
        services.pool_resume(pool=row(pool), actor=OPS, note="row 4")
        wait_for("both members quoting", lambda: both_members_quoting(tradex), timeout=30)
        before = sum(venue_trades(tradex).values())
        tradex.faults(
            error_rate=0.3,
            reset_rate=0.3,
            routes=["cancel", "cancel_all", "query", "open_orders"],
            seed=4,
        )
        deadline = time.monotonic() + 6.0
        for bps in (15, -15, 15, -15):  # the takers trade through the ladder each way
            tradex.move(ETH, bps)
            time.sleep(1.0)
        while sum(venue_trades(tradex).values()) - before < 4:
            assert time.monotonic() < deadline + 30, "too few fills under the faults to test"
            time.sleep(0.2)
        tradex.faults()
        services.pool_pause(pool=row(pool), actor=OPS, reason="row 4")
        wait_for("the book empty", lambda: book_empty(tradex), timeout=30)
        engine = worker.hosted[ETH].engine
        stats = tradex.get("/admin/stats")["requests"]
        failed = sum(
            n
            for route in ("cancel", "cancel_all", "query")
            for outcome, n in stats.get(route, {}).items()
            if outcome in ("503", "reset")
        )

        def stored() -> dict[str, int]:
            return {
                a: MMFill.objects.filter(participant=p, symbol=ETH).count()
                for a, p in members.items()
            }

        def positions_equal() -> bool:
            return all(
                engine.members[str(p.pk)].runtime.position_lots * engine.instrument.lot_size
                == Decimal(tradex.ledger(a)["positions"].get(ETH, "0"))
                for a, p in members.items()
            )

        try:
            wait_for("mm_fills equal to the ledger", lambda: stored() == venue_trades(tradex))
            wait_for("positions equal to the venue's", positions_equal, timeout=10)
        finally:
            venue = venue_trades(tradex)
            lost = sum(max(0, venue[a] - stored().get(a, 0)) for a in ACCOUNTS)
            difference = sum(
                abs(
                    engine.members[str(p.pk)].runtime.position_lots * engine.instrument.lot_size
                    - Decimal(tradex.ledger(a)["positions"].get(ETH, "0"))
                )
                for a, p in members.items()
            )
            record(
                4,
                failed_answers=failed,
                fills_at_venue=sum(venue.values()),
                lost_fills=lost,
                position_difference=difference,
            )
    assert failed > 0, "no answer was lost: nothing tested"
