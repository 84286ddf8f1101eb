"""The pool's live status as the engine sees it (SPEC Part B.10): what the
runquoter publishes to Redis every second and the performance snapshots read.

`pool_status(engine)` builds the read-safe snapshot from the engine's public
state (mode, gate, book, last ladder, members and their orders); it changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from quoting_worker.core.member import OrderState
from quoting_worker.core.membership import Member
from quoting_worker.core.types import Instrument, PoolMode, Side

if TYPE_CHECKING:
    from quoting_worker.core.engine import PoolEngine


@dataclass(frozen=True, slots=True)
class MemberView:
    participant_id: str
    position_lots: int
    position: Decimal
    avg_entry_price: Decimal
    realised_pnl_usdt: Decimal
    unrealised_pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    volume_usdt: Decimal
    trade_count: int
    open_orders: int
    bid_depth_usdt: Decimal
    ask_depth_usdt: Decimal
    quoting_both_sides: bool
    # The venue-acknowledged orders resting now: (side, price, remaining size).
    # The performance snapshots score them (performance/qscore.py).
    orders: tuple[tuple[str, Decimal, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """The read-safe snapshot published as the pool's live status (SPEC B.10)."""

    symbol: str
    mode: PoolMode
    quoting: bool
    gate_reason: str
    q: Decimal
    sigma: float | None
    reservation_price: float | None
    half_spread: float | None
    best_bid_quoted: Decimal | None
    best_ask_quoted: Decimal | None
    day_pnl_usdt: Decimal
    members: tuple[MemberView, ...]
    # The book's mid price (None until the book has both sides).
    mid: Decimal | None
    refused: dict[str, int]
    halt: str


def member_view(member: Member, instrument: Instrument, mark: Decimal | None) -> MemberView:
    rt = member.runtime
    bid_depth = sum(
        (
            instrument.notional(o.price_ticks, o.remaining_lots)
            for o in rt.open_orders.values()
            if o.side is Side.BUY and o.level == 0
        ),
        Decimal(0),
    )
    ask_depth = sum(
        (
            instrument.notional(o.price_ticks, o.remaining_lots)
            for o in rt.open_orders.values()
            if o.side is Side.SELL and o.level == 0
        ),
        Decimal(0),
    )
    return MemberView(
        participant_id=member.spec.participant_id,
        position_lots=rt.position_lots,
        position=instrument.size(rt.position_lots),
        avg_entry_price=rt.avg_entry_price,
        realised_pnl_usdt=rt.realised_pnl_usdt,
        unrealised_pnl_usdt=rt.unrealised_pnl(mark) if mark else Decimal(0),
        fees_usdt=rt.fees_usdt,
        funding_usdt=rt.funding_usdt,
        volume_usdt=rt.volume_usdt,
        trade_count=rt.trade_count,
        open_orders=len(rt.open_orders),
        bid_depth_usdt=bid_depth,
        ask_depth_usdt=ask_depth,
        quoting_both_sides=bid_depth > 0 and ask_depth > 0,
        orders=tuple(
            (o.side.value, instrument.price(o.price_ticks), instrument.size(o.remaining_lots))
            for o in rt.open_orders.values()
            if o.state is OrderState.OPEN and o.remaining_lots > 0
        ),
    )


def pool_status(engine: PoolEngine) -> EngineStatus:
    instrument = engine.instrument
    ladder = engine.quoter.last.ladder
    quoted = engine.orders.own_levels
    bid, ask = engine.book.best_bid(), engine.book.best_ask()
    gate = engine.gate()
    return EngineStatus(
        symbol=engine.symbol,
        mode=engine.mode,
        quoting=gate == "" and bool(quoted[Side.BUY] or quoted[Side.SELL]),
        gate_reason=gate,
        q=instrument.size(engine.q_lots()),
        sigma=engine.vol.sigma(engine.clock.now_ns()),
        reservation_price=ladder.r * float(instrument.tick_size) if ladder else None,
        half_spread=ladder.half_spread if ladder else None,
        best_bid_quoted=instrument.price(max(quoted[Side.BUY])) if quoted[Side.BUY] else None,
        best_ask_quoted=instrument.price(min(quoted[Side.SELL])) if quoted[Side.SELL] else None,
        day_pnl_usdt=engine.day_pnl(),
        members=tuple(member_view(m, instrument, engine.mark) for m in engine.members.values()),
        mid=None if bid is None or ask is None else instrument.price(bid + ask) / 2,
        refused=dict(engine.quoter.pretrade.refused),
        halt=engine.halt_reason,
    )
