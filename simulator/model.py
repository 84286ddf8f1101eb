"""The TradeX simulator's shared vocabulary: instruments and exchange events.

The matching engine (`simulator.exchange`) emits these events in the order
things happen; the feed (`simulator.feed`) turns them into the Avro records of
contracts/avro (md.orderbook.delta.v1, md.mark.v1, engine.event.v1); the
market model (`simulator.market`) and the Order Service stand-in drive the
engine. Prices, sizes and money are Decimal, in the instrument's units
(prices in USDT on the tick grid, sizes in base units on the lot grid);
times are integer nanoseconds since the epoch of the simulator's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Side = Literal["BUY", "SELL"]
Liquidity = Literal["MAKER", "TAKER"]


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_size: Decimal
    min_notional: Decimal

    @classmethod
    def parse(cls, text: str) -> InstrumentRules:
        """SYMBOL:TICK:LOT:MIN_NOTIONAL (min size = one lot), e.g. BTCUSDT-PERP:0.1:0.001:5"""
        try:
            symbol, tick, lot, notional = text.split(":")
            return cls(symbol, Decimal(tick), Decimal(lot), Decimal(lot), Decimal(notional))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not SYMBOL:TICK:LOT:MIN_NOTIONAL") from exc


def instrument_options(specs: Iterable[str]) -> list[str]:
    """The stand-ins' command line for `specs` (SYMBOL:TICK:LOT:MIN_NOTIONAL each):
    `--instrument SPEC`, repeated."""
    return [arg for spec in specs for arg in ("--instrument", spec)]


INSTRUMENTS = (
    InstrumentRules("BTCUSDT-PERP", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5)),
    InstrumentRules("ETHUSDT-PERP", Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal(5)),
    # A small cap: a price around 1e-5 USDT (one tick is 1 bp), so sizes run to
    # millions of units.
    InstrumentRules(
        "PEPEUSDT-PERP", Decimal("0.000000001"), Decimal(1000), Decimal(1000), Decimal(5)
    ),
)


# The simulator's own accounts (the other makers, the takers, /admin/book):
# left out of the venue's "live orders" figure, which tests read as MMS's.
HOUSE_ACCOUNT_PREFIXES = ("sim-", "bg-")


def is_house_account(account_id: str) -> bool:
    return account_id.startswith(HOUSE_ACCOUNT_PREFIXES)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class LevelChanged:
    """A price level's new total resting size on one side ("0" removes it)."""

    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    client_order_id: str
    order_id: str
    account_id: str
    symbol: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_order_id: str
    account_id: str
    symbol: str
    reason: str  # a code: POST_ONLY_WOULD_CROSS, INVALID_TICK, INSTRUMENT_HALTED, ...
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    client_order_id: str
    order_id: str
    account_id: str
    symbol: str
    reason: str  # USER, CANCEL_ALL, DEAD_MANS_SWITCH, SELF_TRADE_PREVENTED, ...
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Filled:
    """One account's side of a trade. `fee` is charged to the account (negative:
    a maker rebate paid to it)."""

    fill_id: str
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    liquidity: Liquidity
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Traded:
    """The public trade print (no accounts)."""

    trade_id: str
    symbol: str
    price: Decimal
    size: Decimal
    aggressor_side: Side
    ts_ns: int


@dataclass(frozen=True, slots=True)
class StatusChanged:
    symbol: str
    halted: bool
    ts_ns: int


@dataclass(frozen=True, slots=True)
class FundingPaid:
    """`amount` is positive when the account receives it."""

    payment_id: str
    account_id: str
    symbol: str
    amount: Decimal
    rate: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class MarkChanged:
    symbol: str
    mark_price: Decimal
    index_price: Decimal
    ts_ns: int


ExchangeEvent = (
    LevelChanged
    | OrderAccepted
    | OrderRejected
    | OrderCancelled
    | Filled
    | Traded
    | StatusChanged
    | FundingPaid
    | MarkChanged
)
