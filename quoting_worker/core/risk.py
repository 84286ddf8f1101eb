"""Pool risk guards and the pre-trade check.

Kill-switch triggers (SPEC Part A, B.4, B.5), checked by the engine:

- POSITION:     |q| at mark > max_pool_position_usdt (q summed over current members)
- LOSS:         the pool's PnL over the current UTC day (realised + unrealised,
                fees and funding included) < −max_pool_loss_usdt; the day's
                baseline is the pool's total PnL when the day began (or when the
                engine first saw the day), so a resume after a loss halt is not
                halted again by yesterday's loss
- REJECT_STORM: `reject_storm_count` consecutive order rejections
- EXCHANGE_HALT: the instrument's status is HALTED
- STALE_DATA:   no book message received for `staleness_threshold_ms`
                (when `check_staleness`)

A breach closes the order gate at once; the engine then cancels every order
and asks the authority (the pool row) to HALT. Nothing here resumes: only a
person does, through the API.

The pre-trade check refuses, before an order leaves, a price outside a collar
around mid, a size below the minimum or a notional outside limits, and a
duplicate of a resting order, and counts each refusal by reason
(RELIABILITY.md: SEC 15c3-5 style controls).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from quoting_worker.core.types import Instrument, PoolParams, Side

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_MS = 1_000_000
# The venue's reject code for an order on a halted instrument
# (contracts/order-service.openapi.yaml, Reject.code; engine.event.v1 reason).
INSTRUMENT_HALTED = "INSTRUMENT_HALTED"


def utc_day(ts_ns: int) -> int:
    """Days since the epoch, UTC: the loss guard's period (half-open days)."""
    return ts_ns // NS_PER_DAY


@dataclass(frozen=True, slots=True)
class Breach:
    trigger: str
    detail: str


@dataclass(slots=True)
class PoolRiskGuards:
    """Tracks what the triggers need between events; `check_*` return a Breach or None."""

    consecutive_rejects: int = 0
    exchange_halted: bool = False
    day: int | None = None
    day_baseline_pnl: Decimal = Decimal(0)

    def on_reject(self, params: PoolParams) -> Breach | None:
        self.consecutive_rejects += 1
        if self.consecutive_rejects >= params.reject_storm_count:
            return Breach(
                "REJECT_STORM", f"{self.consecutive_rejects} consecutive order rejections"
            )
        return None

    def on_accept(self) -> None:
        self.consecutive_rejects = 0

    def reset_rejects(self) -> None:
        self.consecutive_rejects = 0

    def check_position(self, q_notional_usdt: Decimal, params: PoolParams) -> Breach | None:
        if abs(q_notional_usdt) > params.max_pool_position_usdt:
            return Breach(
                "POSITION",
                f"pool position {abs(q_notional_usdt):.2f} USDT > limit "
                f"{params.max_pool_position_usdt} USDT",
            )
        return None

    def roll_day(self, now_ns: int, total_pnl: Decimal) -> None:
        """On the first look in a new UTC day, the day's PnL starts from here."""
        today = utc_day(now_ns)
        if self.day != today:
            self.day = today
            self.day_baseline_pnl = total_pnl

    def day_pnl(self, total_pnl: Decimal) -> Decimal:
        return total_pnl - self.day_baseline_pnl

    def check_loss(self, now_ns: int, total_pnl: Decimal, params: PoolParams) -> Breach | None:
        self.roll_day(now_ns, total_pnl)
        pnl = self.day_pnl(total_pnl)
        if pnl < -params.max_pool_loss_usdt:
            return Breach(
                "LOSS", f"pool PnL today {pnl:.2f} USDT < −{params.max_pool_loss_usdt} USDT"
            )
        return None

    def check_stale(
        self, now_ns: int, last_received_ns: int | None, params: PoolParams
    ) -> Breach | None:
        if not params.check_staleness or last_received_ns is None:
            return None
        age_ms = (now_ns - last_received_ns) // NS_PER_MS
        if age_ms > params.staleness_threshold_ms:
            return Breach(
                "STALE_DATA",
                f"no book message for {age_ms} ms (threshold {params.staleness_threshold_ms} ms)",
            )
        return None


@dataclass(slots=True)
class PreTradeCheck:
    """The last look before an order leaves; refusals are counted by reason."""

    instrument: Instrument
    refused: Counter[str] = field(default_factory=Counter)
    # The venue's minimum notional as a bound on ticks × lots, exact: an order
    # is below it when ticks × lots × _min_den < _min_num (no Decimal per order).
    _min_num: int = 0
    _min_den: int = 1

    def __post_init__(self) -> None:
        instrument = self.instrument
        bound = Fraction(instrument.min_notional) / (
            Fraction(instrument.tick_size) * Fraction(instrument.lot_size)
        )
        self._min_num, self._min_den = bound.numerator, bound.denominator

    def refuse_reason(
        self,
        *,
        side: Side,
        price_ticks: int,
        size_lots: int,
        mid_ticks: float,
        best_bid: int | None,
        best_ask: int | None,
        params: PoolParams,
        max_order_lots: int,
        resting_prices: frozenset[int] | set[int],
    ) -> str | None:
        """None if the order may go; otherwise the reason it is refused (and counted)."""
        reason = self._first_failed_rule(
            side, price_ticks, size_lots, mid_ticks, best_bid, best_ask, params,
            max_order_lots, resting_prices,
        )  # fmt: skip
        if reason is not None:
            self.refused[reason] += 1
        return reason

    def _first_failed_rule(
        self, side: Side, price_ticks: int, size_lots: int, mid_ticks: float,
        best_bid: int | None, best_ask: int | None, params: PoolParams,
        max_order_lots: int, resting_prices: frozenset[int] | set[int],
    ) -> str | None:  # fmt: skip
        if price_ticks <= 0:
            return "price_not_positive"
        if abs(price_ticks - mid_ticks) * 10_000 > params.price_collar_bps * mid_ticks:
            return "price_outside_collar"
        if side is Side.BUY and best_ask is not None and price_ticks >= best_ask:
            return "would_cross"
        if side is Side.SELL and best_bid is not None and price_ticks <= best_bid:
            return "would_cross"
        if size_lots < self.instrument.min_lots:
            return "size_below_minimum"
        if size_lots > max_order_lots:
            return "size_above_maximum"
        if price_ticks * size_lots * self._min_den < self._min_num:
            return "notional_below_minimum"
        if price_ticks in resting_prices:
            return "duplicate_of_resting_order"
        return None
