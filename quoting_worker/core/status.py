"""The pool's live status as the engine sees it (SPEC Part B.10): what the
runquoter publishes to Redis every second and the performance snapshots read.

`pool_status(engine)` builds the read-safe snapshot from the engine's public
state (mode, gate, book, last ladder, members and their orders); it changes
nothing. The model's figures are the last quote's, in price units, as the
engine computed them: the microprice it quoted off, r = s − q·γ·σ²·τ and
δ = γ·σ²·τ/2 + ln(1 + γ/κ)/γ (before the bps clamp); σ is the tracker's now.
`gate_reason` says why a pool does not quote: the order gate's reason, or,
with the gate open, a stale book, a one-sided book or σ still warming up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from quoting_worker.core.fairness import FillShares
from quoting_worker.core.member import OrderState
from quoting_worker.core.membership import Member
from quoting_worker.core.types import Instrument, PoolMode, Side

if TYPE_CHECKING:
    from quoting_worker.core.engine import PoolEngine

# An average of fill prices is shown to the tick and this many places more (an
# exact average is a repeating decimal: it was published with 60 digits).
AVG_PRICE_EXTRA_PLACES = 4


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
    # Reconciliation: the venue's last word on the account's position (None
    # before the first check; `position` has moved on since), venue − MMS at
    # that check, and venue − MMS once two checks in a row agree on it.
    venue_position: Decimal | None = None
    venue_difference: Decimal = Decimal(0)
    position_mismatch: Decimal = Decimal(0)
    # Fair queue position (core/fairness.py), over the UTC day in base units:
    # the maker volume filled, and the fill deficit (entitled − filled; the
    # member furthest behind stands first at the next placement).
    day_maker_size: Decimal = Decimal(0)
    fill_deficit: Decimal = Decimal(0)


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
    # The microprice (net of the pool's own orders) the last quote was made off,
    # in price units; None before the first quote.
    microprice: float | None = None
    # Best ask quoted − best bid quoted, price units (None unless both sides rest).
    quoted_spread: Decimal | None = None
    # Every member's position agrees with the venue's (no confirmed mismatch).
    positions_reconciled: bool = True


def member_view(
    member: Member,
    instrument: Instrument,
    mark: Decimal | None,
    shares: FillShares,
    now_ns: int,
) -> MemberView:
    rt = member.runtime
    pid = member.spec.participant_id
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
        avg_entry_price=_shown_price(rt.avg_entry_price, instrument),
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
        venue_position=None if member.venue_position is None else _plain(member.venue_position),
        venue_difference=_plain(member.venue_difference),
        position_mismatch=_plain(member.position_mismatch),
        day_maker_size=instrument.size(shares.volume(pid, now_ns)),
        fill_deficit=instrument.size(round(shares.deficit(pid, now_ns))),
    )


def why_not_quoting(engine: PoolEngine, now_ns: int, sigma: float | None) -> str:
    """Why the pool places nothing now; "" when it may quote. The order gate's
    reason first, then what the quoter waits for with the gate open (`sigma`:
    the tracker's σ at `now_ns`)."""
    gate = engine.gate()
    if gate:
        return gate
    book = engine.book
    if not engine.book_fresh(now_ns):
        silent_ms = (now_ns - book.last_received_ns) // 1_000_000
        return f"book stale: no message for {silent_ms} ms"
    if book.mid_ticks() is None:
        return "book one-sided"
    if sigma is None:
        vol = engine.vol
        return f"σ warming up: {vol.samples} of {vol.min_samples} price increments"
    return ""


def _plain(value: Decimal) -> Decimal:
    """`value` without trailing zeros (the venue answers 0.52700000 for 0.527)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def _shown_price(price: Decimal, instrument: Instrument) -> Decimal:
    """`price` to the tick and AVG_PRICE_EXTRA_PLACES more; 0 as "0" (not "0E-13")."""
    if not price:
        return Decimal(0)
    quantum = instrument.tick_size.scaleb(-AVG_PRICE_EXTRA_PLACES)
    return price.quantize(quantum, rounding=ROUND_HALF_EVEN)


def pool_status(engine: PoolEngine) -> EngineStatus:
    instrument = engine.instrument
    tick = float(instrument.tick_size)
    last = engine.quoter.last
    ladder = last.ladder
    quoted = engine.orders.own_levels
    bid, ask = engine.book.best_bid(), engine.book.best_ask()
    now = engine.clock.now_ns()
    sigma = engine.vol.sigma(now)
    reason = why_not_quoting(engine, now, sigma)
    best_bid = instrument.price(max(quoted[Side.BUY])) if quoted[Side.BUY] else None
    best_ask = instrument.price(min(quoted[Side.SELL])) if quoted[Side.SELL] else None
    return EngineStatus(
        symbol=engine.symbol,
        mode=engine.mode,
        quoting=reason == "" and bool(quoted[Side.BUY] or quoted[Side.SELL]),
        gate_reason=reason,
        q=instrument.size(engine.q_lots()),
        sigma=sigma,
        reservation_price=ladder.r if ladder else None,
        half_spread=ladder.half_spread if ladder else None,
        best_bid_quoted=best_bid,
        best_ask_quoted=best_ask,
        day_pnl_usdt=engine.day_pnl(),
        members=tuple(
            member_view(m, instrument, engine.mark, engine.quoter.shares, now)
            for m in engine.members.values()
        ),
        mid=None if bid is None or ask is None else instrument.price(bid + ask) / 2,
        refused=dict(engine.quoter.pretrade.refused),
        halt=engine.halt_reason,
        microprice=None if last.ladder_micro is None else last.ladder_micro * tick,
        quoted_spread=None if best_bid is None or best_ask is None else best_ask - best_bid,
        positions_reconciled=all(m.position_mismatch == 0 for m in engine.members.values()),
    )
