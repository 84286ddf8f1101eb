"""The core's vocabulary: instruments, events in, actions out.

Representation (why integers): on the hot path prices are integer *ticks*
(price = ticks × tick_size) and sizes integer *lots* (size = lots × lot_size),
so the book, the ladder and the allocation never round and never drift.
Money (fees, funding, PnL, limits) is Decimal. The A-S model's own maths is
float (it takes logarithms); its output is turned into ticks once, rounding
bids down and asks up.

Timestamps are integer nanoseconds from the engine's clock port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any, NamedTuple


class Side(StrEnum):
    BUY = "BUY"  # a bid
    SELL = "SELL"  # an ask


class PoolMode(StrEnum):
    PAUSED = "PAUSED"
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    # Only orders that bring each member's position back towards flat (SPEC B.20).
    UNWINDING = "UNWINDING"

    @property
    def places(self) -> bool:
        """Whether orders are placed in this mode: ACTIVE, and UNWINDING's reducing
        ones. The guards that halt a quoting pool (stale data, exchange halt,
        reject storm) watch both."""
        return self is PoolMode.ACTIVE or self is PoolMode.UNWINDING


class MemberStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


@dataclass(frozen=True, slots=True)
class Instrument:
    """Trading rules of one symbol, from the Metadata Service."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_lots: int = 1
    min_notional: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size and lot_size must be > 0")
        if self.min_lots < 1:
            raise ValueError(f"{self.symbol}: min_lots must be ≥ 1")

    def ticks(self, price: Decimal) -> int:
        """The tick at or below `price`."""
        return int((price / self.tick_size).to_integral_value(rounding=ROUND_DOWN))

    def price(self, ticks: int) -> Decimal:
        return ticks * self.tick_size

    def lots(self, size: Decimal) -> int:
        """Whole lots in `size`, rounded down."""
        return int((size / self.lot_size).to_integral_value(rounding=ROUND_DOWN))

    def size(self, lots: int) -> Decimal:
        return lots * self.lot_size

    def notional(self, ticks: int, lots: int) -> Decimal:
        """USDT value of `lots` at `ticks`."""
        return ticks * self.tick_size * lots * self.lot_size


# A price level: (price in ticks, size in lots). Size 0 in a delta removes the level.
Level = tuple[int, int]


# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changes since `seq - 1`; each level's size is its new total (0 = gone)."""

    seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BookHeartbeat:
    """A quiet book is alive; `seq` is the last delta's sequence number."""

    seq: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class MarkPrice:
    price: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class PublicTrade:
    price_ticks: int
    size_lots: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of one of MMS's orders; `fill_id` is the venue's and unique."""

    fill_id: str
    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    fee: Decimal  # USDT; negative is a maker rebate
    ts_ns: int


@dataclass(frozen=True, slots=True)
class FundingPayment:
    payment_id: str
    account_id: str
    amount: Decimal  # USDT received (negative: paid)
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    client_order_id: str
    venue_order_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_order_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The venue confirms the order is gone (final)."""

    client_order_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class PlaceOutcomeUnknown:
    """A placement timed out or got a 5xx: the venue may or may not have it."""

    client_order_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderQueryResult:
    """The venue's answer to a query by client order id."""

    client_order_id: str
    found: bool
    open: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class VenueOpenOrders:
    """Reconciliation: the client order ids the venue lists as open for one member
    account on this symbol, as of `ts_ns` (the request's send time)."""

    account_id: str
    client_order_ids: frozenset[str]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """Reconciliation: one member account's position on this symbol at the venue,
    signed base units, as of `ts_ns` (the request's send time)."""

    account_id: str
    size: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class InstrumentStatus:
    halted: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Timer:
    ts_ns: int


@dataclass(frozen=True, slots=True)
class PoolParams:
    """A pool's configuration as the engine uses it (see mm_pool_configs)."""

    gamma: float
    kappa: float
    tau_hours: float
    vol_lookback_seconds: int
    num_levels: int
    level_spacing_bps: float
    min_spread_bps: float
    max_spread_bps: float
    order_size_usdt: Decimal
    max_pool_position_usdt: Decimal
    max_pool_loss_usdt: Decimal
    check_staleness: bool = True
    staleness_threshold_ms: int = 5000
    quote_interval_ms: int = 250
    price_threshold_bps: float = 1.0
    # Engine settings with safe defaults (not in the pool table yet).
    reject_storm_count: int = 10
    price_collar_bps: float = 500.0
    vol_min_samples: int = 20
    sigma_floor: float | None = None
    # The inventory the A-S skew aims at, base units: r = s − (q − q₀)·γ·σ²·τ.
    target_inventory: float = 0.0
    # UNWINDING (SPEC B.20): reducing orders only within this many bps of mid; a
    # loss beyond the PnL at the unwind's start by more than this halts it
    # (USDT); it ends PAUSED after this many seconds whatever is left.
    unwind_band_bps: float = 50.0
    unwind_max_loss_usdt: Decimal | None = None  # None: max_pool_loss_usdt
    unwind_time_limit_s: int = 3600

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> PoolParams:
        """From a pool's configuration by its stored field names (mm_pool_configs:
        `tau` is τ in hours); the stored Decimals the model takes as floats."""
        return cls(
            gamma=float(config["gamma"]),
            kappa=float(config["kappa"]),
            tau_hours=float(config["tau"]),
            vol_lookback_seconds=int(config["vol_lookback_seconds"]),
            num_levels=int(config["num_levels"]),
            level_spacing_bps=float(config["level_spacing_bps"]),
            min_spread_bps=float(config["min_spread_bps"]),
            max_spread_bps=float(config["max_spread_bps"]),
            order_size_usdt=Decimal(config["order_size_usdt"]),
            max_pool_position_usdt=Decimal(config["max_pool_position_usdt"]),
            max_pool_loss_usdt=Decimal(config["max_pool_loss_usdt"]),
            check_staleness=bool(config["check_staleness"]),
            staleness_threshold_ms=int(config["staleness_threshold_ms"]),
            quote_interval_ms=int(config["quote_interval_ms"]),
            price_threshold_bps=float(config["price_threshold_bps"]),
            target_inventory=float(config.get("target_inventory", 0)),
            unwind_band_bps=float(config.get("unwind_band_bps", 50)),
            unwind_max_loss_usdt=(
                None
                if config.get("unwind_max_loss_usdt") is None
                else Decimal(config["unwind_max_loss_usdt"])
            ),
            unwind_time_limit_s=int(config.get("unwind_time_limit_s", 3600)),
        )


@dataclass(frozen=True, slots=True)
class MemberSpec:
    participant_id: str
    short_id: str  # first 8 characters of the participant id (SPEC Part B.6)
    account_id: str
    weight: Decimal
    max_position_usdt: Decimal
    status: MemberStatus = MemberStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Command:
    """A lifecycle or configuration command from the API, admin or risk path.

    kind: enable | pause | resume | unwind | kill | flatten | config | members, or from the
    worker itself: suspend | unsuspend (its durable record is unavailable / back)
    """

    kind: str
    ts_ns: int
    reason: str = ""
    params: PoolParams | None = None
    members: tuple[MemberSpec, ...] = field(default_factory=tuple)


Event = (
    BookSnapshot
    | BookDelta
    | BookHeartbeat
    | MarkPrice
    | PublicTrade
    | Fill
    | FundingPayment
    | OrderAccepted
    | OrderRejected
    | OrderCancelled
    | PlaceOutcomeUnknown
    | OrderQueryResult
    | VenueOpenOrders
    | VenuePosition
    | InstrumentStatus
    | Timer
    | Command
)


# ---------------------------------------------------------------- actions out


# The two actions a re-quote makes by the hundred are NamedTuples: built in a
# third of a frozen dataclass's time, compiled or not (issue 20). Like every
# action they are immutable, compared by value, and matched by class.
class PlaceOrder(NamedTuple):
    client_order_id: str
    participant_id: str
    account_id: str
    side: Side
    level: int
    price_ticks: int
    size_lots: int


class CancelOrder(NamedTuple):
    client_order_id: str
    participant_id: str
    account_id: str
    # Where the order rests, when the engine knows (None for an order it does not
    # track): a new order that could cross it waits for this cancel.
    side: Side | None = None
    price_ticks: int | None = None


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Venue cancel-all for these accounts on this symbol (pause, halt, flatten)."""

    account_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class QueryOrder:
    client_order_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    reason: str


@dataclass(frozen=True, slots=True)
class RiskTriggered:
    """Ask the authority (the pool's database row) to HALT the pool."""

    trigger: str
    detail: str


@dataclass(frozen=True, slots=True)
class UnwindFinished:
    """The unwind is over (every member flat, or its time limit): the engine is
    PAUSED with nothing resting, and the pool row must say so."""

    reason: str


@dataclass(frozen=True, slots=True)
class OrderAbandoned:
    """The venue never had this order (asked, and not found, often enough): it is
    closed on record, so no restart restores it as a live order."""

    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SimulatedQuote:
    """Shadow mode: what would have been placed."""

    participant_id: str
    side: Side
    level: int
    price_ticks: int
    size_lots: int


Action = (
    PlaceOrder
    | CancelOrder
    | CancelAll
    | QueryOrder
    | RequestSnapshot
    | RiskTriggered
    | UnwindFinished
    | OrderAbandoned
    | SimulatedQuote
)
