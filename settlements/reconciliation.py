"""Do the stored fills explain the money? Each settlement's realised PnL,
recomputed from its stored fills by an average-cost ledger of its own, must
equal the stored figure to the quantum (SPEC Part B.14-B.15; issue 19, item 8).

The ledger here shares no code with the runquoter's (quoting_worker/core/
member.py, which books fills in ticks and lots as they arrive): it reads the
prices and sizes as mm_fills holds them, replays every fill of the participant
in the symbol in (filled_at, id) order from the first one (a month opens on the
position the months before left), and follows the written-down rules: the
basis of an open position is its entry notional; a fill that reduces it
realises its exit notional less the reduced share of the basis, that share
(basis · reduced / size) rounded half-even to BASIS_QUANTUM after a division
to DIVISION_DIGITS significant digits, and nothing else is rounded; a fill
through zero closes the position and opens the rest at its price. Each fill's
PnL is rounded half-even to 8 places, as mm_fills.realized_pnl_usdt stores it.

A settlement reconciles when the month's sum of those equals its
realized_pnl_usdt and every fill of the month agrees with its own stored
figure. A price stored rounded (the numeric(28,8) columns before trading 0005
rounded a PEPE price on a 1e-9 tick to 8 places) shows up here as a
difference: the fee and PnL beside it were computed from the exact price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation

from settlements.calculation import USDT, bounds
from settlements.models import Settlement
from trading.enums import Side
from trading.models import MMFill

# The runquoter's ledger's rounding of the reduced share of a basis (its
# BASIS_QUANTUM and DIVISION context; tests/settlements pins them together).
BASIS_QUANTUM = Decimal("1e-30")
DIVISION_DIGITS = 60
_DIVISION = Context(prec=DIVISION_DIGITS, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
# Sums and products: wide enough for any stored price × size; a rounding raises.
_EXACT = Context(prec=200, rounding=ROUND_HALF_EVEN, traps=[Inexact, InvalidOperation])
_ZERO = Decimal(0)


class AverageCostLedger:
    """One participant's position in one symbol: size in base units (negative
    short) and basis (its entry notional in USDT, signed like it)."""

    def __init__(self) -> None:
        self.position = _ZERO
        self.basis = _ZERO

    def book(self, *, side: str, price: Decimal, size: Decimal) -> Decimal:
        """Books one fill; returns the trading PnL it realised (before fees), unrounded."""
        ctx = _EXACT
        signed = size if side == Side.BUY else ctx.minus(size)
        if self.position == 0 or (self.position > 0) == (signed > 0):
            self.basis = ctx.add(self.basis, ctx.multiply(price, signed))
            self.position = ctx.add(self.position, signed)
            return _ZERO
        held = ctx.abs(self.position)
        closed = min(size, held)
        if closed == held:
            released = self.basis
        else:
            share = _DIVISION.divide(ctx.multiply(self.basis, closed), held)
            released = share.quantize(BASIS_QUANTUM, context=_DIVISION)
        exit_notional = ctx.multiply(price, closed)
        cash = exit_notional if self.position > 0 else ctx.minus(exit_notional)
        realised = ctx.subtract(cash, released)
        self.basis = ctx.subtract(self.basis, released)
        self.position = ctx.add(self.position, signed)
        opened = ctx.subtract(size, closed)
        if opened:
            self.basis = ctx.multiply(price, opened if signed > 0 else ctx.minus(opened))
        return realised


def quantize_usdt(amount: Decimal) -> Decimal:
    """`amount` half-even to 8 places, as mm_fills.realized_pnl_usdt stores it."""
    return amount.quantize(USDT, rounding=ROUND_HALF_EVEN, context=_DIVISION)


@dataclass(frozen=True)
class PnlReconciliation:
    """One settlement against its fills."""

    settlement_id: str
    participant_id: str
    participant_name: str
    symbol: str
    fill_count: int  # the month's fills now stored
    settled_fill_count: int  # the fills the settlement counted
    stored: Decimal  # the settlement's realized_pnl_usdt
    recomputed: Decimal  # Σ of the ledger's PnL of the month's fills, each to 8 places
    fills_differing: int  # month's fills whose stored PnL is not the ledger's
    first_differing_fill: str | None

    @property
    def difference(self) -> Decimal:
        return self.recomputed - self.stored

    @property
    def reconciles(self) -> bool:
        return self.difference == 0 and self.fills_differing == 0


def settlement_pnl_reconcile(
    *, first: dt.date, symbols: Iterable[str] | None = None
) -> list[PnlReconciliation]:
    """Every settlement of the UTC month starting `first` (only `symbols`' when
    given) against its fills, by symbol and participant name. One query per
    settlement, streaming the participant's fills in the symbol up to the
    month's end."""
    start, end = bounds(first)
    settlements = Settlement.objects.filter(period_start=first).select_related("participant")
    if symbols is not None:
        settlements = settlements.filter(symbol__in=list(symbols))
    return [
        _reconcile(settlement, start, end)
        for settlement in settlements.order_by("symbol", "participant__name", "participant_id")
    ]


def _reconcile(settlement: Settlement, start: dt.datetime, end: dt.datetime) -> PnlReconciliation:
    ledger = AverageCostLedger()
    count, recomputed, differing, first_differing = 0, _ZERO, 0, None
    fills = (
        MMFill.objects.filter(
            participant_id=settlement.participant_id,
            symbol=settlement.symbol,
            filled_at__lt=end,
        )
        .order_by("filled_at", "id")
        .values_list("fill_id", "side", "price", "size", "realized_pnl_usdt", "filled_at")
    )
    for fill_id, side, price, size, stored, filled_at in fills.iterator(chunk_size=10_000):
        realised = quantize_usdt(ledger.book(side=side, price=price, size=size))
        if filled_at < start:
            continue
        count += 1
        recomputed = _EXACT.add(recomputed, realised)
        if realised != stored:
            differing += 1
            first_differing = first_differing or fill_id
    return PnlReconciliation(
        settlement_id=str(settlement.pk),
        participant_id=str(settlement.participant_id),
        participant_name=settlement.participant.name,
        symbol=settlement.symbol,
        fill_count=count,
        settled_fill_count=settlement.fill_count,
        stored=settlement.realized_pnl_usdt,
        recomputed=recomputed,
        fills_differing=differing,
        first_differing_fill=first_differing,
    )
