"""A pool's engine rebuilt after a restart or a takeover (SPEC Part B.4: a
restart never resets a guard).

Positions, PnL and the order-owner map come back from the persisted fills,
funding payments and orders, each with the participant it was attributed to;
the day's loss guard from its stored baseline. A former member's fills are
not part of the pool's q any more, and are left out. Ids seen here are
remembered, so a redelivered fill or payment is not booked twice. The day's
fills also rebuild the members' fill deficits (core/fairness.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from quoting_worker.core.member import OpenOrder
from quoting_worker.core.types import Fill, FundingPayment

if TYPE_CHECKING:
    from quoting_worker.core.engine import PoolEngine


def rebuild(
    engine: PoolEngine,
    *,
    fills: Iterable[tuple[str, Fill]],
    open_orders: Iterable[tuple[str, OpenOrder]] = (),
    funding: Iterable[tuple[str, FundingPayment]] = (),
    day_baseline_pnl: Decimal | None = None,
    day: int | None = None,
) -> None:
    members = engine.members
    for pid, fill in fills:
        member = members.get(pid)
        if member is None or fill.fill_id in engine.seen_fills:
            continue
        engine.seen_fills.add(fill.fill_id)
        engine.orders.owner.setdefault(fill.client_order_id, pid)
        member.runtime.apply_fill(fill)
        engine.quoter.shares.fill(pid, fill.side, fill.size_lots, fill.ts_ns)
    for pid, payment in funding:
        member = members.get(pid)
        if member is None or payment.payment_id in engine.seen_funding:
            continue
        engine.seen_funding.add(payment.payment_id)
        member.runtime.apply_funding(payment.amount)
    for pid, order in open_orders:
        if pid in members:
            engine.orders.restored(pid, order)
    if day_baseline_pnl is not None and day is not None:
        engine.guards.day, engine.guards.day_baseline_pnl = day, day_baseline_pnl
