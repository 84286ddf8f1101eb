"""One member's live state in a pool: position, PnL, fees, funding, open orders.

Units:
- position: integer lots, positive long, negative short (size = lots × lot_size);
- prices: the fill's integer ticks, turned into Decimal USDT per base unit with
  the instrument's tick size; a mark price is Decimal USDT per base unit;
- money (cost basis, realised and unrealised PnL, fees, funding, volume):
  Decimal USDT. Fees are what the member paid (a maker rebate is negative);
  funding is what it received (paid is negative).

PnL uses the average-cost method. The state keeps the open position's cost
basis, i.e. its entry notional (signed: positive while long, negative while
short), rather than an average price: adding to the position adds the fill's
notional to the basis; reducing it moves the reduced share of the basis out
and realises (exit − average) · size for a long (the reverse for a short);
going through zero realises the closed part and opens the rest at the fill
price. The average entry price is basis / size, computed when asked.

Arithmetic: every sum and product runs in `EXACT`, a Decimal context of 60
significant digits that traps `Inexact`, so no result is ever silently
rounded (it raises instead; real prices, sizes and fees need far fewer
digits). The one division, the reduced share of the cost basis (basis ·
reduced / size), is the only rounding inside: to `BASIS_QUANTUM` (10**-30
USDT, half-even), which keeps every later sum exact. Since that same rounded
amount leaves the basis and enters realised PnL, realised + unrealised stays
exactly equal to the cash flows (Σ sells − Σ buys + position · mark), and
once the position is flat realised PnL is exact. No float anywhere. Nothing
else is quantised inside; `quantize_usdt` rounds to the stored 8 places, at
output only.

Open orders: client order id → `OpenOrder` (frozen; replaced on change), with
the resting lots per side kept up to date on every change, so capacity checks
never scan the orders. NEW (sent, not yet acknowledged) and UNKNOWN (outcome
unknown) orders count as resting: they may be on the book.

Fills are applied as given: de-duplicating by fill id (delivery is at least
once) is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from quoting_worker.core.types import Fill, Instrument, Side

EXACT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
"""Sums and products of money: 60 digits, and any rounding raises."""

DIVISION = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""Divisions (share of the cost basis, average price): 60 digits, half-even."""

BASIS_QUANTUM = Decimal("1e-30")
"""The reduced share of a cost basis is rounded to this (USDT), and nothing else is."""

USDT_QUANTUM = Decimal("0.00000001")
"""Money is stored and published with 8 decimal places."""

ZERO = Decimal(0)


def quantize_usdt(amount: Decimal) -> Decimal:
    """`amount` rounded half-even to 8 places, for storage and publication only."""
    return amount.quantize(USDT_QUANTUM, rounding=ROUND_HALF_EVEN, context=DIVISION)


class OrderState(StrEnum):
    NEW = "NEW"  # sent to the Order Service, not acknowledged yet
    OPEN = "OPEN"  # accepted by the venue
    UNKNOWN = "UNKNOWN"  # placement outcome unknown (timeout, 5xx); being queried


class OpenOrder(NamedTuple):
    """One of the member's orders that may be resting on the book."""

    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    level: int
    remaining_lots: int
    state: OrderState = OrderState.NEW


class MemberRuntime:
    """The live state of one member of one pool (see the module docstring for units)."""

    __slots__ = (
        "_cost_usdt",
        "_fees_usdt",
        "_funding_usdt",
        "_open_orders",
        "_position_lots",
        "_realised_pnl_usdt",
        "_resting_buy_lots",
        "_resting_sell_lots",
        "_trade_count",
        "_volume_usdt",
        "instrument",
        "participant_id",
    )

    def __init__(self, participant_id: str, instrument: Instrument) -> None:
        self.participant_id = participant_id
        self.instrument = instrument
        self._position_lots = 0
        self._cost_usdt = ZERO  # entry notional of the open position, signed like it
        self._realised_pnl_usdt = ZERO
        self._fees_usdt = ZERO
        self._funding_usdt = ZERO
        self._volume_usdt = ZERO
        self._trade_count = 0
        self._open_orders: dict[str, OpenOrder] = {}
        self._resting_buy_lots = 0
        self._resting_sell_lots = 0

    # ------------------------------------------------------------ read

    @property
    def position_lots(self) -> int:
        return self._position_lots

    @property
    def cost_basis_usdt(self) -> Decimal:
        """Entry notional of the open position: > 0 long, < 0 short, 0 flat."""
        return self._cost_usdt

    @property
    def avg_entry_price(self) -> Decimal:
        """Average entry price in USDT per base unit (60 digits); 0 when flat."""
        if self._position_lots == 0:
            return ZERO
        size = self.instrument.size(self._position_lots)
        return DIVISION.divide(self._cost_usdt, size)

    @property
    def realised_pnl_usdt(self) -> Decimal:
        """Trading PnL realised so far, before fees and funding."""
        return self._realised_pnl_usdt

    @property
    def fees_usdt(self) -> Decimal:
        """Fees paid; rebates received make it smaller (negative when rebates win)."""
        return self._fees_usdt

    @property
    def funding_usdt(self) -> Decimal:
        """Funding received (negative when paid)."""
        return self._funding_usdt

    @property
    def volume_usdt(self) -> Decimal:
        """Traded notional, both sides."""
        return self._volume_usdt

    @property
    def trade_count(self) -> int:
        return self._trade_count

    @property
    def open_orders(self) -> Mapping[str, OpenOrder]:
        """Read-only view: client order id → order."""
        return MappingProxyType(self._open_orders)

    def resting_lots(self, side: Side) -> int:
        """Remaining lots of the orders on `side` that may rest on the book."""
        return self._resting_buy_lots if side is Side.BUY else self._resting_sell_lots

    def unrealised_pnl(self, mark: Decimal) -> Decimal:
        """The open position valued at `mark` minus its cost basis."""
        with localcontext(EXACT):
            return self.instrument.size(self._position_lots) * mark - self._cost_usdt

    def total_pnl(self, mark: Decimal) -> Decimal:
        """Realised + unrealised − fees + funding."""
        with localcontext(EXACT):
            unrealised = self.instrument.size(self._position_lots) * mark - self._cost_usdt
            return self._realised_pnl_usdt + unrealised - self._fees_usdt + self._funding_usdt

    def notional_usdt(self, mark: Decimal) -> Decimal:
        """|position| at `mark`: the exposure the member's limit is about (≥ 0)."""
        with localcontext(EXACT):
            return self.instrument.size(abs(self._position_lots)) * mark

    def signed_notional_usdt(self, mark: Decimal) -> Decimal:
        """Position at `mark`, negative when short: sums to the pool's net exposure."""
        with localcontext(EXACT):
            return self.instrument.size(self._position_lots) * mark

    # ------------------------------------------------------------ orders

    def add_order(
        self,
        *,
        client_order_id: str,
        side: Side,
        price_ticks: int,
        size_lots: int,
        level: int,
        state: OrderState = OrderState.NEW,
    ) -> OpenOrder:
        """Track a new order; its size counts as resting on its side at once."""
        if client_order_id in self._open_orders:
            raise ValueError(f"order {client_order_id} is already tracked")
        if size_lots <= 0:
            raise ValueError(f"order {client_order_id}: size must be > 0 lots, got {size_lots}")
        order = OpenOrder(
            client_order_id=client_order_id,
            side=side,
            price_ticks=price_ticks,
            size_lots=size_lots,
            level=level,
            remaining_lots=size_lots,
            state=state,
        )
        self._open_orders[client_order_id] = order
        self._add_resting(side, size_lots)
        return order

    def set_order_state(self, client_order_id: str, state: OrderState) -> OpenOrder | None:
        """Record an acknowledgement or an unknown outcome; None if the order is not tracked."""
        order = self._open_orders.get(client_order_id)
        if order is None:
            return None
        order = order._replace(state=state)
        self._open_orders[client_order_id] = order
        return order

    def remove_order(self, client_order_id: str) -> OpenOrder | None:
        """Stop tracking an order (cancel confirmed, rejected, not found); None if unknown."""
        order = self._open_orders.pop(client_order_id, None)
        if order is not None:
            self._add_resting(order.side, -order.remaining_lots)
        return order

    def _add_resting(self, side: Side, lots: int) -> None:
        if side is Side.BUY:
            self._resting_buy_lots += lots
        else:
            self._resting_sell_lots += lots

    # ------------------------------------------------------------ money

    def apply_fill(self, fill: Fill, instrument: Instrument | None = None) -> Decimal:
        """Book one fill: position, cost basis, realised PnL, fees, volume, the order.
        Returns the realised PnL this fill booked (before fees).

        `instrument` (default: the member's) reads the fill's ticks, so a refreshed
        tick size can be passed; its lot size must not change, positions being in lots.
        A fill for an order not tracked (already cancelled, or replayed at start)
        still moves the position.
        """
        cost, realised, signed_lots, notional = self._effect(fill, instrument)
        with localcontext(EXACT):
            self._cost_usdt = cost
            self._realised_pnl_usdt += realised
            self._position_lots += signed_lots
            self._fees_usdt += fill.fee
            self._volume_usdt += notional
        self._trade_count += 1

        order = self._open_orders.get(fill.client_order_id)
        if order is not None:
            filled = min(fill.size_lots, order.remaining_lots)
            self._add_resting(order.side, -filled)
            if filled == order.remaining_lots:
                del self._open_orders[fill.client_order_id]
            else:
                self._open_orders[fill.client_order_id] = order._replace(
                    remaining_lots=order.remaining_lots - filled
                )
        return realised

    def realised_by(self, fill: Fill, instrument: Instrument | None = None) -> Decimal:
        """The realised PnL `fill` would book if applied now, without booking it
        (the runquoter stores it with the fill, before the engine applies it)."""
        return self._effect(fill, instrument)[1]

    def _effect(
        self, fill: Fill, instrument: Instrument | None
    ) -> tuple[Decimal, Decimal, int, Decimal]:
        """What `fill` does to the books: (cost basis after, realised PnL, signed
        lots, notional)."""
        if instrument is None:
            instrument = self.instrument
        elif instrument.lot_size != self.instrument.lot_size:
            raise ValueError(
                f"{instrument.symbol}: lot size {instrument.lot_size} differs from "
                f"{self.instrument.lot_size}; positions are in lots"
            )
        lots = fill.size_lots
        if lots <= 0:
            raise ValueError(f"fill {fill.fill_id}: size must be > 0 lots, got {lots}")

        with localcontext(EXACT):
            notional = instrument.notional(fill.price_ticks, lots)
            signed_lots = lots if fill.side is Side.BUY else -lots
            position = self._position_lots
            cost = self._cost_usdt
            realised = ZERO
            if position == 0 or (position > 0) == (signed_lots > 0):
                # Opening or adding: the fill's notional joins the basis.
                cost += notional if signed_lots > 0 else -notional
            else:
                closed = min(lots, abs(position))
                if closed == abs(position):
                    released = cost
                else:
                    released = DIVISION.divide(cost * closed, abs(position)).quantize(
                        BASIS_QUANTUM, context=DIVISION
                    )
                # A sell of a long brings cash in, a buy back of a short pays it out.
                closed_notional = instrument.notional(fill.price_ticks, closed)
                cash = closed_notional if position > 0 else -closed_notional
                realised = cash - released
                cost -= released
                opened = lots - closed
                if opened:
                    opened_notional = instrument.notional(fill.price_ticks, opened)
                    cost = opened_notional if signed_lots > 0 else -opened_notional
        return cost, realised, signed_lots, notional

    def apply_funding(self, amount: Decimal) -> None:
        """Book a funding payment: `amount` USDT received (negative: paid)."""
        with localcontext(EXACT):
            self._funding_usdt += amount
